#include "describe.hpp"

#include <cstdio>

namespace portico::detail {

std::string describe(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", value);
  return text;
}

std::string describe(Duration value) {
  return std::to_string(value.count()) + " ns";
}

std::string describe_untrusted(std::string_view text, std::size_t max) {
  std::string out = "'";
  for (char c : text.substr(0, max))
    out += (c >= 0x20 && c < 0x7f) ? c : '?';
  if (text.size() > max) out += "...";
  return out + "'";
}

}  // namespace portico::detail
