// The pieces of the request-id filter that are pure functions: id
// generation, request id validation, and the W3C traceparent grammar.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace portico::detail {

// Writes `words` 64-bit words from this thread's generator as 16 lower-case
// hex digits each (so `out` needs 16 * words bytes). Never all zeros. The
// generator is seeded per thread from the system's random source, so ids
// from different threads and processes do not collide in practice, and
// one thread never repeats a word within 2^64 draws.
void random_hex(char* out, std::size_t words) noexcept;

// 1..max_length bytes of visible ASCII (0x21..0x7e): what may be echoed in
// a header, a log line or a JSON error body without escaping surprises.
bool is_valid_request_id(std::string_view id, std::size_t max_length) noexcept;

// A traceparent's fields, as views into the header value.
struct TraceParent {
  std::string_view version;    // 2 hex digits, not "ff"
  std::string_view trace_id;   // 32 lower-case hex digits, not all zero
  std::string_view parent_id;  // 16 lower-case hex digits, not all zero
  std::string_view flags;      // 2 hex digits
};

// Parses `version-traceid-parentid-flags` (W3C Trace Context, section
// 3.2). Version 00 must be exactly 55 bytes; a later version may carry more
// fields after a '-', which are ignored (section 3.2.4: parse what this
// version knows). Upper-case hex is invalid.
std::optional<TraceParent> parse_traceparent(std::string_view value) noexcept;

}  // namespace portico::detail
