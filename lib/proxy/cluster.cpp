// Upstream clusters: endpoints, the balancer that picks among them, a
// circuit breaker per endpoint, the retry budget, and trusted-proxy networks.
#include <arpa/inet.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "../common/ascii.hpp"
#include "../common/mix.hpp"
#include "session.hpp"

namespace portico::proxy {

namespace {

std::string cluster_field(const ClusterOptions& co, std::string_view field) {
  return "clusters['" + co.name + "']." + std::string(field);
}

bool numeric_address(const std::string& address, std::uint16_t port, sockaddr_storage& out) {
  if (uv_ip4_addr(address.c_str(), port, reinterpret_cast<sockaddr_in*>(&out)) == 0) return true;
  return uv_ip6_addr(address.c_str(), port, reinterpret_cast<sockaddr_in6*>(&out)) == 0;
}

Status validate_retry(const ClusterOptions& co) {
  const RetryOptions& r = co.retry;
  if (r.max_retries > 10)
    return make_error(ErrorKind::invalid_argument,
                      cluster_field(co, "retry.max_retries") + ": at most 10");
  if (!(r.budget_percent >= 0.0 && r.budget_percent <= 100.0))
    return make_error(ErrorKind::invalid_argument,
                      cluster_field(co, "retry.budget_percent") + ": must be within [0, 100]");
  if (r.backoff_base < Duration::zero() || r.backoff_max < r.backoff_base)
    return make_error(ErrorKind::invalid_argument,
                      cluster_field(co, "retry.backoff_max") +
                          ": must be at least backoff_base, which must not be negative");
  for (int st : r.retry_on_statuses) {
    if (st < 100 || st > 599)
      return make_error(ErrorKind::invalid_argument, cluster_field(co, "retry.retry_on_statuses") +
                                                         ": " + std::to_string(st) +
                                                         " is not an HTTP status");
  }
  return {};
}

Status validate_health_check(const ClusterOptions& co) {
  const HealthCheckOptions& h = co.health_check;
  if (h.path.empty()) return {};
  if (h.path.front() != '/' || h.path.find_first_of(" \r\n\t") != std::string::npos)
    return make_error(ErrorKind::invalid_argument, cluster_field(co, "health_check.path") +
                                                       ": must be a path starting with '/'");
  if (h.host.find_first_of(" \r\n\t") != std::string::npos)
    return make_error(ErrorKind::invalid_argument,
                      cluster_field(co, "health_check.host") + ": must not contain whitespace");
  if (h.interval <= Duration::zero() || h.timeout <= Duration::zero())
    return make_error(ErrorKind::invalid_argument, cluster_field(co, "health_check") +
                                                       ": interval and timeout must be positive");
  if (h.healthy_threshold == 0 || h.unhealthy_threshold == 0)
    return make_error(ErrorKind::invalid_argument,
                      cluster_field(co, "health_check") + ": thresholds must be at least 1");
  if (h.min_status < 100 || h.max_status > 599 || h.min_status > h.max_status)
    return make_error(ErrorKind::invalid_argument,
                      cluster_field(co, "health_check") +
                          ": min_status..max_status must be a range of HTTP statuses");
  return {};
}

Status validate_timeouts(const ClusterOptions& co) {
  if (co.connect_timeout <= Duration::zero() || co.response_timeout <= Duration::zero() ||
      co.idle_between_bytes_timeout <= Duration::zero() || co.idle_timeout <= Duration::zero())
    return make_error(ErrorKind::invalid_argument,
                      cluster_field(co, "*_timeout") + ": timeouts must be positive");
  if (co.dns_refresh <= Duration::zero())
    return make_error(ErrorKind::invalid_argument,
                      cluster_field(co, "dns_refresh") + ": must be positive");
  return {};
}

// Endpoints given by name join the balancer only once resolved, when an
// error could no longer be returned: what they will be created with is
// checked here, with the numeric ones, so that create() refuses it.
Status validate_endpoint_settings(const ClusterOptions& co) {
  for (std::size_t i = 0; i < co.endpoints.size(); ++i) {
    const std::uint32_t weight = co.endpoints[i].weight;
    if (weight == 0 || weight > kMaxEndpointWeight)
      return make_error(ErrorKind::invalid_argument,
                        cluster_field(co, "endpoints[" + std::to_string(i) + "].weight") + ": " +
                            std::to_string(weight) + " is outside 1.." +
                            std::to_string(kMaxEndpointWeight));
  }
  if (co.breaker) {
    auto b = CircuitBreaker::create(*co.breaker);
    if (!b)
      return make_error(b.error().kind, cluster_field(co, "breaker") + ": " + b.error().message);
  }
  BalancerConfig bc;
  bc.policy = co.policy;
  bc.outlier = co.outlier;
  bc.endpoints.push_back({"endpoint", 1});
  auto b = Balancer::create(bc);
  if (!b)
    return make_error(b.error().kind, cluster_field(co, "outlier") + ": " + b.error().message);
  return {};
}

// splitmix64 over the cluster's state word (which also seeds its balancer):
// cheap, and plenty for jitter.
std::uint64_t next_random(std::uint64_t& state) noexcept {
  return detail::mix64(state += detail::kGoldenGamma);
}

}  // namespace

EndpointState* Cluster::find(EndpointRef ref) const noexcept {
  for (const auto& ep : endpoints) {
    if (ep->ref == ref && !ep->removed) return ep.get();
  }
  return nullptr;
}

EndpointState* Cluster::find_id(std::uint64_t id) const noexcept {
  for (const auto& ep : endpoints) {
    if (ep->id == id) return ep.get();
  }
  return nullptr;
}

// Adds an endpoint at `addr` to the cluster and its balancer.
Result<EndpointState*> cluster_add_endpoint(Cluster* cl, const sockaddr_storage& addr,
                                            std::size_t source) {
  const Endpoint& e = cl->options.endpoints[source];
  auto ep = std::make_unique<EndpointState>();
  ep->addr = addr;
  char ip[INET6_ADDRSTRLEN] = "";
  char label[INET6_ADDRSTRLEN + 16];
  if (addr.ss_family == AF_INET6) {
    uv_ip6_name(reinterpret_cast<const sockaddr_in6*>(&addr), ip, sizeof ip);
    std::snprintf(label, sizeof label, "[%s]:%u", ip, static_cast<unsigned>(e.port));
  } else {
    uv_ip4_name(reinterpret_cast<const sockaddr_in*>(&addr), ip, sizeof ip);
    std::snprintf(label, sizeof label, "%s:%u", ip, static_cast<unsigned>(e.port));
  }
  ep->label = label;
  ep->cluster = cl;
  ep->source = source;
  ep->id = cl->next_endpoint_id++;
  if (cl->options.breaker) {
    auto b = CircuitBreaker::create(*cl->options.breaker);
    if (!b)
      return make_error(b.error().kind,
                        cluster_field(cl->options, "breaker") + ": " + b.error().message);
    ep->breaker.emplace(std::move(*b));
  }
  EndpointSpec spec{ep->label, e.weight};
  if (!cl->balancer) {
    BalancerConfig bc;
    bc.policy = cl->options.policy;
    bc.endpoints.push_back(spec);
    bc.outlier = cl->options.outlier;
    bc.seed = cl->rng;
    auto b = Balancer::create(bc);
    if (!b)
      return make_error(b.error().kind,
                        cluster_field(cl->options, "endpoints") + ": " + b.error().message);
    cl->balancer.emplace(std::move(*b));
    ep->ref = *cl->balancer->find(spec.id);
  } else {
    auto ref = cl->balancer->add_endpoint(spec);
    if (!ref)
      return make_error(ref.error().kind,
                        cluster_field(cl->options, "endpoints") + ": " + ref.error().message);
    ep->ref = *ref;
  }
  cl->endpoints.push_back(std::move(ep));
  return cl->endpoints.back().get();
}

// Takes an endpoint out of rotation; it is freed once nothing refers to it.
void cluster_remove_endpoint(Cluster* cl, EndpointState* ep) {
  if (ep->removed) return;
  ep->removed = true;
  if (cl->balancer && cl->balancer->size() > 1) {
    (void)cl->balancer->remove_endpoint(ep->label);
  } else if (cl->balancer) {
    cl->balancer.reset();  // a balancer always has an endpoint: none left
  }
  ++ep->users;  // held while its pooled connections close
  while (ep->idle.linked())
    up_close(static_cast<UpConn*>(ep->idle.next->owner));
  endpoint_release(ep);
}

void endpoint_release(EndpointState* ep) noexcept {
  if (ep->users > 0) --ep->users;
  if (!ep->removed || ep->users != 0 || ep->idle.linked()) return;
  Cluster* cl = ep->cluster;
  auto it = std::find_if(cl->endpoints.begin(), cl->endpoints.end(),
                         [ep](const auto& p) { return p.get() == ep; });
  if (it != cl->endpoints.end()) cl->endpoints.erase(it);
}

Status validate_cluster(const ClusterOptions& co) {
  if (co.name.empty())
    return make_error(ErrorKind::invalid_argument, "clusters: a cluster has no name");
  if (auto st = validate_retry(co); !st) return st;
  if (auto st = validate_health_check(co); !st) return st;
  if (auto st = validate_timeouts(co); !st) return st;
  if (auto st = validate_endpoint_settings(co); !st) return st;
  for (std::size_t i = 0; i < co.endpoints.size(); ++i) {
    const Endpoint& e = co.endpoints[i];
    if (e.port == 0 || e.address.empty()) {
      return make_error(ErrorKind::invalid_argument,
                        cluster_field(co, "endpoints[" + std::to_string(i) + "]") +
                            ": needs an address and a port");
    }
    sockaddr_storage addr{};
    // A host name is resolved when the server starts.
    if (!numeric_address(e.address, e.port, addr) &&
        e.address.find_first_of(" /\r\n\t") != std::string::npos)
      return make_error(ErrorKind::invalid_argument,
                        cluster_field(co, "endpoints[" + std::to_string(i) + "]") + ": '" +
                            e.address + "' is neither an address nor a host name");
  }
  return {};
}

// The clusters of a validated set, for this server: endpoints given by
// address join their balancer now, named ones when resolved (start_clusters).
Status ServerImpl::make_clusters(RouteTable& t) {
  for (const ClusterOptions& co : t.set->cluster_options) {
    auto cl = std::make_unique<Cluster>();
    cl->server = this;
    cl->table = &t;
    cl->options = co;
    cl->rng ^= std::hash<std::string>{}(co.name);
    for (std::size_t i = 0; i < co.endpoints.size(); ++i) {
      sockaddr_storage addr{};
      if (!numeric_address(co.endpoints[i].address, co.endpoints[i].port, addr)) continue;
      auto ep = cluster_add_endpoint(cl.get(), addr, i);
      if (!ep) return std::move(ep).error();
    }
    t.clusters.push_back(std::move(cl));
  }
  return {};
}

namespace {

bool same_address(const sockaddr_storage& a, const sockaddr_storage& b) noexcept {
  if (a.ss_family != b.ss_family) return false;
  if (a.ss_family == AF_INET) {
    const auto* x = reinterpret_cast<const sockaddr_in*>(&a);
    const auto* y = reinterpret_cast<const sockaddr_in*>(&b);
    return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
  }
  const auto* x = reinterpret_cast<const sockaddr_in6*>(&a);
  const auto* y = reinterpret_cast<const sockaddr_in6*>(&b);
  return x->sin6_port == y->sin6_port &&
         std::memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
}

// A new answer for the host name of endpoint `source`: addresses that went
// away leave the rotation (their requests in flight finish), new ones join.
// A failed lookup keeps the addresses already known.
void cluster_update_dns(Cluster* cl, std::size_t source, int status,
                        std::span<const sockaddr_storage> addresses) {
  if (status != 0 || addresses.empty()) return;
  std::vector<EndpointState*> gone;
  for (const auto& ep : cl->endpoints) {
    if (ep->source != source || ep->removed) continue;
    const bool kept =
        std::any_of(addresses.begin(), addresses.end(),
                    [&](const sockaddr_storage& a) { return same_address(a, ep->addr); });
    if (!kept) gone.push_back(ep.get());
  }
  for (const sockaddr_storage& a : addresses) {
    const bool known = std::any_of(cl->endpoints.begin(), cl->endpoints.end(), [&](const auto& ep) {
      return ep->source == source && !ep->removed && same_address(a, ep->addr);
    });
    if (known) continue;
    auto ep = cluster_add_endpoint(cl, a, source);
    if (ep && cl->health) cl->health->add_target((*ep)->id, a, (*ep)->label);
  }
  for (EndpointState* ep : gone) {
    if (cl->health) cl->health->remove_target(ep->id);
    cluster_remove_endpoint(cl, ep);
  }
}

}  // namespace

void ServerImpl::start_clusters(RouteTable& t) {
  for (auto& owned : t.clusters) {
    Cluster* cl = owned.get();
    const ClusterOptions& co = cl->options;
    if (!co.health_check.path.empty()) {
      cl->health = std::make_unique<detail::HealthChecker>(
          loop, co.health_check, [cl](std::uint64_t id, bool healthy) {
            EndpointState* ep = cl->find_id(id);
            if (ep != nullptr && !ep->removed && cl->balancer)
              cl->balancer->set_healthy(ep->ref, healthy);
          });
      for (const auto& ep : cl->endpoints)
        cl->health->add_target(ep->id, ep->addr, ep->label);
      cl->health->start();
    }
    for (std::size_t i = 0; i < co.endpoints.size(); ++i) {
      sockaddr_storage addr{};
      const Endpoint& e = co.endpoints[i];
      if (numeric_address(e.address, e.port, addr)) continue;
      auto r = std::make_unique<detail::Resolver>(
          loop, e.address, e.port, co.dns_refresh,
          [cl, i](int status, std::span<const sockaddr_storage> addresses) {
            cluster_update_dns(cl, i, status, addresses);
          });
      r->start();
      cl->resolvers.push_back(std::move(r));
    }
  }
}

void ServerImpl::stop_clusters(RouteTable& t) {
  RouteTable* table = &t;
  auto closed = [this, table] {
    --table->closing;
    --open_handles;
    collect_retired();
    maybe_stopped();
  };
  for (auto& cl : t.clusters) {
    if (cl->health) {
      ++t.closing;
      ++open_handles;
      cl->health->stop(closed);
    }
    for (auto& r : cl->resolvers) {
      ++t.closing;
      ++open_handles;
      r->stop(closed);
    }
  }
}

// ------------------------------------------------------------- attempts

namespace {

// Takes a breaker permit for the attempt on `ep`, if it has a breaker.
bool breaker_admits(Conn* c, EndpointState* ep, TimePoint now, const char** cause) {
  if (!ep->breaker) return true;
  BreakerPermit permit = ep->breaker->try_acquire(now);
  if (!permit) {
    // breaker.hpp: an open breaker is the upstream's fault, a full
    // concurrency threshold is local overload; the answer says which.
    const bool full = permit.admission() == BreakerAdmission::rejected_max_in_flight;
    *cause = full ? "the endpoints' circuit breakers allow no more requests in flight"
                  : "the endpoints' circuit breakers are open";
    c->x->pick_failure = full ? Unavailability::breakers_full : Unavailability::breakers_open;
    // Retry-After: the soonest any rejecting breaker lets a probe through.
    const Duration wait = ep->breaker->retry_after(now);
    if (wait > Duration::zero() &&
        (c->x->retry_after == Duration::zero() || wait < c->x->retry_after))
      c->x->retry_after = wait;
    return false;
  }
  c->x->permit = permit;
  return true;
}

// An endpoint the balancer would consider, other than `avoid`, whose
// breaker admits; the scan starts at a random place so that such picks
// spread over the others.
EndpointState* pick_other(Cluster* cl, Conn* c, const EndpointState* avoid, TimePoint now,
                          const char** cause) {
  const std::size_t n = cl->endpoints.size();
  const std::size_t first = static_cast<std::size_t>(next_random(cl->rng) % n);
  for (std::size_t k = 0; k < n; ++k) {
    EndpointState* ep = cl->endpoints[(first + k) % n].get();
    if (ep == avoid || ep->removed) continue;
    const auto st = cl->balancer->stats(ep->ref);
    if (st && st->eligible && breaker_admits(c, ep, now, cause)) return ep;
  }
  return nullptr;
}

}  // namespace

EndpointState* cluster_pick(Cluster* cl, Conn* c, const EndpointState* avoid, const char** cause,
                            int* status) {
  *status = 503;
  if (!cl->balancer) {
    *cause = "the cluster has no endpoint";
    c->x->pick_failure = Unavailability::no_endpoint;
    return nullptr;
  }
  PickContext ctx;
  ctx.now = cl->server->now();
  if (cl->options.policy == BalancerPolicy::maglev) ctx.hash = hash_affinity_key(c->x->client_ip);
  *cause = "no healthy endpoint in the cluster";
  c->x->pick_failure = Unavailability::no_healthy_endpoint;
  const std::size_t size = cl->balancer->size();
  const std::size_t tries = std::min<std::size_t>(size + 2, 16);
  EndpointState* avoided = nullptr;
  for (std::size_t i = 0; i < tries; ++i) {
    Pick p = cl->balancer->pick(ctx);
    if (!p) return nullptr;
    EndpointState* ep = cl->find(p.endpoint);
    if (ep == nullptr) continue;
    if (ep == avoid && size > 1) {
      avoided = ep;
      continue;
    }
    if (breaker_admits(c, ep, ctx.now, cause)) return ep;
  }
  if (size == 1) return nullptr;
  // The policy kept choosing endpoints that had to be passed over: maglev
  // maps a key to one endpoint, and peak_ewma keeps preferring an endpoint
  // whose failures leave its latency estimate low. Any other will do, and
  // a retry goes back to the endpoint it avoids only when there is none.
  if (EndpointState* ep = pick_other(cl, c, avoid, ctx.now, cause)) return ep;
  if (avoided != nullptr && breaker_admits(c, avoided, ctx.now, cause)) return avoided;
  return nullptr;
}

void cluster_attempt_start(Conn* c, EndpointState* ep) {
  Exchange* x = c->x;
  Cluster* cl = ep->cluster;
  x->endpoint = ep;
  x->last_endpoint = ep;
  ++ep->users;
  ++x->attempts;
  ++cl->active_requests;
  if (x->is_retry) ++cl->active_retries;
  if (cl->balancer && !ep->removed) cl->balancer->on_request_start(ep->ref);
  x->attempt_start = cl->server->now();
  x->attempt_start_ns = uv_hrtime();
  x->outcome.upstream = ep->label;
  x->outcome.cluster = cl->options.name;
}

void cluster_attempt_end(Conn* c, RequestOutcome outcome) {
  Exchange* x = c->x;
  if (x == nullptr || x->endpoint == nullptr) return;
  EndpointState* ep = x->endpoint;
  Cluster* cl = ep->cluster;
  const TimePoint now = cl->server->now();
  x->outcome.upstream_duration = Duration(uv_hrtime() - x->attempt_start_ns);
  if (cl->balancer && !ep->removed)
    cl->balancer->on_request_end(ep->ref, now - x->attempt_start, outcome, now);
  if (x->permit && ep->breaker) {
    switch (outcome) {
      case RequestOutcome::success:
        ep->breaker->on_success(*x->permit, now);
        break;
      case RequestOutcome::failure:
        ep->breaker->on_failure(*x->permit, now);
        break;
      case RequestOutcome::cancelled:
        ep->breaker->on_cancel(*x->permit);
        break;
    }
  }
  x->permit.reset();
  if (cl->active_requests > 0) --cl->active_requests;
  if (x->is_retry && cl->active_retries > 0) --cl->active_retries;
  x->endpoint = nullptr;
  endpoint_release(ep);
}

bool cluster_retry_allowed(Cluster* cl) noexcept {
  const RetryOptions& r = cl->options.retry;
  const double budget = r.budget_percent / 100.0 * cl->active_requests;
  const double allowed = std::max(budget, static_cast<double>(r.budget_min_concurrent));
  return static_cast<double>(cl->active_retries) < allowed;
}

Duration cluster_backoff(Cluster* cl, std::uint32_t retry) noexcept {
  const RetryOptions& r = cl->options.retry;
  Duration ceiling = r.backoff_base;
  for (std::uint32_t i = 1; i < retry && ceiling < r.backoff_max; ++i)
    ceiling *= 2;
  ceiling = std::min(ceiling, r.backoff_max);
  if (ceiling <= Duration::zero()) return Duration::zero();
  const auto span = static_cast<std::uint64_t>(ceiling.count()) + 1;
  return Duration(static_cast<Duration::rep>(next_random(cl->rng) % span));
}

bool is_idempotent(std::string_view method) noexcept {
  return method == "GET" || method == "HEAD" || method == "OPTIONS" || method == "TRACE" ||
         method == "PUT" || method == "DELETE";
}

// ------------------------------------------------------------- networks

bool is_trusted_proxy(const ServerImpl& server, const detail::IpAddress& address) noexcept {
  for (const detail::IpNetwork& net : server.trusted)
    if (detail::network_contains(net, address)) return true;
  return false;
}

}  // namespace portico::proxy
