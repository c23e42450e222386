// Load balancer micro-benchmark: ns per pick for each policy at 3, 30 and
// 300 endpoints, and ns per whole request (pick + on_request_start +
// on_request_end, with 64 requests kept in flight so that the load-aware
// policies see real counts), with allocations per op, which must be zero.
// Then the costs off the request path: a health flip (O(n) rebuild of the
// eligible set) and a maglev membership change (table rebuild).
//
// Before timing, each configuration is checked: every pick finds an
// endpoint, every endpoint is picked, an unhealthy one never is. The
// benchmark exits non-zero if a check fails or the request path allocates.
#include <array>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "bench.hpp"
#include "portico/balancer.hpp"

namespace {

using portico::Balancer;
using portico::BalancerConfig;
using portico::BalancerPolicy;
using portico::Duration;
using portico::EndpointRef;
using portico::Pick;
using portico::RequestOutcome;
using portico::TimePoint;
namespace bench = portico::bench;

constexpr std::array<BalancerPolicy, 6> kPolicies = {
    BalancerPolicy::round_robin,   BalancerPolicy::weighted_round_robin,
    BalancerPolicy::least_request, BalancerPolicy::power_of_two_choices,
    BalancerPolicy::peak_ewma,     BalancerPolicy::maglev,
};
constexpr std::array<int, 3> kSizes = {3, 30, 300};
constexpr std::size_t kInFlight = 64;
constexpr std::size_t kHashes = 4096;  // a power of two
// Requests arrive 1 µs apart in simulated time, so latency estimates age.
constexpr Duration kRequestGap = std::chrono::microseconds(1);

bool g_failed = false;

void expect(bool ok, const std::string& what) {
  if (!ok) {
    std::fprintf(stderr, "balancer_bench: %s\n", what.c_str());
    g_failed = true;
  }
}

BalancerConfig config_of(BalancerPolicy policy, int endpoints) {
  BalancerConfig config;
  config.policy = policy;
  config.seed = 12345;
  for (int i = 0; i < endpoints; ++i) {
    // Weights 1..10, so that the weighted paths (alias table, EDF) run.
    config.endpoints.push_back(
        {"10.1." + std::to_string(i / 250) + "." + std::to_string(i % 250) + ":8080",
         static_cast<std::uint32_t>(1 + (i * 7) % 10)});
  }
  return config;
}

Balancer make(const BalancerConfig& config) {
  auto created = Balancer::create(config);
  if (!created) {
    std::fprintf(stderr, "balancer_bench: %s\n", created.error().message.c_str());
    std::exit(1);
  }
  return std::move(created).value();
}

std::vector<std::uint64_t> make_hashes() {
  std::vector<std::uint64_t> hashes;
  for (std::size_t i = 0; i < kHashes; ++i) {
    hashes.push_back(portico::hash_affinity_key("client-" + std::to_string(i)));
  }
  return hashes;
}

// Latency by endpoint, 1..1.6 ms, so peak_ewma has something to tell apart.
Duration latency_of(EndpointRef ref) {
  return std::chrono::microseconds(1000 + 100 * (ref.slot % 7));
}

// A gateway's steady state: each request picks, starts, and the oldest of
// the kInFlight outstanding ones ends.
class RequestLoop {
 public:
  explicit RequestLoop(Balancer& balancer) : balancer_(balancer) {}

  Pick step(std::uint64_t hash, TimePoint now) {
    const Pick pick = balancer_.pick({hash, now});
    balancer_.on_request_start(pick.endpoint);
    EndpointRef& oldest = outstanding_[next_];
    if (filled_ == kInFlight) {
      balancer_.on_request_end(oldest, latency_of(oldest), RequestOutcome::success, now);
    } else {
      ++filled_;
    }
    oldest = pick.endpoint;
    next_ = (next_ + 1) % kInFlight;
    return pick;
  }

