// Fuzz target for normalize_path(): arbitrary bytes in, every option set.
//
// Asserted on every input (a violation aborts, which libFuzzer reports with
// the input that caused it):
//  - the buffer form and the std::string form agree, result and error kind;
//  - accepting or refusing, and the error kind, agree with a small reference
//    model written from the header's contract and RFC 3986 §5.2.4;
//  - an accepted path comes out no longer than it went in, starts with '/',
//    has no "." or ".." segment, holds only bytes 0x21..0x7e, every '%' is
//    followed by two upper-case hex digits that do not encode an unreserved
//    character, and normalising it again gives it back unchanged.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "portico/path.hpp"
#include "rfc3986.hpp"

namespace {

using portico::ErrorKind;
using portico::NormalizeOptions;

[[noreturn]] void fail(const char* what, std::string_view in, std::string_view out = {}) {
  std::fprintf(stderr, "path_fuzz: %s\n  input:  '%.*s'\n  output: '%.*s'\n", what,
               static_cast<int>(in.size()), in.data(), static_cast<int>(out.size()), out.data());
  std::abort();
}

using portico::fuzz::hex_digit;
using portico::fuzz::unreserved;

// The reference: decode segment by segment, then resolve dot segments on a
// stack of segments, the plainest way to state RFC 3986 §5.2.4 for an
// absolute path. Returns the normal form or the kind of the first error.
struct Reference {
  std::optional<std::string> path;
  ErrorKind error = ErrorKind::malformed;
};

Reference reference_normalize(std::string_view in, const NormalizeOptions& o) {
  if (in.empty() || in[0] != '/') return {};
  std::vector<std::string> segments(1);
  for (std::size_t i = 1; i < in.size(); ++i) {
    const char c = in[i];
    if (c == '/') {
      segments.emplace_back();
    } else if (c == '%') {
      if (i + 2 >= in.size()) return {};
      const int hi = hex_digit(in[i + 1]);
      const int lo = hex_digit(in[i + 2]);
      if (hi < 0 || lo < 0) return {};
      const int byte = hi * 16 + lo;
      if (o.reject_encoded_slashes && (byte == '/' || byte == '\\')) {
        return {std::nullopt, ErrorKind::invalid_argument};
      }
      if (unreserved(byte)) {
        segments.back() += static_cast<char>(byte);
      } else {
        static const char* const kHex = "0123456789ABCDEF";
        segments.back() += {'%', kHex[hi], kHex[lo]};
      }
      i += 2;
    } else if (static_cast<unsigned char>(c) > 0x20 && static_cast<unsigned char>(c) < 0x7f &&
               c != '\\') {
      segments.back() += c;
    } else {
      return {};
    }
  }
  std::vector<std::string> kept;
  for (std::size_t i = 0; i < segments.size(); ++i) {
    const std::string& s = segments[i];
    const bool last = i + 1 == segments.size();
    if (s == "." || s == "..") {
      if (s == ".." && !kept.empty()) kept.pop_back();
      if (last) kept.emplace_back();  // "/a/b/.." is "/a/": the slash stays
    } else if (s.empty() && o.merge_slashes && !last) {
      // "//" merged: only a final empty segment (a trailing slash) remains.
    } else {
      kept.push_back(s);
    }
  }
  std::string out = "/";
  for (std::size_t i = 0; i < kept.size(); ++i) {
    if (i > 0) out += '/';
    out += kept[i];
  }
  return {out};
}

bool is_dot(std::string_view segment) {
  return segment == "." || segment == "..";
}

void check_normal_form(std::string_view in, std::string_view out, const NormalizeOptions& o) {
  if (out.size() > in.size()) fail("output longer than input", in, out);
  if (out.empty() || out[0] != '/') fail("output does not start with '/'", in, out);
  std::size_t start = 1;
  for (;;) {
    const std::size_t end = out.find('/', start);
    const std::string_view segment = out.substr(start, end - start);
    if (is_dot(segment)) fail("output holds a dot segment", in, out);
    if (o.merge_slashes && segment.empty() && end != std::string_view::npos) {
      fail("output holds '//' although slashes are merged", in, out);
    }
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  for (std::size_t i = 0; i < out.size(); ++i) {
    const auto c = static_cast<unsigned char>(out[i]);
    if (c < 0x21 || c > 0x7e) fail("output holds a byte outside 0x21..0x7e", in, out);
    if (c == '\\') fail("output holds a backslash", in, out);
    if (c != '%') continue;
    if (i + 2 >= out.size()) fail("output ends in a truncated escape", in, out);
    const char hi = out[i + 1];
    const char lo = out[i + 2];
    const bool upper_hex = ((hi >= '0' && hi <= '9') || (hi >= 'A' && hi <= 'F')) &&
                           ((lo >= '0' && lo <= '9') || (lo >= 'A' && lo <= 'F'));
    if (!upper_hex) fail("output escape is not two upper-case hex digits", in, out);
    if (unreserved(hex_digit(hi) * 16 + hex_digit(lo))) {
      fail("output keeps an unreserved character encoded", in, out);
    }
    if (o.reject_encoded_slashes && (out.substr(i, 3) == "%2F" || out.substr(i, 3) == "%5C")) {
      fail("output keeps an encoded slash that should have been refused", in, out);
    }
  }
}

void check_one(std::string_view in, const NormalizeOptions& o) {
  std::vector<char> buf(in.size());
  const auto n = portico::normalize_path(in, std::span<char>(buf.data(), buf.size()), o);
  const auto s = portico::normalize_path(in, o);
  if (n.ok() != s.ok()) fail("buffer and string forms disagree on acceptance", in);
  const Reference ref = reference_normalize(in, o);
  if (!n.ok()) {
    if (n.error().kind != s.error().kind) fail("buffer and string forms disagree on error", in);
    if (n.error().message.empty()) fail("error without a message", in);
    if (ref.path) fail("refused a path the reference accepts", in, *ref.path);
    if (n.error().kind != ref.error) fail("error kind differs from the reference", in);
    return;
  }
  const std::string_view out(buf.data(), *n);
  if (out != *s) fail("buffer and string forms disagree on the result", in, out);
  if (!ref.path) fail("accepted a path the reference refuses", in, out);
  if (out != *ref.path) fail("result differs from the reference", in, out);
  check_normal_form(in, out, o);
  // A fixed point: the normal form of a normal form is itself.
  const auto again = portico::normalize_path(out, o);
  if (!again.ok()) fail("normal form is refused when normalised again", in, out);
  if (*again != out) fail("normal form is not a fixed point", in, *again);
  // The buffer need be no larger than the input, even exactly that size, and
  // a smaller one is a capacity error rather than an overrun.
  if (!in.empty()) {
    std::vector<char> small(in.size() - 1);
    const auto c = portico::normalize_path(in, std::span<char>(small.data(), small.size()), o);
    if (c.ok() || c.error().kind != ErrorKind::capacity) fail("short buffer not refused", in);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  for (int bits = 0; bits < 4; ++bits) {
    NormalizeOptions o;
    o.merge_slashes = (bits & 1) != 0;
    o.reject_encoded_slashes = (bits & 2) != 0;
    check_one(in, o);
  }
  return 0;
}
