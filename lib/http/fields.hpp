// Readers for the field values and request-target forms that decide how a
// message is framed and routed. Pure functions over views, no allocation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "portico/http.hpp"

namespace portico::detail {

// OWS is SP or HTAB (RFC 9110 section 5.6.3).
std::string_view trim_ows(std::string_view s) noexcept;

// tchar (RFC 9110 section 5.6.2).
bool is_tchar(unsigned char c) noexcept;
bool is_token(std::string_view s) noexcept;

// Calls `visit(element)` for each non-empty element of a comma-separated
// list, trimmed of OWS (RFC 9110 section 5.6.1: empty elements are ignored).
template <class Visit>
void for_each_list_element(std::string_view list, Visit&& visit) {
  while (!list.empty()) {
    const std::size_t comma = list.find(',');
    const std::string_view element = trim_ows(list.substr(0, comma));
    if (!element.empty()) visit(element);
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
}

// Whether the comma-separated `list` holds `token` (case-insensitive).
bool list_has_token(std::string_view list, std::string_view token) noexcept;

// 1*DIGIT that fits 64 bits, nothing else.
std::optional<std::uint64_t> parse_content_length(std::string_view value) noexcept;

// uri-host [ ":" port ] (RFC 9110 section 7.2, RFC 3986 section 3.2.2).
// The host may be a reg-name, an IPv4 address or an IP-literal in brackets;
// it must not be empty, and with `require_port` the port must be present.
bool is_valid_authority(std::string_view authority, bool require_port) noexcept;

// The parts of an absolute-form target ("http://host:8080/a?b").
struct AbsoluteTarget {
  std::string_view authority;  // "host:8080"
  std::string_view path;       // "/a?b"; a "/" within the target when empty
};

// Splits an absolute-form target with an http or https scheme. Refused:
// other schemes, userinfo (RFC 9110 section 4.2.4), an invalid or empty
// authority, and a query with no path (its origin form "/?q" is not a view
// into the target).
std::optional<AbsoluteTarget> split_absolute_target(std::string_view target) noexcept;

// What the header fields say about framing, routing and the connection,
// read in one pass. Nothing is judged here: the parsers decide what is an
// error for their direction.
struct HeaderFacts {
  std::size_t host_count = 0;
  std::string_view host;  // the first Host value
  std::size_t content_length_count = 0;
  std::optional<std::uint64_t> content_length;  // the first value, if it is valid
  bool content_length_invalid = false;          // some value is not 1*DIGIT in 64 bits
  std::size_t transfer_encoding_count = 0;      // field lines
  std::size_t coding_count = 0;                 // codings over all of them
  std::size_t chunked_count = 0;
  bool last_coding_chunked = false;
  bool other_coding = false;      // a coding other than chunked
  bool malformed_coding = false;  // not a token, or chunked with parameters
  bool connection_close = false;
  bool connection_keep_alive = false;
  bool connection_upgrade = false;
  bool upgrade_field = false;    // a non-empty Upgrade field
  bool expect_continue = false;  // Expect: 100-continue
};

HeaderFacts read_header_facts(std::span<const http::Header> headers) noexcept;

}  // namespace portico::detail
