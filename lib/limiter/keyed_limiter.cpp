// KeyedLimiter: GCRA over the bounded keyed table, for one thread.
#include "keyed_table.hpp"
#include "portico/limiter.hpp"

namespace portico {

using detail::now_ns;

Result<KeyedLimiter> KeyedLimiter::create(const KeyedLimiterConfig& config) {
  auto gcra = Gcra::create(config.rate);
  if (!gcra) return std::move(gcra).error();
  auto slot_count = detail::slot_count_for(config.max_keys);
  if (!slot_count) return std::move(slot_count).error();
  auto slots = detail::allocate_slots<detail::TatSlot>(*slot_count);
  if (!slots) return std::move(slots).error();
  return KeyedLimiter(*gcra, detail::KeyHasher(config.hash_seed), std::move(*slots), *slot_count);
}

KeyedLimiter::KeyedLimiter(Gcra gcra, detail::KeyHasher hasher,
                           detail::SlotTable<detail::TatSlot> slots,
                           std::size_t slot_count) noexcept
    : gcra_(gcra), hasher_(hasher), slots_(std::move(slots)), slot_count_(slot_count) {}

Decision KeyedLimiter::check(std::string_view key, TimePoint now, std::uint32_t cost) noexcept {
  const std::uint64_t hash = hasher_(key);
  if (!detail::cost_in_range(gcra_, cost)) {
    // Report the key's state without adding it.
    const detail::TatSlot* slot = detail::find(slots_.get(), slot_count_, hash);
    std::int64_t unused = 0;
    return gcra_.decide(slot != nullptr ? slot->tat_ns : now_ns(now), now, cost, unused);
  }
  const auto probe = detail::find_or_claim(
      slots_.get(), slot_count_, hash,
      [now](const detail::TatSlot& slot) { return Gcra::is_refilled(slot.tat_ns, now); },
      [now](const detail::TatSlot& slot) { return detail::time_left(slot.tat_ns, now); });
  switch (probe.claim) {
    case detail::Claim::found:
      break;
    case detail::Claim::empty:
      ++size_;
      probe.slot->tat_ns = now_ns(now);
      break;
    case detail::Claim::reclaimed:
      probe.slot->tat_ns = now_ns(now);
      break;
    case detail::Claim::evicted:
      ++evictions_;
      probe.slot->tat_ns = now_ns(now);
      break;
  }
  return gcra_.check(probe.slot->tat_ns, now, cost);
}

std::size_t KeyedLimiter::memory_bytes() const noexcept {
  return sizeof(*this) + slot_count_ * sizeof(detail::TatSlot);
}

}  // namespace portico
