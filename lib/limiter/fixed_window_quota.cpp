// FixedWindowQuota: per-key counts per UTC calendar window.
#include "keyed_table.hpp"
#include "portico/limiter.hpp"
#include "quota_window.hpp"

namespace portico {

using detail::SysNanos;
using detail::WindowSpan;

Result<FixedWindowQuota> FixedWindowQuota::create(const FixedWindowQuotaConfig& config) {
  if (Status valid = detail::check_quota_config(config); !valid) return std::move(valid).error();
  auto slot_count = detail::slot_count_for(config.max_keys);
  if (!slot_count) return std::move(slot_count).error();
  auto slots = detail::allocate_slots<detail::QuotaSlot>(*slot_count);
  if (!slots) return std::move(slots).error();
  return FixedWindowQuota(config.limit, config.window, detail::KeyHasher(config.hash_seed),
                          std::move(*slots), *slot_count);
}

FixedWindowQuota::FixedWindowQuota(std::int64_t limit, QuotaWindow window, detail::KeyHasher hasher,
                                   detail::SlotTable<detail::QuotaSlot> slots,
                                   std::size_t slot_count) noexcept
    : limit_(limit),
      window_(window),
      hasher_(hasher),
      slots_(std::move(slots)),
      slot_count_(slot_count) {}

Decision FixedWindowQuota::check(std::string_view key, WallTime now, std::uint32_t cost) noexcept {
  const std::int64_t at = std::chrono::floor<Duration>(now).time_since_epoch().count();
  if (at < span_start_ns_ || at >= span_end_ns_) {
    const WindowSpan span = detail::window_of(window_, SysNanos(Duration(at)));
    span_index_ = static_cast<std::uint32_t>(span.index);
    span_end_ns_ = span.end.time_since_epoch().count();
    span_start_ns_ = span.start.time_since_epoch().count();
  }
  const std::uint32_t current = span_index_;
  const std::uint64_t hash = hasher_(key);

  Decision decision;
  decision.limit = limit_;
  decision.reset_after = Duration(span_end_ns_ - at);
  std::int64_t used = 0;
  if (cost == 0 || cost > limit_) {
    const detail::QuotaSlot* slot = detail::find(slots_.get(), slot_count_, hash);
    if (slot != nullptr && slot->window == current) used = slot->count;
    decision.cost_out_of_range = true;
    decision.retry_after = Duration::max();
    decision.remaining = limit_ - used;
    return decision;
  }
  const auto probe = detail::find_or_claim(
      slots_.get(), slot_count_, hash,
      [current](const detail::QuotaSlot& slot) { return slot.window != current; },
      // The smallest count is the least allowance handed out again if forgotten.
      [](const detail::QuotaSlot& slot) { return slot.count; });
  detail::QuotaSlot& slot = *probe.slot;
  if (probe.claim == detail::Claim::empty) ++size_;
  if (probe.claim == detail::Claim::evicted) ++evictions_;
  if (probe.claim != detail::Claim::found || slot.window != current) {
    slot.window = current;
    slot.count = 0;
  }
  used = slot.count;
  if (used + cost <= limit_) {
    used += cost;
    slot.count = static_cast<std::uint32_t>(used);
    decision.allowed = true;
  } else {
    decision.retry_after = decision.reset_after;
  }
  decision.remaining = limit_ - used;
  return decision;
}

std::size_t FixedWindowQuota::memory_bytes() const noexcept {
  return sizeof(*this) + slot_count_ * sizeof(detail::QuotaSlot);
}

}  // namespace portico
