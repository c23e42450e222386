// cors: preflights answered at the gateway, the response fields of the
// requests that follow them.
#include "portico/filters/cors.hpp"

#include <algorithm>
#include <array>
#include <chrono>

#include "../../common/ascii.hpp"
#include "../../http/fields.hpp"
#include "../error_response.hpp"
#include "origins.hpp"
#include "portico/filters/request_state.hpp"

namespace portico::filters {

namespace {

using proxy::FilterStatus;
using proxy::RequestContext;

constexpr Duration kMaxAge = std::chrono::hours(24);

// What on_request_headers decided, for the response phase.
struct CorsVerdict {
  std::string_view allowed_origin;  // the Access-Control-Allow-Origin value; empty: none
  bool answered = false;            // a preflight this filter answered itself
};

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) out += ", ";
    out += item;
  }
  return out;
}

bool contains_icase(const std::vector<std::string>& items, std::string_view name) {
  for (const auto& item : items)
    if (detail::ascii_iequals(item, name)) return true;
  return false;
}

// The only Origin of the request, or empty (absent or repeated).
std::string_view single_origin(const RequestContext& ctx) {
  std::string_view found;
  int count = 0;
  for (const http::Header& h : ctx.request().headers) {
    if (!detail::ascii_iequals(h.name, "origin")) continue;
    found = h.value;
    ++count;
  }
  return count == 1 ? found : std::string_view();
}

class CorsFilter final : public proxy::Filter {
 public:
  CorsFilter(CorsOptions options, std::vector<detail::OriginRule> rules)
      : options_(std::move(options)),
        rules_(std::move(rules)),
        allow_methods_(join(options_.methods)),
        allow_headers_(join(options_.headers)),
        expose_headers_(join(options_.exposed_headers)),
        max_age_(std::to_string(
            std::chrono::duration_cast<std::chrono::seconds>(options_.max_age).count())) {
    bool any = false;
    for (const auto& r : rules_)
      any = any || r.kind == detail::OriginRule::Kind::any;
    // "*" is sent as is only when it is the whole answer; otherwise the
    // answer names the request's origin, and caches must know.
    star_ = any && !options_.credentials;
    vary_origin_ = !star_;
  }

  std::string_view name() const noexcept override { return "cors"; }

  FilterStatus on_request_headers(RequestContext& ctx) override {
    const std::string_view origin = single_origin(ctx);
    const std::string_view requested_method = ctx.request().header("access-control-request-method");
    const bool preflight = ctx.request().method == "OPTIONS" &&
                           !ctx.request().header("origin").empty() && !requested_method.empty();
    const std::string_view allowed = allowed_origin(ctx, origin);
    if (preflight) return answer_preflight(ctx, allowed, requested_method);
    if (!allowed.empty() || vary_origin_) {
      auto* verdict = new (ctx.allocate(sizeof(CorsVerdict), alignof(CorsVerdict))) CorsVerdict{};
      verdict->allowed_origin = allowed;
      ctx.set_state(verdict);
    }
    return FilterStatus::next;
  }

  FilterStatus on_response_headers(RequestContext& ctx) override {
    const auto* verdict = static_cast<const CorsVerdict*>(ctx.state());
    if (verdict == nullptr || verdict->answered) return FilterStatus::next;
    if (vary_origin_) ctx.add_response_header("Vary", "Origin");
    if (verdict->allowed_origin.empty()) {
      // The gateway owns CORS for this route: an upstream's own grant does
      // not reach an origin the policy refuses.
      ctx.remove_response_header("Access-Control-Allow-Origin");
      ctx.remove_response_header("Access-Control-Allow-Credentials");
      return FilterStatus::next;
    }
    ctx.set_response_header("Access-Control-Allow-Origin", verdict->allowed_origin);
    if (options_.credentials) ctx.set_response_header("Access-Control-Allow-Credentials", "true");
    if (!expose_headers_.empty())
      ctx.set_response_header("Access-Control-Expose-Headers", expose_headers_);
    return FilterStatus::next;
  }

 private:
  // The Access-Control-Allow-Origin value for this origin, or empty when it
  // is not allowed (or not a well-formed origin).
  std::string_view allowed_origin(RequestContext& ctx, std::string_view origin) const {
    if (origin.empty() || !detail::is_serialized_origin(origin)) return {};
    for (const auto& rule : rules_) {
      if (!detail::origin_matches(rule, origin)) continue;
      return star_ ? std::string_view("*") : keep(ctx, origin);
    }
    return {};
  }

