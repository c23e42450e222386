// An HTTPS server on 127.0.0.1 for the integration tests, with the
// certificates it needs made here: a test CA (EC P-256) and a server
// certificate it signs for "127.0.0.1" and "localhost". mbedTLS does both
// (it is what the library links anyway), so the tests need no openssl
// binary and no files but the CA bundles they write to a temporary folder.
//
// The server runs on a thread of its own with blocking sockets and serves
// one connection at a time; a test can swap its certificate and its
// behaviour while it runs.
#pragma once

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecp.h>
#include <mbedtls/entropy.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace portico::test {

// One random generator for everything the tests make.
class TestRng {
 public:
  TestRng() {
    mbedtls_entropy_init(&entropy_);
    mbedtls_ctr_drbg_init(&drbg_);
    REQUIRE(mbedtls_ctr_drbg_seed(&drbg_, mbedtls_entropy_func, &entropy_, nullptr, 0) == 0);
  }
  ~TestRng() {
    mbedtls_ctr_drbg_free(&drbg_);
    mbedtls_entropy_free(&entropy_);
  }
  TestRng(const TestRng&) = delete;
  TestRng& operator=(const TestRng&) = delete;
  static int random(void* self, unsigned char* out, std::size_t n) {
    auto* r = static_cast<TestRng*>(self);
    std::lock_guard<std::mutex> lock(r->mutex_);
    return mbedtls_ctr_drbg_random(&r->drbg_, out, n);
  }

 private:
  std::mutex mutex_;
  mbedtls_entropy_context entropy_;
  mbedtls_ctr_drbg_context drbg_;
};

inline TestRng& test_rng() {
  static TestRng rng;
  return rng;
}

// A key pair and the PEM certificate that names it.
struct TestIdentity {
  std::string name;  // the subject's CN
  std::string key_pem;
  std::string cert_pem;
};

namespace tls_detail {

inline std::string new_ec_key_pem() {
  mbedtls_pk_context key;
  mbedtls_pk_init(&key);
  REQUIRE(mbedtls_pk_setup(&key, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY)) == 0);
  REQUIRE(mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(key), TestRng::random,
                              &test_rng()) == 0);
  unsigned char pem[1024];
  REQUIRE(mbedtls_pk_write_key_pem(&key, pem, sizeof pem) == 0);
  mbedtls_pk_free(&key);
  return reinterpret_cast<const char*>(pem);
}

// subjectAltName: dNSName entries (RFC 5280 section 4.2.1.6), DER.
inline std::string san_der(std::initializer_list<std::string_view> names) {
  std::string entries;
  for (std::string_view n : names) {
    entries += '\x82';
    entries += static_cast<char>(n.size());
    entries += n;
  }
  return std::string("\x30", 1) + static_cast<char>(entries.size()) + entries;
}

}  // namespace tls_detail

