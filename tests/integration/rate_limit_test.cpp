// rate-limit over real sockets: the windows, the keys, plans and their daily
// quota, the response fields, and accuracy under concurrent load on
// several workers.
#include <doctest/doctest.h>

#include <array>
#include <atomic>
#include <thread>

#include "../../lib/filters/registry.hpp"
#include "gateway.hpp"
#include "headers.hpp"
#include "net.hpp"
#include "portico/filters/rate_limit.hpp"
#include "portico/filters/request_state.hpp"
#include "portico/workers.hpp"
#include "routes.hpp"

using namespace portico;
using namespace portico::test;
using namespace std::chrono_literals;
using filters::PlanConfig;
using filters::PlanLimit;
using filters::RateLimitKey;
using filters::RateLimitOptions;

namespace {

// Stands in for key-auth / jwt-auth: the consumer and plan come from test
// headers.
class FakeIdentity : public proxy::Filter {
 public:
  proxy::FilterStatus on_request_headers(proxy::RequestContext& ctx) override {
    const std::string_view consumer = ctx.request().header("x-test-consumer");
    if (consumer.empty()) return proxy::FilterStatus::next;
    filters::RequestState& s = filters::request_state(ctx);
    s.consumer = filters::keep(ctx, consumer);
    s.plan = filters::keep(ctx, ctx.request().header("x-test-plan"));
    return proxy::FilterStatus::next;
  }
};

// Counts the requests each worker serves.
class PerWorker : public proxy::Filter {
 public:
  proxy::FilterStatus on_request_headers(proxy::RequestContext& ctx) override {
    if (ctx.worker_index() < counts.size()) ++counts[ctx.worker_index()];
    return proxy::FilterStatus::next;
  }
  std::array<std::atomic<int>, 2> counts{};
};

std::shared_ptr<proxy::Filter> rate_limit(RateLimitOptions o) {
  auto f = filters::make_rate_limit(std::move(o));
  REQUIRE_MESSAGE(f, (f ? "" : f.error().message));
  return *f;
}

proxy::ServerOptions with_filter(std::shared_ptr<proxy::Filter> filter) {
  proxy::ServerOptions so;
  so.filters.push_back(std::make_shared<FakeIdentity>());
  so.filters.push_back(std::move(filter));
  so.routes.push_back(handler_route("/a/**", echo_handler()));
  so.routes.push_back(handler_route("/b/**", echo_handler()));
  return so;
}

std::string get(std::uint16_t port, const std::string& path = "/a/x",
                const std::string& headers = "") {
  return roundtrip(port, "GET " + path + " HTTP/1.1\r\nHost: a\r\n" + headers + "\r\n");
}

// How many of `n` requests are allowed.
int allowed(std::uint16_t port, int n, const std::string& path = "/a/x",
            const std::string& headers = "") {
  int ok = 0;
  for (int i = 0; i < n; ++i) {
    const int status = status_of(get(port, path, headers));
    CHECK((status == 200 || status == 429));
    ok += status == 200;
  }
  return ok;
}

}  // namespace

