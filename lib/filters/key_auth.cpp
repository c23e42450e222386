#include "portico/filters/key_auth.hpp"

#include <fmt/format.h>

#include "../common/ascii.hpp"
#include "credentials.hpp"
#include "error_response.hpp"
#include "portico/filters/request_state.hpp"

namespace portico::filters {

namespace {

using detail::IdentityHeaders;

class KeyAuth final : public proxy::Filter {
 public:
  KeyAuth(KeyAuthOptions options, const Consumer* anonymous)
      : options_(std::move(options)),
        anonymous_(anonymous),
        identity_{options_.consumer_id_header, options_.consumer_plan_header,
                  options_.anonymous_header},
        challenge_(fmt::format("Key realm=\"{}\"", options_.realm)) {}

  std::string_view name() const noexcept override { return "key-auth"; }

  proxy::FilterStatus on_request_headers(proxy::RequestContext& ctx) override {
    // A consumer resolved by an earlier authentication policy (which removed
    // the client's identity headers and set its own) stands unless a key
    // names another one.
    const RequestState* state = find_request_state(ctx);
    const bool identified = state != nullptr && !state->consumer.empty();
    if (!identified) detail::remove_identity_headers(ctx, identity_);
    std::size_t found = 0;
    std::string_view key;
    bool in_query = false;
    for (const http::Header& h : ctx.request().headers) {
      if (!is_key_header(h.name)) continue;
      ++found;
      key = h.value;
    }
    bool bad_escape = false;
    if (!options_.query_names.empty()) {
      detail::for_each_query_param(ctx.query(),
                                   [&](std::string_view raw_name, std::string_view raw_value) {
                                     for (const std::string& n : options_.query_names) {
                                       if (!detail::query_name_is(raw_name, n)) continue;
                                       ++found;
                                       in_query = true;
                                       const auto decoded = detail::percent_decode(ctx, raw_value);
                                       bad_escape = bad_escape || !decoded;
                                       key = decoded.value_or(std::string_view());
                                       break;
                                     }
                                   });
    }
    if (found > 1) return refuse(ctx, "more than one API key was sent");
    if (found == 0) {
      if (identified) return proxy::FilterStatus::next;
      if (anonymous_ == nullptr) return refuse(ctx, "no API key was sent");
      detail::set_consumer(ctx, *anonymous_, "key-auth", true, identity_);
      return proxy::FilterStatus::next;
    }
    const Consumer* consumer = bad_escape ? nullptr : options_.consumers->find_by_key(key);
    if (consumer == nullptr) return refuse(ctx, "the API key is not valid");
    if (options_.hide_credentials) {
      if (in_query) {
        detail::strip_query_params(ctx, options_.query_names);
      } else {
        for (const std::string& n : options_.header_names)
          ctx.remove_request_header(n);
      }
    }
    detail::set_consumer(ctx, *consumer, "key-auth", false, identity_);
    return proxy::FilterStatus::next;
  }

 private:
  bool is_key_header(std::string_view name) const noexcept {
    for (const std::string& n : options_.header_names)
      if (detail::ascii_iequals(n, name)) return true;
    return false;
  }

  proxy::FilterStatus refuse(proxy::RequestContext& ctx, std::string_view message) {
    const http::Header challenge[] = {{"WWW-Authenticate", challenge_}};
    detail::respond_error(ctx, 401, message, challenge);
    return proxy::FilterStatus::respond;
  }

  KeyAuthOptions options_;
  const Consumer* anonymous_;  // in options_.consumers
  IdentityHeaders identity_;
  std::string challenge_;
};

Error invalid(std::string message) {
  return make_error(ErrorKind::invalid_argument, std::move(message));
}

}  // namespace

Result<std::shared_ptr<proxy::Filter>> make_key_auth(KeyAuthOptions options) {
  if (options.consumers == nullptr) return invalid("consumers: required");
  if (options.header_names.empty() && options.query_names.empty())
    return invalid("header_names: at least one header or query parameter name is needed");
  for (std::size_t i = 0; i < options.header_names.size(); ++i) {
    if (!detail::is_header_name(options.header_names[i]))
      return invalid(fmt::format("header_names[{}]: \"{}\" is not a valid header name", i,
                                 options.header_names[i]));
  }
  for (std::size_t i = 0; i < options.query_names.size(); ++i) {
    const std::string& n = options.query_names[i];
    if (n.empty() || n.find_first_of("&=#%") != std::string::npos ||
        !detail::is_plain_quoted_text(n))
      return invalid(
          fmt::format("query_names[{}]: \"{}\" is not a plain query parameter name", i, n));
  }
  if (!detail::is_plain_quoted_text(options.realm))
    return invalid("realm: quotes, backslashes and control characters are not allowed");
  const std::pair<std::string_view, const std::string*> identity[] = {
      {"consumer_id_header", &options.consumer_id_header},
      {"consumer_plan_header", &options.consumer_plan_header},
      {"anonymous_header", &options.anonymous_header}};
  for (const auto& [field, value] : identity) {
    if (!detail::is_header_name(*value))
      return invalid(fmt::format("{}: \"{}\" is not a valid header name", field, *value));
  }
  const Consumer* anonymous = nullptr;
  if (!options.anonymous.empty()) {
    anonymous = options.consumers->find(options.anonymous);
    if (anonymous == nullptr)
      return make_error(ErrorKind::not_found,
                        fmt::format("anonymous: no consumer \"{}\"", options.anonymous));
  }
  return std::shared_ptr<proxy::Filter>(std::make_shared<KeyAuth>(std::move(options), anonymous));
}

}  // namespace portico::filters
