#include "jwks_fetcher.hpp"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "../common/ascii.hpp"
#include "../upstream/timer_ms.hpp"
#include "portico/http.hpp"

namespace portico::detail {

namespace {

// A JWKS response head is small; the bound is what a fetch may buffer
// before the body starts.
constexpr std::size_t kMaxHeadBytes = 16 * 1024;
constexpr std::size_t kReadChunk = 16 * 1024;
// A waiter gives up this long after the fetch's own timeout could have
// ended it, in case the control loop is slow to start the fetch.
constexpr Duration kWaitSlack = std::chrono::seconds(1);

bool starts_with_ci(std::string_view s, std::string_view prefix) noexcept {
  return s.size() >= prefix.size() && ascii_iequals(s.substr(0, prefix.size()), prefix);
}

bool is_host_char(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_';
}

Error url_error(std::string message) {
  return make_error(ErrorKind::invalid_argument, std::move(message));
}

std::optional<std::uint16_t> parse_port(std::string_view digits) noexcept {
  if (digits.empty() || digits.size() > 5) return std::nullopt;
  unsigned value = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  if (value == 0 || value > 65535) return std::nullopt;
  return static_cast<std::uint16_t>(value);
}

}  // namespace

Result<HttpUrl> parse_http_url(std::string_view url) {
  HttpUrl out;
  std::string_view rest;
  if (starts_with_ci(url, "https://")) {
    out.tls = true;
    out.port = 443;
    rest = url.substr(8);
  } else if (starts_with_ci(url, "http://")) {
    rest = url.substr(7);
  } else {
    return url_error("expected an http:// or https:// URL");
  }
  const std::size_t end = rest.find_first_of("/?#");
  const std::string_view authority = rest.substr(0, end);
  std::string_view tail = end == std::string_view::npos ? std::string_view() : rest.substr(end);
  tail = tail.substr(0, tail.find('#'));
  if (authority.find('@') != std::string_view::npos)
    return url_error("user information in the URL is not supported");
  if (authority.empty()) return url_error("the URL has no host");
  out.authority = std::string(authority);
  std::string_view port_text;
  if (authority.front() == '[') {
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos) return url_error("the URL's IPv6 address lacks its ']'");
    out.host = std::string(authority.substr(1, close - 1));
    unsigned char bytes[16];
    if (inet_pton(AF_INET6, out.host.c_str(), bytes) != 1)
      return url_error("the URL's host is not a valid IPv6 address");
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return url_error("unexpected text after the URL's host");
      port_text = after.substr(1);
      if (port_text.empty()) return url_error("the URL's port is empty");
    }
  } else {
    const std::size_t colon = authority.find(':');
    out.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port_text = authority.substr(colon + 1);
      if (port_text.empty()) return url_error("the URL's port is empty");
    }
    if (out.host.empty() || !std::all_of(out.host.begin(), out.host.end(), is_host_char))
      return url_error("the URL's host is not a valid host name or address");
  }
  if (!port_text.empty()) {
    const auto port = parse_port(port_text);
    if (!port) return url_error("the URL's port must be a number from 1 to 65535");
    out.port = *port;
  }
  for (char c : tail) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f)
      return url_error("the URL's path has spaces, control or non-ASCII characters");
  }
  out.target = tail.empty() ? std::string("/") : std::string(tail);
  if (out.target.front() == '?') out.target.insert(out.target.begin(), '/');
  return out;
}

std::string url_for_display(std::string_view url) {
  const std::size_t cut = url.find_first_of("?#");
  std::string out(url.substr(0, cut));
  if (cut != std::string_view::npos && url[cut] == '?') out += "?<redacted>";
  return out;
}

// ------------------------------------------------------------- the fetch

// One GET of the JWKS on the control loop: resolve, connect, send, read.
// It frees itself once its handles are closed and its name lookup (if any)
// has called back; from its end on it never touches its fetcher again.
struct Fetch final : http::BodySink {
  Fetch(JwksFetcher* fetcher, uv_loop_t* l, const JwksFetchOptions& options)
      : owner(fetcher), loop(l), max_bytes(options.max_bytes), timeout(options.timeout) {}

