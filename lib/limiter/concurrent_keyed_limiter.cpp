// ConcurrentKeyedLimiter: the keyed table with atomic slot words, no lock.
//
// A slot is two words, the key hash and the TAT, each changed only by
// compare-and-swap. A TAT of 0 means "full allowance, being handed over":
// never-used slots start at 0, and a thread taking over a slot first swaps
// its TAT to 0, then swaps the key word. Decisions read 0 as a full allowance,
// which is true in both cases, and scans never reclaim or evict a slot whose
// TAT is 0, so a slot being handed over cannot be taken twice. The scan and
// the claim live in keyed_table.hpp, shared with ConcurrentFixedWindowQuota.
//
// Memory ordering: every access is relaxed. A decision reads and replaces one
// word, the key's TAT; the modification order of that word alone serialises
// all decisions for the key, and a swap based on a stale read fails and is
// retried with the current value. No other memory is published through the
// slot words, so no acquire/release pairing is needed.
#include <optional>

#include "keyed_table.hpp"
#include "portico/limiter.hpp"

namespace portico {

namespace {

using detail::kRelaxed;
using detail::now_ns;
using detail::time_left;

constexpr std::int64_t kHandover = 0;

// Decides and records one request against `slot`, which held `hash` when it
// was found or claimed. Returns nothing when the slot was handed to another
// key meanwhile: the request then belongs to wherever the key is now.
std::optional<Decision> update(const Gcra& gcra, detail::AtomicTatSlot& slot, std::uint64_t hash,
                               TimePoint now, std::uint32_t cost) noexcept {
  std::int64_t observed = slot.tat_ns.load(kRelaxed);
  for (;;) {
    std::int64_t next = observed;
    const std::int64_t tat = observed == kHandover ? now_ns(now) : observed;
    const Decision decision = gcra.decide(tat, now, cost, next);
    if (!decision.allowed) return decision;
    // A real TAT never takes the handover value; 1 ns later is as good.
    if (next == kHandover) next = 1;
    if (slot.tat_ns.compare_exchange_weak(observed, next, kRelaxed)) return decision;
    if (slot.key_hash.load(kRelaxed) != hash) return std::nullopt;
  }
}

}  // namespace

Result<ConcurrentKeyedLimiter> ConcurrentKeyedLimiter::create(const KeyedLimiterConfig& config) {
  auto gcra = Gcra::create(config.rate);
  if (!gcra) return std::move(gcra).error();
  auto slot_count = detail::slot_count_for(config.max_keys);
  if (!slot_count) return std::move(slot_count).error();
  auto slots = detail::allocate_slots<detail::AtomicTatSlot>(*slot_count);
  if (!slots) return std::move(slots).error();
  std::unique_ptr<detail::ConcurrentCounters> counters(new (std::nothrow)
                                                           detail::ConcurrentCounters());
  if (!counters) return make_error(ErrorKind::capacity, "max_keys: cannot allocate counters");
  return ConcurrentKeyedLimiter(*gcra, detail::KeyHasher(config.hash_seed), std::move(*slots),
                                *slot_count, std::move(counters));
}

ConcurrentKeyedLimiter::ConcurrentKeyedLimiter(
    Gcra gcra, detail::KeyHasher hasher, detail::SlotTable<detail::AtomicTatSlot> slots,
    std::size_t slot_count, std::unique_ptr<detail::ConcurrentCounters> counters) noexcept
    : gcra_(gcra),
      hasher_(hasher),
      slots_(std::move(slots)),
      slot_count_(slot_count),
      counters_(std::move(counters)) {}

ConcurrentKeyedLimiter::ConcurrentKeyedLimiter(ConcurrentKeyedLimiter&&) noexcept = default;
ConcurrentKeyedLimiter& ConcurrentKeyedLimiter::operator=(ConcurrentKeyedLimiter&&) noexcept =
    default;
ConcurrentKeyedLimiter::~ConcurrentKeyedLimiter() = default;

Decision ConcurrentKeyedLimiter::check(std::string_view key, TimePoint now,
                                       std::uint32_t cost) noexcept {
  const std::uint64_t hash = hasher_(key);
  const bool in_range = detail::cost_in_range(gcra_, cost);
  // Every pass that does not return follows a successful swap by another
  // thread, so some thread always makes progress (lock-free).
  for (;;) {
    const auto where = detail::scan_concurrent(
        slots_.get(), slot_count_, hash, [now](std::int64_t tat) { return time_left(tat, now); });
    detail::AtomicTatSlot* slot = where.found;
    if (slot == nullptr) {
      std::int64_t unused = 0;
      if (!in_range) return gcra_.decide(now_ns(now), now, cost, unused);
      if (!detail::claim_concurrent(where, hash)) continue;
      if (where.claim == detail::Claim::empty) counters_->size.fetch_add(1, kRelaxed);
      if (where.claim == detail::Claim::evicted) counters_->evictions.fetch_add(1, kRelaxed);
      slot = where.candidate;
    }
    if (const auto decision = update(gcra_, *slot, hash, now, cost)) return *decision;
  }
}

std::size_t ConcurrentKeyedLimiter::size() const noexcept {
  return counters_->size.load(kRelaxed);
}

std::uint64_t ConcurrentKeyedLimiter::evictions() const noexcept {
  return counters_->evictions.load(kRelaxed);
}

std::size_t ConcurrentKeyedLimiter::memory_bytes() const noexcept {
  return sizeof(*this) + sizeof(detail::ConcurrentCounters) +
         slot_count_ * sizeof(detail::AtomicTatSlot);
}

}  // namespace portico
