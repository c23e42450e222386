// request-id: one id per request and the W3C trace context
// (https://www.w3.org/TR/trace-context/), so that every upstream request,
// every log line and every error body carries them.
//
// For each request the filter
//   - keeps the client's X-Request-ID when it is a single, valid value
//     (visible ASCII, at most max_length bytes) and trust_incoming is set;
//     otherwise it generates one: 32 lower-case hex digits (128 random bits);
//   - keeps a single valid `traceparent` (same trace id, same flags) and
//     gives this hop a new span id, or starts a trace when there is none or
//     it is malformed (then `tracestate`, which belongs to the discarded
//     trace, is removed; otherwise it is passed through untouched);
//   - sets both on the request sent upstream, echoes the request id on the
//     response, and records request_id, trace_id and span_id in the
//     request's filters::RequestState for the filters and the log after it.
// A request the proxy refuses before any filter runs (no route: 404, 405)
// gets its id the same way (Filter::on_early_error): the JSON error body,
// the echoed header and the access log quote the client's valid id, or a
// generated one, rather than the proxy's request number. The filter must
// then be a global one (ServerOptions::filters or unrouted_filters).
//
// Ids are unique, not secret: they come from a fast per-thread generator
// seeded from the system's random source, and must not be used as tokens.
// Nothing is allocated on the heap per request (the ids live in the
// request's arena).
//
// Threading: the filter is immutable and may be shared by every worker.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "portico/export.hpp"
#include "portico/filter.hpp"
#include "portico/result.hpp"

namespace portico::filters {

struct RequestIdOptions {
  // The header that carries the id, on the request and the response. A
  // field name token.
  std::string header = "X-Request-ID";
  // Keep a valid id sent by the client; false: always generate one (for an
  // edge that does not believe its clients).
  bool trust_incoming = true;
  // The longest incoming id kept, 1..1024 bytes; a longer one is replaced.
  std::size_t max_length = 128;
  // Send the id back on the response.
  bool echo_on_response = true;
  // Propagate or start a W3C trace context.
  bool trace_context = true;
  // Continue the client's trace; false: every request starts a new trace.
  bool trust_incoming_trace = true;
  // The sampled flag of the traces this filter starts.
  bool sample_new_traces = true;
};

// Fails with invalid_argument naming the field: a header that is not a
// field-name token, max_length outside 1..1024.
PORTICO_API Result<std::shared_ptr<proxy::Filter>> make_request_id(RequestIdOptions options);

}  // namespace portico::filters
