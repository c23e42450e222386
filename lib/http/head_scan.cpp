#include "head_scan.hpp"

#include <algorithm>

namespace portico::detail {
namespace {

std::size_t skip_empty_lines(std::string_view bytes) noexcept {
  std::size_t i = 0;
  while (i + 1 < bytes.size() && bytes[i] == '\r' && bytes[i + 1] == '\n')
    i += 2;
  return i;
}

HeadScan stop_at(HeadScan scan, std::size_t offset, HeadViolation violation) noexcept {
  scan.usable = offset;
  scan.violation = violation;
  return scan;
}

}  // namespace

HeadScan scan_head(std::string_view bytes, std::size_t max_start_line,
                   std::size_t max_head_bytes) noexcept {
  HeadScan scan;
  scan.line_start = skip_empty_lines(bytes);
  // Bytes at or past the head limit are never looked at, so that a head
  // ending exactly at the limit and one running past it differ only there.
  const std::size_t end = std::min(bytes.size(), max_head_bytes);
  bool in_start_line = true;
  bool at_line_start = false;
  for (std::size_t i = scan.line_start; i < end; ++i) {
    const char c = bytes[i];
    if (c == '\n') {
      if (i == 0 || bytes[i - 1] != '\r') return stop_at(scan, i, HeadViolation::bare_lf);
      if (in_start_line) scan.line_end = i - 1;
      in_start_line = false;
      at_line_start = true;
      continue;
    }
    if (c == '\r') {
      if (i + 1 < end && bytes[i + 1] != '\n') return stop_at(scan, i + 1, HeadViolation::bare_cr);
      if (at_line_start && i + 1 < end) {
        scan.head_end = i + 2;
        scan.usable = scan.head_end;
        return scan;
      }
      at_line_start = false;
      continue;
    }
    if (in_start_line && i - scan.line_start >= max_start_line) {
      return stop_at(scan, i, HeadViolation::start_line_length);
    }
    if (at_line_start && (c == ' ' || c == '\t')) {
      return stop_at(scan, i, HeadViolation::line_folding);
    }
    at_line_start = false;
  }
  if (bytes.size() > max_head_bytes) {
    return stop_at(scan, max_head_bytes, HeadViolation::head_length);
  }
  scan.usable = bytes.size();
  return scan;
}

}  // namespace portico::detail
