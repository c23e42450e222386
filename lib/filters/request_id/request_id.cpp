// request-id: keeps or generates X-Request-ID, propagates or starts the W3C
// trace context, and records both in the request's RequestState.
#include "portico/filters/request_id.hpp"

#include <cstring>

#include "../../common/ascii.hpp"
#include "../../http/fields.hpp"
#include "portico/filters/request_state.hpp"
#include "trace_context.hpp"

namespace portico::filters {

namespace {

using proxy::FilterStatus;
using proxy::RequestContext;

constexpr std::string_view kTraceParent = "traceparent";
constexpr std::string_view kTraceState = "tracestate";
constexpr std::size_t kMaxRequestIdLength = 1024;

// The value of the only header named `name`; nothing when it is absent or
// repeated (two ids, or two parents, leave no way to tell which is meant).
std::optional<std::string_view> single_header(const RequestContext& ctx, std::string_view name) {
  std::optional<std::string_view> found;
  for (const http::Header& h : ctx.request().headers) {
    if (!detail::ascii_iequals(h.name, name)) continue;
    if (found) return std::nullopt;
    found = h.value;
  }
  return found;
}

// `n` bytes of the request's arena.
char* arena_chars(RequestContext& ctx, std::size_t n) {
  return static_cast<char*>(ctx.allocate(n, 1));
}

class RequestIdFilter final : public proxy::Filter {
 public:
  explicit RequestIdFilter(RequestIdOptions options) : options_(std::move(options)) {}

  std::string_view name() const noexcept override { return "request-id"; }

  FilterStatus on_request_headers(RequestContext& ctx) override {
    record(ctx);
    return FilterStatus::next;
  }

  // A request the proxy refuses before the filters run (no route, say):
  // its error body, response and log line carry the same id as any other.
  void on_early_error(RequestContext& ctx) override {
    const RequestState& state = record(ctx);
    if (options_.echo_on_response) ctx.set_response_header(options_.header, state.request_id);
  }

  FilterStatus on_response_headers(RequestContext& ctx) override {
    if (!options_.echo_on_response) return FilterStatus::next;
    const RequestState* state = find_request_state(ctx);
    if (state != nullptr && !state->request_id.empty())
      ctx.set_response_header(options_.header, state->request_id);
    return FilterStatus::next;
  }

 private:
  // Keeps or makes the id and the trace, for the upstream request and the
  // filters after this one.
  const RequestState& record(RequestContext& ctx) const {
    RequestState& state = request_state(ctx);
    state.request_id = request_id(ctx);
    ctx.set_request_header(options_.header, state.request_id);
    if (options_.trace_context) trace(ctx, state);
    return state;
  }

  std::string_view request_id(RequestContext& ctx) const {
    if (options_.trust_incoming) {
      const auto incoming = single_header(ctx, options_.header);
      if (incoming && detail::is_valid_request_id(*incoming, options_.max_length))
        return keep(ctx, *incoming);
    }
    char* id = arena_chars(ctx, 32);
    detail::random_hex(id, 2);
    return {id, 32};
  }

  // Sends "00-<trace id>-<span id>-<flags>" upstream: the client's trace
  // and flags when it sent a valid parent, a new trace otherwise; the span
  // id is always this hop's own.
  void trace(RequestContext& ctx, RequestState& state) const {
    std::optional<detail::TraceParent> parent;
    if (options_.trust_incoming_trace) {
      if (const auto value = single_header(ctx, kTraceParent))
        parent = detail::parse_traceparent(*value);
    }
    constexpr std::size_t kLength = 55;
    char* out = arena_chars(ctx, kLength);
    std::memcpy(out, "00-", 3);
    if (parent) {
      std::memcpy(out + 3, parent->trace_id.data(), 32);
      std::memcpy(out + 53, parent->flags.data(), 2);
    } else {
      detail::random_hex(out + 3, 2);
      std::memcpy(out + 53, options_.sample_new_traces ? "01" : "00", 2);
      // The state of a trace this request no longer belongs to.
      ctx.remove_request_header(kTraceState);
    }
    out[35] = '-';
    detail::random_hex(out + 36, 1);
    out[52] = '-';
    const std::string_view traceparent(out, kLength);
    ctx.set_request_header(kTraceParent, traceparent);
    state.trace_id = traceparent.substr(3, 32);
    state.span_id = traceparent.substr(36, 16);
  }

  const RequestIdOptions options_;
};

}  // namespace

Result<std::shared_ptr<proxy::Filter>> make_request_id(RequestIdOptions options) {
  if (!detail::is_token(options.header))
    return make_error(ErrorKind::invalid_argument,
                      "header: \"" + options.header + "\" is not a header field name");
  if (options.max_length < 1 || options.max_length > kMaxRequestIdLength)
    return make_error(ErrorKind::invalid_argument, "max_length: expected 1 to 1024, found " +
                                                       std::to_string(options.max_length));
  return std::shared_ptr<proxy::Filter>(std::make_shared<RequestIdFilter>(std::move(options)));
}

}  // namespace portico::filters