  void on_body(std::string_view data) override { body.append(data); }

  JwksFetcher* owner;  // null once finished
  uv_loop_t* loop;
  std::size_t max_bytes;
  Duration timeout;
  uv_getaddrinfo_t resolve{};
  uv_tcp_t tcp{};
  uv_timer_t deadline{};
  uv_connect_t connect{};
  uv_write_t write{};
  int open_handles = 0;
  bool resolving = false;
  bool tcp_open = false;
  bool finished = false;
  bool connected = false;
  bool head_done = false;
  std::size_t total_read = 0;
  std::string request;
  std::string received;  // bytes not yet parsed
  std::string body;
  http::ResponseParser parser{};
  // https:// only: the session the bytes go through, and the context it
  // verifies with (the fetcher's, kept alive by this reference).
  std::shared_ptr<TlsClientContext> tls_context;
  std::unique_ptr<TlsClientSession> tls;
  bool request_sent = false;
  char chunk[kReadChunk];
};

// One write of TLS records: the bytes live until libuv is done with them,
// which may be after the fetch has finished (a cancelled write).
struct TlsWrite {
  uv_write_t req{};
  std::string bytes;
};

class JwksFetcher {
 public:
  JwksFetcher(uv_loop_t* loop, std::shared_ptr<JwksSource> source)
      : loop_(loop), source_(std::move(source)) {}

  void start() {
    uv_timer_init(loop_, &timer_);
    uv_async_init(loop_, &wake_, on_wake);
    timer_.data = wake_.data = this;
    uv_unref(reinterpret_cast<uv_handle_t*>(&timer_));
    uv_unref(reinterpret_cast<uv_handle_t*>(&wake_));
    open_ = 2;
    uv_timer_start(&timer_, on_timer, 0, 0);
  }

  uv_async_t* wake_handle() noexcept { return &wake_; }

  // The end of fetch_ (`ok` with the body, or why not).
  void fetch_done(bool ok, std::string body, std::string error);

 private:
  static void on_timer(uv_timer_t* t) { static_cast<JwksFetcher*>(t->data)->begin_fetch(); }
  static void on_wake(uv_async_t* a);
  static void on_closed(uv_handle_t* h) {
    auto* self = static_cast<JwksFetcher*>(h->data);
    if (--self->open_ == 0) delete self;
  }

  void begin_fetch();
  void shutdown();

  uv_loop_t* loop_;
  std::shared_ptr<JwksSource> source_;
  uv_timer_t timer_{};
  uv_async_t wake_{};
  Fetch* fetch_ = nullptr;
  int open_ = 0;
  bool closing_ = false;
};

