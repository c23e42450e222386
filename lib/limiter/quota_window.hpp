// The calendar windows of the fixed-window quotas and their validation,
// shared by FixedWindowQuota and ConcurrentFixedWindowQuota (private).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "portico/limiter.hpp"
#include "portico/result.hpp"

namespace portico::detail {

using SysNanos = std::chrono::sys_time<Duration>;

inline constexpr std::int64_t kMaxQuota = 0xffffffffLL;

// The window containing a wall-clock instant: its index, its start and its
// end. Indexes count hours, days or months from the epoch, so consecutive
// windows have consecutive indexes (which lets a slot tell an earlier window
// from a later one by their difference, even truncated to 32 bits).
struct WindowSpan {
  std::int64_t index;
  SysNanos start;
  SysNanos end;
};

inline WindowSpan window_of(QuotaWindow window, SysNanos now) noexcept {
  using std::chrono::days;
  using std::chrono::hours;
  switch (window) {
    case QuotaWindow::hour: {
      const auto start = std::chrono::floor<hours>(now);
      return {start.time_since_epoch().count(), start, start + hours{1}};
    }
    case QuotaWindow::day: {
      const auto start = std::chrono::floor<days>(now);
      return {start.time_since_epoch().count(), start, start + days{1}};
    }
    case QuotaWindow::month:
      break;
  }
  const std::chrono::year_month_day date{std::chrono::floor<days>(now)};
  const std::chrono::year_month month = date.year() / date.month();
  const std::chrono::year_month next = month + std::chrono::months{1};
  return {static_cast<std::int64_t>(int(date.year())) * 12 + unsigned(date.month()) - 1,
          std::chrono::sys_days{month / 1}, std::chrono::sys_days{next / 1}};
}

// The limit, window and size a quota is created with; names the bad field.
inline Status check_quota_config(const FixedWindowQuotaConfig& config) {
  if (config.limit < 1 || config.limit > kMaxQuota) {
    return make_error(ErrorKind::invalid_argument, "limit: must be in 1.." +
                                                       std::to_string(kMaxQuota) + ", got " +
                                                       std::to_string(config.limit));
  }
  if (config.window != QuotaWindow::hour && config.window != QuotaWindow::day &&
      config.window != QuotaWindow::month) {
    return make_error(ErrorKind::invalid_argument,
                      "window: must be hour, day or month, got " +
                          std::to_string(static_cast<unsigned>(config.window)));
  }
  return {};
}

}  // namespace portico::detail
