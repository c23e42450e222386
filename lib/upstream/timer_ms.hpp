// Durations as libuv timers take them.
#pragma once

#include <chrono>
#include <cstdint>

#include "portico/clock.hpp"

namespace portico::detail {

// Whole milliseconds rounded up, so a timer never fires before its time, and
// at least 1, so that a zero or negative setting cannot make a repeating
// timer spin.
inline std::uint64_t timer_ms(Duration d) noexcept {
  if (d <= Duration::zero()) return 1;
  return static_cast<std::uint64_t>(std::chrono::ceil<std::chrono::milliseconds>(d).count());
}

}  // namespace portico::detail
