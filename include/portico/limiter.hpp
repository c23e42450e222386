// Rate limiting: the Generic Cell Rate Algorithm (GCRA) per key, and
// fixed-window quotas for usage plans.
//
// GCRA (ITU-T I.371, "virtual scheduling") keeps one number per key, the
// theoretical arrival time (TAT): the instant at which the key's bucket would
// be empty again if it made no more requests. A request of cost c at `now` is
// allowed when max(TAT, now) + c*T - now <= T*(burst+1), and then moves the TAT
// to that value. T (the emission interval) is period / rate. This is the same
// contract as NGINX limit_req and redis-cell: `burst` is the number of
// requests allowed beyond the steady rate, so a fresh key may make burst+1
// requests of cost 1 at once, then one every T.
//
// Every decision carries what the 429 response and the X-RateLimit-* headers
// need (see Decision), so a gateway never recomputes it.
//
// Pieces, each usable on its own:
//   Gcra                     the algorithm for one key; the caller stores the TAT.
//   KeyedLimiter             Gcra over a bounded table of keys; one thread.
//   ConcurrentKeyedLimiter   the same table shared by several threads, lock-free.
//   FixedWindowQuota         per-key counts per UTC hour, day or calendar month.
//   ConcurrentFixedWindowQuota  the same counts shared by several threads, lock-free.
//
// Time: the GCRA pieces take `TimePoint now` (steady clock) on every call and
// never read a clock, so tests run in simulated time. FixedWindowQuota takes a
// wall-clock time because its windows are aligned to calendar boundaries.
//
// Memory: the keyed stores allocate their whole table at creation and never
// again; a check never allocates, never throws and never blocks.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string_view>

#include "portico/clock.hpp"
#include "portico/export.hpp"
#include "portico/result.hpp"

namespace portico {

// The outcome of one check, in the terms of the HTTP rate-limit headers:
//   X-RateLimit-Limit     = limit
//   X-RateLimit-Remaining = remaining
//   X-RateLimit-Reset     = reset_after (seconds, rounded up)
//   Retry-After (on 429)  = retry_after (seconds, rounded up)
struct Decision {
  // True when the request conforms and has been counted.
  bool allowed = false;
  // True when the cost is 0 or larger than `limit`: such a request can never
  // pass, so it is denied without being counted and retry_after is
  // Duration::max(). A gateway answers it with an error (e.g. 400 or 413)
  // rather than with a 429 that invites a pointless retry.
  bool cost_out_of_range = false;
  // The most cost-1 requests that can pass at once (GCRA: burst + 1) or in
  // one window (quota).
  std::int64_t limit = 0;
  // Cost-1 requests that would still pass at this instant, after this one.
  std::int64_t remaining = 0;
  // Zero when allowed; otherwise the wait after which the same request would
  // be allowed if nothing else is counted meanwhile.
  Duration retry_after{0};
  // The wait until the key is back to its full allowance (GCRA: until the
  // bucket has fully refilled; quota: until the current window ends).
  Duration reset_after{0};
};

// A rate: `rate` requests per `period`, plus `burst` requests beyond it.
struct GcraConfig {
  std::int64_t rate = 0;   // > 0
  Duration period{0};      // > 0; period / rate must be at least 1 ns
  std::int64_t burst = 0;  // >= 0; 0 means strictly one request every T
};

// The algorithm for one key. A value type holding only T and the tolerance;
// the caller owns the per-key state (the TAT, an int64 count of nanoseconds on
// the TimePoint clock), which is what lets the keyed stores and callers with
// their own storage share this one implementation.
//
// T is period / rate rounded down to a whole nanosecond (so a rate that does
// not divide the period is at most 1 ns per request more permissive).
// T*(burst+1), the time an emptied bucket takes to refill completely, must
// not exceed kMaxRefillTime (about 146 years) so that no arithmetic can
// overflow; create() rejects larger values.
//
// Threading: immutable after create(); any number of threads may call
// decide()/check() on one Gcra, each with its own state.
class PORTICO_API Gcra {
 public:
  static constexpr Duration kMaxRefillTime{std::int64_t{1} << 62};

