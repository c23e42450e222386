// Values as configuration errors show them, so that every primitive's
// messages read alike ("got 1.5", "is 0 ns") whichever engineer wrote it.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "portico/clock.hpp"

namespace portico::detail {

// Shortest faithful form ("%g"): 0.5, 1e-09, nan, inf.
std::string describe(double value);
// Whole nanoseconds with the unit: "30000000000 ns".
std::string describe(Duration value);
// Text from outside (a token's kid, a JWKS field) made safe for a log line:
// quoted, at most `max` bytes, anything but printable ASCII shown as '?'.
std::string describe_untrusted(std::string_view text, std::size_t max = 40);

}  // namespace portico::detail
