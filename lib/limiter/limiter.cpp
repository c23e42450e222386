// The GCRA core and the key hash shared by the keyed stores.
#include <cstring>
#include <random>
#include <string>

#include "../common/describe.hpp"
#include "../common/mix.hpp"
#include "keyed_table.hpp"
#include "portico/limiter.hpp"

namespace portico {

namespace {

std::string field_error(const char* field, const char* rule, const std::string& got) {
  return std::string(field) + ": " + rule + ", got " + got;
}

std::int64_t clamp_to_int64(std::uint64_t value) noexcept {
  constexpr auto kMax = static_cast<std::uint64_t>(INT64_MAX);
  return static_cast<std::int64_t>(value > kMax ? kMax : value);
}

}  // namespace

// ---------------------------------------------------------------------------
// Gcra

Result<Gcra> Gcra::create(const GcraConfig& config) {
  if (config.rate <= 0) {
    return make_error(ErrorKind::invalid_argument,
                      field_error("rate", "must be > 0", std::to_string(config.rate)));
  }
  const std::int64_t period_ns = config.period.count();
  if (period_ns <= 0) {
    return make_error(ErrorKind::invalid_argument,
                      field_error("period", "must be > 0", detail::describe(config.period)));
  }
  if (config.burst < 0) {
    return make_error(ErrorKind::invalid_argument,
                      field_error("burst", "must be >= 0", std::to_string(config.burst)));
  }
  const std::int64_t interval_ns = period_ns / config.rate;
  if (interval_ns < 1) {
    return make_error(
        ErrorKind::invalid_argument,
        field_error("rate", "must give period / rate >= 1 ns",
                    std::to_string(config.rate) + " per " + detail::describe(config.period)));
  }
  // (burst + 1) * T <= kMaxRefillTime, written so that nothing overflows.
  if (config.burst >= kMaxRefillTime.count() / interval_ns) {
    return make_error(ErrorKind::invalid_argument,
                      field_error("burst", "(burst + 1) * period / rate must be <= 2^62 ns",
                                  std::to_string(config.burst) + " with an interval of " +
                                      detail::describe(Duration(interval_ns))));
  }
  return Gcra(interval_ns, config.burst + 1);
}

// All arithmetic is on unsigned 64-bit values, where wrap-around is defined:
// the TAT and `now` are only ever compared through their difference, which
// stays far below 2^63 for readings of one steady clock, and create() bounds
// every increment by 2^62. So no input can cause undefined behaviour.
Decision Gcra::decide(std::int64_t tat_ns, TimePoint now, std::uint32_t cost,
                      std::int64_t& next_tat_ns) const noexcept {
  const auto now_ns = static_cast<std::uint64_t>(now.time_since_epoch().count());
  const auto ahead = static_cast<std::int64_t>(static_cast<std::uint64_t>(tat_ns) - now_ns);
  // How far the key is from its full allowance: max(TAT, now) - now.
  const std::uint64_t debt = ahead > 0 ? static_cast<std::uint64_t>(ahead) : 0;
  const auto interval = static_cast<std::uint64_t>(interval_ns_);
  const auto window = static_cast<std::uint64_t>(window_ns_);

  Decision decision;
  decision.limit = limit_;
  next_tat_ns = tat_ns;
  std::uint64_t debt_after = debt;
  if (cost == 0 || cost > static_cast<std::uint64_t>(limit_)) {
    decision.cost_out_of_range = true;
    decision.retry_after = Duration::max();
  } else if (const std::uint64_t needed = debt + cost * interval; needed <= window) {
    decision.allowed = true;
    debt_after = needed;
    next_tat_ns = static_cast<std::int64_t>(now_ns + needed);
  } else {
    decision.retry_after = Duration(clamp_to_int64(needed - window));
  }
  decision.remaining =
      debt_after >= window ? 0 : static_cast<std::int64_t>((window - debt_after) / interval);
  decision.reset_after = Duration(clamp_to_int64(debt_after));
  return decision;
}

// ---------------------------------------------------------------------------
// KeyHasher

namespace detail {
namespace {

std::uint64_t fold_multiply(std::uint64_t a, std::uint64_t b) noexcept {
  const U128 product = static_cast<U128>(a) * b;
  return static_cast<std::uint64_t>(product) ^ static_cast<std::uint64_t>(product >> 64);
}

std::uint64_t load64(const unsigned char* p) noexcept {
  std::uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

std::uint64_t load32(const unsigned char* p) noexcept {
  std::uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

std::uint64_t random_seed() noexcept {
  std::uint64_t seed = 0;
  try {
    std::random_device device;
    seed = (static_cast<std::uint64_t>(device()) << 32) ^ device();
  } catch (...) {
    // No entropy source: fall back to values an outsider is unlikely to know
    // exactly. Weaker, but the table stays correct either way.
  }
  int local = 0;
  seed ^= static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  seed ^= reinterpret_cast<std::uintptr_t>(&local);
  return seed == 0 ? 1 : seed;
}

}  // namespace

KeyHasher::KeyHasher(std::uint64_t seed) noexcept {
  // Expands the one seed into independent-looking secrets.
  SplitMix64 expand(seed != 0 ? seed : random_seed());
  for (std::uint64_t& secret : secret_)
    secret = expand.next();
}

// Two words of each 16-byte block, each mixed with a secret, are multiplied
// into 128 bits and folded; the last block is read overlapping the one before
// it (and short keys overlapping themselves), so every byte counts without a
// byte loop, and the length is mixed in at the end to separate keys that
// differ only in length.
std::uint64_t KeyHasher::operator()(std::string_view key) const noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(key.data());
  const std::size_t length = key.size();
  std::uint64_t acc = secret_[0];
  std::uint64_t a = 0;
  std::uint64_t b = 0;
  if (length > 16) {
    std::size_t rest = length;
    for (; rest > 16; rest -= 16, p += 16) {
      acc = fold_multiply(load64(p) ^ secret_[1], load64(p + 8) ^ acc);
    }
    a = load64(p + rest - 16);
    b = load64(p + rest - 8);
  } else if (length >= 8) {
    a = load64(p);
    b = load64(p + length - 8);
  } else if (length >= 4) {
    a = load32(p);
    b = load32(p + length - 4);
  } else if (length > 0) {
    a = (std::uint64_t{p[0]} << 16) | (std::uint64_t{p[length / 2]} << 8) | p[length - 1];
  }
  acc = fold_multiply(a ^ secret_[1], b ^ acc);
  const std::uint64_t hash = fold_multiply(acc ^ secret_[2], length ^ secret_[3]);
  return hash != 0 ? hash : 1;
}

}  // namespace detail
}  // namespace portico
