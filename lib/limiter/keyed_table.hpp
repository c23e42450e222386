// The open-addressing table shared by the keyed stores (private).
//
// A key is stored as its seeded 64-bit hash (0 marks an empty slot) and lives
// within kProbeWindow slots of its home position, with no empty slot between
// its home and itself. Slots are never emptied once used: a slot whose entry
// is no longer needed is taken over in place by a new key, so a lookup may
// stop at the first empty slot. That keeps lookups short and makes the
// lock-free variant possible (a slot's key word only ever changes from one
// key to another, never back to empty).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>

#include <stdlib.h>
#include <sys/mman.h>

#include "portico/limiter.hpp"
#include "portico/result.hpp"

namespace portico::detail {

// Two slots per key (load factor at most 1/2 with max_keys live keys) and a
// 64-slot window: a 32-slot window let a few keys per million find their
// window full before max_keys was reached; 64 makes that vanishingly rare.
// 64 slots of 16 bytes are sixteen consecutive cache lines, the worst case of
// a lookup, reached only when the table is full (e.g. under a key flood).
inline constexpr std::size_t kSlotsPerKey = 2;
inline constexpr std::size_t kProbeWindow = 64;

__extension__ using U128 = unsigned __int128;

// Maps a hash onto [0, slot_count) without a division (Lemire's
// multiply-shift range reduction), so the table size need not be a power of
// two and memory stays at exactly kSlotsPerKey slots per key.
inline std::size_t home_slot(std::uint64_t hash, std::size_t slot_count) noexcept {
  return static_cast<std::size_t>((static_cast<U128>(hash) * slot_count) >> 64);
}

inline std::size_t probe_length(std::size_t slot_count) noexcept {
  return slot_count < kProbeWindow ? slot_count : kProbeWindow;
}

inline std::size_t next_slot(std::size_t i, std::size_t slot_count) noexcept {
  return i + 1 == slot_count ? 0 : i + 1;
}

inline std::int64_t now_ns(TimePoint now) noexcept {
  return now.time_since_epoch().count();
}

// TAT - now, in wrap-around arithmetic like Gcra::decide: the time until the
// key has refilled, <= 0 once it has. The smallest is the cheapest to forget.
inline std::int64_t time_left(std::int64_t tat_ns, TimePoint now) noexcept {
  return static_cast<std::int64_t>(static_cast<std::uint64_t>(tat_ns) -
                                   static_cast<std::uint64_t>(now_ns(now)));
}

// Whether a request of `cost` can ever pass (see Decision::cost_out_of_range).
// One that cannot must not take a slot from a key that can.
inline bool cost_in_range(const Gcra& gcra, std::uint32_t cost) noexcept {
  return cost != 0 && cost <= static_cast<std::uint64_t>(gcra.limit());
}

// Validates max_keys and returns the number of slots for it.
inline Result<std::size_t> slot_count_for(std::int64_t max_keys) {
  if (max_keys < 1 || max_keys > kMaxLimiterKeys) {
    return make_error(ErrorKind::invalid_argument, "max_keys: must be in 1.." +
                                                       std::to_string(kMaxLimiterKeys) + ", got " +
                                                       std::to_string(max_keys));
  }
  return static_cast<std::size_t>(max_keys) * kSlotsPerKey;
}

// Allocates `count` value-initialised (zeroed, so empty) slots, or returns a
// capacity error instead of throwing. Tables of 2 MiB and more are aligned to
// 2 MiB and advised to use transparent huge pages: a check on a large table
// touches one random slot, and with 4 KiB pages that also costs a TLB miss
// (about a third of the time per check at a million keys). Smaller tables
// are aligned to a cache line so that no slot straddles two.
template <class Slot>
Result<SlotTable<Slot>> allocate_slots(std::size_t count) {
  static_assert(std::is_trivially_destructible_v<Slot>, "released with free()");
  constexpr std::size_t kHugePage = std::size_t{2} << 20;
  const std::size_t bytes = count * sizeof(Slot);
  const std::size_t alignment = bytes >= kHugePage ? kHugePage : 64;
  void* memory = nullptr;
  if (posix_memalign(&memory, alignment, bytes) != 0) {
    return make_error(ErrorKind::capacity,
                      "max_keys: cannot allocate a table of " + std::to_string(bytes) + " bytes");
  }
#if defined(MADV_HUGEPAGE)
  if (alignment == kHugePage) madvise(memory, bytes, MADV_HUGEPAGE);  // advice only
#endif
  auto* slots = static_cast<Slot*>(memory);
  std::uninitialized_value_construct_n(slots, count);
  return SlotTable<Slot>(slots);
}

enum class Claim : std::uint8_t {
  found,      // the key's own slot
  empty,      // a never-used slot, now the key's
  reclaimed,  // a slot whose entry no longer mattered, now the key's
  evicted,    // a slot whose entry still mattered, now the key's
};

template <class Slot>
struct Probe {
  Slot* slot;
  Claim claim;
};

// Finds the slot of `hash`, or claims one for it: a reclaimable slot in the
// window first, then the first empty one, then the slot with the smallest
// victim score. Writes the hash into a claimed slot; the caller initialises
// the payload. Single-threaded.
template <class Slot, class IsReclaimable, class VictimScore>
Probe<Slot> find_or_claim(Slot* slots, std::size_t slot_count, std::uint64_t hash,
                          IsReclaimable&& is_reclaimable, VictimScore&& victim_score) noexcept {
  std::size_t i = home_slot(hash, slot_count);
  const std::size_t length = probe_length(slot_count);
  Slot* reclaimable = nullptr;
  Slot* empty = nullptr;
  Slot* victim = nullptr;
  decltype(victim_score(*slots)) victim_best{};
  for (std::size_t step = 0; step < length; ++step, i = next_slot(i, slot_count)) {
    Slot& slot = slots[i];
    if (slot.key_hash == hash) return {&slot, Claim::found};
    if (slot.key_hash == 0) {
      empty = &slot;
      break;
    }
    if (reclaimable != nullptr) continue;
    if (is_reclaimable(slot)) {
      reclaimable = &slot;
    } else if (const auto score = victim_score(slot); victim == nullptr || score < victim_best) {
      victim = &slot;
      victim_best = score;
    }
  }
  Probe<Slot> probe = reclaimable != nullptr ? Probe<Slot>{reclaimable, Claim::reclaimed}
                      : empty != nullptr     ? Probe<Slot>{empty, Claim::empty}
                                             : Probe<Slot>{victim, Claim::evicted};
  probe.slot->key_hash = hash;
  return probe;
}

// The slot of `hash`, or nullptr. Single-threaded.
template <class Slot>
const Slot* find(const Slot* slots, std::size_t slot_count, std::uint64_t hash) noexcept {
  std::size_t i = home_slot(hash, slot_count);
  const std::size_t length = probe_length(slot_count);
  for (std::size_t step = 0; step < length; ++step, i = next_slot(i, slot_count)) {
    if (slots[i].key_hash == hash) return &slots[i];
    if (slots[i].key_hash == 0) return nullptr;
  }
  return nullptr;
}

// ---------------------------------------------------------------------------
// The lock-free variant, shared by ConcurrentKeyedLimiter and
// ConcurrentFixedWindowQuota: slots of two atomic words, the key hash and a
// payload word (a TAT, or a quota's window and count) whose value 0 means
// "full allowance, being handed over". Never-used slots hold 0; a thread
// taking over a used slot first swaps its payload to 0, then swaps the key
// word. Scans never reclaim or evict a slot whose payload is 0, so a slot
// being handed over cannot be taken twice. See concurrent_keyed_limiter.cpp
// for the memory-ordering argument: every access is relaxed.

inline constexpr auto kRelaxed = std::memory_order_relaxed;

// Written only when a key enters the table, on its own cache line so that
// those writes do not evict the read-mostly fields every check reads.
struct alignas(64) ConcurrentCounters {
  std::atomic<std::size_t> size{0};
  std::atomic<std::uint64_t> evictions{0};
};

// The payload word of each atomic slot type.
inline std::atomic<std::int64_t>& payload(AtomicTatSlot& slot) noexcept {
  return slot.tat_ns;
}
inline std::atomic<std::uint64_t>& payload(AtomicQuotaSlot& slot) noexcept {
  return slot.usage;
}

template <class Slot>
using PayloadWord = decltype(payload(std::declval<Slot&>()).load());

// The outcome of one scan of a key's probe window.
template <class Slot>
struct ConcurrentScan {
  Slot* found = nullptr;
  Slot* candidate = nullptr;             // where to insert if not found
  std::uint64_t candidate_key = 0;       // its key word as seen
  PayloadWord<Slot> candidate_word = 0;  // its payload as seen
  Claim claim = Claim::empty;
};

// Looks for `hash` in its probe window and, in case it is absent, picks where
// to insert it: a reclaimable slot first, then the first empty one, then the
// slot with the smallest score. `left(word)` says how much a used slot's
// entry still matters: <= 0 when forgetting it changes nothing (reclaimable),
// otherwise the smallest is the cheapest to evict.
template <class Slot, class Left>
ConcurrentScan<Slot> scan_concurrent(Slot* slots, std::size_t slot_count, std::uint64_t hash,
                                     Left&& left) noexcept {
  using Word = PayloadWord<Slot>;
  ConcurrentScan<Slot> result;
  Slot* empty = nullptr;
  Slot* reclaimable = nullptr;
  std::uint64_t reclaimable_key = 0;
  Word reclaimable_word = 0;
  Slot* victim = nullptr;
  std::uint64_t victim_key = 0;
  Word victim_word = 0;
  std::int64_t victim_left = 0;
  Slot* parked = nullptr;
  std::uint64_t parked_key = 0;
  std::size_t i = home_slot(hash, slot_count);
  const std::size_t length = probe_length(slot_count);
  for (std::size_t step = 0; step < length; ++step, i = next_slot(i, slot_count)) {
    Slot& slot = slots[i];
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
    const Word word = payload(slot).load(kRelaxed);
    if (word == 0) {  // another thread is taking this slot: the last resort
      if (parked == nullptr) {
        parked = &slot;
        parked_key = key;
      }
      continue;
    }
    const std::int64_t matters = left(word);
    if (matters <= 0) {
      reclaimable = &slot;
      reclaimable_key = key;
      reclaimable_word = word;
    } else if (victim == nullptr || matters < victim_left) {
      victim = &slot;
      victim_key = key;
      victim_word = word;
      victim_left = matters;
    }
  }
  if (reclaimable != nullptr) {
    result.candidate = reclaimable;
    result.candidate_key = reclaimable_key;
    result.candidate_word = reclaimable_word;
    result.claim = Claim::reclaimed;
  } else if (empty != nullptr) {
    result.candidate = empty;
    result.claim = Claim::empty;
  } else if (victim != nullptr) {
    result.candidate = victim;
    result.candidate_key = victim_key;
    result.candidate_word = victim_word;
    result.claim = Claim::evicted;
  } else {
    // Only with more threads claiming in one window than it has slots.
    result.candidate = parked;
    result.candidate_key = parked_key;
    result.candidate_word = 0;
    result.claim = Claim::evicted;
  }
  return result;
}

// Takes the scan's candidate over for `hash`, as the scan found it. Fails
// when another thread changed the slot since; the caller then scans again.
template <class Slot>
bool claim_concurrent(const ConcurrentScan<Slot>& where, std::uint64_t hash) noexcept {
  using Word = PayloadWord<Slot>;
  Slot& slot = *where.candidate;
  std::uint64_t expected_key = where.candidate_key;
  if (where.claim == Claim::empty) {
    return slot.key_hash.compare_exchange_strong(expected_key, hash, kRelaxed);
  }
  // Parks the payload at "handing over" first, so no other thread reclaims
  // or evicts the slot while its key word changes.
  Word expected_word = where.candidate_word;
  if (!payload(slot).compare_exchange_strong(expected_word, Word{0}, kRelaxed)) return false;
  if (slot.key_hash.compare_exchange_strong(expected_key, hash, kRelaxed)) return true;
  // The key changed between the scan's two reads: the parked payload belongs
  // to another key, so put it back unless that key has written since.
  expected_word = 0;
  payload(slot).compare_exchange_strong(expected_word, where.candidate_word, kRelaxed);
  return false;
}

// The slot of `hash`, or nullptr, for a look that must not claim.
template <class Slot>
Slot* find_concurrent(Slot* slots, std::size_t slot_count, std::uint64_t hash) noexcept {
  std::size_t i = home_slot(hash, slot_count);
  const std::size_t length = probe_length(slot_count);
  for (std::size_t step = 0; step < length; ++step, i = next_slot(i, slot_count)) {
    const std::uint64_t key = slots[i].key_hash.load(kRelaxed);
    if (key == hash) return &slots[i];
    if (key == 0) return nullptr;
  }
  return nullptr;
}

}  // namespace portico::detail
