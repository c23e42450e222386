#include "portico/balancer.hpp"

#include <doctest/doctest.h>

#include "../support/alloc_counter.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <map>
#include <string>
#include <vector>

using namespace portico;
using namespace std::chrono_literals;

namespace {

const TimePoint kStart = TimePoint(std::chrono::hours(1000));

BalancerConfig config_of(BalancerPolicy policy, std::vector<EndpointSpec> endpoints) {
  BalancerConfig config;
  config.policy = policy;
  config.endpoints = std::move(endpoints);
  return config;
}

std::vector<EndpointSpec> numbered(int count, std::uint32_t weight = 1) {
  std::vector<EndpointSpec> endpoints;
  for (int i = 0; i < count; ++i) {
    endpoints.push_back({"10.0.0." + std::to_string(i) + ":8080", weight});
  }
  return endpoints;
}

Balancer make(const BalancerConfig& config) {
  Result<Balancer> created = Balancer::create(config);
  if (!created) FAIL(created.error().message);
  return std::move(created).value();
}

Error error_of(const BalancerConfig& config) {
  Result<Balancer> created = Balancer::create(config);
  REQUIRE_FALSE(created.ok());
  return created.error();
}

bool mentions(const Error& error, const std::string& text) {
  return error.message.find(text) != std::string::npos;
}

std::string id_of(const Balancer& balancer, EndpointRef ref) {
  return std::string(balancer.stats(ref)->id);
}

EndpointRef ref_of(const Balancer& balancer, std::string_view id) {
  const std::optional<EndpointRef> ref = balancer.find(id);
  REQUIRE(ref.has_value());
  return *ref;
}

std::string pick_id(Balancer& balancer, TimePoint now = kStart, std::uint64_t hash = 0) {
  const Pick pick = balancer.pick({hash, now});
  REQUIRE(pick.found);
  return id_of(balancer, pick.endpoint);
}

// Picks `count` times, each request starting and ending at once, and counts
// the picks per id.
std::map<std::string, int> spread(Balancer& balancer, int count, TimePoint now = kStart) {
  std::map<std::string, int> picks;
  for (int i = 0; i < count; ++i) {
    const Pick pick = balancer.pick({0, now});
    REQUIRE(pick.found);
    balancer.on_request_start(pick.endpoint);
    balancer.on_request_end(pick.endpoint, 1ms, RequestOutcome::success, now);
    ++picks[id_of(balancer, pick.endpoint)];
  }
  return picks;
}

void fail_times(Balancer& balancer, EndpointRef ref, int times, TimePoint now) {
  for (int i = 0; i < times; ++i) {
    balancer.on_request_start(ref);
    balancer.on_request_end(ref, 1ms, RequestOutcome::failure, now);
  }
}

const std::vector<EndpointSpec> kWeighted532 = {{"a", 5}, {"b", 3}, {"c", 2}};

void check_532(const std::map<std::string, int>& picks, int total) {
  CHECK(std::abs(picks.at("a") / double(total) - 0.5) < 0.01);
  CHECK(std::abs(picks.at("b") / double(total) - 0.3) < 0.01);
  CHECK(std::abs(picks.at("c") / double(total) - 0.2) < 0.01);
}

bool is_prime(std::uint32_t n) {
  if (n < 2) return false;
  for (std::uint32_t d = 2; d * d <= n; ++d) {
    if (n % d == 0) return false;
  }
  return true;
}

}  // namespace

