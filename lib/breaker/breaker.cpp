// The circuit breaker's state machine and the validation of its config.
// The rolling window it counts outcomes in lives in outcome_window.cpp.
#include <cmath>
#include <limits>
#include <string>

#include "../common/describe.hpp"
#include "../common/time_math.hpp"
#include "portico/breaker.hpp"

namespace portico {
namespace {

using detail::describe;
using detail::saturating_add;

Error invalid(const char* field, const std::string& requirement, const std::string& got) {
  return make_error(ErrorKind::invalid_argument, std::string("breaker config: ") + field +
                                                     " must be " + requirement + ", got " + got);
}

Status validate(const BreakerConfig& c) {
  // Written as !(in range) so that NaN, which fails every comparison, is
  // rejected too.
  if (!(c.failure_ratio >= 0.0 && c.failure_ratio <= 1.0)) {
    return invalid("failure_ratio", "0 (off) or in (0, 1]", describe(c.failure_ratio));
  }
  if (c.window < Duration(kBreakerWindowBuckets)) {
    return invalid(
        "window",
        "at least " + describe(Duration(kBreakerWindowBuckets)) + " (one nanosecond per bucket)",
        describe(c.window));
  }
  if (c.min_requests == 0) return invalid("min_requests", ">= 1", "0");
  if (c.open_duration <= Duration::zero()) {
    return invalid("open_duration", "> 0", describe(c.open_duration));
  }
  if (!(c.open_duration_multiplier >= 1.0) || std::isinf(c.open_duration_multiplier)) {
    return invalid("open_duration_multiplier", "finite and >= 1",
                   describe(c.open_duration_multiplier));
  }
  if (c.max_open_duration < c.open_duration) {
    return invalid("max_open_duration", ">= open_duration (" + describe(c.open_duration) + ")",
                   describe(c.max_open_duration));
  }
  if (c.backoff_reset_after < Duration::zero()) {
    return invalid("backoff_reset_after", ">= 0", describe(c.backoff_reset_after));
  }
  if (c.half_open_max_probes == 0) return invalid("half_open_max_probes", ">= 1", "0");
  if (c.half_open_successes_to_close == 0) {
    return invalid("half_open_successes_to_close", ">= 1", "0");
  }
  return {};
}

void saturating_decrement(std::uint32_t& count) noexcept {
  if (count > 0) --count;
}

void saturating_increment(std::uint32_t& count) noexcept {
  if (count < std::numeric_limits<std::uint32_t>::max()) ++count;
}

}  // namespace

Result<CircuitBreaker> CircuitBreaker::create(const BreakerConfig& config) {
  if (Status status = validate(config); !status) return std::move(status).error();
  return CircuitBreaker(config);
}

CircuitBreaker::CircuitBreaker(const BreakerConfig& config) noexcept
    : config_(config), window_(config.window / kBreakerWindowBuckets) {}

BreakerPermit CircuitBreaker::try_acquire(TimePoint now) noexcept {
  refresh(now);
  if (state_ == BreakerState::open) return reject(BreakerAdmission::rejected_open);
  const bool probe = state_ == BreakerState::half_open;
  if (probe && probes_in_flight_ >= config_.half_open_max_probes) {
    return reject(BreakerAdmission::rejected_half_open_full);
  }
  if (config_.max_in_flight != 0 && in_flight_ >= config_.max_in_flight) {
    return reject(BreakerAdmission::rejected_max_in_flight);
  }
  ++in_flight_;
  if (probe) ++probes_in_flight_;
  ++counters_.admitted;
  return BreakerPermit(BreakerAdmission::admitted, period_, probe);
}

BreakerPermit CircuitBreaker::reject(BreakerAdmission reason) noexcept {
  switch (reason) {
    case BreakerAdmission::rejected_open:
      ++counters_.rejected_open;
      break;
    case BreakerAdmission::rejected_half_open_full:
      ++counters_.rejected_half_open_full;
      break;
    case BreakerAdmission::rejected_max_in_flight:
      ++counters_.rejected_max_in_flight;
      break;
    case BreakerAdmission::rejected_max_pending:
      ++counters_.rejected_max_pending;
      break;
    case BreakerAdmission::admitted:
      break;
  }
  return BreakerPermit(reason, 0, false);
}

void CircuitBreaker::on_success(const BreakerPermit& permit, TimePoint now) noexcept {
  if (!permit.admitted()) return;
  ++counters_.successes;
  const bool current = is_current(permit);
  release(permit);
  if (!current) return;
  if (state_ == BreakerState::closed) {
    record_closed_outcome(now, /*failed=*/false);
  } else if (state_ == BreakerState::half_open) {
    saturating_increment(probe_successes_);
    if (probe_successes_ >= config_.half_open_successes_to_close) close(now);
  }
}

void CircuitBreaker::on_failure(const BreakerPermit& permit, TimePoint now) noexcept {
  if (!permit.admitted()) return;
  ++counters_.failures;
  const bool current = is_current(permit);
  release(permit);
  if (!current) return;
  if (state_ == BreakerState::closed) {
    record_closed_outcome(now, /*failed=*/true);
  } else if (state_ == BreakerState::half_open) {
    trip(now);  // one failed probe is enough: the upstream has not recovered
  }
}

void CircuitBreaker::on_cancel(const BreakerPermit& permit) noexcept {
  if (!permit.admitted()) return;
  ++counters_.cancels;
  release(permit);
}

BreakerAdmission CircuitBreaker::try_enter_pending() noexcept {
  if (config_.max_pending != 0 && pending_ >= config_.max_pending) {
    return reject(BreakerAdmission::rejected_max_pending).admission();
  }
  ++pending_;
  return BreakerAdmission::admitted;
}

void CircuitBreaker::leave_pending() noexcept {
  saturating_decrement(pending_);
}

BreakerState CircuitBreaker::state(TimePoint now) noexcept {
  refresh(now);
  return state_;
}

Duration CircuitBreaker::retry_after(TimePoint now) const noexcept {
  if (state_ != BreakerState::open || now >= open_until_) return Duration::zero();
  // Unsigned because a `now` far in the past could put the gap beyond int64.
  const std::uint64_t gap = static_cast<std::uint64_t>(open_until_.time_since_epoch().count()) -
                            static_cast<std::uint64_t>(now.time_since_epoch().count());
  const auto longest = static_cast<std::uint64_t>(Duration::max().count());
  return gap >= longest ? Duration::max() : Duration(static_cast<std::int64_t>(gap));
}

void CircuitBreaker::refresh(TimePoint now) noexcept {
  if (state_ == BreakerState::open && now >= open_until_) enter_half_open(now);
}

bool CircuitBreaker::is_current(const BreakerPermit& permit) const noexcept {
  return permit.period_ == period_;
}

void CircuitBreaker::release(const BreakerPermit& permit) noexcept {
  saturating_decrement(in_flight_);
  if (permit.probe_ && is_current(permit)) saturating_decrement(probes_in_flight_);
}

void CircuitBreaker::record_closed_outcome(TimePoint now, bool failed) noexcept {
  if (failed) {
    saturating_increment(consecutive_failures_);
  } else {
    consecutive_failures_ = 0;
  }
  if (config_.failure_ratio > 0.0) window_.record(now, failed);
  const bool by_count = failed && config_.consecutive_failures != 0 &&
                        consecutive_failures_ >= config_.consecutive_failures;
  if (by_count || ratio_reached()) trip(now);
}

bool CircuitBreaker::ratio_reached() const noexcept {
  if (config_.failure_ratio <= 0.0 || window_.requests() < config_.min_requests) return false;
  // Dividing (rather than multiplying the ratio by the count) rounds the
  // exact fraction the same way the configured decimal was rounded, so a
  // ratio of exactly 3/10 against 0.3 trips as documented.
  const double observed =
      static_cast<double>(window_.failures()) / static_cast<double>(window_.requests());
  return observed >= config_.failure_ratio;
}

Duration CircuitBreaker::next_open_duration(TimePoint now) noexcept {
  const bool closed_long_enough = state_ == BreakerState::closed &&
                                  now >= saturating_add(closed_since_, config_.backoff_reset_after);
  if (closed_long_enough) consecutive_trips_ = 0;
  saturating_increment(consecutive_trips_);
  if (consecutive_trips_ == 1) return config_.open_duration;
  // In floating point so that the product cannot overflow before the cap
  // applies; below the cap the value fits in int64 by construction.
  const double grown = static_cast<double>(open_period_.count()) * config_.open_duration_multiplier;
  if (grown >= static_cast<double>(config_.max_open_duration.count())) {
    return config_.max_open_duration;
  }
  return Duration(static_cast<std::int64_t>(grown));
}

void CircuitBreaker::trip(TimePoint now) noexcept {
  open_period_ = next_open_duration(now);
  open_until_ = saturating_add(now, open_period_);
  ++counters_.trips;
  change_state(BreakerState::open, now);
}

void CircuitBreaker::enter_half_open(TimePoint now) noexcept {
  probes_in_flight_ = 0;
  probe_successes_ = 0;
  change_state(BreakerState::half_open, now);
}

void CircuitBreaker::close(TimePoint now) noexcept {
  closed_since_ = now;
  consecutive_failures_ = 0;
  window_.clear();
  change_state(BreakerState::closed, now);
}

void CircuitBreaker::change_state(BreakerState to, TimePoint now) noexcept {
  const BreakerState from = state_;
  state_ = to;
  ++period_;  // outstanding permits now describe an earlier period
  if (config_.on_state_change != nullptr) {
    config_.on_state_change(config_.on_state_change_user, from, to, now);
  }
}

}  // namespace portico
