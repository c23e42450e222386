// The line structure of a message head, checked before llhttp sees it.
//
// llhttp 8 accepts a bare LF after the start line and as the blank line that
// ends a head, and it takes a line that starts with whitespace as obs-fold.
// A parser in front of another must refuse all three (RFC 9112 sections 2.2
// and 5.2), so the head's lines are checked here, and the size limits are
// placed here too: the scan names the first byte that breaks a rule, and
// llhttp is then run on the bytes before it only. A verdict therefore
// depends on the bytes up to the offending one alone, which is what makes
// "parse again on a longer buffer" give the same answer as one parse.
#pragma once

#include <cstddef>
#include <string_view>

namespace portico::detail {

enum class HeadViolation : unsigned char {
  none,
  bare_lf,            // LF not preceded by CR
  bare_cr,            // CR not followed by LF
  line_folding,       // a header line starting with SP or HTAB (obs-fold)
  start_line_length,  // start line longer than its limit
  head_length,        // head not ended within its limit
};

struct HeadScan {
  static constexpr std::size_t npos = std::string_view::npos;
  std::size_t line_start = 0;   // the start line's first byte (after empty lines)
  std::size_t line_end = npos;  // the CR that ends the start line
  std::size_t head_end = npos;  // one past the LF of the blank line
  std::size_t usable = 0;       // bytes llhttp may see: up to the violation or the head end
  HeadViolation violation = HeadViolation::none;  // at offset `usable`
};

// Scans `bytes` (a message from its first byte). Empty lines before the
// start line are skipped, as RFC 9112 section 2.2 allows; they count
// towards the head's length.
HeadScan scan_head(std::string_view bytes, std::size_t max_start_line,
                   std::size_t max_head_bytes) noexcept;

}  // namespace portico::detail
