// ConcurrentFixedWindowQuota: per-key counts per UTC calendar window, shared
// by several threads with no lock.
//
// A slot's payload is one word: the entry's window (its index truncated to
// 32 bits) and its count. Every change is a compare-and-swap of that word, so
// its modification order serialises the decisions for a key, as the TAT does
// in ConcurrentKeyedLimiter, and a swap based on a stale read fails and is
// decided again. A count only grows while count + cost <= limit, so no window
// of a key in the table is ever over-admitted. The first request of a new
// window replaces (old window, count) with (new window, cost) in that same
// swap: no request of the old window can add to the new window's count, and
// none of the new window's is lost.
//
// In a slot, a window only moves forward across a boundary: a request whose
// clock reading is one window behind the entry (two threads straddling
// midnight) counts in the entry's window, so the entry cannot flip back and
// forth between two days, restarting its count each time. An entry two or
// more windows ahead can only come from a wall clock that stepped back: it is
// treated as another window's and restarts, as in FixedWindowQuota.
//
// The table, the scan and the hand-over protocol are those of the GCRA store
// (keyed_table.hpp): a payload of 0 is "never used, or being handed over",
// which a written entry never is, since its count is at least 1. Memory
// ordering: every access is relaxed, for the reasons given in
// concurrent_keyed_limiter.cpp.
#include <optional>

#include "keyed_table.hpp"
#include "portico/limiter.hpp"
#include "quota_window.hpp"