TEST_CASE("create rejects every invalid configuration with a clear error") {
  SUBCASE("no endpoints") {
    const Error error = error_of(config_of(BalancerPolicy::round_robin, {}));
    CHECK(error.kind == ErrorKind::invalid_argument);
    CHECK(mentions(error, "BalancerConfig.endpoints is empty"));
  }
  SUBCASE("one weight 0") {
    const Error error =
        error_of(config_of(BalancerPolicy::weighted_round_robin, {{"a", 1}, {"b", 0}}));
    CHECK(error.kind == ErrorKind::invalid_argument);
    CHECK(mentions(error, "endpoints[1].weight is 0"));
  }
  SUBCASE("all weights 0") {
    const Error error =
        error_of(config_of(BalancerPolicy::weighted_round_robin, {{"a", 0}, {"b", 0}}));
    CHECK(error.kind == ErrorKind::invalid_argument);
    CHECK(mentions(error, "endpoints[0].weight is 0"));
  }
  SUBCASE("weight above the maximum") {
    const Error error =
        error_of(config_of(BalancerPolicy::maglev, {{"a", kMaxEndpointWeight + 1}}));
    CHECK(error.kind == ErrorKind::invalid_argument);
    CHECK(mentions(error, "endpoints[0].weight is 10001"));
  }
  SUBCASE("the maximum weight is accepted") {
    CHECK(Balancer::create(config_of(BalancerPolicy::maglev, {{"a", kMaxEndpointWeight}})).ok());
  }
  SUBCASE("empty id") {
    const Error error = error_of(config_of(BalancerPolicy::round_robin, {{"a", 1}, {"", 1}}));
    CHECK(error.kind == ErrorKind::invalid_argument);
    CHECK(mentions(error, "endpoints[1].id is empty"));
  }
  SUBCASE("id too long") {
    const Error error = error_of(
        config_of(BalancerPolicy::round_robin, {{std::string(kMaxEndpointIdLength + 1, 'x'), 1}}));
    CHECK(error.kind == ErrorKind::invalid_argument);
    CHECK(mentions(error, "endpoints[0].id is 256 bytes long"));
  }
  SUBCASE("duplicate id") {
    const Error error =
        error_of(config_of(BalancerPolicy::round_robin, {{"a:1", 1}, {"b:1", 1}, {"a:1", 2}}));
    CHECK(error.kind == ErrorKind::conflict);
    CHECK(mentions(error, "endpoints[2].id \"a:1\" duplicates BalancerConfig.endpoints[0].id"));
  }
  SUBCASE("too many endpoints") {
    BalancerConfig config = config_of(BalancerPolicy::round_robin, {});
    config.endpoints.resize(std::size_t{kMaxEndpoints} + 1);
    const Error error = error_of(config);
    CHECK(error.kind == ErrorKind::capacity);
    CHECK(mentions(error, "65537 endpoints"));
  }
  SUBCASE("policy out of range") {
    BalancerConfig config = config_of(static_cast<BalancerPolicy>(42), numbered(2));
    const Error error = error_of(config);
    CHECK(error.kind == ErrorKind::invalid_argument);
    CHECK(mentions(error, "BalancerConfig.policy is 42"));
  }
  SUBCASE("panic threshold outside [0, 1] or NaN") {
    for (const double bad : {-0.1, 1.5, std::numeric_limits<double>::quiet_NaN()}) {
      BalancerConfig config = config_of(BalancerPolicy::round_robin, numbered(2));
      config.panic_threshold = bad;
      const Error error = error_of(config);
      CHECK(error.kind == ErrorKind::invalid_argument);
      CHECK(mentions(error, "BalancerConfig.panic_threshold is"));
    }
  }
  SUBCASE("maglev table size not prime, too small or too large") {
    constexpr std::uint32_t kPrimeAboveMax = 16777259;
    REQUIRE(is_prime(kPrimeAboveMax));
    REQUIRE(kPrimeAboveMax > kMaxMaglevTableSize);
    for (const std::uint32_t bad : {0u, 1u, 65536u, kPrimeAboveMax}) {
      BalancerConfig config = config_of(BalancerPolicy::maglev, numbered(2));
      config.maglev_table_size = bad;
      const Error error = error_of(config);
      CHECK(error.kind == ErrorKind::invalid_argument);
      CHECK(mentions(error, "BalancerConfig.maglev_table_size is " + std::to_string(bad)));
    }
  }
  SUBCASE("maglev table not larger than the endpoint count") {
    BalancerConfig config = config_of(BalancerPolicy::maglev, numbered(7));
    config.maglev_table_size = 7;
    const Error error = error_of(config);
    CHECK(error.kind == ErrorKind::capacity);
    CHECK(mentions(error, "must exceed the 7 endpoints"));
    config.maglev_table_size = 11;
    CHECK(Balancer::create(config).ok());
  }
  SUBCASE("peak EWMA decay time out of range") {
    for (const Duration bad : {Duration::zero(), Duration(-1s), Duration(2h)}) {
      BalancerConfig config = config_of(BalancerPolicy::peak_ewma, numbered(2));
      config.ewma_decay_time = bad;
      const Error error = error_of(config);
      CHECK(error.kind == ErrorKind::invalid_argument);
      CHECK(mentions(error, "BalancerConfig.ewma_decay_time is"));
    }
  }
  SUBCASE("outlier durations and percentage") {
    BalancerConfig config = config_of(BalancerPolicy::round_robin, numbered(2));
    config.outlier.base_ejection_time = Duration::zero();
    CHECK(mentions(error_of(config), "OutlierConfig.base_ejection_time is 0 ns"));
    config.outlier.base_ejection_time = -5s;
    CHECK(mentions(error_of(config), "OutlierConfig.base_ejection_time is"));
    config.outlier.base_ejection_time = 30s;
    config.outlier.max_ejection_time = 10s;
    CHECK(mentions(error_of(config), "OutlierConfig.max_ejection_time is 10000000000 ns"));
    config.outlier.max_ejection_time = std::chrono::hours(24 * 366);
    CHECK(mentions(error_of(config), "OutlierConfig.max_ejection_time is"));
    config.outlier.max_ejection_time = 300s;
    config.outlier.max_ejection_percent = 101;
    const Error error = error_of(config);
    CHECK(error.kind == ErrorKind::invalid_argument);
    CHECK(mentions(error, "OutlierConfig.max_ejection_percent is 101"));
  }
  SUBCASE("the defaults with one endpoint are valid for every policy") {
    for (const BalancerPolicy policy :
         {BalancerPolicy::round_robin, BalancerPolicy::weighted_round_robin,
          BalancerPolicy::least_request, BalancerPolicy::power_of_two_choices,
          BalancerPolicy::peak_ewma, BalancerPolicy::maglev}) {
      Balancer balancer = make(config_of(policy, {{"only", 1}}));
      CHECK(balancer.policy() == policy);
      CHECK(pick_id(balancer) == "only");
    }
  }
}

