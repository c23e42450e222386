// fallback: graceful degradation. When the proxy itself answers 503 because
// the route's service cannot be reached at all — every endpoint's circuit
// breaker is open, or no endpoint is healthy (or there is none) — the
// filter replaces that answer with the last good response it cached for
// the same request, or with a configured static response. Either carries
// `X-Portico-Fallback: cache` or `static`; a cached one also `Age`.
//
// Other failures (an upstream's own 5xx, a timeout, a connection error)
// are not replaced: the service answered or may have acted on the request.
//
// The cache: successful (200) GET responses of upstreams, kept per worker
// thread (indexed by RequestContext::worker_index(), so no locks), keyed by
// route, path and query and by the consumer when one was identified, so a
// consumer is only ever served its own responses. Bounded in entries (least
// recently stored evicted) and in body size. To keep private data out, a
// response is not cached when it has Set-Cookie, Cache-Control no-store or
// private, a Content-Encoding, or no Content-Length (chunked), nor when the
// request carried Authorization or Cookie without an identified consumer.
// A cacheable response is buffered whole before it is sent (it is small by
// construction, but loses streaming).
//
// A cached response is served as the upstream sent it: response filters
// that edit bodies do not apply to it (header edits do), so put body edits
// that must always apply before this filter in the chain.
//
// Threading: shared by every worker; each worker's cache belongs to its
// thread. A Server of its own is worker 0.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>

#include "portico/clock.hpp"
#include "portico/export.hpp"
#include "portico/filter.hpp"
#include "portico/result.hpp"

namespace portico::filters {

struct FallbackResponse {
  int status = 200;  // 200..599
  std::string content_type = "application/json";
  std::string body;
};

struct FallbackOptions {
  // Served when nothing cached applies; nullopt: the proxy's 503 stands.
  std::optional<FallbackResponse> static_response;
  // Keep and serve the last good responses.
  bool cache = false;
  // The largest body cached, 1 .. 8 MiB (and at most the route's
  // max_body_bytes).
  std::size_t cache_max_body_bytes = 64 * 1024;
  // Entries per worker, 1 .. 100000.
  std::size_t cache_entries = 128;
  // Older entries are not served.
  Duration cache_max_age = std::chrono::hours(1);
  // Worker threads that call the filter; a worker with a higher index
  // neither caches nor serves from the cache.
  unsigned workers = 1;
  // Which proxy answers are replaced.
  bool on_breaker_open = true;
  bool on_no_healthy_endpoint = true;
};

// Fails with invalid_argument naming the field: neither a static response
// nor the cache, a status outside 200..599, a content type with control
// characters, a cache bound out of range, workers 0.
PORTICO_API Result<std::shared_ptr<proxy::Filter>> make_fallback(FallbackOptions options);

}  // namespace portico::filters