  // Fails with ErrorKind::invalid_argument, naming the field and its value,
  // when rate <= 0, period <= 0, burst < 0, period / rate < 1 ns, or
  // T*(burst+1) > kMaxRefillTime.
  static Result<Gcra> create(const GcraConfig& config);

  // Decides a request of `cost` at `now` for a key whose TAT is `tat_ns`,
  // without changing anything. When the result is allowed, `next_tat_ns` is
  // the TAT to store; otherwise it equals `tat_ns`. This pure form is what a
  // compare-and-swap loop needs.
  //
  // A TAT of 0, or any TAT at or before `now`, is the state of a key with its
  // full allowance. `now` values for one key are expected to be readings of
  // one steady clock; if `now` goes backwards the decision stays defined and
  // errs on the strict side.
  Decision decide(std::int64_t tat_ns, TimePoint now, std::uint32_t cost,
                  std::int64_t& next_tat_ns) const noexcept;

  // decide() and store the new TAT in `tat_ns` when allowed.
  Decision check(std::int64_t& tat_ns, TimePoint now, std::uint32_t cost = 1) const noexcept {
    std::int64_t next = tat_ns;
    const Decision decision = decide(tat_ns, now, cost, next);
    tat_ns = next;
    return decision;
  }

  // True when a key with this TAT has its full allowance back at `now`, i.e.
  // forgetting the key changes no future decision.
  static bool is_refilled(std::int64_t tat_ns, TimePoint now) noexcept {
    return static_cast<std::int64_t>(static_cast<std::uint64_t>(tat_ns) -
                                     static_cast<std::uint64_t>(now.time_since_epoch().count())) <=
           0;
  }

  Duration emission_interval() const noexcept { return Duration(interval_ns_); }
  // tau = T * burst, the I.371 limit parameter.
  Duration tolerance() const noexcept { return Duration(window_ns_ - interval_ns_); }
  std::int64_t limit() const noexcept { return limit_; }

 private:
  Gcra(std::int64_t interval_ns, std::int64_t limit) noexcept
      : interval_ns_(interval_ns), window_ns_(interval_ns * limit), limit_(limit) {}

  std::int64_t interval_ns_;  // T
  std::int64_t window_ns_;    // T * (burst + 1) = tau + T
  std::int64_t limit_;        // burst + 1
};

namespace detail {

// A seeded 64-bit hash of a key (a multiply-fold construction over 16-byte
// blocks). Without the seed an attacker cannot precompute keys that collide or
// that crowd one probe window. Never returns 0, which marks an empty slot.
class KeyHasher {
 public:
  // seed 0 picks a random seed.
  explicit KeyHasher(std::uint64_t seed) noexcept;
  std::uint64_t operator()(std::string_view key) const noexcept;