namespace {

void fetch_maybe_free(Fetch* f) {
  if (f->finished && f->open_handles == 0 && !f->resolving) delete f;
}

void fetch_handle_closed(uv_handle_t* h) {
  auto* f = static_cast<Fetch*>(h->data);
  --f->open_handles;
  fetch_maybe_free(f);
}

// A TLS session that ended well says so (close_notify) before the socket
// closes; best effort, as a server that already left cannot hear it.
void fetch_tls_goodbye(Fetch* f) {
  if (f->tls == nullptr || f->tls->state() != TlsClientSession::State::open) return;
  f->tls->close();
  const std::string alert = f->tls->take_output();
  const uv_buf_t b =
      uv_buf_init(const_cast<char*>(alert.data()), static_cast<unsigned>(alert.size()));
  uv_try_write(reinterpret_cast<uv_stream_t*>(&f->tcp), &b, 1);
}

void fetch_finish(Fetch* f, bool ok, std::string error) {
  if (f->finished) return;
  f->finished = true;
  if (f->resolving) uv_cancel(reinterpret_cast<uv_req_t*>(&f->resolve));
  uv_close(reinterpret_cast<uv_handle_t*>(&f->deadline), fetch_handle_closed);
  if (f->tcp_open) {
    if (ok) fetch_tls_goodbye(f);
    uv_close(reinterpret_cast<uv_handle_t*>(&f->tcp), fetch_handle_closed);
  }
  JwksFetcher* owner = f->owner;
  f->owner = nullptr;
  owner->fetch_done(ok, ok ? std::move(f->body) : std::string(), std::move(error));
}

void fetch_fail(Fetch* f, std::string error) {
  fetch_finish(f, false, std::move(error));
}

void fetch_parse(Fetch* f) {
  if (!f->head_done) {
    const http::ParseState st = f->parser.parse_head(f->received, "GET");
    if (st == http::ParseState::incomplete) {
      if (f->received.size() > kMaxHeadBytes) fetch_fail(f, "the response head is too large");
      return;
    }
    if (st == http::ParseState::error)
      return fetch_fail(f, fmt::format("malformed response ({})", f->parser.error().reason));
    const http::ResponseHead& head = f->parser.head();
    if (head.status != 200) return fetch_fail(f, fmt::format("answered HTTP {}", head.status));
    if (head.framing == http::Framing::content_length && head.content_length > f->max_bytes)
      return fetch_fail(f, fmt::format("the JWKS is larger than {} bytes", f->max_bytes));
    f->head_done = true;
    f->received.erase(0, f->parser.head_size());
  }
  const http::BodyProgress p = f->parser.parse_body(f->received, *f);
  if (p.state == http::ParseState::error)
    return fetch_fail(f, fmt::format("malformed response body ({})", f->parser.error().reason));
  f->received.erase(0, p.consumed);
  if (f->body.size() > f->max_bytes)
    return fetch_fail(f, fmt::format("the JWKS is larger than {} bytes", f->max_bytes));
  if (p.state == http::ParseState::complete) fetch_finish(f, true, {});
}

void fetch_alloc(uv_handle_t* h, std::size_t, uv_buf_t* buf) {
  auto* f = static_cast<Fetch*>(h->data);
  buf->base = f->chunk;
  buf->len = sizeof f->chunk;
}

// The end of the response's bytes (the socket's, or the TLS stream's).
void fetch_eof(Fetch* f) {
  if (!f->head_done) return fetch_fail(f, "the connection closed before a response");
  if (f->parser.finish_at_eof() == http::ParseState::complete) return fetch_finish(f, true, {});
  return fetch_fail(f, "the connection closed in the middle of the body");
}

// Response bytes in the clear, from the socket or out of TLS.
void fetch_received(Fetch* f, std::string_view data) {
  f->total_read += data.size();
  // Chunk framing may cost more bytes than the body itself, but not this many.
  if (f->total_read > 8 * f->max_bytes + kMaxHeadBytes)
    return fetch_fail(f, fmt::format("the JWKS is larger than {} bytes", f->max_bytes));
  f->received.append(data);
  fetch_parse(f);
}

void fetch_tls_written(uv_write_t* req, int) {
  delete static_cast<TlsWrite*>(req->data);
}

// Sends the records the TLS session has ready. A failed write needs no
// report of its own: the read side sees the reset.
bool fetch_tls_flush(Fetch* f) {
  if (!f->tls->has_output()) return true;
  auto* w = new TlsWrite;
  w->bytes = f->tls->take_output();
  w->req.data = w;
  const uv_buf_t b = uv_buf_init(w->bytes.data(), static_cast<unsigned>(w->bytes.size()));
  if (uv_write(&w->req, reinterpret_cast<uv_stream_t*>(&f->tcp), &b, 1, fetch_tls_written) != 0) {
    delete w;
    return false;
  }
  return true;
}

// Moves the TLS session on after bytes (or the end) arrived: the handshake,
// then the request once, then the response in the clear.
void fetch_tls_step(Fetch* f) {
  std::string plain;
  const TlsClientSession::State st = f->tls->step(plain);
  if (st == TlsClientSession::State::failed) {
    fetch_tls_flush(f);  // the alert that tells the server why, if any
    return fetch_fail(f, f->tls->error());
  }
  if (f->tls->handshake_done() && !f->request_sent) {
    f->request_sent = true;
    if (!f->tls->send(f->request)) return fetch_fail(f, f->tls->error());
  }
  if (!fetch_tls_flush(f)) return fetch_fail(f, "cannot send the request");
  if (!plain.empty()) {
    fetch_received(f, plain);
    if (f->finished) return;
  }
  if (st == TlsClientSession::State::closed) fetch_eof(f);
}

void fetch_read(uv_stream_t* s, ssize_t nread, const uv_buf_t*) {
  auto* f = static_cast<Fetch*>(s->data);
  if (f->finished || nread == 0) return;
  if (nread < 0 && nread != UV_EOF)
    return fetch_fail(f, fmt::format("read failed ({})", uv_strerror(nread)));
  if (f->tls != nullptr) {
    if (nread == UV_EOF) {
      f->tls->receive_eof();
    } else {
      f->tls->receive({f->chunk, static_cast<std::size_t>(nread)});
    }
    return fetch_tls_step(f);
  }
  if (nread == UV_EOF) return fetch_eof(f);
  fetch_received(f, {f->chunk, static_cast<std::size_t>(nread)});
}

void fetch_connected(uv_connect_t* req, int status) {
  auto* f = static_cast<Fetch*>(req->data);
  if (f->finished) return;
  if (status != 0) return fetch_fail(f, fmt::format("cannot connect ({})", uv_strerror(status)));
  f->connected = true;
  auto* stream = reinterpret_cast<uv_stream_t*>(&f->tcp);
  if (uv_read_start(stream, fetch_alloc, fetch_read) != 0)
    return fetch_fail(f, "cannot read from the connection");
  if (f->tls != nullptr) return fetch_tls_step(f);  // the ClientHello
  const uv_buf_t b =
      uv_buf_init(const_cast<char*>(f->request.data()), static_cast<unsigned>(f->request.size()));
  // A failed write needs no callback: the read side sees the reset.
  if (uv_write(&f->write, stream, &b, 1, nullptr) != 0) fetch_fail(f, "cannot send the request");
}

void fetch_connect(Fetch* f, const sockaddr* addr) {
  uv_tcp_init(f->loop, &f->tcp);
  f->tcp.data = f;
  uv_unref(reinterpret_cast<uv_handle_t*>(&f->tcp));
  f->tcp_open = true;
  ++f->open_handles;
  f->connect.data = f;
  if (const int rc = uv_tcp_connect(&f->connect, &f->tcp, addr, fetch_connected); rc != 0)
    fetch_fail(f, fmt::format("cannot connect ({})", uv_strerror(rc)));
}

void fetch_resolved(uv_getaddrinfo_t* req, int status, addrinfo* res) {
  auto* f = static_cast<Fetch*>(req->data);
  f->resolving = false;
  if (f->finished) {
    if (res != nullptr) uv_freeaddrinfo(res);
    return fetch_maybe_free(f);
  }
  if (status != 0 || res == nullptr) {
    if (res != nullptr) uv_freeaddrinfo(res);
    return fetch_fail(f, fmt::format("cannot resolve the host ({})", uv_strerror(status)));
  }
  sockaddr_storage addr{};
  std::memcpy(&addr, res->ai_addr, std::min<std::size_t>(res->ai_addrlen, sizeof addr));
  uv_freeaddrinfo(res);
  fetch_connect(f, reinterpret_cast<const sockaddr*>(&addr));
}

void fetch_deadline(uv_timer_t* t) {
  auto* f = static_cast<Fetch*>(t->data);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(f->timeout).count();
  if (!f->connected) return fetch_fail(f, fmt::format("no connection within {}ms", ms));
  if (f->tls != nullptr && !f->tls->handshake_done())
    return fetch_fail(f, fmt::format("TLS handshake timed out after {}ms", ms));
  fetch_fail(f, fmt::format("no complete answer within {}ms", ms));
}

void fetch_start(Fetch* f, const JwksFetchOptions& options) {
  const HttpUrl& url = options.url;
  f->request = fmt::format(
      "GET {} HTTP/1.1\r\nHost: {}\r\nAccept: application/jwk-set+json, application/json\r\n"
      "User-Agent: portico-jwks\r\nConnection: close\r\n\r\n",
      url.target, url.authority);
  uv_timer_init(f->loop, &f->deadline);
  f->deadline.data = f;
  uv_unref(reinterpret_cast<uv_handle_t*>(&f->deadline));
  ++f->open_handles;
  uv_timer_start(&f->deadline, fetch_deadline, timer_ms(options.timeout), 0);
  if (url.tls) {
    if (options.tls == nullptr) return fetch_fail(f, "no trust anchors for an https:// URL");
    auto session = TlsClientSession::create(*options.tls, url.host);
    if (!session) return fetch_fail(f, std::move(session).error().message);
    f->tls_context = options.tls;
    f->tls = std::move(*session);
  }
  sockaddr_storage addr{};
  if (uv_ip4_addr(url.host.c_str(), url.port, reinterpret_cast<sockaddr_in*>(&addr)) == 0 ||
      uv_ip6_addr(url.host.c_str(), url.port, reinterpret_cast<sockaddr_in6*>(&addr)) == 0) {
    fetch_connect(f, reinterpret_cast<const sockaddr*>(&addr));
    return;
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  const std::string port = std::to_string(url.port);
  f->resolve.data = f;
  if (const int rc = uv_getaddrinfo(f->loop, &f->resolve, fetch_resolved, url.host.c_str(),
                                    port.c_str(), &hints);
      rc != 0) {
    fetch_fail(f, fmt::format("cannot resolve the host ({})", uv_strerror(rc)));
    return;
  }
  f->resolving = true;
}

}  // namespace

// ----------------------------------------------------------- the fetcher

void JwksFetcher::on_wake(uv_async_t* a) {
  auto* self = static_cast<JwksFetcher*>(a->data);
  bool stop, requested;
  {
    std::lock_guard<std::mutex> lock(self->source_->mutex_);
    stop = self->source_->stopping_;
    requested = self->source_->requested_;
  }
  if (stop) return self->shutdown();
  if (requested) self->begin_fetch();
}

void JwksFetcher::begin_fetch() {
  if (closing_ || fetch_ != nullptr) return;
  {
    std::lock_guard<std::mutex> lock(source_->mutex_);
    source_->in_flight_ = true;
    source_->requested_ = false;
    source_->fetched_once_ = true;
    source_->last_start_ = std::chrono::steady_clock::now();
  }
  // fetch_ is set first: the fetch may end (and report) before start returns.
  fetch_ = new Fetch(this, loop_, source_->options_);
  fetch_start(fetch_, source_->options_);
}

void JwksFetcher::fetch_done(bool ok, std::string body, std::string error) {
  fetch_ = nullptr;
  if (ok) {
    if (Status st = source_->keys_->replace_from_jwks(body); !st) {
      ok = false;
      error = st.error().message;
    }
  }
  const auto now = std::chrono::system_clock::now();
  {
    std::lock_guard<std::mutex> lock(source_->mutex_);
    source_->in_flight_ = false;
    JwksStatus& status = source_->status_;
    status.last_fetch_failed = !ok;
    if (ok) {
      ++status.fetches_ok;
      status.last_success = now;
    } else {
      ++status.fetches_failed;
      status.last_failure = now;
      status.last_error = fmt::format("jwks {}: {}", source_->options_.url_text, std::move(error));
    }
    source_->release_waiters_locked();
  }
  if (closing_) return;
  const JwksFetchOptions& o = source_->options_;
  const Duration next = ok ? o.refresh_interval : std::min(o.retry_interval, o.refresh_interval);
  uv_timer_start(&timer_, on_timer, timer_ms(next), 0);
}

void JwksFetcher::shutdown() {
  if (closing_) return;
  closing_ = true;
  {
    std::lock_guard<std::mutex> lock(source_->mutex_);
    source_->wake_ = nullptr;
    source_->release_waiters_locked();
  }
  if (fetch_ != nullptr) fetch_fail(fetch_, "stopped");
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), on_closed);
  uv_close(reinterpret_cast<uv_handle_t*>(&wake_), on_closed);
}

