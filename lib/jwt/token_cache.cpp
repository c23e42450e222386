// TokenCache: verified and rejected tokens in two small set-associative
// tables. A bucket holds eight entries; a token's bucket comes from a seeded
// hash of its bytes and a match is confirmed by comparing the whole token, so
// only the identical token can hit.
#include <string>
#include <vector>

#include "key.hpp"
#include "portico/jwt.hpp"
#include "portico/limiter.hpp"  // detail::KeyHasher, the seeded string hash

namespace portico::detail {

namespace {

constexpr std::size_t kWays = 8;

// Failures that stay failures for the same token and key set whatever the
// clock says later (an expired token never becomes valid again).
bool cacheable(jwt::Reason r) noexcept {
  return r != jwt::Reason::not_yet_valid && r != jwt::Reason::too_large;
}

template <class Value>
class Table {
 public:
  struct Entry {
    std::uint64_t hash = 0;  // 0: empty
    std::uint64_t set_id = 0;
    std::uint64_t stamp = 0;  // insertion order, for eviction
    double expires_at = 0;
    std::string token;
    Value value;
  };

  explicit Table(std::size_t capacity)
      : buckets_((capacity + kWays - 1) / kWays), entries_(buckets_ * kWays) {}

  bool enabled() const noexcept { return buckets_ != 0; }

  // The live entry for `token`, or nullptr. An entry that has expired or
  // belongs to another key set is dropped on the way.
  Entry* find(std::string_view token, std::uint64_t hash, std::uint64_t set_id,
              double now) noexcept {
    Entry* bucket = bucket_of(hash);
    for (std::size_t i = 0; i < kWays; ++i) {
      Entry& e = bucket[i];
      if (e.hash != hash || e.token != token) continue;
      if (e.set_id != set_id || now >= e.expires_at) {
        erase(e);
        return nullptr;
      }
      return &e;
    }
    return nullptr;
  }

  // Stores `value` for `token`; returns true when a live entry was evicted.
  bool insert(std::string_view token, std::uint64_t hash, std::uint64_t set_id, double expires_at,
              double now, Value value) {
    Entry* bucket = bucket_of(hash);
    Entry* victim = &bucket[0];
    for (std::size_t i = 0; i < kWays; ++i) {
      Entry& e = bucket[i];
      if (e.hash == 0 || now >= e.expires_at || (e.hash == hash && e.token == token)) {
        victim = &e;
        break;
      }
      if (e.stamp < victim->stamp) victim = &e;
    }
    const bool evicted = victim->hash != 0 && now < victim->expires_at &&
                         !(victim->hash == hash && victim->token == token);
    victim->hash = hash;
    victim->set_id = set_id;
    victim->stamp = ++clock_;
    victim->expires_at = expires_at;
    victim->token.assign(token);
    victim->value = std::move(value);
    return evicted;
  }

  void erase(Entry& e) noexcept {
    e.hash = 0;
    e.value = Value{};
  }

  void clear() noexcept {
    for (Entry& e : entries_) {
      erase(e);
      e.token.clear();
      e.token.shrink_to_fit();
    }
  }

 private:
  Entry* bucket_of(std::uint64_t hash) noexcept {
    const auto index =
        static_cast<std::size_t>((static_cast<unsigned __int128>(hash) * buckets_) >> 64);
    return &entries_[index * kWays];
  }

  std::size_t buckets_;
  std::vector<Entry> entries_;
  std::uint64_t clock_ = 0;
};

struct Rejection {
  jwt::Reason reason = jwt::Reason::malformed;
  std::string message;
};

}  // namespace

struct TokenCacheTable {
  TokenCacheTable(std::size_t capacity, std::size_t negative_capacity)
      : positive(capacity), negative(negative_capacity), hasher(0) {}

  Table<std::shared_ptr<const jwt::VerifiedToken>> positive;
  Table<Rejection> negative;
  KeyHasher hasher;  // randomly seeded: collisions cannot be planned
};

}  // namespace portico::detail

namespace portico::jwt {

TokenCache::TokenCache(std::shared_ptr<const Verifier> verifier, TokenCacheOptions options)
    : verifier_(std::move(verifier)),
      options_(options),
      table_(
          std::make_unique<detail::TokenCacheTable>(options.capacity, options.negative_capacity)) {}

TokenCache::~TokenCache() = default;

void TokenCache::clear() noexcept {
  table_->positive.clear();
  table_->negative.clear();
}

Verification TokenCache::verify(std::string_view token, WallTime now) {
  const bool cacheable_size = token.size() <= options_.max_token_bytes;
  if (!cacheable_size) {
    ++stats_.misses;
    return verifier_->verify(token, now);
  }
  const double t = detail::numeric_date(now);
  const std::uint64_t hash = table_->hasher(token);
  const std::uint64_t set_id = verifier_->keys().current_id();

  if (auto* hit = table_->positive.find(token, hash, set_id, t)) {
    if (!verifier_->check_time(*hit->value, now)) {
      ++stats_.hits;
      return Verification::success(hit->value, true);
    }
    // exp or nbf says no now: verify afresh for the exact answer.
    table_->positive.erase(*hit);
  } else if (auto* rejected = table_->negative.find(token, hash, set_id, t)) {
    ++stats_.negative_hits;
    return Verification::failure(rejected->value.reason, rejected->value.message, true);
  }

  ++stats_.misses;
  Verification v = verifier_->verify(token, now);
  if (v.ok() && table_->positive.enabled()) {
    double expires_at = t + static_cast<double>(options_.ttl.count());
    if (const auto& exp = v.token().expires_at) {
      expires_at =
          std::min(expires_at, *exp + static_cast<double>(verifier_->options().leeway.count()));
    }
    stats_.evictions +=
        table_->positive.insert(token, hash, set_id, expires_at, t, v.shared_token());
  } else if (!v.ok() && detail::cacheable(v.reason()) && table_->negative.enabled()) {
    stats_.evictions += table_->negative.insert(
        token, hash, set_id, t + static_cast<double>(options_.negative_ttl.count()), t,
        detail::Rejection{v.reason(), v.message()});
  }
  return v;
}

}  // namespace portico::jwt