TEST_CASE("membership changes are validated") {
  Balancer balancer = make(config_of(BalancerPolicy::round_robin, {{"a", 1}, {"b", 1}}));
  SUBCASE("duplicate id") {
    const Result<EndpointRef> added = balancer.add_endpoint({"a", 1});
    REQUIRE_FALSE(added.ok());
    CHECK(added.error().kind == ErrorKind::conflict);
    CHECK(mentions(added.error(), "\"a\" is already present"));
  }
  SUBCASE("bad weight and id") {
    Result<EndpointRef> added = balancer.add_endpoint({"c", 0});
    REQUIRE_FALSE(added.ok());
    CHECK(added.error().kind == ErrorKind::invalid_argument);
    CHECK(mentions(added.error(), "weight is 0"));
    added = balancer.add_endpoint({"", 1});
    REQUIRE_FALSE(added.ok());
    CHECK(mentions(added.error(), "id is empty"));
    CHECK(balancer.size() == 2);
  }
  SUBCASE("unknown id") {
    const Status removed = balancer.remove_endpoint("zzz");
    REQUIRE_FALSE(removed.ok());
    CHECK(removed.error().kind == ErrorKind::not_found);
  }
  SUBCASE("the last endpoint stays") {
    REQUIRE(balancer.remove_endpoint("a").ok());
    const Status removed = balancer.remove_endpoint("b");
    REQUIRE_FALSE(removed.ok());
    CHECK(removed.error().kind == ErrorKind::invalid_argument);
    CHECK(balancer.size() == 1);
    CHECK(pick_id(balancer) == "b");
  }
  SUBCASE("maglev refuses more endpoints than its table can tell apart") {
    BalancerConfig config = config_of(BalancerPolicy::maglev, numbered(3));
    config.maglev_table_size = 5;
    Balancer maglev = make(config);
    REQUIRE(maglev.add_endpoint({"d", 1}).ok());
    const Result<EndpointRef> added = maglev.add_endpoint({"e", 1});
    REQUIRE_FALSE(added.ok());
    CHECK(added.error().kind == ErrorKind::capacity);
  }
}

TEST_CASE("refs to removed endpoints go stale, even when their slot is reused") {
  Balancer balancer = make(config_of(BalancerPolicy::least_request, {{"a", 1}, {"b", 1}}));
  const EndpointRef a = ref_of(balancer, "a");
  REQUIRE(balancer.on_request_start(a));
  REQUIRE(balancer.remove_endpoint("a").ok());
  CHECK_FALSE(balancer.stats(a).has_value());
  CHECK_FALSE(balancer.find("a").has_value());

  const Result<EndpointRef> c = balancer.add_endpoint({"c", 1});
  REQUIRE(c.ok());
  CHECK(c->slot == a.slot);  // the slot is reused...
  CHECK_FALSE(*c == a);      // ...under a new generation
  // The request that outlived "a" ends without touching "c".
  CHECK_FALSE(balancer.on_request_end(a, 1ms, RequestOutcome::failure, kStart));
  CHECK_FALSE(balancer.set_healthy(a, false));
  CHECK(balancer.stats(*c)->in_flight == 0);
  CHECK(balancer.stats(*c)->healthy);
  CHECK(balancer.endpoints().size() == 2);

  std::map<std::string, int> picks = spread(balancer, 10);
  CHECK(picks["b"] == 5);
  CHECK(picks["c"] == 5);
  CHECK(picks.count("a") == 0);
}

TEST_CASE("every policy skips unhealthy and ejected endpoints") {
  for (const BalancerPolicy policy :
       {BalancerPolicy::round_robin, BalancerPolicy::weighted_round_robin,
        BalancerPolicy::least_request, BalancerPolicy::power_of_two_choices,
        BalancerPolicy::peak_ewma, BalancerPolicy::maglev}) {
    CAPTURE(balancer_policy_name(policy));
    BalancerConfig config = config_of(policy, numbered(6, 2));
    config.outlier.max_ejection_percent = 20;
    Balancer balancer = make(config);
    const EndpointRef sick = ref_of(balancer, "10.0.0.1:8080");
    const EndpointRef failing = ref_of(balancer, "10.0.0.4:8080");
    REQUIRE(balancer.set_healthy(sick, false));
    fail_times(balancer, failing, 5, kStart);
    REQUIRE(balancer.stats(failing)->ejected);
    CHECK(balancer.available() == 4);

    std::map<std::string, int> picks;
    for (int i = 0; i < 4000; ++i) {
      const Pick pick = balancer.pick({hash_affinity_key(std::to_string(i)), kStart + 1s});
      REQUIRE(pick.found);
      CHECK_FALSE(pick.panic);
      balancer.on_request_start(pick.endpoint);
      balancer.on_request_end(pick.endpoint, 1ms, RequestOutcome::success, kStart + 1s);
      ++picks[id_of(balancer, pick.endpoint)];
    }
    CHECK(picks.size() == 4);
    CHECK(picks.count("10.0.0.1:8080") == 0);
    CHECK(picks.count("10.0.0.4:8080") == 0);
  }
}

TEST_CASE("round robin takes each available endpoint in turn, ignoring weights") {
  Balancer balancer =
      make(config_of(BalancerPolicy::round_robin, {{"a", 5}, {"b", 1}, {"c", 1}, {"d", 1}}));
  std::string sequence;
  for (int i = 0; i < 8; ++i)
    sequence += pick_id(balancer);
  CHECK(sequence == "abcdabcd");

  SUBCASE("skips unhealthy endpoints and resumes after the last pick") {
    CHECK(pick_id(balancer) == "a");
    REQUIRE(balancer.set_healthy(ref_of(balancer, "c"), false));
    sequence.clear();
    for (int i = 0; i < 6; ++i)
      sequence += pick_id(balancer);
    CHECK(sequence == "bdabda");
    REQUIRE(balancer.set_healthy(ref_of(balancer, "c"), true));
    sequence.clear();
    for (int i = 0; i < 4; ++i)
      sequence += pick_id(balancer);
    CHECK(sequence == "bcda");
  }
  SUBCASE("a long run of unhealthy endpoints is skipped in one step") {
    // 2 of 50 available is below the default panic threshold: disable it.
    BalancerConfig config = config_of(BalancerPolicy::round_robin, numbered(50));
    config.panic_threshold = 0.0;
    Balancer sparse = make(config);
    for (int i = 1; i < 50; ++i) {
      if (i != 25)
        sparse.set_healthy(ref_of(sparse, "10.0.0." + std::to_string(i) + ":8080"), false);
    }
    CHECK(pick_id(sparse) == "10.0.0.0:8080");
    CHECK(pick_id(sparse) == "10.0.0.25:8080");
    CHECK(pick_id(sparse) == "10.0.0.0:8080");
  }
}

