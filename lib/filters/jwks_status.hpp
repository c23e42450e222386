// How a JWKS URL is faring, as jwt-auth's fetcher keeps it and the
// gateway's operators see it (/metrics and GET /status): plain values, so
// that the admin API and the metrics need nothing of the fetcher itself.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace portico::detail {

struct JwksStatus {
  // The URL as configured, its query (which may carry a key) replaced by
  // "?<redacted>".
  std::string url;
  std::uint64_t fetches_ok = 0;
  std::uint64_t fetches_failed = 0;
  std::size_t keys = 0;            // in the set in force (the last good one)
  bool last_fetch_failed = false;  // the set in force may be stale
  std::optional<std::chrono::system_clock::time_point> last_success;
  std::optional<std::chrono::system_clock::time_point> last_failure;
  // Why the last failed fetch failed ("jwks <url>: answered HTTP 500"),
  // kept after a later success; never holds a secret.
  std::string last_error;
};

// One jwt-auth plugin's JWKS URL in the configuration serving now.
struct JwksReport {
  std::string source;  // the plugin entry's JSON path: "routes[2].plugins[0]"
  JwksStatus status;
};

}  // namespace portico::detail
