// Strict base64url (RFC 4648 section 5) as JWS requires it (RFC 7515
// section 2): the URL-safe alphabet only, no padding, no whitespace, and the
// unused low bits of the last character zero, so every byte string has
// exactly one encoding and a token cannot be altered without changing its
// decoded bytes.
#pragma once

#include <string>
#include <string_view>

namespace portico::detail {

// Decodes `in` into `out` (replacing its contents). Returns false, leaving
// `out` unspecified, when `in` is not canonical unpadded base64url.
bool base64url_decode(std::string_view in, std::string& out);

// Appends the unpadded base64url encoding of `in` to `out`.
void base64url_encode(std::string_view in, std::string& out);

}  // namespace portico::detail