// ------------------------------------------------------------ the waiters

struct KeyWaiter {
  uv_async_t async{};
  uv_timer_t timer{};
  std::shared_ptr<JwksSource> source;
  proxy::ResumeHandle handle;
  KeyWaitTarget* target = nullptr;
  int open_handles = 2;
  bool registered = false;  // in source->waiters_ (under its mutex)
  bool fired = false;

  static void on_closed(uv_handle_t* h) {
    auto* w = static_cast<KeyWaiter*>(h->data);
    if (--w->open_handles == 0) delete w;
  }

  void close() {
    uv_close(reinterpret_cast<uv_handle_t*>(&async), on_closed);
    uv_close(reinterpret_cast<uv_handle_t*>(&timer), on_closed);
  }

  // Once: closes the handles, then gives the request back to the filter.
  void fire() {
    if (fired) return;
    fired = true;
    const proxy::ResumeHandle h = handle;
    KeyWaitTarget* t = target;
    close();
    // A request still waiting keeps its route, and so the target, alive; a
    // request that ended may have outlived it.
    if (h.pending()) t->keys_ready(h);
  }

  static void on_signal(uv_async_t* a) { static_cast<KeyWaiter*>(a->data)->fire(); }

  static void on_deadline(uv_timer_t* tm) {
    auto* w = static_cast<KeyWaiter*>(tm->data);
    {
      std::lock_guard<std::mutex> lock(w->source->mutex_);
      if (w->registered) {
        auto& list = w->source->waiters_;
        list.erase(std::remove(list.begin(), list.end(), w), list.end());
        w->registered = false;
      }
    }
    w->fire();
  }
};