TEST_CASE("round robin starts where the seed says") {
  std::map<std::string, int> first_picks;
  for (std::uint64_t seed = 0; seed < 16; ++seed) {
    BalancerConfig config = config_of(BalancerPolicy::round_robin, numbered(4));
    config.seed = seed;
    Balancer balancer = make(config);
    ++first_picks[pick_id(balancer)];
  }
  CHECK(first_picks.size() >= 3);
}

TEST_CASE("smooth weighted round robin follows NGINX's sequence") {
  Balancer balancer =
      make(config_of(BalancerPolicy::weighted_round_robin, {{"a", 5}, {"b", 1}, {"c", 1}}));
  std::string sequence;
  for (int i = 0; i < 14; ++i)
    sequence += pick_id(balancer);
  CHECK(sequence == "aabacaaaabacaa");
}

TEST_CASE("smooth weighted round robin spreads picks by weight and skips the unavailable") {
  Balancer balancer = make(config_of(BalancerPolicy::weighted_round_robin, kWeighted532));
  const std::map<std::string, int> picks = spread(balancer, 100000);
  // Exact over every whole period of 10 picks.
  CHECK(picks.at("a") == 50000);
  CHECK(picks.at("b") == 30000);
  CHECK(picks.at("c") == 20000);

  REQUIRE(balancer.set_healthy(ref_of(balancer, "b"), false));
  const std::map<std::string, int> without_b = spread(balancer, 7000);
  CHECK(without_b.count("b") == 0);
  CHECK(without_b.at("a") == 5000);
  CHECK(without_b.at("c") == 2000);
}

TEST_CASE("least request prefers the less loaded endpoint") {
  Balancer balancer =
      make(config_of(BalancerPolicy::least_request, {{"a", 1}, {"b", 1}, {"c", 1}}));
  const EndpointRef a = ref_of(balancer, "a");
  const EndpointRef b = ref_of(balancer, "b");
  for (int i = 0; i < 3; ++i)
    balancer.on_request_start(a);
  balancer.on_request_start(b);

  std::map<std::string, int> picks;
  for (int i = 0; i < 5; ++i) {
    const Pick pick = balancer.pick({0, kStart});
    balancer.on_request_start(pick.endpoint);
    ++picks[id_of(balancer, pick.endpoint)];
  }
  // b and c fill up to a's three before a gets anything.
  CHECK(picks.count("a") == 0);
  CHECK(picks["b"] == 2);
  CHECK(picks["c"] == 3);

  SUBCASE("and returns to an endpoint whose requests finished") {
    for (int i = 0; i < 3; ++i)
      balancer.on_request_end(a, 1ms, RequestOutcome::success, kStart);
    CHECK(pick_id(balancer) == "a");
  }
}

TEST_CASE("least request weighs the load by weight and spreads idle picks by weight") {
  Balancer balancer = make(config_of(BalancerPolicy::least_request, {{"big", 4}, {"small", 1}}));
  const EndpointRef big = ref_of(balancer, "big");
  const EndpointRef small = ref_of(balancer, "small");
  for (int i = 0; i < 6; ++i)
    balancer.on_request_start(big);
  balancer.on_request_start(small);
  balancer.on_request_start(small);
  // 6/4 < 2/1: big carries less per unit of weight and wins...
  CHECK(pick_id(balancer) == "big");
  // ...and loses once it carries more per unit of weight than small.
  for (int i = 0; i < 3; ++i)
    balancer.on_request_start(big);  // 9/4 > 2/1
  CHECK(pick_id(balancer) == "small");

  Balancer idle = make(config_of(BalancerPolicy::least_request, kWeighted532));
  check_532(spread(idle, 100000), 100000);
}

TEST_CASE("power of two choices never picks an ejected or unhealthy endpoint") {
  BalancerConfig config = config_of(BalancerPolicy::power_of_two_choices, numbered(10));
  config.seed = 42;
  config.outlier.max_ejection_percent = 30;
  Balancer balancer = make(config);
  const std::array<std::string, 3> out = {"10.0.0.2:8080", "10.0.0.5:8080", "10.0.0.9:8080"};
  REQUIRE(balancer.set_healthy(ref_of(balancer, out[0]), false));
  REQUIRE(balancer.set_healthy(ref_of(balancer, out[1]), false));
  fail_times(balancer, ref_of(balancer, out[2]), 5, kStart);
  REQUIRE(balancer.stats(ref_of(balancer, out[2]))->ejected);

  const std::map<std::string, int> picks = spread(balancer, 100000, kStart + 1s);
  for (const std::string& id : out)
    CHECK(picks.count(id) == 0);
  CHECK(picks.size() == 7);
  for (const auto& [id, count] : picks)
    CHECK(count > 100000 / 7 * 0.9);
}

TEST_CASE("power of two choices spreads idle picks by weight and avoids load") {
  BalancerConfig config = config_of(BalancerPolicy::power_of_two_choices, kWeighted532);
  config.seed = 7;
  Balancer balancer = make(config);
  check_532(spread(balancer, 100000), 100000);

  // With two endpoints both are always compared, so the loaded one never wins.
  Balancer pair = make(config_of(BalancerPolicy::power_of_two_choices, {{"a", 1}, {"b", 1}}));
  for (int i = 0; i < 10; ++i)
    pair.on_request_start(ref_of(pair, "a"));
  for (int i = 0; i < 1000; ++i)
    CHECK(pick_id(pair) == "b");

  // The two candidates are always distinct, so a loaded endpoint always
  // meets an idle one here and never wins.
  Balancer wide = make(config_of(BalancerPolicy::power_of_two_choices, numbered(5)));
  for (int i = 0; i < 3; ++i)
    wide.on_request_start(ref_of(wide, "10.0.0.0:8080"));
  const std::map<std::string, int> picks = spread(wide, 10000);
  CHECK(picks.count("10.0.0.0:8080") == 0);
}

