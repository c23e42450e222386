// Header lookup by name: ASCII case-insensitive, as field names are
// (RFC 9110 section 5.1).
#include "portico/http.hpp"

#include "../common/ascii.hpp"

namespace portico::http {

bool header_name_equals(std::string_view a, std::string_view b) noexcept {
  return detail::ascii_iequals(a, b);
}

namespace {

std::string_view find_header(std::span<const Header> headers, std::string_view name) noexcept {
  for (const Header& h : headers) {
    if (header_name_equals(h.name, name)) return h.value;
  }
  return {};
}

}  // namespace

std::string_view RequestHead::header(std::string_view name) const noexcept {
  return find_header(headers, name);
}

std::string_view ResponseHead::header(std::string_view name) const noexcept {
  return find_header(headers, name);
}

}  // namespace portico::http
