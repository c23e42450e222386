// ConcurrentKeyedLimiter: the keyed table with atomic slot words, no lock.
//
// A slot is two words, the key hash and the TAT, each changed only by
// compare-and-swap. A TAT of 0 means "full allowance, being handed over":
// never-used slots start at 0, and a thread taking over a slot first swaps
// its TAT to 0, then swaps the key word. Decisions read 0 as a full allowance,
// which is true in both cases, and scans never reclaim or evict a slot whose
// TAT is 0, so a slot being handed over cannot be taken twice.
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

namespace detail {

// Written only when a key enters the table, on its own cache line so that
// those writes do not evict the read-mostly fields every check reads.
struct alignas(64) ConcurrentCounters {
  std::atomic<std::size_t> size{0};
  std::atomic<std::uint64_t> evictions{0};
};

}  // namespace detail

namespace {

using detail::now_ns;
using detail::time_left;

constexpr auto kRelaxed = std::memory_order_relaxed;
constexpr std::int64_t kHandover = 0;

// The outcome of one scan of a key's probe window.
struct Scan {
  detail::AtomicTatSlot* found = nullptr;
  detail::AtomicTatSlot* candidate = nullptr;  // where to insert if not found
  std::uint64_t candidate_key = 0;             // its key word as seen
  std::int64_t candidate_tat = 0;              // its TAT as seen
  detail::Claim claim = detail::Claim::empty;
};

Scan scan(detail::AtomicTatSlot* slots, std::size_t slot_count, std::uint64_t hash,
          TimePoint now) noexcept {
  Scan result;
  detail::AtomicTatSlot* empty = nullptr;
  detail::AtomicTatSlot* reclaimable = nullptr;
  std::uint64_t reclaimable_key = 0;
  std::int64_t reclaimable_tat = 0;
  detail::AtomicTatSlot* victim = nullptr;
  std::uint64_t victim_key = 0;
  std::int64_t victim_tat = 0;
  std::int64_t victim_left = 0;
  detail::AtomicTatSlot* parked = nullptr;
  std::uint64_t parked_key = 0;
  std::size_t i = detail::home_slot(hash, slot_count);
  const std::size_t length = detail::probe_length(slot_count);
  for (std::size_t step = 0; step < length; ++step, i = detail::next_slot(i, slot_count)) {
    detail::AtomicTatSlot& slot = slots[i];
    const std::uint64_t key = slot.key_hash.load(kRelaxed);
    if (key == hash) {
      result.found = &slot;
      return result;
    }
    if (key == 0) {
      empty = &slot;
      break;
    }
    if (reclaimable != nullptr) continue;
    const std::int64_t tat = slot.tat_ns.load(kRelaxed);
    if (tat == kHandover) {  // another thread is taking this slot: the last resort
      if (parked == nullptr) {
        parked = &slot;
        parked_key = key;
      }
      continue;
    }
    const std::int64_t left = time_left(tat, now);
    if (left <= 0) {
      reclaimable = &slot;
      reclaimable_key = key;
      reclaimable_tat = tat;
    } else if (victim == nullptr || left < victim_left) {
      victim = &slot;
      victim_key = key;
      victim_tat = tat;
      victim_left = left;
    }
  }
  if (reclaimable != nullptr) {
    result.candidate = reclaimable;
    result.candidate_key = reclaimable_key;
    result.candidate_tat = reclaimable_tat;
    result.claim = detail::Claim::reclaimed;
  } else if (empty != nullptr) {
    result.candidate = empty;
    result.claim = detail::Claim::empty;
  } else if (victim != nullptr) {
    result.candidate = victim;
    result.candidate_key = victim_key;
    result.candidate_tat = victim_tat;
    result.claim = detail::Claim::evicted;
  } else {
    // Only with more threads claiming in one window than it has slots.
    result.candidate = parked;
    result.candidate_key = parked_key;
    result.candidate_tat = kHandover;
    result.claim = detail::Claim::evicted;
  }
  return result;
}

// Takes `slot` over for `hash` as the scan found it. Fails when another
// thread changed the slot since; the caller then scans again.
bool claim(detail::AtomicTatSlot& slot, const Scan& where, std::uint64_t hash) noexcept {
  std::uint64_t expected_key = where.candidate_key;
  if (where.claim == detail::Claim::empty) {
    return slot.key_hash.compare_exchange_strong(expected_key, hash, kRelaxed);
  }
  // Parks the TAT at "handing over" first, so no other thread reclaims or
  // evicts the slot while its key word changes.
  std::int64_t expected_tat = where.candidate_tat;
  if (!slot.tat_ns.compare_exchange_strong(expected_tat, kHandover, kRelaxed)) return false;
  if (slot.key_hash.compare_exchange_strong(expected_key, hash, kRelaxed)) return true;
  // The key changed between the scan's two reads: the parked TAT belongs to
  // another key, so put it back unless that key has written since.
  expected_tat = kHandover;
  slot.tat_ns.compare_exchange_strong(expected_tat, where.candidate_tat, kRelaxed);
  return false;
}

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
    const Scan where = scan(slots_.get(), slot_count_, hash, now);
    detail::AtomicTatSlot* slot = where.found;
    if (slot == nullptr) {
      std::int64_t unused = 0;
      if (!in_range) return gcra_.decide(now_ns(now), now, cost, unused);
      if (!claim(*where.candidate, where, hash)) continue;
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