TEST_CASE("random policies repeat for equal seeds") {
  for (const BalancerPolicy policy :
       {BalancerPolicy::power_of_two_choices, BalancerPolicy::peak_ewma}) {
    std::vector<std::string> runs;
    for (const std::uint64_t seed : {1u, 1u, 2u}) {
      BalancerConfig config = config_of(policy, numbered(10));
      config.seed = seed;
      Balancer balancer = make(config);
      std::string sequence;
      for (int i = 0; i < 50; ++i)
        sequence += pick_id(balancer) + ",";
      runs.push_back(sequence);
    }
    CHECK(runs[0] == runs[1]);
    CHECK(runs[0] != runs[2]);
  }
}

TEST_CASE("peak EWMA steers away from a slow endpoint and comes back after decay") {
  BalancerConfig config = config_of(BalancerPolicy::peak_ewma, {{"slow", 1}, {"fast", 1}});
  config.ewma_decay_time = 10s;
  Balancer balancer = make(config);
  const EndpointRef slow = ref_of(balancer, "slow");
  const EndpointRef fast = ref_of(balancer, "fast");
  const auto latency_of = [&](EndpointRef ref) { return ref == slow ? 100ms : 10ms; };

  TimePoint now = kStart;
  for (const EndpointRef ref : {slow, fast}) {
    balancer.on_request_start(ref);
    balancer.on_request_end(ref, latency_of(ref), RequestOutcome::success, now);
  }
  // Fast keeps answering in 10 ms; slow's 100 ms fades by e every 10 s and
  // drops below 10 ms after 10 s x ln 10 = 23 s.
  TimePoint first_slow_pick{};
  int slow_picks = 0;
  for (int step = 0; step < 4000; ++step) {  // 40 s of simulated time
    now += 10ms;
    const Pick pick = balancer.pick({0, now});
    balancer.on_request_start(pick.endpoint);
    balancer.on_request_end(pick.endpoint, latency_of(pick.endpoint), RequestOutcome::success, now);
    if (pick.endpoint == slow && slow_picks++ == 0) first_slow_pick = now;
  }
  REQUIRE(slow_picks > 0);
  const Duration waited = first_slow_pick - kStart;
  CHECK(waited > 22s);
  CHECK(waited < 24s);
  // The visit re-arms the peak: the next one would come 23 s later.
  CHECK(slow_picks == 1);
}

TEST_CASE("peak EWMA multiplies latency by load and probes new endpoints once") {
  Balancer balancer = make(config_of(BalancerPolicy::peak_ewma, {{"a", 1}, {"b", 1}}));
  const EndpointRef a = ref_of(balancer, "a");
  const EndpointRef b = ref_of(balancer, "b");

  // Neither has answered yet and a has a request out: b is probed instead.
  balancer.on_request_start(a);
  for (int i = 0; i < 100; ++i)
    CHECK(pick_id(balancer) == "b");

  balancer.on_request_end(a, 10ms, RequestOutcome::success, kStart);
  balancer.on_request_start(b);
  balancer.on_request_end(b, 5ms, RequestOutcome::success, kStart);
  CHECK(pick_id(balancer) == "b");
  // With three requests out, b costs 5 ms x (3 + 1) = 20 ms against a's 10 ms.
  for (int i = 0; i < 3; ++i)
    balancer.on_request_start(b);
  CHECK(pick_id(balancer) == "a");

  SUBCASE("failures and cancellations are not latency samples") {
    for (int i = 0; i < 3; ++i)
      balancer.on_request_end(b, 0ms, RequestOutcome::cancelled, kStart);
    balancer.on_request_start(a);
    balancer.on_request_end(a, 1ms, RequestOutcome::failure, kStart);
    CHECK(pick_id(balancer) == "b");  // a's fast failure did not make it look faster
  }
}

TEST_CASE("maglev maps a key to the same endpoint, in proportion to weight") {
  Balancer balancer = make(config_of(BalancerPolicy::maglev, kWeighted532));
  std::map<std::string, int> picks;
  for (int i = 0; i < 100000; ++i) {
    const std::uint64_t hash = hash_affinity_key("user-" + std::to_string(i));
    const std::string first = pick_id(balancer, kStart, hash);
    if (i < 1000) CHECK(pick_id(balancer, kStart, hash) == first);
    ++picks[first];
  }
  check_532(picks, 100000);
}