 private:
  std::uint64_t secret_[4];
};

struct TatSlot {
  std::uint64_t key_hash;  // 0 = empty
  std::int64_t tat_ns;
};

struct AtomicTatSlot {
  std::atomic<std::uint64_t> key_hash;  // 0 = empty
  std::atomic<std::int64_t> tat_ns;
};

struct QuotaSlot {
  std::uint64_t key_hash;  // 0 = empty
  std::uint32_t window;    // window index, truncated to 32 bits (compared for equality only)
  std::uint32_t count;
};

struct AtomicQuotaSlot {
  std::atomic<std::uint64_t> key_hash;  // 0 = empty
  // window << 32 | count, the window truncated to 32 bits; 0 = never used or
  // being handed over (a count is never 0 once written).
  std::atomic<std::uint64_t> usage;
};

struct ConcurrentCounters;  // lives with the table, off the read-mostly cache line

// The keyed stores' tables are aligned blocks from posix_memalign (on large
// ones, the kernel is asked for huge pages, sparing a TLB miss per check), so
// they are released with free(). Every slot type is trivially destructible.
struct SlotTableFree {
  void operator()(void* table) const noexcept { std::free(table); }
};
template <class Slot>
using SlotTable = std::unique_ptr<Slot[], SlotTableFree>;

}  // namespace detail

// Sizing and hashing of a keyed store.
//
// The table has 2 * max_keys slots of 16 bytes (32 bytes per key) and a key
// lives within 64 slots of its hash position. A key whose bucket has fully
// refilled is forgotten lazily: its slot is reused by the next new key that
// probes it. When a new key finds no free or refilled slot within its 64, the
// entry closest to refilled (smallest TAT) among them is evicted, which gives
// that key a fresh allowance: see docs/limiter.md for what this means under a
// flood of distinct keys. Up to max_keys live keys, a key is evicted early
// only if its window fills up, which is vanishingly rare at that load.
//
// Keys are stored as their 64-bit seeded hash only; two keys with the same
// hash share one bucket (stricter, never looser), with probability about
// n^2 / 2^65 for n live keys.
struct KeyedLimiterConfig {
  GcraConfig rate;
  std::int64_t max_keys = 0;    // 1 .. kMaxLimiterKeys
  std::uint64_t hash_seed = 0;  // 0: random per instance (the normal choice)
};

// The most keys a keyed store can be created for (2^30).
inline constexpr std::int64_t kMaxLimiterKeys = std::int64_t{1} << 30;

// GCRA per key for one thread (or one event loop).
//
// Ownership: owns its table; movable, not copyable; a moved-from limiter may
// only be destroyed or assigned to. Threading: not thread-safe; use
// ConcurrentKeyedLimiter to share one limit between threads.
// check() never allocates, throws or blocks; its cost is bounded by the probe
// window.
class PORTICO_API KeyedLimiter {
 public:
  // Fails with invalid_argument for a bad rate (see Gcra::create) or
  // max_keys outside 1..kMaxLimiterKeys, and with capacity when the table
  // cannot be allocated.
  static Result<KeyedLimiter> create(const KeyedLimiterConfig& config);

  // Decides and counts a request of `cost` for `key` at `now`. A denied or
  // out-of-range request changes nothing; an out-of-range cost never adds the
  // key to the table.
  Decision check(std::string_view key, TimePoint now, std::uint32_t cost = 1) noexcept;

  const Gcra& gcra() const noexcept { return gcra_; }
  // Slots in use: keys tracked, including refilled ones not yet reused.
  std::size_t size() const noexcept { return size_; }
  // Slots in the table: the most keys tracked at once.
  std::size_t capacity() const noexcept { return slot_count_; }
  // Bytes owned by this limiter (table plus the object itself).
  std::size_t memory_bytes() const noexcept;
  // Entries dropped before they had refilled, to make room for a new key.
  // Each one handed a key a fresh allowance early; a growing count means
  // max_keys is too small or the limiter is under a key flood.
  std::uint64_t evictions() const noexcept { return evictions_; }

 private:
  KeyedLimiter(Gcra gcra, detail::KeyHasher hasher, detail::SlotTable<detail::TatSlot> slots,
               std::size_t slot_count) noexcept;