// ------------------------------------------------------------- the source

JwksSource::JwksSource(std::shared_ptr<jwt::KeySetHolder> keys, JwksFetchOptions options)
    : keys_(std::move(keys)), options_(std::move(options)) {
  status_.url = options_.url_text;
}

JwksSource::~JwksSource() = default;

std::shared_ptr<JwksSource> JwksSource::start(uv_loop_t* control_loop,
                                              std::shared_ptr<jwt::KeySetHolder> keys,
                                              JwksFetchOptions options) {
  auto source = std::make_shared<JwksSource>(std::move(keys), std::move(options));
  auto* fetcher = new JwksFetcher(control_loop, source);
  fetcher->start();
  std::lock_guard<std::mutex> lock(source->mutex_);
  source->wake_ = fetcher->wake_handle();
  return source;
}

void JwksSource::stop() noexcept {
  std::lock_guard<std::mutex> lock(mutex_);
  if (stopping_) return;
  stopping_ = true;
  if (wake_ != nullptr) {
    uv_async_send(wake_);
  } else {
    release_waiters_locked();
  }
}

void JwksSource::release_waiters_locked() noexcept {
  for (KeyWaiter* w : waiters_) {
    w->registered = false;
    uv_async_send(&w->async);
  }
  waiters_.clear();
}

