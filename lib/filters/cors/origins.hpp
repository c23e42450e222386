// Origin rules of the cors filter: pure functions, no allocation when
// matching.
#pragma once

#include <string>
#include <string_view>

#include "portico/result.hpp"

namespace portico::detail {

struct OriginRule {
  enum class Kind { any, exact, subdomains };
  Kind kind = Kind::exact;
  // exact: the origin; subdomains: the scheme with "://" ("https://").
  std::string prefix;
  // subdomains: what follows the "*", from its dot (".example.com:8443").
  std::string suffix;
};

// scheme "://" host [":" port], nothing more: what a browser sends as Origin
// (RFC 6454 serialisation), or "null".
bool is_serialized_origin(std::string_view origin) noexcept;

// Reads "*", "null", an origin, or "scheme://*.domain[:port]" (the domain
// with at least one dot, so that "https://*.com" is refused).
Result<OriginRule> parse_origin_rule(std::string_view text);

// Whether `origin` (a request's Origin value) is allowed by `rule`. ASCII
// case is ignored; a subdomain rule needs one or more whole labels before
// its suffix.
bool origin_matches(const OriginRule& rule, std::string_view origin) noexcept;

}  // namespace portico::detail
