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

}  // namespace portico::detail
