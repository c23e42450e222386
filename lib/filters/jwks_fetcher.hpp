// A JWKS kept fresh from an http:// or https:// URL, for jwt-auth.
//
// Three threads meet here, and each touches only its own libuv handles:
//   the control loop   runs the fetcher: a refresh timer, a wake-up async and
//                      the fetch in flight (resolve, connect, TLS handshake
//                      for https://, GET, parse);
//   a worker loop      runs the waiters: a request paused on an unknown kid
//                      waits on an async handle of its own worker's loop,
//                      with a deadline timer, and is verified again there;
//   any thread         asks for a refetch or stops the source.
// They meet under one mutex (taken only off the hot path: an unknown kid, a
// fetch's end, a stop) and signal each other only through uv_async_send,
// which is the one libuv call that is safe from another thread. A waiter
// leaves the list under the mutex before it closes its async handle, and
// the fetcher signals waiters under the same mutex, so no signal can reach
// a closed handle.
//
// The fetcher's handles are unreferenced: they never keep the control loop
// alive. The source is stopped by its owner (jwt-auth's destructor), from
// any thread; the fetcher then closes its handles on the control loop and
// frees itself.
#pragma once

#include <uv.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "../tls/tls_client.hpp"
#include "jwks_status.hpp"
#include "portico/clock.hpp"
#include "portico/filter.hpp"
#include "portico/jwt.hpp"
#include "portico/result.hpp"

namespace portico::detail {

struct HttpUrl {
  bool tls = false;         // https://
  std::string host;         // a name, an IPv4 address, or an IPv6 one without brackets
  std::uint16_t port = 80;  // 443 for https:// unless given
  std::string authority;    // the Host header: as written in the URL
  std::string target;       // path and query, "/" when absent
};

// http[s]://host[:port][/path][?query]. Other schemes, user information,
// and characters that cannot go in a request line are refused with a message
// that says why.
Result<HttpUrl> parse_http_url(std::string_view url);

// `url` for messages, logs and the admin API: its query, which may carry
// a key ("?api_key=..."), replaced by "?<redacted>", its fragment dropped.
std::string url_for_display(std::string_view url);

struct JwksFetchOptions {
  HttpUrl url;
  // As configured, through url_for_display: errors start "jwks <url_text>: ".
  std::string url_text;
  // The trust anchors of an https:// URL (required with one).
  std::shared_ptr<TlsClientContext> tls;
  Duration refresh_interval = std::chrono::minutes(10);
  Duration retry_interval = std::chrono::seconds(30);
  Duration refetch_interval = std::chrono::seconds(10);
  Duration timeout = std::chrono::seconds(5);
  std::size_t max_bytes = 512 * 1024;
};

// What a paused request is resumed through once the keys may have changed.
class KeyWaitTarget {
 public:
  virtual ~KeyWaitTarget() = default;
  // On the worker loop; `handle` may no longer be pending.
  virtual void keys_ready(proxy::ResumeHandle handle) = 0;
};

class JwksFetcher;
struct KeyWaiter;

class JwksSource : public std::enable_shared_from_this<JwksSource> {
 public:
  // Creates the source and its fetcher on `control_loop`, which must be
  // running on the calling thread or not yet running; the first fetch
  // starts on the loop's next turn. Fetched sets replace `keys`.
  static std::shared_ptr<JwksSource> start(uv_loop_t* control_loop,
                                           std::shared_ptr<jwt::KeySetHolder> keys,
                                           JwksFetchOptions options);
  JwksSource(std::shared_ptr<jwt::KeySetHolder> keys, JwksFetchOptions options);
  ~JwksSource();

  // Stops fetching and releases every waiter. Any thread; idempotent.
  void stop() noexcept;

  enum class Refetch : std::uint8_t {
    running,    // a fetch is in flight or about to start: wait for it
    throttled,  // the last fetch started less than refetch_interval ago
    stopped,    // no fetcher
  };
  // Asks for a fetch because a token named a kid no key has. Any thread.
  Refetch request_refetch(TimePoint now);

  // Pauses nothing by itself: registers `handle` to be given to
  // `target->keys_ready()` on `worker_loop` (the calling thread's loop) when
  // the fetch in flight ends, or a second after the fetch's timeout at the
  // latest. False when no fetch is in flight any more: the caller goes on
  // at once. `target` must outlive the paused request.
  bool wait(uv_loop_t* worker_loop, proxy::ResumeHandle handle, KeyWaitTarget* target);

  // How the fetches went, and the keys in force. Any thread.
  JwksStatus status() const;

 private:
  friend class JwksFetcher;
  friend struct KeyWaiter;
  void release_waiters_locked() noexcept;

  std::shared_ptr<jwt::KeySetHolder> keys_;
  JwksFetchOptions options_;
  mutable std::mutex mutex_;
  uv_async_t* wake_ = nullptr;  // the fetcher's, while it runs
  bool stopping_ = false;
  bool in_flight_ = false;  // a fetch started and not ended
  bool requested_ = false;  // a refetch asked for, not yet started
  bool fetched_once_ = false;
  TimePoint last_start_{};
  std::vector<KeyWaiter*> waiters_;
  JwksStatus status_;
};

// The JWKS source of a filter that filters::make_jwt_auth made for a
// jwks_url and started fetching; null for any other filter.
std::shared_ptr<JwksSource> jwks_source_of(const proxy::Filter& filter) noexcept;

}  // namespace portico::detail