  FilterStatus answer_preflight(RequestContext& ctx, std::string_view origin,
                                std::string_view method) {
    auto* verdict = new (ctx.allocate(sizeof(CorsVerdict), alignof(CorsVerdict))) CorsVerdict{};
    verdict->answered = true;
    ctx.set_state(verdict);
    const http::Header vary{"Vary", vary_origin_ ? "Origin, Access-Control-Request-Method, "
                                                   "Access-Control-Request-Headers"
                                                 : "Access-Control-Request-Method, "
                                                   "Access-Control-Request-Headers"};
    const http::Header refusal_headers[] = {vary};
    if (origin.empty()) {
      detail::respond_error(ctx, 403, "CORS preflight refused: origin not allowed",
                            refusal_headers);
      return FilterStatus::respond;
    }
    if (!detail::is_token(method) || std::find(options_.methods.begin(), options_.methods.end(),
                                               method) == options_.methods.end()) {
      detail::respond_error(ctx, 403, "CORS preflight refused: method not allowed",
                            refusal_headers);
      return FilterStatus::respond;
    }
    const std::string_view requested = ctx.request().header("access-control-request-headers");
    if (!headers_allowed(requested)) {
      detail::respond_error(ctx, 403, "CORS preflight refused: a requested header is not allowed",
                            refusal_headers);
      return FilterStatus::respond;
    }
    std::array<http::Header, 6> headers;
    std::size_t n = 0;
    headers[n++] = {"Access-Control-Allow-Origin", origin};
    headers[n++] = {"Access-Control-Allow-Methods", allow_methods_};
    // An empty list allows any header: the (valid) requested list is echoed.
    const std::string_view allow_headers = options_.headers.empty() ? requested : allow_headers_;
    if (!allow_headers.empty()) headers[n++] = {"Access-Control-Allow-Headers", allow_headers};
    if (options_.max_age > Duration::zero()) headers[n++] = {"Access-Control-Max-Age", max_age_};
    if (options_.credentials) headers[n++] = {"Access-Control-Allow-Credentials", "true"};
    headers[n++] = vary;
    ctx.respond(204, {}, std::span<const http::Header>(headers.data(), n));
    return FilterStatus::respond;
  }

  // Every element of Access-Control-Request-Headers is a token, and an
  // allowed one when a list is configured.
  bool headers_allowed(std::string_view requested) const {
    bool ok = true;
    detail::for_each_list_element(requested, [&](std::string_view name) {
      if (!detail::is_token(name) ||
          (!options_.headers.empty() && !contains_icase(options_.headers, name)))
        ok = false;
    });
    return ok;
  }

  const CorsOptions options_;
  const std::vector<detail::OriginRule> rules_;
  const std::string allow_methods_;
  const std::string allow_headers_;
  const std::string expose_headers_;
  const std::string max_age_;
  bool star_ = false;
  bool vary_origin_ = true;
};

Status check_tokens(const std::vector<std::string>& items, std::string_view field) {
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (!detail::is_token(items[i]))
      return make_error(ErrorKind::invalid_argument, std::string(field) + "[" + std::to_string(i) +
                                                         "]: \"" + items[i] + "\" is not a token");
  }
  return {};
}

}  // namespace

Result<std::shared_ptr<proxy::Filter>> make_cors(CorsOptions options) {
  if (options.origins.empty())
    return make_error(ErrorKind::invalid_argument, "origins: at least one origin is required");
  std::vector<detail::OriginRule> rules;
  for (std::size_t i = 0; i < options.origins.size(); ++i) {
    auto rule = detail::parse_origin_rule(options.origins[i]);
    if (!rule)
      return make_error(ErrorKind::invalid_argument,
                        "origins[" + std::to_string(i) + "]: " + rule.error().message);
    rules.push_back(std::move(*rule));
  }
  if (Status s = check_tokens(options.methods, "methods"); !s) return std::move(s).error();
  if (Status s = check_tokens(options.headers, "headers"); !s) return std::move(s).error();
  if (Status s = check_tokens(options.exposed_headers, "exposed_headers"); !s)
    return std::move(s).error();
  if (options.max_age < Duration::zero() || options.max_age > kMaxAge)
    return make_error(ErrorKind::invalid_argument, "max_age: expected 0 to 1 day");
  return std::shared_ptr<proxy::Filter>(
      std::make_shared<CorsFilter>(std::move(options), std::move(rules)));
}

}  // namespace portico::filters
