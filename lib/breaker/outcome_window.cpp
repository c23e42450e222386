// The rolling window behind the breaker's failure ratio: a ring of fixed
// buckets indexed by absolute bucket number (time / width), so rolling it is
// a matter of zeroing the buckets that time has skipped past.
#include <algorithm>
#include <limits>

#include "portico/breaker.hpp"

namespace portico::detail {
namespace {

constexpr std::int64_t kBuckets = kBreakerWindowBuckets;

// Rounds towards minus infinity so that instants before the clock's epoch
// still fall into distinct, ordered buckets.
std::int64_t floor_div(std::int64_t a, std::int64_t b) noexcept {
  const std::int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

std::size_t slot_of(std::int64_t bucket_index) noexcept {
  return static_cast<std::size_t>(((bucket_index % kBuckets) + kBuckets) % kBuckets);
}

}  // namespace

void OutcomeWindow::record(TimePoint now, bool failed) noexcept {
  // Most outcomes land in the newest bucket; comparing with its end spares
  // the 64-bit division. An earlier `now` (time went backwards) lands there
  // too: the outcome is recent either way.
  if (empty_ || now >= newest_end_) {
    const std::int64_t index = floor_div(now.time_since_epoch().count(), bucket_width_.count());
    if (empty_) {
      newest_index_ = index;
      empty_ = false;
    } else if (index > newest_index_) {
      advance_to(index);
    }
    newest_end_ = bucket_end(newest_index_);
    newest_slot_ = slot_of(newest_index_);
  }
  Bucket& bucket = buckets_[newest_slot_];
  ++bucket.requests;
  ++requests_;
  if (failed) {
    ++bucket.failures;
    ++failures_;
  }
}

TimePoint OutcomeWindow::bucket_end(std::int64_t bucket_index) const noexcept {
  // (index + 1) * width, saturated: the last bucket before the end of time
  // simply never ends.
  const std::int64_t width = bucket_width_.count();
  if (bucket_index >= std::numeric_limits<std::int64_t>::max() / width) return TimePoint::max();
  return TimePoint(Duration((bucket_index + 1) * width));
}

void OutcomeWindow::advance_to(std::int64_t bucket_index) noexcept {
  // Everything older than kBuckets widths is forgotten, so at most kBuckets
  // slots need zeroing however long the gap. The gap is taken in unsigned
  // arithmetic because two far-apart int64 indexes can differ by more than
  // int64 holds; bucket_index > newest_index_ keeps the result exact.
  const std::uint64_t distance =
      static_cast<std::uint64_t>(bucket_index) - static_cast<std::uint64_t>(newest_index_);
  const std::int64_t gap = static_cast<std::int64_t>(std::min<std::uint64_t>(distance, kBuckets));
  for (std::int64_t i = 1; i <= gap; ++i) {
    forget(buckets_[slot_of(newest_index_ + i)]);
  }
  newest_index_ = bucket_index;
}

void OutcomeWindow::forget(Bucket& bucket) noexcept {
  requests_ -= bucket.requests;
  failures_ -= bucket.failures;
  bucket = Bucket{};
}

void OutcomeWindow::clear() noexcept {
  buckets_.fill(Bucket{});
  requests_ = 0;
  failures_ = 0;
  empty_ = true;
}

}  // namespace portico::detail