TEST_CASE("maglev moves about 1/N of the keys when one of N endpoints leaves") {
  constexpr int kKeys = 100000;
  Balancer balancer = make(config_of(BalancerPolicy::maglev, numbered(10)));
  std::vector<std::uint64_t> hashes;
  std::vector<std::string> before;
  for (int i = 0; i < kKeys; ++i) {
    hashes.push_back(hash_affinity_key("session-" + std::to_string(i)));
    before.push_back(pick_id(balancer, kStart, hashes.back()));
  }

  const std::string removed = "10.0.0.3:8080";
  REQUIRE(balancer.remove_endpoint(removed).ok());
  int moved = 0;
  int moved_elsewhere = 0;  // keys that were not on the removed endpoint
  for (int i = 0; i < kKeys; ++i) {
    const std::string after = pick_id(balancer, kStart, hashes[i]);
    CHECK(after != removed);
    if (after != before[i]) {
      ++moved;
      if (before[i] != removed) ++moved_elsewhere;
    }
  }
  const double moved_share = moved / double(kKeys);
  MESSAGE("moved " << moved_share << ", of which not on the removed endpoint "
                   << moved_elsewhere / double(kKeys));
  CHECK(moved_share > 0.09);
  CHECK(moved_share < 0.115);
  CHECK(moved_elsewhere / double(kKeys) < 0.01);

  // Adding it back restores the original mapping.
  REQUIRE(balancer.add_endpoint({removed, 1}).ok());
  int restored = 0;
  for (int i = 0; i < kKeys; ++i)
    restored += pick_id(balancer, kStart, hashes[i]) == before[i];
  CHECK(restored == kKeys);
}

TEST_CASE("maglev tables do not depend on the order endpoints were configured in") {
  std::vector<EndpointSpec> endpoints = numbered(8);
  Balancer forward = make(config_of(BalancerPolicy::maglev, endpoints));
  std::reverse(endpoints.begin(), endpoints.end());
  Balancer backward = make(config_of(BalancerPolicy::maglev, endpoints));
  for (int i = 0; i < 5000; ++i) {
    const std::uint64_t hash = hash_affinity_key(std::to_string(i));
    CHECK(pick_id(forward, kStart, hash) == pick_id(backward, kStart, hash));
  }
}

TEST_CASE("maglev sends an unavailable endpoint's keys elsewhere and leaves the others") {
  Balancer balancer = make(config_of(BalancerPolicy::maglev, numbered(5)));
  std::vector<std::string> before;
  for (int i = 0; i < 20000; ++i)
    before.push_back(pick_id(balancer, kStart, std::uint64_t(i)));
  const std::string down = "10.0.0.1:8080";
  REQUIRE(balancer.set_healthy(ref_of(balancer, down), false));
  std::map<std::string, int> rehomed;
  for (int i = 0; i < 20000; ++i) {
    const std::string now = pick_id(balancer, kStart, std::uint64_t(i));
    CHECK(now != down);
    if (before[i] == down) {
      ++rehomed[now];
    } else {
      CHECK(now == before[i]);
    }
  }
  // Its keys spread over all four others, not onto one neighbour.
  CHECK(rehomed.size() == 4);
  for (const auto& [id, count] : rehomed)
    CHECK(count > 500);

  REQUIRE(balancer.set_healthy(ref_of(balancer, down), true));
  for (int i = 0; i < 20000; ++i)
    CHECK(pick_id(balancer, kStart, std::uint64_t(i)) == before[i]);
}

TEST_CASE("outlier detection ejects after exactly K consecutive failures") {
  BalancerConfig config = config_of(BalancerPolicy::round_robin, numbered(4));
  config.outlier.consecutive_failures = 3;
  config.outlier.max_ejection_percent = 50;
  Balancer balancer = make(config);
  const EndpointRef victim = ref_of(balancer, "10.0.0.1:8080");

  fail_times(balancer, victim, 2, kStart);
  CHECK_FALSE(balancer.stats(victim)->ejected);
  CHECK(balancer.stats(victim)->consecutive_failures == 2);

  SUBCASE("a success resets the count") {
    balancer.on_request_start(victim);
    balancer.on_request_end(victim, 1ms, RequestOutcome::success, kStart);
    fail_times(balancer, victim, 2, kStart);
    CHECK_FALSE(balancer.stats(victim)->ejected);
  }
  SUBCASE("a cancellation neither counts nor resets") {
    balancer.on_request_start(victim);
    balancer.on_request_end(victim, 1ms, RequestOutcome::cancelled, kStart);
    CHECK(balancer.stats(victim)->consecutive_failures == 2);
    fail_times(balancer, victim, 1, kStart);
    CHECK(balancer.stats(victim)->ejected);
  }
  SUBCASE("the third failure ejects it and picks skip it") {
    fail_times(balancer, victim, 1, kStart);
    CHECK(balancer.stats(victim)->ejected);
    CHECK_FALSE(balancer.stats(victim)->eligible);
    CHECK(balancer.available() == 3);
    for (int i = 0; i < 100; ++i)
      CHECK_FALSE(balancer.pick({0, kStart}).endpoint == victim);
    // Answers that arrive while it is out do not lengthen the ejection.
    fail_times(balancer, victim, 10, kStart + 1s);
    CHECK(balancer.stats(victim)->times_ejected == 1);
    CHECK(balancer.stats(victim)->ejected_until == kStart + 30s);
  }
}

TEST_CASE("ejections end by time, grow with repetition and stop at the cap") {
  BalancerConfig config = config_of(BalancerPolicy::round_robin, numbered(2));
  config.outlier.consecutive_failures = 1;
  config.outlier.base_ejection_time = 10s;
  config.outlier.max_ejection_time = 25s;
  config.outlier.max_ejection_percent = 50;
  Balancer balancer = make(config);
  const EndpointRef victim = ref_of(balancer, "10.0.0.0:8080");

  TimePoint now = kStart;
  const std::array<Duration, 4> expected = {10s, 20s, 25s, 25s};
  for (const Duration duration : expected) {
    fail_times(balancer, victim, 1, now);
    REQUIRE(balancer.stats(victim)->ejected);
    CHECK(balancer.stats(victim)->ejected_until - now == duration);
    // Still out one nanosecond before the end...
    const TimePoint end = now + duration;
    for (int i = 0; i < 4; ++i)
      CHECK_FALSE(balancer.pick({0, end - 1ns}).endpoint == victim);
    // ...and back at the end, lazily, by the first pick that sees it.
    CHECK(balancer.stats(victim)->ejected);
    int victim_picks = 0;
    for (int i = 0; i < 4; ++i)
      victim_picks += balancer.pick({0, end}).endpoint == victim;
    CHECK(victim_picks == 2);
    CHECK_FALSE(balancer.stats(victim)->ejected);
    now = end;
  }

  SUBCASE("time back in rotation forgives past ejections") {
    REQUIRE(balancer.stats(victim)->times_ejected == 3);  // held at the cap
    // Two base periods forgive two of the three; the next ejection is the second.
    now += 20s;
    fail_times(balancer, victim, 1, now);
    CHECK(balancer.stats(victim)->ejected_until - now == 20s);
  }
}

