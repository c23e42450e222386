// Consistent hashing with Maglev's lookup table (Eisenbud et al., "Maglev: A
// Fast and Reliable Software Network Load Balancer", NSDI 2016), weighted.
//
// Each endpoint walks its own permutation of the table's M entries (offset
// and skip derived from a hash of its id) and claims the next free entry on
// each of its turns; turns come in proportion to weight. A pick is one table
// read. When an endpoint leaves, its entries go to the others while almost
// every other entry keeps its owner, so about 1/N of the keys move.
//
// The table holds every endpoint, available or not, so that health changes
// never rebuild it (and a rebuild never happens inside a pick). A key whose
// endpoint is not eligible is re-hashed a few times, which spreads those keys
// over the others in proportion to their weights and leaves every other key
// where it was; if all tries miss, the key goes to the eligible list by hash.
#include <algorithm>

#include "policy.hpp"

namespace portico::detail {
namespace {

constexpr std::uint32_t kRehashAttempts = 8;
constexpr std::uint32_t kUnclaimed = UINT32_MAX;
static_assert(kMaxEndpoints <= 65536, "slots must fit the 16-bit table entries");

class Maglev final : public PickPolicy {
 public:
  explicit Maglev(std::uint32_t table_size) : table_size_(table_size) {}

  std::uint32_t pick(const Pool& pool, std::uint64_t hash, TimePoint /*now*/) noexcept override {
    std::uint64_t key = hash;
    for (std::uint32_t attempt = 0; attempt <= kRehashAttempts; ++attempt) {
      const std::uint32_t slot = table_[reduce_high(mix64(key), table_size_)];
      if (pool.at(slot).eligible) return slot;
      key += kGoldenGamma;
    }
    const std::vector<std::uint32_t>& eligible = pool.eligible();
    return eligible[reduce_low(mix64(hash), static_cast<std::uint32_t>(eligible.size()))];
  }

  void membership_changed(const Pool& pool) override { rebuild(pool); }
  void eligible_changed(const Pool& /*pool*/) noexcept override {}

 private:
  struct Walker {
    std::uint32_t slot;
    std::uint32_t weight;
    std::uint32_t position;  // next entry of its permutation
    std::uint32_t skip;
    std::uint64_t credit;
  };

  void rebuild(const Pool& pool) {
    std::vector<Walker> walkers;
    walkers.reserve(pool.live_count());
    std::uint32_t max_weight = 0;
    // Id order, so that every process with the same endpoints builds the
    // same table whatever order they were added in.
    pool.for_each_by_id([&](std::uint32_t slot) {
      const EndpointState& endpoint = pool.at(slot);
      const std::uint64_t h = hash_affinity_key(endpoint.id);
      const auto offset = static_cast<std::uint32_t>(h % table_size_);
      const auto skip = static_cast<std::uint32_t>(mix64(h) % (table_size_ - 1)) + 1;
      walkers.push_back(Walker{slot, endpoint.weight, offset, skip, 0});
      max_weight = std::max(max_weight, endpoint.weight);
    });

    std::vector<std::uint32_t> claimed(table_size_, kUnclaimed);
    std::uint32_t filled = 0;
    while (filled < table_size_) {
      for (Walker& walker : walkers) {
        // The heaviest endpoint takes a turn every round, the others when
        // their accumulated weight reaches it.
        walker.credit += walker.weight;
        if (walker.credit < max_weight) continue;
        walker.credit -= max_weight;
        claim_next(walker, claimed);
        if (++filled == table_size_) break;
      }
    }
    table_.resize(table_size_);
    std::transform(claimed.begin(), claimed.end(), table_.begin(),
                   [](std::uint32_t slot) { return static_cast<std::uint16_t>(slot); });
  }

  // M is prime and 0 < skip < M, so the walk visits every entry once before
  // repeating; a free one is always found while the table is not full.
  void claim_next(Walker& walker, std::vector<std::uint32_t>& claimed) const noexcept {
    while (claimed[walker.position] != kUnclaimed)
      advance(walker);
    claimed[walker.position] = walker.slot;
    advance(walker);
  }

  void advance(Walker& walker) const noexcept {
    walker.position += walker.skip;
    if (walker.position >= table_size_) walker.position -= table_size_;
  }

  std::uint32_t table_size_;
  std::vector<std::uint16_t> table_;  // entry -> slot
};

}  // namespace

std::unique_ptr<PickPolicy> make_maglev(std::uint32_t table_size) {
  return std::make_unique<Maglev>(table_size);
}

}  // namespace portico::detail