 private:
  Balancer& balancer_;
  std::array<EndpointRef, kInFlight> outstanding_{};
  std::size_t next_ = 0;
  std::size_t filled_ = 0;
};

std::string label(BalancerPolicy policy, int endpoints) {
  return std::string(portico::balancer_policy_name(policy)) + " n=" + std::to_string(endpoints);
}

// Untimed: the configuration behaves before its speed means anything.
void check(BalancerPolicy policy, int endpoints, const std::vector<std::uint64_t>& hashes) {
  Balancer balancer = make(config_of(policy, endpoints));
  const EndpointRef sick = balancer.endpoints().front();
  balancer.set_healthy(sick, false);
  std::vector<int> picks(static_cast<std::size_t>(endpoints), 0);
  RequestLoop loop(balancer);
  TimePoint now{std::chrono::hours(1000)};
  bool all_found = true;
  for (int i = 0; i < 40 * endpoints + 2000; ++i) {
    now += kRequestGap;
    const std::uint64_t hash = i < static_cast<int>(kHashes)
                                   ? hashes[static_cast<std::size_t>(i)]
                                   : portico::hash_affinity_key(std::to_string(i));
    const Pick pick = loop.step(hash, now);
    all_found = all_found && pick.found;
    if (pick.found) ++picks[pick.endpoint.slot];
  }
  const std::string name = label(policy, endpoints);
  expect(all_found, name + ": a pick found no endpoint");
  expect(picks[sick.slot] == 0, name + ": an unhealthy endpoint was picked");
  for (std::size_t slot = 0; slot < picks.size(); ++slot) {
    if (slot != sick.slot) expect(picks[slot] > 0, name + ": an endpoint was never picked");
  }
}

struct Row {
  std::string name;
  bench::Sample pick;
  bench::Sample request;
};

Row measure(BalancerPolicy policy, int endpoints, const std::vector<std::uint64_t>& hashes,
            std::size_t runs, std::size_t iterations) {
  Row row{label(policy, endpoints), {}, {}};
  bool all_found = true;
  {
    Balancer balancer = make(config_of(policy, endpoints));
    TimePoint now{std::chrono::hours(1000)};
    std::size_t k = 0;
    row.pick = bench::measure(runs, iterations, [&](std::size_t n) {
      for (std::size_t i = 0; i < n; ++i, ++k) {
        now += kRequestGap;
        const Pick pick = balancer.pick({hashes[k & (kHashes - 1)], now});
        all_found = all_found && pick.found;
        bench::do_not_optimize(pick);
      }
    });
  }
  {
    Balancer balancer = make(config_of(policy, endpoints));
    RequestLoop loop(balancer);
    TimePoint now{std::chrono::hours(1000)};
    std::size_t k = 0;
    row.request = bench::measure(runs, iterations, [&](std::size_t n) {
      for (std::size_t i = 0; i < n; ++i, ++k) {
        now += kRequestGap;
        const Pick pick = loop.step(hashes[k & (kHashes - 1)], now);
        all_found = all_found && pick.found;
        bench::do_not_optimize(pick);
      }
    });
  }
  std::printf("balancer pick          %-28s %8.2f ns/op  %.3f allocs/op\n", row.name.c_str(),
              row.pick.ns_per_op, row.pick.allocs_per_op);
  std::printf("balancer pick+start+end %-27s %8.2f ns/op  %.3f allocs/op\n", row.name.c_str(),
              row.request.ns_per_op, row.request.allocs_per_op);
  expect(all_found, row.name + ": a timed pick found no endpoint");
  expect(row.pick.allocs_per_op == 0.0, row.name + ": pick allocated");
  expect(row.request.allocs_per_op == 0.0, row.name + ": the request path allocated");
  return row;
}

// Off the request path but inside a pick when an ejection ends: one
// endpoint's availability changes and the policy rebuilds its structures.
void measure_health_flip(BalancerPolicy policy, int endpoints, std::size_t runs,
                         std::size_t iterations) {
  Balancer balancer = make(config_of(policy, endpoints));
  const EndpointRef ref = balancer.endpoints().back();
  bool healthy = true;
  const auto s = bench::measure(runs, iterations, [&](std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      healthy = !healthy;
      balancer.set_healthy(ref, healthy);
    }
  });
  const std::string name = label(policy, endpoints);
  std::printf("balancer set_healthy   %-28s %8.2f ns/op  %.3f allocs/op\n", name.c_str(),
              s.ns_per_op, s.allocs_per_op);
  expect(s.allocs_per_op == 0.0, name + ": an availability change allocated");
}

void measure_maglev_rebuild(int endpoints, std::size_t runs, std::size_t iterations) {
  Balancer balancer = make(config_of(BalancerPolicy::maglev, endpoints));
  bool ok = true;
  const auto s = bench::measure(runs, iterations, [&](std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      ok = ok && balancer.add_endpoint({"10.9.9.9:8080", 3}).ok();
      ok = ok && balancer.remove_endpoint("10.9.9.9:8080").ok();
    }
  });
  std::printf("balancer maglev add+remove (table 65537) n=%-14d %8.1f us/op\n", endpoints,
              s.ns_per_op / 1000.0);
  expect(ok, "maglev: add or remove failed");
}

void measure_hash(const char* what, const std::string& key, std::size_t runs,
                  std::size_t iterations) {
  std::uint64_t sink = 0;
  const auto s = bench::measure(runs, iterations, [&](std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      sink += portico::hash_affinity_key(key);
      bench::do_not_optimize(sink);
    }
  });
  std::printf("balancer hash_affinity_key %-24s %8.2f ns/op  %.3f allocs/op\n", what, s.ns_per_op,
              s.allocs_per_op);
  expect(s.allocs_per_op == 0.0, "hash_affinity_key allocated");
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = bench::quick_mode(argc, argv);
  const std::size_t runs = quick ? 3 : 7;
  const std::size_t iterations = quick ? 20000 : 1000000;
  const std::vector<std::uint64_t> hashes = make_hashes();

  for (const BalancerPolicy policy : kPolicies) {
    for (const int endpoints : kSizes)
      check(policy, endpoints, hashes);
  }

  std::vector<Row> rows;
  for (const BalancerPolicy policy : kPolicies) {
    for (const int endpoints : kSizes) {
      rows.push_back(measure(policy, endpoints, hashes, runs, iterations));
    }
  }
  for (const BalancerPolicy policy : kPolicies) {
    measure_health_flip(policy, 300, runs, quick ? 200 : 20000);
  }
  for (const int endpoints : kSizes)
    measure_maglev_rebuild(endpoints, runs, quick ? 2 : 20);
  measure_hash("15-byte address", "192.168.100.200", runs, iterations);
  measure_hash("64-byte cookie", std::string(64, 'c'), runs, iterations);

  std::printf("\nbalancer summary (ns/op; request = pick + on_request_start + on_request_end)\n");
  std::printf("%-28s %10s %10s\n", "policy, endpoints", "pick", "request");
  for (const Row& row : rows) {
    std::printf("%-28s %10.2f %10.2f\n", row.name.c_str(), row.pick.ns_per_op,
                row.request.ns_per_op);
  }
  if (g_failed) {
    std::fprintf(stderr, "balancer_bench: FAILED\n");
    return 1;
  }
  return 0;
}