TEST_CASE("ejections keep growing when max / base exceeds 32 bits") {
  // 2^32 base periods fit under the cap: a 32-bit count of them once wrapped
  // to 0, which held every ejection at the base time.
  BalancerConfig config = config_of(BalancerPolicy::round_robin, numbered(2));
  config.outlier.consecutive_failures = 1;
  config.outlier.base_ejection_time = 1ns;
  config.outlier.max_ejection_time = Duration(std::int64_t{1} << 32);
  config.outlier.max_ejection_percent = 50;
  Balancer balancer = make(config);
  const EndpointRef victim = ref_of(balancer, "10.0.0.0:8080");

  fail_times(balancer, victim, 1, kStart);
  CHECK(balancer.stats(victim)->ejected_until - kStart == 1ns);
  CHECK(balancer.pick({0, kStart + 1ns}).found);  // the ejection ends
  REQUIRE_FALSE(balancer.stats(victim)->ejected);
  fail_times(balancer, victim, 1, kStart + 1ns);
  CHECK(balancer.stats(victim)->ejected_until - (kStart + 1ns) == 2ns);
}

TEST_CASE("an ejection near the end of time saturates instead of overflowing") {
  Balancer balancer = make(config_of(BalancerPolicy::round_robin, numbered(2)));
  const EndpointRef victim = ref_of(balancer, "10.0.0.0:8080");
  const TimePoint late = TimePoint::max() - 1s;  // base_ejection_time is 30 s
  fail_times(balancer, victim, 5, late);
  REQUIRE(balancer.stats(victim)->ejected);
  CHECK(balancer.stats(victim)->ejected_until == TimePoint::max());
  for (int i = 0; i < 4; ++i)
    CHECK_FALSE(balancer.pick({0, late}).endpoint == victim);
  CHECK(balancer.stats(victim)->ejected);
}

TEST_CASE("max_ejection_percent caps the ejected share") {
  BalancerConfig config = config_of(BalancerPolicy::power_of_two_choices, numbered(10));
  config.outlier.consecutive_failures = 2;
  config.outlier.max_ejection_percent = 20;
  config.outlier.base_ejection_time = 10s;
  config.outlier.max_ejection_time = 10s;
  Balancer balancer = make(config);
  std::vector<EndpointRef> refs;
  for (int i = 0; i < 3; ++i)
    refs.push_back(ref_of(balancer, "10.0.0." + std::to_string(i) + ":8080"));

  fail_times(balancer, refs[0], 2, kStart);
  fail_times(balancer, refs[1], 2, kStart + 1s);
  fail_times(balancer, refs[2], 5, kStart + 2s);
  CHECK(balancer.stats(refs[0])->ejected);
  CHECK(balancer.stats(refs[1])->ejected);
  CHECK_FALSE(balancer.stats(refs[2])->ejected);  // 3 of 10 would exceed 20%
  CHECK(balancer.available() == 8);

  // Once the first returns, the third's next failure ejects it.
  CHECK(balancer.pick({0, kStart + 10s}).found);
  CHECK_FALSE(balancer.stats(refs[0])->ejected);
  fail_times(balancer, refs[2], 1, kStart + 10s);
  CHECK(balancer.stats(refs[2])->ejected);

  SUBCASE("small pools may always eject one, and 0% ejects none") {
    BalancerConfig small = config_of(BalancerPolicy::round_robin, numbered(3));
    small.outlier.consecutive_failures = 1;  // 10% of 3 rounds down to 0
    Balancer three = make(small);
    fail_times(three, ref_of(three, "10.0.0.0:8080"), 1, kStart);
    fail_times(three, ref_of(three, "10.0.0.1:8080"), 1, kStart);
    CHECK(three.available() == 2);

    small.outlier.max_ejection_percent = 0;
    Balancer none = make(small);
    fail_times(none, ref_of(none, "10.0.0.0:8080"), 10, kStart);
    CHECK(none.available() == 3);

    small.outlier.max_ejection_percent = 100;
    small.outlier.consecutive_failures = 0;  // disabled
    Balancer disabled = make(small);
    fail_times(disabled, ref_of(disabled, "10.0.0.0:8080"), 100, kStart);
    CHECK(disabled.available() == 3);
  }
}

