// What the gateway's filters learn about one request and pass to each other.
//
// An authentication filter records the consumer it resolved, a tracing
// filter the trace id; a rate limit keyed by consumer, a header transformer
// that writes a claim, or the access log read them later in the chain. The
// state lives in the request's arena (RequestContext::allocate) behind
// RequestContext::shared_state(), so it costs no heap allocation and needs
// no cleanup: every view in it must point to memory that lives until the
// request ends (the arena, through keep(), or the filter's own config).
//
// Threading: one request, one loop thread.
#pragma once

#include <string_view>

#include "portico/export.hpp"
#include "portico/filter.hpp"
#include "portico/jwt.hpp"

namespace portico::filters {

struct RequestState {
  std::string_view consumer;    // the consumer's id; empty: anonymous
  std::string_view plan;        // the consumer's plan (tier); empty: none
  std::string_view credential;  // how it was identified: "key-auth", "jwt-auth"
  // Verified JWT claims, valid until on_log (the jwt-auth filter keeps the
  // token alive until then); null when no token was verified.
  const jwt::Claims* claims = nullptr;
  std::string_view request_id;  // the X-Request-ID sent upstream
  std::string_view trace_id;    // W3C trace context, lower-case hex (32)
  std::string_view span_id;     // the span of this hop (16)
  std::string_view service;     // the configured service the route sends to
};

// The request's state, created empty on first use.
PORTICO_API RequestState& request_state(proxy::RequestContext& ctx);
// The request's state, or null when no filter created it.
PORTICO_API const RequestState* find_request_state(const proxy::RequestContext& ctx) noexcept;
// Copies `text` into the request's arena: a view that lives until the
// request ends.
PORTICO_API std::string_view keep(proxy::RequestContext& ctx, std::string_view text);

}  // namespace portico::filters
