// Blocking loopback sockets for the integration tests: a client that sends
// raw bytes and reads raw responses, and a scripted upstream server.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <csignal>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace portico::test {

// Connects to 127.0.0.1:port; -1 on failure.
// A peer that leaves mid-write must not kill the test process.
inline const bool sigpipe_ignored = (std::signal(SIGPIPE, SIG_IGN), true);

// A port on 127.0.0.1 that refuses connections: bound, never listening, and
// held for the object's life so that no other socket is given it.
class RefusingPort {
 public:
  RefusingPort() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
  }
  ~RefusingPort() { ::close(fd_); }
  RefusingPort(const RefusingPort&) = delete;
  RefusingPort& operator=(const RefusingPort&) = delete;
  std::uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
};

inline int connect_to(std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

inline bool send_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

// Reads what arrives within `timeout` (stops early at EOF, or when `done`
// says the bytes so far are complete).
inline std::string read_until(int fd, const std::function<bool(const std::string&)>& done,
                              std::chrono::milliseconds timeout = std::chrono::milliseconds(3000)) {
  std::string out;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  char buf[65536];
  while (!done(out)) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

// True once `data` holds `count` complete HTTP/1.1 responses framed by
// Content-Length or chunked (bodyless ones with neither).
inline bool has_responses(const std::string& data, int count) {
  std::size_t pos = 0;
  for (int i = 0; i < count; ++i) {
    const std::size_t end = data.find("\r\n\r\n", pos);
    if (end == std::string::npos) return false;
    std::string head = data.substr(pos, end - pos);
    for (auto& ch : head)
      ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    pos = end + 4;
    if (auto cl = head.find("content-length:"); cl != std::string::npos) {
      pos += std::stoul(head.substr(cl + 15));
      if (pos > data.size()) return false;
    } else if (head.find("transfer-encoding: chunked") != std::string::npos) {
      const std::size_t term = data.find("\r\n0\r\n\r\n", pos - 2);
      if (term == std::string::npos) return false;
      pos = term + 7;
    }
  }
  return true;
}

inline std::string roundtrip(std::uint16_t port, std::string_view request, int responses = 1) {
  int fd = connect_to(port);
  if (fd < 0) return "";
  send_all(fd, request);
  std::string r = read_until(fd, [&](const std::string& s) { return has_responses(s, responses); });
  ::close(fd);
  return r;
}

// A scripted HTTP upstream on its own thread: accepts connections, reads
// requests (head + Content-Length body) and answers each with `respond`.
class Upstream {
 public:
  // The bytes to send; an empty string hangs up instead.
  using Responder = std::function<std::string(const std::string& request)>;

  // What to do with a request when a plain Responder cannot say it: send
  // `bytes` (a response, part of one, or nothing), then go on with the
  // connection, hang up, or stall: read and discard whatever arrives,
  // answering nothing more, until the peer closes or the upstream stops.
  struct Answer {
    enum class Then { keep_going, hang_up, stall };
    std::string bytes;
    Then then = Then::keep_going;
  };
  using Script = std::function<Answer(const std::string& request)>;

  explicit Upstream(Responder respond)
      : Upstream(Script([respond = std::move(respond)](const std::string& request) {
          std::string bytes = respond(request);
          const Answer::Then then =
              bytes.empty() ? Answer::Then::hang_up : Answer::Then::keep_going;
          return Answer{std::move(bytes), then};
        })) {}

  explicit Upstream(Script script) : script_(std::move(script)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(fd_, 128);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { run(); });
  }
  ~Upstream() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
    for (auto& t : workers_)
      t.join();
  }

  std::uint16_t port() const { return port_; }
  int connections() const { return connections_.load(); }
  std::vector<std::string> requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }

 private:
  void run() {
    while (!stop_) {
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) break;
      ++connections_;
      workers_.emplace_back([this, c] { serve(c); });
    }
  }

  void serve(int c) {
    std::string buf;
    char tmp[65536];
    for (;;) {
      std::size_t end;
      while ((end = buf.find("\r\n\r\n")) == std::string::npos) {
        if (!wait_readable(c)) return close_fd(c);
        ssize_t n = ::recv(c, tmp, sizeof tmp, 0);
        if (n <= 0) return close_fd(c);
        buf.append(tmp, static_cast<std::size_t>(n));
      }
      std::string head = buf.substr(0, end + 4);
      std::string lower = head;
      for (auto& ch : lower)
        ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      std::size_t body_len = 0;
      if (auto cl = lower.find("content-length:"); cl != std::string::npos) {
        body_len = std::stoul(lower.substr(cl + 15));
      }
      std::size_t need = end + 4 + body_len;
      if (lower.find("transfer-encoding: chunked") != std::string::npos) {
        std::size_t term;
        while ((term = buf.find("\r\n0\r\n\r\n", end)) == std::string::npos &&
               buf.compare(end + 4, 5, "0\r\n\r\n") != 0) {
          ssize_t n = ::recv(c, tmp, sizeof tmp, 0);
          if (n <= 0) return close_fd(c);
          buf.append(tmp, static_cast<std::size_t>(n));
        }
        need = term == std::string::npos ? end + 9 : term + 7;
      }
      while (buf.size() < need) {
        ssize_t n = ::recv(c, tmp, sizeof tmp, 0);
        if (n <= 0) return close_fd(c);
        buf.append(tmp, static_cast<std::size_t>(n));
      }
      std::string request = buf.substr(0, need);
      buf.erase(0, need);
      {
        std::lock_guard<std::mutex> lock(mu_);
        requests_.push_back(request);
      }
      const Answer answer = script_(request);
      if (!answer.bytes.empty() && !send_all(c, answer.bytes)) return close_fd(c);
      if (answer.then == Answer::Then::hang_up) return close_fd(c);
      if (answer.then == Answer::Then::stall) return stall(c);
      if (lower.find("connection: close") != std::string::npos) return close_fd(c);
    }
  }

  void close_fd(int c) { ::close(c); }

  void stall(int c) {
    char tmp[4096];
    while (!stop_) {
      pollfd p{c, POLLIN, 0};
      if (::poll(&p, 1, 20) > 0 && ::recv(c, tmp, sizeof tmp, 0) <= 0) break;
    }
    close_fd(c);
  }

  // Waits up to 5 s for bytes, giving up early when the upstream stops.
  bool wait_readable(int c) {
    for (int i = 0; i < 50 && !stop_; ++i) {
      pollfd p{c, POLLIN, 0};
      if (::poll(&p, 1, 100) > 0) return true;
    }
    return false;
  }

  Script script_;
  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  std::thread thread_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::vector<std::string> requests_;
};

}  // namespace portico::test