  Gcra gcra_;
  detail::KeyHasher hasher_;
  detail::SlotTable<detail::TatSlot> slots_;
  std::size_t slot_count_;
  std::size_t size_ = 0;
  std::uint64_t evictions_ = 0;
};

// GCRA per key shared by several threads: the same table and policy as
// KeyedLimiter, with every slot word atomic and no lock.
//
// A check updates the key's TAT with a compare-and-swap loop, so for a key
// already in the table the decisions of all threads are exactly those of
// GCRA applied in the order of the successful swaps: no over-admission. A key
// enters the table by a swap on the slot's key word. Because the key and its
// TAT are two words, the moment a key enters the table (or takes over a
// refilled slot) can race with another thread: at worst a request in flight
// is counted against the wrong key, or a key briefly gets two slots, each
// worth at most one burst for that key, once. Steady-state decisions are
// exact. See docs/limiter.md for the memory-ordering argument.
//
// Ownership: owns its table; movable (not while other threads use it), not
// copyable; a moved-from limiter may only be destroyed or assigned to.
// Threading: check() and the observers may be called from any
// number of threads at once; create, move and destroy need exclusive access.
class PORTICO_API ConcurrentKeyedLimiter {
 public:
  // Same validation as KeyedLimiter::create.
  static Result<ConcurrentKeyedLimiter> create(const KeyedLimiterConfig& config);

  ConcurrentKeyedLimiter(ConcurrentKeyedLimiter&&) noexcept;
  ConcurrentKeyedLimiter& operator=(ConcurrentKeyedLimiter&&) noexcept;
  ~ConcurrentKeyedLimiter();

  // As KeyedLimiter::check; safe to call concurrently.
  Decision check(std::string_view key, TimePoint now, std::uint32_t cost = 1) noexcept;

  const Gcra& gcra() const noexcept { return gcra_; }
  std::size_t size() const noexcept;
  std::size_t capacity() const noexcept { return slot_count_; }
  std::size_t memory_bytes() const noexcept;
  std::uint64_t evictions() const noexcept;

 private:
  ConcurrentKeyedLimiter(Gcra gcra, detail::KeyHasher hasher,
                         detail::SlotTable<detail::AtomicTatSlot> slots, std::size_t slot_count,
                         std::unique_ptr<detail::ConcurrentCounters> counters) noexcept;

  Gcra gcra_;
  detail::KeyHasher hasher_;
  detail::SlotTable<detail::AtomicTatSlot> slots_;
  std::size_t slot_count_;
  std::unique_ptr<detail::ConcurrentCounters> counters_;
};

// The calendar unit of a quota window, in UTC.
enum class QuotaWindow : std::uint8_t { hour, day, month };

// Returns a stable lower-case name for `window`, e.g. "month".
constexpr const char* quota_window_name(QuotaWindow window) noexcept {
  switch (window) {
    case QuotaWindow::hour:
      return "hour";
    case QuotaWindow::day:
      return "day";
    case QuotaWindow::month:
      return "month";
  }
  return "unknown";
}

struct FixedWindowQuotaConfig {
  std::int64_t limit = 0;  // requests per window, 1 .. 2^32-1
  QuotaWindow window = QuotaWindow::day;
  std::int64_t max_keys = 0;    // 1 .. kMaxLimiterKeys; sized as for KeyedLimiter
  std::uint64_t hash_seed = 0;  // 0: random per instance
};

// Counts per key per calendar window (UTC hour, day or month), for usage
// plans ("10,000 calls a month"), beside GCRA which shapes the short-term
// rate. Windows start at wall-clock boundaries, so `now` is a system_clock
// time. An entry from a past window is reclaimable; when a probe window is
// full the entry with the smallest count is evicted (that key's count
// restarts). If the wall clock steps back across a window boundary, counts
// kept for the later window are treated as belonging to another window and
// restart.
//
// Decision fields: limit = the quota; remaining = limit - count; reset_after
// = time until the window ends; retry_after = reset_after when denied.
//
// Ownership, threading and allocation: as KeyedLimiter (one thread; the
// table is allocated once at creation). To share one quota between threads,
// use ConcurrentFixedWindowQuota.
class PORTICO_API FixedWindowQuota {
 public:
  using WallTime = std::chrono::system_clock::time_point;

  // Fails with invalid_argument for limit outside 1..2^32-1, an unknown
  // window, or max_keys outside 1..kMaxLimiterKeys; with capacity when the
  // table cannot be allocated.
  static Result<FixedWindowQuota> create(const FixedWindowQuotaConfig& config);