JwksSource::Refetch JwksSource::request_refetch(TimePoint now) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (stopping_ || wake_ == nullptr) return Refetch::stopped;
  if (in_flight_ || requested_) return Refetch::running;
  if (fetched_once_ && now - last_start_ < options_.refetch_interval) return Refetch::throttled;
  requested_ = true;
  uv_async_send(wake_);
  return Refetch::running;
}

bool JwksSource::wait(uv_loop_t* worker_loop, proxy::ResumeHandle handle, KeyWaitTarget* target) {
  auto* w = new KeyWaiter;
  w->handle = handle;
  w->target = target;
  uv_async_init(worker_loop, &w->async, KeyWaiter::on_signal);
  uv_timer_init(worker_loop, &w->timer);
  w->async.data = w->timer.data = w;
  // Read under the lock only: once listed, the fetcher may release the
  // waiter (clearing `registered`) from its own thread.
  bool listed = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!stopping_ && (in_flight_ || requested_)) {
      w->source = shared_from_this();
      waiters_.push_back(w);
      w->registered = listed = true;
    }
  }
  if (!listed) {
    w->fired = true;
    w->close();
    return false;
  }
  uv_timer_start(&w->timer, KeyWaiter::on_deadline, timer_ms(options_.timeout + kWaitSlack), 0);
  return true;
}

JwksStatus JwksSource::status() const {
  JwksStatus out;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    out = status_;
  }
  out.keys = keys_->current()->size();
  return out;
}

}  // namespace portico::detail
