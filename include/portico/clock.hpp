// Time as the primitives see it.
//
// Primitives never read a clock themselves: every time-dependent call takes
// `TimePoint now`, so a gateway reads the clock once per event-loop turn and
// tests drive the primitives in simulated time. Clock is the small interface
// for components that do need to ask; ManualClock is the test double.
//
// Threading: SteadyClock is safe from any thread. ManualClock is not
// synchronised; advance it from the thread that reads it.
#pragma once

#include <chrono>

namespace portico {

using Duration = std::chrono::nanoseconds;
using TimePoint = std::chrono::time_point<std::chrono::steady_clock, Duration>;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimePoint now() const noexcept = 0;
};

class SteadyClock final : public Clock {
 public:
  TimePoint now() const noexcept override { return std::chrono::steady_clock::now(); }
};

// A clock that moves only when told to. Starts at an arbitrary non-zero
// instant so that code which mistakes "zero" for "never" is caught by tests.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(TimePoint start = TimePoint(std::chrono::hours(1000))) : now_(start) {}
  TimePoint now() const noexcept override { return now_; }
  void advance(Duration d) noexcept { now_ += d; }
  void set(TimePoint t) noexcept { now_ = t; }

 private:
  TimePoint now_;
};

}  // namespace portico