namespace portico {

namespace {

using detail::kRelaxed;
using detail::SysNanos;
using detail::WindowSpan;

constexpr std::uint64_t kHandover = 0;

constexpr std::uint64_t pack(std::uint32_t window, std::uint32_t count) noexcept {
  return (std::uint64_t{window} << 32) | count;
}

// What an entry means for a request in the window whose index is `current`:
// the window the request counts in and how much of it is used.
struct Usage {
  std::uint32_t window;
  std::int64_t count;
  bool ahead;  // the entry's window is the one after `current`
};

Usage usage_for(std::uint64_t word, std::uint32_t current) noexcept {
  if (word != kHandover) {
    const auto window = static_cast<std::uint32_t>(word >> 32);
    const auto ahead = static_cast<std::int32_t>(window - current);  // wraps with the index
    if (ahead == 0 || ahead == 1) {
      return {window, static_cast<std::int64_t>(word & 0xffffffffU), ahead == 1};
    }
  }
  return {current, 0, false};
}

// The wall-clock instant of a check and the window it falls in.
struct Instant {
  std::int64_t at_ns;
  WindowSpan span;
};

// Time from the check to the end of the window the request counts in.
Duration reset_after(QuotaWindow window, const Instant& now, const Usage& usage) noexcept {
  const SysNanos end = usage.ahead ? detail::window_of(window, now.span.end).end : now.span.end;
  return Duration(end.time_since_epoch().count() - now.at_ns);
}

// Decides and records one request against `slot`, which held `hash` when it
// was found or claimed. Returns nothing when the slot was handed to another
// key meanwhile: the request then belongs to wherever the key is now.
std::optional<Decision> count_request(detail::AtomicQuotaSlot& slot, std::uint64_t hash,
                                      std::int64_t limit, QuotaWindow window, const Instant& now,
                                      std::uint32_t cost) noexcept {
  const auto current = static_cast<std::uint32_t>(now.span.index);
  std::uint64_t observed = slot.usage.load(kRelaxed);
  for (;;) {
    const Usage usage = usage_for(observed, current);
    const std::int64_t used = usage.count + cost;
    if (used > limit) {
      Decision decision;
      decision.limit = limit;
      decision.remaining = limit - usage.count;
      decision.reset_after = reset_after(window, now, usage);
      decision.retry_after = decision.reset_after;
      return decision;
    }
    const std::uint64_t next = pack(usage.window, static_cast<std::uint32_t>(used));
    if (slot.usage.compare_exchange_weak(observed, next, kRelaxed)) {
      Decision decision;
      decision.allowed = true;
      decision.limit = limit;
      decision.remaining = limit - used;
      decision.reset_after = reset_after(window, now, usage);
      return decision;
    }
    if (slot.key_hash.load(kRelaxed) != hash) return std::nullopt;
  }
}

}  // namespace

Result<ConcurrentFixedWindowQuota> ConcurrentFixedWindowQuota::create(
    const FixedWindowQuotaConfig& config) {
  if (Status valid = detail::check_quota_config(config); !valid) return std::move(valid).error();
  auto slot_count = detail::slot_count_for(config.max_keys);
  if (!slot_count) return std::move(slot_count).error();
  auto slots = detail::allocate_slots<detail::AtomicQuotaSlot>(*slot_count);
  if (!slots) return std::move(slots).error();
  std::unique_ptr<detail::ConcurrentCounters> counters(new (std::nothrow)
                                                           detail::ConcurrentCounters());
  if (!counters) return make_error(ErrorKind::capacity, "max_keys: cannot allocate counters");
  return ConcurrentFixedWindowQuota(config.limit, config.window,
                                    detail::KeyHasher(config.hash_seed), std::move(*slots),
                                    *slot_count, std::move(counters));
}

ConcurrentFixedWindowQuota::ConcurrentFixedWindowQuota(
    std::int64_t limit, QuotaWindow window, detail::KeyHasher hasher,
    detail::SlotTable<detail::AtomicQuotaSlot> slots, std::size_t slot_count,
    std::unique_ptr<detail::ConcurrentCounters> counters) noexcept
    : limit_(limit),
      window_(window),
      hasher_(hasher),
      slots_(std::move(slots)),
      slot_count_(slot_count),
      counters_(std::move(counters)) {}

ConcurrentFixedWindowQuota::ConcurrentFixedWindowQuota(ConcurrentFixedWindowQuota&&) noexcept =
    default;
ConcurrentFixedWindowQuota& ConcurrentFixedWindowQuota::operator=(
    ConcurrentFixedWindowQuota&&) noexcept = default;
ConcurrentFixedWindowQuota::~ConcurrentFixedWindowQuota() = default;

Decision ConcurrentFixedWindowQuota::check(std::string_view key, WallTime now,
                                           std::uint32_t cost) noexcept {
  const std::int64_t at = std::chrono::floor<Duration>(now).time_since_epoch().count();
  const Instant instant{at, detail::window_of(window_, SysNanos(Duration(at)))};
  const auto current = static_cast<std::uint32_t>(instant.span.index);
  const std::uint64_t hash = hasher_(key);
  if (cost == 0 || cost > limit_) {
    // Report the key's state without adding it.
    const detail::AtomicQuotaSlot* slot = detail::find_concurrent(slots_.get(), slot_count_, hash);
    const Usage usage =
        usage_for(slot != nullptr ? slot->usage.load(kRelaxed) : kHandover, current);
    Decision decision;
    decision.cost_out_of_range = true;
    decision.limit = limit_;
    decision.remaining = limit_ - usage.count;
    decision.reset_after = reset_after(window_, instant, usage);
    decision.retry_after = Duration::max();
    return decision;
  }
  // Every pass that does not return follows a successful swap by another
  // thread, so some thread always makes progress (lock-free).
  for (;;) {
    // An entry of another window is reclaimable; otherwise the smallest
    // count is the least allowance handed out again if forgotten.
    const auto where = detail::scan_concurrent(
        slots_.get(), slot_count_, hash,
        [current](std::uint64_t word) { return usage_for(word, current).count; });
    detail::AtomicQuotaSlot* slot = where.found;
    if (slot == nullptr) {
      if (!detail::claim_concurrent(where, hash)) continue;
      if (where.claim == detail::Claim::empty) counters_->size.fetch_add(1, kRelaxed);
      if (where.claim == detail::Claim::evicted) counters_->evictions.fetch_add(1, kRelaxed);
      slot = where.candidate;
    }
    if (const auto decision = count_request(*slot, hash, limit_, window_, instant, cost)) {
      return *decision;
    }
  }
}

std::size_t ConcurrentFixedWindowQuota::size() const noexcept {
  return counters_->size.load(kRelaxed);
}

std::uint64_t ConcurrentFixedWindowQuota::evictions() const noexcept {
  return counters_->evictions.load(kRelaxed);
}

std::size_t ConcurrentFixedWindowQuota::memory_bytes() const noexcept {
  return sizeof(*this) + sizeof(detail::ConcurrentCounters) +
         slot_count_ * sizeof(detail::AtomicQuotaSlot);
}

}  // namespace portico
