// Request-path normalisation, applied before route matching.
//
// A gateway decides who may reach what by matching paths, so two spellings of
// one resource must not be treated as two resources: `/api/../admin` and
// `/%2e%2e/admin` are both `/admin`, and a route ACL on `/admin/**` must see
// them as such. normalize_path() produces the one spelling the router and
// every policy see:
//
//  1. percent-encoded unreserved characters (RFC 3986 §2.3: ALPHA DIGIT - . _ ~)
//     are decoded, every other escape keeps its encoding with upper-case hex
//     (§6.2.2.1), so `%2F` never becomes a separator and `%2f` equals `%2F`;
//  2. dot segments are removed as in RFC 3986 §5.2.4, after decoding, so an
//     encoded dot cannot smuggle a `..` past it; `..` at the root stays at the
//     root: no path can climb above `/`;
//  3. optionally, runs of `/` are merged into one.
//
// Malformed input is reported, never guessed: a `%` not followed by two hex
// digits, a byte outside printable ASCII, a backslash (which some upstream
// servers treat as a separator), a path that does not start with `/`.
//
// Threading: pure functions, safe from any thread.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>

#include "portico/export.hpp"
#include "portico/result.hpp"

namespace portico {

struct NormalizeOptions {
  // Merge `//` into `/`. Off by default because some services give empty
  // segments a meaning; turn it on where routes are written without them.
  bool merge_slashes = false;
  // Refuse `%2F` and `%5C` (encoded `/` and `\`) instead of keeping them
  // encoded, for upstreams known to decode them into separators.
  bool reject_encoded_slashes = false;
};

// Writes the normalised form of `path` into `out` and returns its length.
// Normalisation never lengthens a path, so `out.size() >= path.size()` always
// suffices; a smaller buffer is a capacity error. `out` may not overlap
// `path`. Allocates only to build the message of an error.
// Errors: malformed (bad percent-encoding, forbidden byte, not absolute; the
// message names the offset), capacity, invalid_argument (encoded slash when
// rejected).
PORTICO_API Result<std::size_t> normalize_path(std::string_view path, std::span<char> out,
                                               const NormalizeOptions& options = {});

// Convenience form that allocates the result.
PORTICO_API Result<std::string> normalize_path(std::string_view path,
                                               const NormalizeOptions& options = {});

}  // namespace portico
