// request-size-limiting: a bound on request bodies, tighter than the
// route's max_body_bytes, per route, service or globally.
//
// A request whose Content-Length exceeds `max_body_bytes` is answered 413 at
// once, before the body is read and before a client waiting on
// "Expect: 100-continue" is told to send it. A chunked body has no length
// up front: with `require_content_length` it is refused with 411; otherwise
// the filter asks to see the body whole (RequestContext::
// buffer_request_body()) and answers 413 when it turns out longer. The
// filter API collects a body whole or not at all, so such a body is held in
// memory up to the route's max_body_bytes (beyond which the proxy itself
// answers 413) rather than cut off at this limit, and is sent upstream with
// a Content-Length instead of chunked.
//
// Threading: immutable; may be shared by every worker.
#pragma once

#include <cstdint>
#include <memory>

#include "portico/export.hpp"
#include "portico/filter.hpp"
#include "portico/result.hpp"

namespace portico::filters {

struct RequestSizeLimitingOptions {
  // The largest body allowed, in bytes; at least 1.
  std::uint64_t max_body_bytes = 0;
  // Refuse bodies without a Content-Length (chunked) with 411.
  bool require_content_length = false;
};

// Fails with invalid_argument when max_body_bytes is 0.
PORTICO_API Result<std::shared_ptr<proxy::Filter>> make_request_size_limiting(
    RequestSizeLimitingOptions options);

}  // namespace portico::filters