// Makes a certificate for `name` signed by `issuer` (self-signed when null),
// valid from 2020 to 2099. A CA may sign certificates; a server one names
// `dns_names` in its subjectAltName.
inline TestIdentity make_identity(const std::string& name, const TestIdentity* issuer, bool ca,
                                  std::initializer_list<std::string_view> dns_names = {}) {
  static std::atomic<int> serial_counter{1};
  TestIdentity out{name, tls_detail::new_ec_key_pem(), {}};
  const TestIdentity& signer = issuer != nullptr ? *issuer : out;
  mbedtls_pk_context subject_key, issuer_key;
  mbedtls_pk_init(&subject_key);
  mbedtls_pk_init(&issuer_key);
  auto parse_key = [](mbedtls_pk_context& k, const std::string& pem) {
    REQUIRE(mbedtls_pk_parse_key(&k, reinterpret_cast<const unsigned char*>(pem.c_str()),
                                 pem.size() + 1, nullptr, 0) == 0);
  };
  parse_key(subject_key, out.key_pem);
  parse_key(issuer_key, signer.key_pem);
  mbedtls_x509write_cert crt;
  mbedtls_x509write_crt_init(&crt);
  mbedtls_x509write_crt_set_version(&crt, MBEDTLS_X509_CRT_VERSION_3);
  mbedtls_x509write_crt_set_md_alg(&crt, MBEDTLS_MD_SHA256);
  mbedtls_x509write_crt_set_subject_key(&crt, &subject_key);
  mbedtls_x509write_crt_set_issuer_key(&crt, &issuer_key);
  REQUIRE(mbedtls_x509write_crt_set_subject_name(&crt,
                                                 ("CN=" + name + ",O=Portico tests").c_str()) == 0);
  REQUIRE(mbedtls_x509write_crt_set_issuer_name(
              &crt, ("CN=" + signer.name + ",O=Portico tests").c_str()) == 0);
  mbedtls_mpi serial;
  mbedtls_mpi_init(&serial);
  mbedtls_mpi_lset(&serial, serial_counter++);
  REQUIRE(mbedtls_x509write_crt_set_serial(&crt, &serial) == 0);
  mbedtls_mpi_free(&serial);
  REQUIRE(mbedtls_x509write_crt_set_validity(&crt, "20200101000000", "20991231235959") == 0);
  REQUIRE(mbedtls_x509write_crt_set_basic_constraints(&crt, ca ? 1 : 0, -1) == 0);
  REQUIRE(mbedtls_x509write_crt_set_key_usage(
              &crt, ca ? MBEDTLS_X509_KU_KEY_CERT_SIGN | MBEDTLS_X509_KU_CRL_SIGN
                       : MBEDTLS_X509_KU_DIGITAL_SIGNATURE) == 0);
  if (dns_names.size() > 0) {
    const std::string san = tls_detail::san_der(dns_names);
    REQUIRE(mbedtls_x509write_crt_set_extension(
                &crt, MBEDTLS_OID_SUBJECT_ALT_NAME, MBEDTLS_OID_SIZE(MBEDTLS_OID_SUBJECT_ALT_NAME),
                0, reinterpret_cast<const unsigned char*>(san.data()), san.size()) == 0);
  }
  unsigned char pem[4096];
  REQUIRE(mbedtls_x509write_crt_pem(&crt, pem, sizeof pem, TestRng::random, &test_rng()) == 0);
  out.cert_pem = reinterpret_cast<const char*>(pem);
  mbedtls_x509write_crt_free(&crt);
  mbedtls_pk_free(&subject_key);
  mbedtls_pk_free(&issuer_key);
  return out;
}

// A file in the temporary folder, removed with the object.
class TempFile {
 public:
  TempFile(const std::string& stem, const std::string& text)
      : path_(std::filesystem::temp_directory_path() /
              ("portico-" + stem + "-" + std::to_string(::getpid()) + ".pem")) {
    std::ofstream(path_) << text;
  }
  ~TempFile() { std::filesystem::remove(path_); }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

// An HTTPS (or, on request, misbehaving) server on 127.0.0.1.
class HttpsServer {
 public:
  enum class Mode {
    ok,               // TLS, then the body for any request
    close_handshake,  // reads the ClientHello, then closes the connection
    plain_http,       // no TLS: answers a plain HTTP 400, as a web server would
  };

  explicit HttpsServer(TestIdentity identity) : identity_(std::move(identity)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(fd_, 16) == 0);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    REQUIRE(::pipe(stop_pipe_) == 0);
    thread_ = std::thread([this] { run(); });
  }
  ~HttpsServer() {
    const char x = 0;
    (void)!::write(stop_pipe_[1], &x, 1);
    thread_.join();
    ::close(fd_);
    ::close(stop_pipe_[0]);
    ::close(stop_pipe_[1]);
  }
  HttpsServer(const HttpsServer&) = delete;
  HttpsServer& operator=(const HttpsServer&) = delete;

  std::uint16_t port() const { return port_; }
  std::string url(const std::string& host = "127.0.0.1") const {
    return "https://" + host + ":" + std::to_string(port_) + "/jwks";
  }
  int hits() const { return hits_.load(); }
  // Requests answered over a completed handshake.
  int served() const { return served_.load(); }

  void serve(std::string body) {
    std::lock_guard<std::mutex> lock(mutex_);
    body_ = std::move(body);
  }
  void set_mode(Mode m) {
    std::lock_guard<std::mutex> lock(mutex_);
    mode_ = m;
  }
  void set_identity(TestIdentity id) {
    std::lock_guard<std::mutex> lock(mutex_);
    identity_ = std::move(id);
  }

