#include "fields.hpp"

#include <array>
#include <cstring>

#include "../common/ascii.hpp"

namespace portico::detail {
namespace {

bool is_ows(char c) noexcept {
  return c == ' ' || c == '\t';
}

bool is_alnum(unsigned char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool is_digit(char c) noexcept {
  return c >= '0' && c <= '9';
}

bool is_hex(char c) noexcept {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// unreserved / sub-delims (RFC 3986 section 2), the bytes a reg-name may
// carry literally.
bool is_host_char(unsigned char c) noexcept {
  return is_alnum(c) ||
         std::string_view("-._~!$&'()*+,;=").find(static_cast<char>(c)) != std::string_view::npos;
}

bool is_reg_name(std::string_view host) noexcept {
  for (std::size_t i = 0; i < host.size(); ++i) {
    if (host[i] == '%') {
      if (i + 2 >= host.size() || !is_hex(host[i + 1]) || !is_hex(host[i + 2])) return false;
      i += 2;
    } else if (!is_host_char(static_cast<unsigned char>(host[i]))) {
      return false;
    }
  }
  return true;
}

// IPv6address or IPvFuture, loosely: the bytes they are made of. Which
// address it names is the resolver's business; what matters here is that no
// delimiter hides inside.
bool is_ip_literal_body(std::string_view body) noexcept {
  if (body.empty()) return false;
  for (const char c : body) {
    if (c != ':' && !is_host_char(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

bool is_port(std::string_view port) noexcept {
  if (port.empty() || port.size() > 5) return false;
  unsigned value = 0;
  for (const char c : port) {
    if (!is_digit(c)) return false;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  return value <= 65535;
}

}  // namespace

std::string_view trim_ows(std::string_view s) noexcept {
  while (!s.empty() && is_ows(s.front()))
    s.remove_prefix(1);
  while (!s.empty() && is_ows(s.back()))
    s.remove_suffix(1);
  return s;
}

namespace {

// tchar (RFC 9110 section 5.6.2) by byte value: filters validate every
// header name they set, several per request, so this is a table lookup.
constexpr std::array<bool, 256> kTchar = [] {
  std::array<bool, 256> t{};
  for (int c = 0; c < 256; ++c)
    t[static_cast<std::size_t>(c)] =
        (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
        std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
  return t;
}();

// Whether each of the eight bytes of `word` is a letter, a digit or '-',
// the bytes nearly every field name is made of. Each byte is judged apart:
// the sums below stay within their byte for bytes below 0x80, and a word
// with a byte from 0x80 up is refused first.
constexpr bool all_name_bytes(std::uint64_t word) noexcept {
  constexpr std::uint64_t kEach = 0x0101010101010101ULL;
  constexpr std::uint64_t kHigh = kEach << 7;
  if ((word & kHigh) != 0) return false;
  // The high bit of each byte of in(w, lo, hi): lo <= byte <= hi.
  auto in = [](std::uint64_t w, unsigned lo, unsigned hi) {
    return (w + kEach * (0x80 - lo)) & ~(w + kEach * (0x7f - hi)) & kHigh;
  };
  const std::uint64_t letter = in(word | (kEach * 0x20), 'a', 'z');
  const std::uint64_t digit = in(word, '0', '9');
  const std::uint64_t dash = ~((word ^ (kEach * '-')) + kEach * 0x7f) & kHigh;
  return (letter | digit | dash) == kHigh;
}

}  // namespace

bool is_tchar(unsigned char c) noexcept {
  return kTchar[c];
}

bool is_token(std::string_view s) noexcept {
  if (s.empty()) return false;
  // Filters validate every header name they set, several per request: eight
  // bytes per step while they are letters, digits and '-', the table for
  // anything else.
  if (s.size() >= 8) {
    bool plain = true;
    std::uint64_t word;
    for (std::size_t i = 0; plain && i + 8 <= s.size(); i += 8) {
      std::memcpy(&word, s.data() + i, sizeof word);
      plain = all_name_bytes(word);
    }
    std::memcpy(&word, s.data() + s.size() - 8, sizeof word);  // the tail, overlapping
    if (plain && all_name_bytes(word)) return true;
  }
  for (const char c : s) {
    if (!kTchar[static_cast<unsigned char>(c)]) return false;
  }
  return true;
}

bool list_has_token(std::string_view list, std::string_view token) noexcept {
  bool found = false;
  for_each_list_element(list, [&](std::string_view element) {
    if (ascii_iequals(element, token)) found = true;
  });
  return found;
}

std::optional<std::uint64_t> parse_content_length(std::string_view value) noexcept {
  if (value.empty()) return std::nullopt;
  std::uint64_t n = 0;
  for (const char c : value) {
    if (!is_digit(c)) return std::nullopt;
    const auto digit = static_cast<std::uint64_t>(c - '0');
    if (n > (UINT64_MAX - digit) / 10) return std::nullopt;
    n = n * 10 + digit;
  }
  return n;
}

bool is_valid_authority(std::string_view authority, bool require_port) noexcept {
  std::string_view rest;
  if (!authority.empty() && authority.front() == '[') {
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos) return false;
    if (!is_ip_literal_body(authority.substr(1, close - 1))) return false;
    rest = authority.substr(close + 1);
  } else {
    const std::size_t colon = authority.find(':');
    const std::string_view host = authority.substr(0, colon);
    if (host.empty() || !is_reg_name(host)) return false;
    rest = colon == std::string_view::npos ? std::string_view() : authority.substr(colon);
  }
  if (rest.empty()) return !require_port;
  return rest.front() == ':' && is_port(rest.substr(1));
}

std::optional<AbsoluteTarget> split_absolute_target(std::string_view target) noexcept {
  const std::size_t scheme_end = target.find("://");
  if (scheme_end == std::string_view::npos) return std::nullopt;
  const std::string_view scheme = target.substr(0, scheme_end);
  if (!ascii_iequals(scheme, "http") && !ascii_iequals(scheme, "https")) return std::nullopt;
  const std::size_t authority_start = scheme_end + 3;
  const std::size_t authority_end = target.find_first_of("/?", authority_start);
  AbsoluteTarget parts;
  parts.authority = target.substr(authority_start, authority_end - authority_start);
  if (!is_valid_authority(parts.authority, false)) return std::nullopt;
  if (authority_end == std::string_view::npos) {
    // The first slash of "://": an origin-form "/" that lives in the buffer.
    parts.path = target.substr(scheme_end + 1, 1);
    return parts;
  }
  if (target[authority_end] != '/') return std::nullopt;
  parts.path = target.substr(authority_end);
  return parts;
}

namespace {

void read_transfer_coding(std::string_view element, HeaderFacts& facts) noexcept {
  const std::size_t semicolon = element.find(';');
  const std::string_view name = trim_ows(element.substr(0, semicolon));
  const bool chunked = ascii_iequals(name, "chunked");
  ++facts.coding_count;
  if (!is_token(name) || (chunked && semicolon != std::string_view::npos)) {
    facts.malformed_coding = true;
  }
  if (chunked) {
    ++facts.chunked_count;
  } else {
    facts.other_coding = true;
  }
  facts.last_coding_chunked = chunked;
}

void read_connection_option(std::string_view option, HeaderFacts& facts) noexcept {
  if (ascii_iequals(option, "close")) facts.connection_close = true;
  if (ascii_iequals(option, "keep-alive")) facts.connection_keep_alive = true;
  if (ascii_iequals(option, "upgrade")) facts.connection_upgrade = true;
}

}  // namespace

HeaderFacts read_header_facts(std::span<const http::Header> headers) noexcept {
  HeaderFacts facts;
  for (const http::Header& h : headers) {
    if (ascii_iequals(h.name, "host")) {
      if (facts.host_count++ == 0) facts.host = h.value;
    } else if (ascii_iequals(h.name, "content-length")) {
      const std::optional<std::uint64_t> length = parse_content_length(h.value);
      if (!length) facts.content_length_invalid = true;
      if (facts.content_length_count++ == 0) facts.content_length = length;
    } else if (ascii_iequals(h.name, "transfer-encoding")) {
      ++facts.transfer_encoding_count;
      for_each_list_element(h.value, [&](std::string_view e) { read_transfer_coding(e, facts); });
    } else if (ascii_iequals(h.name, "connection")) {
      for_each_list_element(h.value, [&](std::string_view e) { read_connection_option(e, facts); });
    } else if (ascii_iequals(h.name, "upgrade")) {
      if (!h.value.empty()) facts.upgrade_field = true;
    } else if (ascii_iequals(h.name, "expect")) {
      if (ascii_iequals(h.value, "100-continue")) facts.expect_continue = true;
    }
  }
  return facts;
}

}  // namespace portico::detail
