// The Balancer facade: validates configuration, owns the pool and the
// policy, and keeps the policy informed of every change to the pool.
#include "portico/balancer.hpp"

#include <map>

#include "../common/describe.hpp"
#include "policy.hpp"
#include "pool.hpp"

namespace portico {
namespace detail {

class BalancerCore {
 public:
  BalancerCore(const BalancerConfig& config, std::unique_ptr<PickPolicy> picker)
      : pool(config.panic_threshold, config.outlier),
        policy(std::move(picker)),
        kind(config.policy),
        maglev_table_size(config.maglev_table_size),
        tracks_load(policy->tracks_load()),
        tracks_latency(policy->tracks_latency()) {}

  void membership_changed() {
    pool.recompute_eligible();
    policy->membership_changed(pool);
    policy->eligible_changed(pool);
  }

  Pool pool;
  std::unique_ptr<PickPolicy> policy;
  BalancerPolicy kind;
  std::uint32_t maglev_table_size;
  bool tracks_load;
  bool tracks_latency;
};

namespace {

Error invalid(std::string message) {
  return make_error(ErrorKind::invalid_argument, std::move(message));
}

bool is_prime(std::uint32_t n) noexcept {
  if (n < 2) return false;
  for (std::uint32_t d = 2; d * d <= n; ++d) {
    if (n % d == 0) return false;
  }
  return true;
}

// `field` names the spec in messages, e.g. "BalancerConfig.endpoints[3]".
Status check_spec(const EndpointSpec& spec, const std::string& field) {
  if (spec.id.empty()) {
    return invalid(field + ".id is empty; an endpoint needs an id such as \"10.0.0.1:8080\"");
  }
  if (spec.id.size() > kMaxEndpointIdLength) {
    return invalid(field + ".id is " + std::to_string(spec.id.size()) + " bytes long; at most " +
                   std::to_string(kMaxEndpointIdLength) + " are allowed");
  }
  if (spec.weight == 0 || spec.weight > kMaxEndpointWeight) {
    return invalid(field + ".weight is " + std::to_string(spec.weight) + "; must be 1.." +
                   std::to_string(kMaxEndpointWeight) +
                   " (to drain an endpoint, mark it unhealthy or remove it)");
  }
  return {};
}

Status check_endpoints(const BalancerConfig& config) {
  const std::vector<EndpointSpec>& endpoints = config.endpoints;
  if (endpoints.empty()) {
    return invalid("BalancerConfig.endpoints is empty; at least one endpoint is required");
  }
  if (endpoints.size() > kMaxEndpoints) {
    return make_error(ErrorKind::capacity,
                      "BalancerConfig.endpoints has " + std::to_string(endpoints.size()) +
                          " endpoints; at most " + std::to_string(kMaxEndpoints) + " are allowed");
  }
  std::map<std::string_view, std::size_t> seen;
  for (std::size_t i = 0; i < endpoints.size(); ++i) {
    const std::string field = "BalancerConfig.endpoints[" + std::to_string(i) + "]";
    if (Status status = check_spec(endpoints[i], field); !status) return status;
    const auto [previous, inserted] = seen.emplace(endpoints[i].id, i);
    if (!inserted) {
      return make_error(ErrorKind::conflict, field + ".id \"" + endpoints[i].id +
                                                 "\" duplicates BalancerConfig.endpoints[" +
                                                 std::to_string(previous->second) + "].id");
    }
  }
  return {};
}

Status check_maglev(const BalancerConfig& config) {
  const std::uint32_t size = config.maglev_table_size;
  if (size > kMaxMaglevTableSize || !is_prime(size)) {
    return invalid("BalancerConfig.maglev_table_size is " + std::to_string(size) +
                   "; must be a prime no larger than " + std::to_string(kMaxMaglevTableSize) +
                   " (e.g. 65537)");
  }
  if (config.policy == BalancerPolicy::maglev && size <= config.endpoints.size()) {
    return make_error(ErrorKind::capacity, "BalancerConfig.maglev_table_size is " +
                                               std::to_string(size) + "; must exceed the " +
                                               std::to_string(config.endpoints.size()) +
                                               " endpoints (ideally 100 times over)");
  }
  return {};
}

Status check_outlier(const OutlierConfig& outlier) {
  constexpr Duration kLongest = std::chrono::hours(24 * 365);
  if (outlier.base_ejection_time <= Duration::zero() || outlier.base_ejection_time > kLongest) {
    return invalid("OutlierConfig.base_ejection_time is " + describe(outlier.base_ejection_time) +
                   "; must be positive and at most 365 days");
  }
  if (outlier.max_ejection_time < outlier.base_ejection_time ||
      outlier.max_ejection_time > kLongest) {
    return invalid("OutlierConfig.max_ejection_time is " + describe(outlier.max_ejection_time) +
                   "; must be at least base_ejection_time (" +
                   describe(outlier.base_ejection_time) + ") and at most 365 days");
  }
  if (outlier.max_ejection_percent > 100) {
    return invalid("OutlierConfig.max_ejection_percent is " +
                   std::to_string(outlier.max_ejection_percent) + "; must be 0..100");
  }
  return {};
}

Status check_config(const BalancerConfig& config) {
  if (static_cast<std::uint8_t>(config.policy) >
      static_cast<std::uint8_t>(BalancerPolicy::maglev)) {
    return invalid("BalancerConfig.policy is " +
                   std::to_string(static_cast<unsigned>(config.policy)) +
                   "; not a BalancerPolicy value");
  }
  if (Status status = check_endpoints(config); !status) return status;
  // Written so that NaN fails too.
  if (!(config.panic_threshold >= 0.0 && config.panic_threshold <= 1.0)) {
    return invalid("BalancerConfig.panic_threshold is " + describe(config.panic_threshold) +
                   "; must be within [0, 1] (0 disables panic mode)");
  }
  if (Status status = check_maglev(config); !status) return status;
  if (config.ewma_decay_time < std::chrono::milliseconds(1) ||
      config.ewma_decay_time > std::chrono::hours(1)) {
    return invalid("BalancerConfig.ewma_decay_time is " + describe(config.ewma_decay_time) +
                   "; must be between 1 ms and 1 hour");
  }
  return check_outlier(config.outlier);
}

std::unique_ptr<PickPolicy> make_policy(const BalancerConfig& config) {
  switch (config.policy) {
    case BalancerPolicy::round_robin:
      return make_round_robin(config.seed);
    case BalancerPolicy::weighted_round_robin:
      return make_weighted_round_robin();
    case BalancerPolicy::least_request:
      return make_least_request();
    case BalancerPolicy::power_of_two_choices:
      return make_power_of_two_choices(config.seed);
    case BalancerPolicy::peak_ewma:
      return make_peak_ewma(config.seed, config.ewma_decay_time);
    case BalancerPolicy::maglev:
      return make_maglev(config.maglev_table_size);
  }
  return nullptr;  // unreachable: check_config rejected other values
}

}  // namespace
}  // namespace detail

Result<Balancer> Balancer::create(const BalancerConfig& config) {
  if (Status status = detail::check_config(config); !status) return std::move(status).error();
  auto core = std::make_unique<detail::BalancerCore>(config, detail::make_policy(config));
  for (const EndpointSpec& spec : config.endpoints)
    core->pool.add(spec);
  core->membership_changed();
  return Balancer(std::move(core));
}

Balancer::Balancer(std::unique_ptr<detail::BalancerCore> core) noexcept : core_(std::move(core)) {}
Balancer::Balancer(Balancer&&) noexcept = default;
Balancer& Balancer::operator=(Balancer&&) noexcept = default;
Balancer::~Balancer() = default;

Pick Balancer::pick(const PickContext& ctx) noexcept {
  detail::Pool& pool = core_->pool;
  if (pool.end_due_ejections(ctx.now)) core_->policy->eligible_changed(pool);
  if (pool.eligible().empty()) return Pick{};
  const std::uint32_t slot = core_->policy->pick(pool, ctx.hash, ctx.now);
  return Pick{pool.ref(slot), true, pool.panic()};
}

bool Balancer::on_request_start(EndpointRef endpoint) noexcept {
  detail::Pool& pool = core_->pool;
  if (!pool.is_current(endpoint)) return false;
  pool.request_started(endpoint.slot);
  if (core_->tracks_load) core_->policy->load_changed(pool, endpoint.slot);
  return true;
}

bool Balancer::on_request_end(EndpointRef endpoint, Duration latency, RequestOutcome outcome,
                              TimePoint now) noexcept {
  detail::Pool& pool = core_->pool;
  if (!pool.is_current(endpoint)) return false;
  bool eligible_changed = pool.end_due_ejections(now);
  pool.request_ended(endpoint.slot);
  if (core_->tracks_latency && outcome == RequestOutcome::success) {
    core_->policy->latency_sampled(endpoint.slot, latency, now);
  }
  eligible_changed |= pool.record_outcome(endpoint.slot, outcome, now);
  if (eligible_changed) {
    core_->policy->eligible_changed(pool);  // rebuilds with the new count
  } else if (core_->tracks_load) {
    core_->policy->load_changed(pool, endpoint.slot);
  }
  return true;
}

bool Balancer::set_healthy(EndpointRef endpoint, bool healthy) noexcept {
  detail::Pool& pool = core_->pool;
  if (!pool.is_current(endpoint)) return false;
  if (pool.set_healthy(endpoint.slot, healthy)) core_->policy->eligible_changed(pool);
  return true;
}

Result<EndpointRef> Balancer::add_endpoint(const EndpointSpec& spec) {
  detail::Pool& pool = core_->pool;
  if (Status status = detail::check_spec(spec, "add_endpoint: EndpointSpec"); !status) {
    return std::move(status).error();
  }
  if (pool.find(spec.id) != detail::kNoSlot) {
    return make_error(ErrorKind::conflict,
                      "add_endpoint: an endpoint with id \"" + spec.id + "\" is already present");
  }
  if (pool.live_count() >= kMaxEndpoints) {
    return make_error(ErrorKind::capacity, "add_endpoint: the balancer already holds " +
                                               std::to_string(kMaxEndpoints) +
                                               " endpoints, the most allowed");
  }
  if (core_->kind == BalancerPolicy::maglev && pool.live_count() + 1 >= core_->maglev_table_size) {
    return make_error(ErrorKind::capacity,
                      "add_endpoint: maglev_table_size " +
                          std::to_string(core_->maglev_table_size) + " must exceed the " +
                          std::to_string(pool.live_count() + 1) + " endpoints");
  }
  const std::uint32_t slot = pool.add(spec);
  core_->membership_changed();
  return pool.ref(slot);
}

Status Balancer::remove_endpoint(std::string_view id) {
  detail::Pool& pool = core_->pool;
  const std::uint32_t slot = pool.find(id);
  if (slot == detail::kNoSlot) {
    return make_error(ErrorKind::not_found,
                      "remove_endpoint: no endpoint has id \"" + std::string(id) + "\"");
  }
  if (pool.live_count() == 1) {
    return detail::invalid(
        "remove_endpoint: \"" + std::string(id) +
        "\" is the last endpoint; a balancer keeps at least one (mark it unhealthy "
        "to drain the pool)");
  }
  pool.remove(slot);
  core_->membership_changed();
  return {};
}

std::optional<EndpointRef> Balancer::find(std::string_view id) const noexcept {
  const std::uint32_t slot = core_->pool.find(id);
  if (slot == detail::kNoSlot) return std::nullopt;
  return core_->pool.ref(slot);
}

std::optional<EndpointStats> Balancer::stats(EndpointRef endpoint) const noexcept {
  const detail::Pool& pool = core_->pool;
  if (!pool.is_current(endpoint)) return std::nullopt;
  const detail::EndpointState& state = pool.at(endpoint.slot);
  EndpointStats stats;
  stats.id = state.id;
  stats.weight = state.weight;
  stats.in_flight = state.in_flight;
  stats.healthy = state.healthy;
  stats.ejected = state.ejected;
  stats.ejected_until = state.ejected_until;
  stats.times_ejected = state.times_ejected;
  stats.consecutive_failures = state.consecutive_failures;
  stats.eligible = state.eligible;
  return stats;
}

std::vector<EndpointRef> Balancer::endpoints() const {
  const detail::Pool& pool = core_->pool;
  std::vector<EndpointRef> refs;
  refs.reserve(pool.live_count());
  for (std::uint32_t slot = 0; slot < pool.slot_count(); ++slot) {
    if (pool.at(slot).live) refs.push_back(pool.ref(slot));
  }
  return refs;
}

std::size_t Balancer::size() const noexcept {
  return core_->pool.live_count();
}
std::size_t Balancer::available() const noexcept {
  return core_->pool.available_count();
}
bool Balancer::in_panic() const noexcept {
  return core_->pool.panic();
}
BalancerPolicy Balancer::policy() const noexcept {
  return core_->kind;
}

namespace {

std::uint64_t load_le64(const unsigned char* p) noexcept {
  std::uint64_t word = 0;
  for (int i = 7; i >= 0; --i)
    word = (word << 8) | p[i];
  return word;
}

std::uint64_t rotl(std::uint64_t x, int r) noexcept {
  return (x << r) | (x >> (64 - r));
}

}  // namespace

// Part of the contract (maglev tables and affinity agree across processes
// and releases): changing this function moves every key.
std::uint64_t hash_affinity_key(std::string_view key) noexcept {
  constexpr std::uint64_t k1 = 0x87c37b91114253d5ULL;
  constexpr std::uint64_t k2 = 0x4cf5ad432745937fULL;
  const auto* bytes = reinterpret_cast<const unsigned char*>(key.data());
  const std::size_t size = key.size();
  std::uint64_t h = 0x243f6a8885a308d3ULL ^ (size * k2);
  std::size_t i = 0;
  for (; i + 8 <= size; i += 8)
    h = rotl(h ^ (load_le64(bytes + i) * k1), 31) * k2;
  std::uint64_t tail = 0;
  for (std::size_t j = size; j > i; --j)
    tail = (tail << 8) | bytes[j - 1];
  h = rotl(h ^ (tail * k1), 31) * k2;
  return detail::mix64(h);
}

}  // namespace portico