TEST_CASE("panic mode spreads over all endpoints when too few are available") {
  Balancer balancer = make(config_of(BalancerPolicy::round_robin, numbered(4)));
  const auto ref = [&](int i) { return ref_of(balancer, "10.0.0." + std::to_string(i) + ":8080"); };

  // 2 of 4 available is exactly the 0.5 threshold: not panic.
  REQUIRE(balancer.set_healthy(ref(0), false));
  REQUIRE(balancer.set_healthy(ref(1), false));
  CHECK_FALSE(balancer.in_panic());
  std::map<std::string, int> picks;
  for (int i = 0; i < 100; ++i) {
    const Pick pick = balancer.pick({0, kStart});
    CHECK_FALSE(pick.panic);
    ++picks[id_of(balancer, pick.endpoint)];
  }
  CHECK(picks.size() == 2);
  CHECK(picks.count("10.0.0.0:8080") == 0);

  // 1 of 4 is below: every endpoint takes its share again.
  REQUIRE(balancer.set_healthy(ref(2), false));
  CHECK(balancer.in_panic());
  picks.clear();
  for (int i = 0; i < 100; ++i) {
    const Pick pick = balancer.pick({0, kStart});
    CHECK(pick.panic);
    ++picks[id_of(balancer, pick.endpoint)];
  }
  CHECK(picks.size() == 4);
  for (const auto& [id, count] : picks)
    CHECK(count == 25);

  REQUIRE(balancer.set_healthy(ref(2), true));
  CHECK_FALSE(balancer.in_panic());
  CHECK_FALSE(balancer.pick({0, kStart}).panic);
}

TEST_CASE("panic disabled: with nothing available, no endpoint is found") {
  BalancerConfig config = config_of(BalancerPolicy::least_request, numbered(3));
  config.panic_threshold = 0.0;
  Balancer balancer = make(config);
  for (const EndpointRef ref : balancer.endpoints())
    REQUIRE(balancer.set_healthy(ref, false));
  const Pick pick = balancer.pick({0, kStart});
  CHECK_FALSE(pick.found);
  CHECK_FALSE(pick);
  CHECK_FALSE(pick.panic);
  CHECK(balancer.available() == 0);

  REQUIRE(balancer.set_healthy(balancer.endpoints()[1], true));
  CHECK(pick_id(balancer) == "10.0.0.1:8080");
}

TEST_CASE("panic counts ejected endpoints and works for every policy") {
  for (const BalancerPolicy policy :
       {BalancerPolicy::round_robin, BalancerPolicy::weighted_round_robin,
        BalancerPolicy::least_request, BalancerPolicy::power_of_two_choices,
        BalancerPolicy::peak_ewma, BalancerPolicy::maglev}) {
    CAPTURE(balancer_policy_name(policy));
    BalancerConfig config = config_of(policy, numbered(4));
    config.outlier.consecutive_failures = 1;
    config.outlier.max_ejection_percent = 100;
    Balancer balancer = make(config);
    for (const EndpointRef ref : balancer.endpoints())
      fail_times(balancer, ref, 1, kStart);
    CHECK(balancer.available() == 0);
    std::map<std::string, int> picks;
    for (int i = 0; i < 400; ++i) {
      const Pick pick = balancer.pick({hash_affinity_key(std::to_string(i)), kStart + 1s});
      REQUIRE(pick.found);
      CHECK(pick.panic);
      ++picks[id_of(balancer, pick.endpoint)];
    }
    CHECK(picks.size() == 4);
    // After the ejections end, the pool is whole again.
    CHECK_FALSE(balancer.pick({0, kStart + 31s}).panic);
    CHECK(balancer.available() == 4);
  }
}

TEST_CASE("hash_affinity_key is stable and spreads keys") {
  // Pinned: a change to the function would move every sticky session of
  // every deployment on upgrade.
  CHECK(hash_affinity_key("") == 0xd03fc4cbadf25602ULL);
  CHECK(hash_affinity_key("10.1.2.3") == 0x13d59d08ca27a50fULL);
  CHECK(hash_affinity_key("session=abc123") == 0x41e292acb01ff6cbULL);
  CHECK(hash_affinity_key("a fairly long cookie value, longer than 16 bytes") ==
        0x2300ee02651eaa40ULL);
  CHECK(hash_affinity_key("") == hash_affinity_key(std::string_view("", 0)));
  CHECK(hash_affinity_key("10.1.2.3") == hash_affinity_key(std::string("10.1.2.3")));
  CHECK(hash_affinity_key("a") != hash_affinity_key("b"));
  CHECK(hash_affinity_key("abcdefgh") != hash_affinity_key(std::string_view("abcdefgh\0", 9)));
  std::map<std::uint64_t, int> buckets;
  for (int i = 0; i < 16000; ++i)
    ++buckets[hash_affinity_key("k" + std::to_string(i)) >> 60];
  CHECK(buckets.size() == 16);
  for (const auto& [bucket, count] : buckets)
    CHECK(std::abs(count - 1000) < 150);
}

TEST_CASE("picking and request accounting do not allocate, for every policy") {
  for (BalancerPolicy policy : {BalancerPolicy::round_robin, BalancerPolicy::weighted_round_robin,
                                BalancerPolicy::least_request, BalancerPolicy::power_of_two_choices,
                                BalancerPolicy::peak_ewma, BalancerPolicy::maglev}) {
    CAPTURE(balancer_policy_name(policy));
    Balancer balancer = make(config_of(policy, numbered(30, 3)));
    const EndpointRef sick = ref_of(balancer, "10.0.0.4:8080");
    const std::uint64_t before = test::allocation_count();
    TimePoint now = kStart;
    int found = 0;
    for (int i = 0; i < 2000; ++i) {
      now += 1ms;
      const Pick pick = balancer.pick({static_cast<std::uint64_t>(i) * 0x9e3779b97f4a7c15ull, now});
      found += pick.found;
      balancer.on_request_start(pick.endpoint);
      const auto outcome =
          (pick.endpoint == sick) ? RequestOutcome::failure : RequestOutcome::success;
      balancer.on_request_end(pick.endpoint, std::chrono::microseconds(100 + i % 50), outcome, now);
      if (i == 1000) balancer.set_healthy(sick, false);
    }
    CHECK(test::allocation_count() - before == 0);
    CHECK(found == 2000);
  }
}
