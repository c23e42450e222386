// cors: Cross-Origin Resource Sharing (the Fetch standard's CORS protocol)
// answered at the gateway.
//
// A preflight (OPTIONS with Origin and Access-Control-Request-Method) is
// answered here and never reaches the upstream: 204 with the
// Access-Control-Allow-* fields when the origin, the method and every
// requested header are allowed, else 403 with the JSON error body. Any other
// request with an allowed Origin goes on, and its response gets
// Access-Control-Allow-Origin (plus -Credentials and -Expose-Headers when
// configured). A request from an origin that is not allowed is not refused
// (only a browser enforces CORS, and it does so on the missing fields);
// its response simply carries none.
//
// Origins: an exact origin ("https://app.example.com", compared without
// regard to ASCII case), "null" (sandboxed documents; allow with care),
// "*" (any), or a subdomain pattern "https://*.example.com[:port]", which
// matches one or more labels before ".example.com" (not example.com itself)
// with the same scheme and port. No regular expressions.
//
// Credentials: with `credentials`, Access-Control-Allow-Origin is never
// "*" (browsers refuse it): the request's origin is echoed. Whenever the
// answer depends on the request's Origin, `Vary: Origin` is added so that
// caches keep the answers apart.
//
// Routes restricted to some methods must allow OPTIONS too, or the router
// answers preflights with 405 before any filter runs.
//
// Threading: immutable; may be shared by every worker.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "portico/clock.hpp"
#include "portico/export.hpp"
#include "portico/filter.hpp"
#include "portico/result.hpp"

namespace portico::filters {

struct CorsOptions {
  // Allowed origins (see above); at least one.
  std::vector<std::string> origins;
  // Methods a preflight may ask for (case-sensitive tokens).
  std::vector<std::string> methods = {"GET", "HEAD", "PUT", "PATCH", "POST", "DELETE"};
  // Request headers a preflight may ask for (case-insensitive); empty: any
  // (the requested list is echoed).
  std::vector<std::string> headers;
  // Response headers the browser may show to the page.
  std::vector<std::string> exposed_headers;
  // Allow cookies and HTTP authentication (Access-Control-Allow-Credentials).
  bool credentials = false;
  // How long a browser may cache a preflight answer; 0: the field is not
  // sent (browsers then use 5 s). At most 1 day.
  Duration max_age = Duration::zero();
};

// Fails with invalid_argument naming the field: no origin, an origin that
// is not "*", "null", scheme://host[:port] or a valid subdomain pattern; a
// method or header that is not a token; max_age out of range.
PORTICO_API Result<std::shared_ptr<proxy::Filter>> make_cors(CorsOptions options);

}  // namespace portico::filters