TEST_CASE("rate-limit: a window lets `limit` through at once, then 429 with every field") {
  RateLimitOptions o;
  o.limit_by = RateLimitKey::ip;
  o.limits = {{std::chrono::minutes(1), 3}};
  Gateway gw(with_filter(rate_limit(o)));
  for (int i = 0; i < 3; ++i) {
    const std::string r = get(gw.port());
    REQUIRE(status_of(r) == 200);
    CHECK(header_value(r, "x-ratelimit-limit") == "3");
    CHECK(header_value(r, "x-ratelimit-remaining") == std::to_string(2 - i));
    const int reset = std::stoi(header_value(r, "x-ratelimit-reset"));
    CHECK(reset >= 1);
    CHECK(reset <= 60);
    CHECK(header_value(r, "ratelimit-policy") == R"("minute";q=3;w=60)");
    CHECK(header_value(r, "ratelimit") ==
          "\"minute\";r=" + std::to_string(2 - i) + ";t=" + std::to_string(reset));
  }
  const std::string r = get(gw.port());
  CHECK(status_of(r) == 429);
  const int retry = std::stoi(header_value(r, "retry-after"));
  CHECK(retry >= 1);
  CHECK(retry <= 20);  // one request every 20 s
  CHECK(header_value(r, "x-ratelimit-remaining") == "0");
  CHECK(header_value(r, "x-ratelimit-limit") == "3");
  CHECK(header_value(r, "content-type") == "application/json");
  CHECK(body_of(r).find(R"({"error":"rate limit exceeded","request_id":")") == 0);
  CHECK(header_value(r, "ratelimit").rfind("\"minute\";r=0;t=", 0) == 0);
}

TEST_CASE("rate-limit: every window applies; refusals by a short one spare the longer ones") {
  RateLimitOptions o;
  o.limit_by = RateLimitKey::global;
  o.limits = {{std::chrono::hours(1), 5}, {1s, 2}};
  Gateway gw(with_filter(rate_limit(o)));
  // 2 a second pass; the 8 refused by the second window are not counted by
  // the hour, so the hour still has 3 left after them.
  CHECK(allowed(gw.port(), 10) == 2);
  std::this_thread::sleep_for(1100ms);
  CHECK(allowed(gw.port(), 10) == 2);
  std::this_thread::sleep_for(1100ms);
  const std::string r = get(gw.port());
  REQUIRE(status_of(r) == 200);
  // The hour is now the tightest: 0 of 5 left.
  CHECK(header_value(r, "x-ratelimit-limit") == "5");
  CHECK(header_value(r, "x-ratelimit-remaining") == "0");
  CHECK(header_value(r, "ratelimit-policy") == R"("second";q=2;w=1, "hour";q=5;w=3600)");
  CHECK(header_value(r, "ratelimit").rfind("\"hour\";r=0;t=", 0) == 0);
  const std::string refused = get(gw.port());
  CHECK(status_of(refused) == 429);
  CHECK(header_value(refused, "x-ratelimit-limit") == "5");
  CHECK(std::stoi(header_value(refused, "retry-after")) > 600);  // 12 min per request
}

TEST_CASE("rate-limit: plans override the defaults; anonymous requests count by address") {
  PlanConfig gold{"gold", {{std::chrono::minutes(1), 5}}, 0};
  PlanConfig trial{"trial", {}, 3};  // the default windows, and 3 a day
  RateLimitOptions o;
  o.limit_by = RateLimitKey::consumer;
  o.limits = {{std::chrono::minutes(1), 2}};
  o.plan_of = [&](std::string_view name) -> const PlanConfig* {
    if (name == "gold") return &gold;
    if (name == "trial") return &trial;
    return nullptr;
  };
  Gateway gw(with_filter(rate_limit(o)));
  CHECK(allowed(gw.port(), 8, "/a/x", "X-Test-Consumer: alice\r\nX-Test-Plan: gold\r\n") == 5);
  CHECK(allowed(gw.port(), 8, "/a/x", "X-Test-Consumer: bob\r\n") == 2);
  CHECK(allowed(gw.port(), 8, "/a/x", "X-Test-Consumer: carol\r\nX-Test-Plan: nosuch\r\n") == 2);
  // A consumer whose id is an address does not share the anonymous bucket.
  CHECK(allowed(gw.port(), 4, "/a/x", "X-Test-Consumer: 127.0.0.1\r\n") == 2);
  CHECK(allowed(gw.port(), 4) == 2);

  // The trial plan: the default 2 a minute, and a daily quota of 3.
  const std::string trial_headers = "X-Test-Consumer: dave\r\nX-Test-Plan: trial\r\n";
  const std::string first = get(gw.port(), "/a/x", trial_headers);
  REQUIRE(status_of(first) == 200);
  CHECK(header_value(first, "ratelimit-policy") == R"("minute";q=2;w=60, "daily";q=3;w=86400)");
  CHECK(header_value(first, "x-ratelimit-remaining") == "1");  // the minute: 1 left, the day: 2
  CHECK(header_value(first, "x-ratelimit-limit") == "2");
  const std::string gold_response =
      get(gw.port(), "/a/x", "X-Test-Consumer: erin\r\nX-Test-Plan: gold\r\n");
  CHECK(header_value(gold_response, "ratelimit-policy") == R"("minute";q=5;w=60)");
}

TEST_CASE("rate-limit: a plan's daily quota, reported and refused until the next UTC day") {
  PlanConfig trial{"trial", {{std::chrono::minutes(1), 100}}, 3};
  RateLimitOptions o;
  o.limits = {{std::chrono::minutes(1), 100}};
  o.plan_of = [&](std::string_view name) { return name == "trial" ? &trial : nullptr; };
  Gateway gw(with_filter(rate_limit(o)));
  const std::string headers = "X-Test-Consumer: dave\r\nX-Test-Plan: trial\r\n";
  for (int i = 0; i < 3; ++i) {
    const std::string r = get(gw.port(), "/a/x", headers);
    REQUIRE(status_of(r) == 200);
    CHECK(header_value(r, "x-ratelimit-limit") == "3");
    CHECK(header_value(r, "x-ratelimit-remaining") == std::to_string(2 - i));
    CHECK(header_value(r, "ratelimit").rfind("\"daily\";r=" + std::to_string(2 - i), 0) == 0);
  }
  const std::string r = get(gw.port(), "/a/x", headers);
  CHECK(status_of(r) == 429);
  const int retry = std::stoi(header_value(r, "retry-after"));
  CHECK(retry >= 1);
  CHECK(retry <= 86400);
  CHECK(header_value(r, "ratelimit").rfind("\"daily\";r=0;t=", 0) == 0);
  // Another consumer of the plan has its own quota.
  CHECK(allowed(gw.port(), 4, "/a/x", "X-Test-Consumer: frank\r\nX-Test-Plan: trial\r\n") == 3);
}

TEST_CASE("rate-limit: keys by header value (address when absent), by route, globally") {
  SUBCASE("header") {
    RateLimitOptions o;
    o.limit_by = RateLimitKey::header;
    o.header = "X-Tenant";
    o.limits = {{std::chrono::minutes(1), 2}};
    Gateway gw(with_filter(rate_limit(o)));
    CHECK(allowed(gw.port(), 4, "/a/x", "X-Tenant: t1\r\n") == 2);
    CHECK(allowed(gw.port(), 4, "/a/x", "X-Tenant: t2\r\n") == 2);
    CHECK(allowed(gw.port(), 4) == 2);
    // A tenant named like the address is not the anonymous bucket.
    CHECK(allowed(gw.port(), 4, "/a/x", "X-Tenant: 127.0.0.1\r\n") == 2);
    // A huge value is a key like any other.
    CHECK(allowed(gw.port(), 3, "/a/x", "X-Tenant: " + std::string(6000, 'k') + "\r\n") == 2);
  }
  SUBCASE("route") {
    RateLimitOptions o;
    o.limit_by = RateLimitKey::route;
    o.limits = {{std::chrono::minutes(1), 2}};
    Gateway gw(with_filter(rate_limit(o)));
    CHECK(allowed(gw.port(), 4, "/a/1") == 2);
    CHECK(allowed(gw.port(), 4, "/a/2") == 0);
    CHECK(allowed(gw.port(), 4, "/b/1") == 2);
  }
  SUBCASE("global, headers off") {
    RateLimitOptions o;
    o.limit_by = RateLimitKey::global;
    o.headers = false;
    o.limits = {{std::chrono::minutes(1), 3}};
    Gateway gw(with_filter(rate_limit(o)));
    CHECK(allowed(gw.port(), 2, "/a/1", "X-Test-Consumer: a\r\n") == 2);
    const std::string r = get(gw.port(), "/b/1");
    CHECK(status_of(r) == 200);
    CHECK_FALSE(has_header(r, "x-ratelimit-limit"));
    CHECK_FALSE(has_header(r, "ratelimit"));
    const std::string refused = get(gw.port(), "/b/1");
    CHECK(status_of(refused) == 429);
    CHECK(has_header(refused, "retry-after"));
  }
}

namespace {

// What 600 requests from six client threads (keep-alive connections of ten
// requests) got from a gateway of two workers.
struct LoadResult {
  int ok = 0;
  int refused = 0;
  int other = 0;
  int served[2] = {0, 0};  // requests each worker saw
  std::uint64_t connections = 0;
};

LoadResult load_two_workers(std::shared_ptr<proxy::Filter> limit) {
  auto per_worker = std::make_shared<PerWorker>();
  auto options = with_filter(std::move(limit));
  options.filters.insert(options.filters.begin(), per_worker);
  auto started = proxy::Workers::start(options, 2);
  REQUIRE_MESSAGE(started, (started ? "" : started.error().message));
  auto& workers = *started;
  std::atomic<int> ok{0};
  std::atomic<int> refused{0};
  std::atomic<int> other{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 6; ++t) {
    clients.emplace_back([&] {
      // Keep-alive connections, so both workers serve many requests.
      for (int c = 0; c < 10; ++c) {
        int fd = connect_to(workers->port());
        if (fd < 0) {
          ++other;
          continue;
        }
        for (int i = 0; i < 10; ++i) {
          send_all(fd, "GET /a/x HTTP/1.1\r\nHost: a\r\n\r\n");
          const std::string r =
              read_until(fd, [](const std::string& s) { return has_responses(s, 1); });
          const int status = status_of(r);
          (status == 200 ? ok : status == 429 ? refused : other)++;
        }
        ::close(fd);
      }
    });
  }
  for (auto& c : clients)
    c.join();
  workers->stop(1s);
  return {ok.load(),
          refused.load(),
          other.load(),
          {per_worker->counts[0].load(), per_worker->counts[1].load()},
          workers->stats().connections_accepted};
}

}  // namespace

TEST_CASE("rate-limit: under concurrent load on 2 workers, no more than the limit is allowed") {
  constexpr int kLimit = 50;
  RateLimitOptions o;
  o.limit_by = RateLimitKey::global;
  // One request every 72 s after the burst: nothing refills during the test.
  o.limits = {{std::chrono::hours(1), kLimit}};
  const LoadResult r = load_two_workers(rate_limit(o));
  CHECK(r.other == 0);
  CHECK(r.ok + r.refused == 600);
  CHECK(r.ok <= kLimit);
  CHECK(r.ok == kLimit);  // a fresh key with its whole burst: exactly the limit
  // Both workers took a share larger than the limit: a limit kept per
  // worker would have let up to twice as many through.
  CHECK(r.served[0] > kLimit);
  CHECK(r.served[1] > kLimit);
  MESSAGE("allowed " << r.ok << " of 600; worker 0 served " << r.served[0] << ", worker 1 "
                     << r.served[1] << ", " << r.connections << " connections");
}

TEST_CASE("rate-limit: under concurrent load on 2 workers, the daily quota is exact") {
  constexpr int kQuota = 50;
  RateLimitOptions o;
  o.limit_by = RateLimitKey::global;
  o.daily_quota = kQuota;  // the quota alone, shared by both workers
  const LoadResult r = load_two_workers(rate_limit(o));
  CHECK(r.other == 0);
  CHECK(r.ok + r.refused == 600);
  // Unless the run straddles midnight UTC, when each day may admit its own.
  CHECK(r.ok >= kQuota);
  CHECK(r.ok <= 2 * kQuota);
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  if (now % std::chrono::hours(24) > 1min) CHECK(r.ok == kQuota);
  CHECK(r.served[0] > kQuota);
  CHECK(r.served[1] > kQuota);
  MESSAGE("allowed " << r.ok << " of 600 by a daily quota of " << kQuota << "; worker 0 served "
                     << r.served[0] << ", worker 1 " << r.served[1]);
}

TEST_CASE("rate-limit: built from its JSON config, with plans from the configured consumers") {
  auto consumers =
      filters::Consumers::create({}, {PlanConfig{"gold", {{std::chrono::minutes(1), 4}}, 0}});
  REQUIRE(consumers);
  detail::PluginEnv env;
  env.consumers = *consumers;
  env.workers = 1;
  auto doc = detail::parse_json_document(R"({"limit_by": "consumer", "limits": {"minute": 2}})");
  REQUIRE(doc);
  detail::ConfigProblems problems;
  detail::JsonObject config(*doc, "plugins[0].config", problems);
  auto filter = detail::build_rate_limit(config, env);
  REQUIRE_MESSAGE(filter, problems.to_string());
  Gateway gw(with_filter(filter));
  CHECK(allowed(gw.port(), 6, "/a/x", "X-Test-Consumer: ann\r\nX-Test-Plan: gold\r\n") == 4);
  CHECK(allowed(gw.port(), 6, "/a/x", "X-Test-Consumer: ben\r\n") == 2);
}