 private:
  void run() {
    for (;;) {
      pollfd p[2] = {{fd_, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
      if (::poll(p, 2, -1) < 0) continue;
      if (p[1].revents != 0) return;
      const int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) continue;
      ++hits_;
      // A client that stops answering cannot hold the server for long.
      timeval tv{2, 0};
      ::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      ::setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
      Mode mode;
      TestIdentity id;
      std::string body;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        mode = mode_;
        id = identity_;
        body = body_;
      }
      char buf[4096];
      switch (mode) {
        case Mode::close_handshake:
          (void)!::recv(c, buf, sizeof buf, 0);
          break;
        case Mode::plain_http: {
          (void)!::recv(c, buf, sizeof buf, 0);
          const std::string r =
              "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
          (void)!::send(c, r.data(), r.size(), MSG_NOSIGNAL);
          break;
        }
        case Mode::ok:
          serve_tls(c, id, body);
          break;
      }
      ::close(c);
    }
  }

  static int sock_send(void* fd, const unsigned char* data, std::size_t n) {
    const ssize_t r = ::send(*static_cast<int*>(fd), data, n, MSG_NOSIGNAL);
    return r < 0 ? MBEDTLS_ERR_NET_SEND_FAILED : static_cast<int>(r);
  }
  static int sock_recv(void* fd, unsigned char* data, std::size_t n) {
    const ssize_t r = ::recv(*static_cast<int*>(fd), data, n, 0);
    return r < 0 ? MBEDTLS_ERR_NET_RECV_FAILED : static_cast<int>(r);
  }

  void serve_tls(int c, const TestIdentity& id, const std::string& body) {
    mbedtls_x509_crt cert;
    mbedtls_pk_context key;
    mbedtls_ssl_config conf;
    mbedtls_ssl_context ssl;
    mbedtls_x509_crt_init(&cert);
    mbedtls_pk_init(&key);
    mbedtls_ssl_config_init(&conf);
    mbedtls_ssl_init(&ssl);
    bool ready =
        mbedtls_x509_crt_parse(&cert, reinterpret_cast<const unsigned char*>(id.cert_pem.c_str()),
                               id.cert_pem.size() + 1) == 0 &&
        mbedtls_pk_parse_key(&key, reinterpret_cast<const unsigned char*>(id.key_pem.c_str()),
                             id.key_pem.size() + 1, nullptr, 0) == 0 &&
        mbedtls_ssl_config_defaults(&conf, MBEDTLS_SSL_IS_SERVER, MBEDTLS_SSL_TRANSPORT_STREAM,
                                    MBEDTLS_SSL_PRESET_DEFAULT) == 0;
    if (ready) {
      mbedtls_ssl_conf_rng(&conf, TestRng::random, &test_rng());
      ready =
          mbedtls_ssl_conf_own_cert(&conf, &cert, &key) == 0 && mbedtls_ssl_setup(&ssl, &conf) == 0;
    }
    if (ready) {
      int fd = c;
      mbedtls_ssl_set_bio(&ssl, &fd, sock_send, sock_recv, nullptr);
      if (mbedtls_ssl_handshake(&ssl) == 0) {
        std::string request;
        unsigned char buf[4096];
        while (request.find("\r\n\r\n") == std::string::npos) {
          const int n = mbedtls_ssl_read(&ssl, buf, sizeof buf);
          if (n <= 0) break;
          request.append(reinterpret_cast<const char*>(buf), static_cast<std::size_t>(n));
        }
        if (request.find("\r\n\r\n") != std::string::npos) {
          ++served_;
          const std::string r =
              "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
              "Content-Length: " +
              std::to_string(body.size()) + "\r\n\r\n" + body;
          mbedtls_ssl_write(&ssl, reinterpret_cast<const unsigned char*>(r.data()), r.size());
          mbedtls_ssl_close_notify(&ssl);
        }
      }
    }
    mbedtls_ssl_free(&ssl);
    mbedtls_ssl_config_free(&conf);
    mbedtls_pk_free(&key);
    mbedtls_x509_crt_free(&cert);
  }

  int fd_ = -1;
  int stop_pipe_[2] = {-1, -1};
  std::uint16_t port_ = 0;
  std::thread thread_;
  std::atomic<int> hits_{0};
  std::atomic<int> served_{0};
  std::mutex mutex_;
  Mode mode_ = Mode::ok;
  TestIdentity identity_;
  std::string body_;
};

// A port that accepts connections (the kernel completes them) and never
// reads or answers: a TLS handshake there hangs.
class SilentPort {
 public:
  SilentPort() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(fd_, 16);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
  }
  ~SilentPort() { ::close(fd_); }
  SilentPort(const SilentPort&) = delete;
  SilentPort& operator=(const SilentPort&) = delete;
  std::uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
};

}  // namespace portico::test
