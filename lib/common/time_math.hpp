// Clock arithmetic that cannot overflow. Primitives take `now` from their
// caller and add configured durations to it; a `now` near the end of the
// clock's range must give "a very long time", not signed overflow.
#pragma once

#include "portico/clock.hpp"

namespace portico::detail {

// `at + d` for d >= 0, clamped to the latest representable instant.
constexpr TimePoint saturating_add(TimePoint at, Duration d) noexcept {
  const TimePoint latest_start = TimePoint::max() - d;  // d >= 0, so this cannot overflow
  return at > latest_start ? TimePoint::max() : at + d;
}

}  // namespace portico::detail
