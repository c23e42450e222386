// RFC 3986 character classes for the fuzz targets' reference models. Written
// apart from the library on purpose: a model that reused the code under test
// would agree with its bugs.
#pragma once

namespace portico::fuzz {

inline int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// Unreserved characters (§2.3): the only ones normalisation decodes.
inline bool unreserved(int c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

}  // namespace portico::fuzz
