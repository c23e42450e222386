// Where authentication policies find credentials in a request (headers,
// query parameters, cookies) and how they take them out before the request
// goes upstream, plus the identity headers the gateway owns.
//
// Nothing here allocates on the heap: decoded values and rewritten targets
// live in the request's arena.
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "portico/filter.hpp"
#include "portico/filters/consumers.hpp"

namespace portico::detail {

// Decodes %XX escapes (and nothing else: '+' stays '+', so a base64 key
// survives) into the request's arena; nullopt for a malformed escape.
std::optional<std::string_view> percent_decode(proxy::RequestContext& ctx, std::string_view raw);

// Whether the raw (still escaped) query parameter name is `name` once
// decoded, so "api%6Bey" cannot slip a key past the stripping.
bool query_name_is(std::string_view raw_name, std::string_view name) noexcept;

// Calls `f(raw_name, raw_value)` for every parameter of a query ("a=1&b").
template <class F>
void for_each_query_param(std::string_view query, F&& f) {
  while (!query.empty()) {
    const std::size_t amp = query.find('&');
    const std::string_view part = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (part.empty()) continue;
    const std::size_t eq = part.find('=');
    f(part.substr(0, eq), eq == std::string_view::npos ? std::string_view() : part.substr(eq + 1));
  }
}

// Sends the request upstream without the query parameters named in
// `names`, every other byte of the target kept as it was. Works on the
// target as earlier filters left it (RequestContext::upstream_path()), so
// two policies that each strip their own parameter both take effect.
void strip_query_params(proxy::RequestContext& ctx, std::span<const std::string> names);

// Calls `f(name, value)` for every cookie of one Cookie header value.
template <class F>
void for_each_cookie(std::string_view header, F&& f) {
  while (!header.empty()) {
    const std::size_t semi = header.find(';');
    std::string_view part = header.substr(0, semi);
    header = semi == std::string_view::npos ? std::string_view() : header.substr(semi + 1);
    while (!part.empty() && (part.front() == ' ' || part.front() == '\t'))
      part.remove_prefix(1);
    while (!part.empty() && (part.back() == ' ' || part.back() == '\t'))
      part.remove_suffix(1);
    if (part.empty()) continue;
    const std::size_t eq = part.find('=');
    if (eq == std::string_view::npos) continue;
    f(part.substr(0, eq), part.substr(eq + 1));
  }
}

// Rewrites the Cookie headers without the cookie `name` (removing a header
// left empty).
void strip_cookie(proxy::RequestContext& ctx, std::string_view name);

// The token of an "Authorization: Bearer <token>" value (scheme compared
// without regard to case), or nullopt for another scheme or no token.
std::optional<std::string_view> bearer_token(std::string_view authorization) noexcept;

// How many headers of the request (as the client sent it) are named `name`;
// the first one's value goes to `first` when given.
std::size_t count_headers(const proxy::RequestContext& ctx, std::string_view name,
                          std::string_view* first = nullptr) noexcept;

// The headers through which the gateway tells the upstream who the consumer
// is. A client must never choose them, so they are removed from every
// request before they are (maybe) set.
struct IdentityHeaders {
  std::string consumer_id = "X-Consumer-ID";
  std::string consumer_plan = "X-Consumer-Plan";
  std::string anonymous = "X-Anonymous-Consumer";
};

void remove_identity_headers(proxy::RequestContext& ctx, const IdentityHeaders& headers);

// Records the consumer in the request's shared state (RequestState) and
// sets the identity headers. The views stay valid as long as `consumer`
// (the filter's Consumers) does.
void set_consumer(proxy::RequestContext& ctx, const filters::Consumer& consumer,
                  std::string_view credential, bool anonymous, const IdentityHeaders& headers);

// Whether `name` is a valid header field name (an RFC 9110 token).
bool is_header_name(std::string_view name) noexcept;

// Whether `text` fits inside a quoted-string of an auth parameter without
// escaping (no quote, backslash or control character).
bool is_plain_quoted_text(std::string_view text) noexcept;

}  // namespace portico::detail
