// Parsing of route path and host patterns into what the trie stores.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "portico/result.hpp"

namespace portico::detail {

// A path pattern cut into static text and whole-segment captures.
struct PatternToken {
  enum class Kind { text, param, catchall };
  Kind kind;
  std::string text;  // static text (normalised escapes), or the capture name
};

// Parses `/users/{id}/files/{*rest}` or `/api/**`. Static text is returned
// in normalised form (unreserved escapes decoded, hex in upper case) so it
// compares equal to a path that went through normalize_path().
Result<std::vector<PatternToken>> parse_path_pattern(std::string_view pattern);

struct HostPattern {
  enum class Kind { any, exact, wildcard };
  Kind kind;
  std::string
      text;  // exact: the lower-case name; wildcard: the suffix with its dot, ".example.com"
};

// "", "*", a host name, "*." and a host name, or an IPv6 literal "[...]":
// lower-cased, without a trailing dot; a port or an empty label is refused.
Result<HostPattern> parse_host_pattern(std::string_view host);

// Lower-cases `host` into `buf`, dropping a port and a trailing dot. Returns
// the length, or -1 when the host does not fit, has no name or has an empty
// label.
int canonical_request_host(std::string_view host, char* buf, std::size_t cap) noexcept;

}  // namespace portico::detail