  // Decides and counts a request of `cost` for `key` at wall time `now`.
  Decision check(std::string_view key, WallTime now, std::uint32_t cost = 1) noexcept;

  std::int64_t limit() const noexcept { return limit_; }
  QuotaWindow window() const noexcept { return window_; }
  std::size_t size() const noexcept { return size_; }
  std::size_t capacity() const noexcept { return slot_count_; }
  std::size_t memory_bytes() const noexcept;
  std::uint64_t evictions() const noexcept { return evictions_; }

 private:
  FixedWindowQuota(std::int64_t limit, QuotaWindow window, detail::KeyHasher hasher,
                   detail::SlotTable<detail::QuotaSlot> slots, std::size_t slot_count) noexcept;

  std::int64_t limit_;
  QuotaWindow window_;
  detail::KeyHasher hasher_;
  detail::SlotTable<detail::QuotaSlot> slots_;
  std::size_t slot_count_;
  std::size_t size_ = 0;
  std::uint64_t evictions_ = 0;
  // The last window seen, [start, end) in ns since the system_clock epoch,
  // so that most checks skip the calendar arithmetic. Empty at first.
  std::int64_t span_start_ns_ = 0;
  std::int64_t span_end_ns_ = 0;
  std::uint32_t span_index_ = 0;
};

// FixedWindowQuota shared by several threads: the same table, windows and
// eviction policy, with every slot word atomic and no lock.
//
// A key's window and count are one 64-bit word, updated by compare-and-swap:
// for a key already in the table, the requests allowed in one window never
// add up to more than the quota, whatever the number of threads, and the
// count restarts with the first request of a new window. A request whose
// clock reading is one window behind the key's entry (a thread that read the
// clock just before midnight and counts just after another thread started the
// new day) is counted in the entry's later window, never in a restarted one.
// An entry two or more windows ahead (the wall clock stepped back) is treated
// as another window's, as FixedWindowQuota does. The moment a key enters the
// table has the race ConcurrentKeyedLimiter documents: at worst a request in
// flight is counted against another key, or a key briefly has two slots;
// see docs/limiter.md.
//
// Ownership: as ConcurrentKeyedLimiter. Threading: check() and the observers
// may be called from any number of threads at once; create, move and destroy
// need exclusive access. check() never allocates, throws or blocks.
class PORTICO_API ConcurrentFixedWindowQuota {
 public:
  using WallTime = FixedWindowQuota::WallTime;

  // Same validation as FixedWindowQuota::create.
  static Result<ConcurrentFixedWindowQuota> create(const FixedWindowQuotaConfig& config);

  ConcurrentFixedWindowQuota(ConcurrentFixedWindowQuota&&) noexcept;
  ConcurrentFixedWindowQuota& operator=(ConcurrentFixedWindowQuota&&) noexcept;
  ~ConcurrentFixedWindowQuota();

  // As FixedWindowQuota::check; safe to call concurrently.
  Decision check(std::string_view key, WallTime now, std::uint32_t cost = 1) noexcept;

  std::int64_t limit() const noexcept { return limit_; }
  QuotaWindow window() const noexcept { return window_; }
  std::size_t size() const noexcept;
  std::size_t capacity() const noexcept { return slot_count_; }
  std::size_t memory_bytes() const noexcept;
  std::uint64_t evictions() const noexcept;

 private:
  ConcurrentFixedWindowQuota(std::int64_t limit, QuotaWindow window, detail::KeyHasher hasher,
                             detail::SlotTable<detail::AtomicQuotaSlot> slots,
                             std::size_t slot_count,
                             std::unique_ptr<detail::ConcurrentCounters> counters) noexcept;

  std::int64_t limit_;
  QuotaWindow window_;
  detail::KeyHasher hasher_;
  detail::SlotTable<detail::AtomicQuotaSlot> slots_;
  std::size_t slot_count_;
  std::unique_ptr<detail::ConcurrentCounters> counters_;
};

}  // namespace portico
