// The observe filter over real sockets: requests counted by route, service
// and status class, latency histograms, the JSON access log (fields, no
// query string or credentials, buffered writes), the endpoint and connection
// families fed at scrape time, and on_log without heap allocation.
#include <doctest/doctest.h>
#include <picojson.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <new>
#include <sstream>

#include "../../lib/gateway/observe.hpp"
#include "alloc_counter.hpp"
#include "gateway.hpp"
#include "net.hpp"
#include "portico/filters/request_state.hpp"
#include "portico/workers.hpp"
#include "routes.hpp"

using namespace portico;
using namespace portico::test;
using namespace std::chrono_literals;

namespace {

// A file in the temporary directory, removed at the end.
class TempFile {
 public:
  explicit TempFile(const std::string& stem) {
    static std::atomic<int> serial{0};
    path_ = (std::filesystem::temp_directory_path() /
             (stem + "-" + std::to_string(::getpid()) + "-" + std::to_string(serial++) + ".log"))
                .string();
    std::filesystem::remove(path_);
  }
  ~TempFile() { std::filesystem::remove(path_); }
  const std::string& path() const { return path_; }
  std::string read() const {
    std::ifstream in(path_);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

 private:
  std::string path_;
};

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  for (std::size_t nl = text.find('\n'); nl != std::string::npos; nl = text.find('\n', start)) {
    lines.push_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  return lines;
}

picojson::object parse_line(const std::string& line) {
  picojson::value v;
  const std::string err = picojson::parse(v, line);
  REQUIRE_MESSAGE(err.empty(), err << " in " << line);
  REQUIRE(v.is<picojson::object>());
  return v.get<picojson::object>();
}

std::string text(const picojson::object& o, const std::string& key) {
  auto it = o.find(key);
  REQUIRE_MESSAGE(it != o.end(), "missing " << key);
  REQUIRE_MESSAGE(it->second.is<std::string>(), key << " is not a string");
  return it->second.get<std::string>();
}

double number(const picojson::object& o, const std::string& key) {
  auto it = o.find(key);
  REQUIRE_MESSAGE(it != o.end(), "missing " << key);
  REQUIRE_MESSAGE(it->second.is<double>(), key << " is not a number");
  return it->second.get<double>();
}

// "2024-05-01T12:03:04.056Z" (digits where the pattern has 9).
bool is_rfc3339_ms(const std::string& t) {
  const std::string_view pattern = "9999-99-99T99:99:99.999Z";
  if (t.size() != pattern.size()) return false;
  for (std::size_t i = 0; i < t.size(); ++i) {
    const bool digit = t[i] >= '0' && t[i] <= '9';
    if (pattern[i] == '9' ? !digit : t[i] != pattern[i]) return false;
  }
  return true;
}

std::uint64_t requests(const detail::GatewayMetrics& m, std::string_view route,
                       std::string_view service, std::string_view code_class) {
  return m.requests.series({route, service, code_class})->value();
}

// What an authentication and a tracing filter would have left for the log.
class Identify final : public proxy::Filter {
 public:
  proxy::FilterStatus on_request_headers(proxy::RequestContext& ctx) override {
    if (ctx.request().header("authorization").empty()) return proxy::FilterStatus::next;
    filters::RequestState& s = filters::request_state(ctx);
    s.consumer = "alice";
    s.request_id = filters::keep(ctx, "req-7f3a");
    s.trace_id = "0af7651916cd43dd8448eb211c80319c";
    s.service = "users";
    return proxy::FilterStatus::next;
  }
};

// Runs the observe filter's on_log with allocation counting on.
class Counted final : public proxy::Filter {
 public:
  explicit Counted(std::shared_ptr<proxy::Filter> inner) : inner_(std::move(inner)) {}
  void on_log(const proxy::RequestContext& ctx) override {
    portico::test::set_thread_counting(true);
    inner_->on_log(ctx);
    portico::test::set_thread_counting(false);
  }

 private:
  std::shared_ptr<proxy::Filter> inner_;
};

// Counts the requests whose on_log has run; placed after the observe
// filter, it counts only once observe's on_log is complete.
class Logged final : public proxy::Filter {
 public:
  void on_log(const proxy::RequestContext&) override { ++count; }
  // Waits (bounded) until `n` requests are logged.
  bool wait_for(int n) const {
    for (int i = 0; i < 400 && count.load() < n; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    return count.load() >= n;
  }
  std::atomic<int> count{0};
};

std::string get(std::uint16_t port, const std::string& target, const std::string& extra = "") {
  return roundtrip(port, "GET " + target + " HTTP/1.1\r\nHost: a\r\n" + extra + "\r\n");
}

}  // namespace

TEST_CASE("observe: requests by route, service and status class; histograms; bytes") {
  Upstream up([](const std::string& request) {
    if (request.rfind("GET /users/fail", 0) == 0)
      return std::string("HTTP/1.1 503 Service Unavailable\r\ncontent-length: 4\r\n\r\ndown");
    return ok_response("hello");
  });
  metrics::Registry registry;
  auto m = detail::GatewayMetrics::register_in(registry);
  REQUIRE(m);
  detail::ObserveOptions oo;
  oo.routes = {{"users", {"users"}}, {"items", {}}};
  auto observe = detail::make_observe(*m, oo);
  REQUIRE(observe);

  proxy::ServerOptions o;
  o.filters.push_back(*observe);
  o.clusters.push_back(cluster_of("users", {up.port()}));
  auto users = cluster_route("/users/**", "users");
  users.name = "users";
  o.routes.push_back(users);
  auto items = handler_route("/items", echo_handler());
  items.name = "items";
  o.routes.push_back(items);
  Gateway gw(o);

  constexpr int kOk = 7, kFail = 3, kItems = 2, kUnmatched = 4;
  for (int i = 0; i < kOk; ++i)
    CHECK(status_of(get(gw.port(), "/users/" + std::to_string(i))) == 200);
  for (int i = 0; i < kFail; ++i)
    CHECK(status_of(get(gw.port(), "/users/fail")) == 503);
  for (int i = 0; i < kItems; ++i)
    CHECK(status_of(roundtrip(gw.port(),
                              "POST /items HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc")) ==
          200);
  for (int i = 0; i < kUnmatched; ++i)
    CHECK(status_of(get(gw.port(), "/nowhere")) == 404);
  gw.stop();  // every on_log has run

  CHECK(requests(*m, "users", "users", "2xx") == kOk);
  CHECK(requests(*m, "users", "users", "5xx") == kFail);
  CHECK(requests(*m, "users", "users", "4xx") == 0);
  CHECK(requests(*m, "items", "", "2xx") == kItems);
  CHECK(requests(*m, "unmatched", "", "4xx") == kUnmatched);
  CHECK(m->request_duration.series({"users"})->count() == kOk + kFail);
  CHECK(m->request_duration.series({"items"})->count() == kItems);
  CHECK(m->request_duration.series({"unmatched"})->count() == kUnmatched);
  CHECK(m->upstream_duration.series({"users"})->count() == kOk + kFail);
  CHECK(m->upstream_duration.series({"users"})->sum() > 0);
  CHECK(m->response_bytes.series({"users", "users"})->value() == kOk * 5 + kFail * 4);
  CHECK(m->request_bytes.series({"items", ""})->value() == kItems * 3);
  CHECK(m->retries.series({"users"})->value() == 0);

  const std::string text = registry.render();
  CHECK(text.find(
            "portico_requests_total{route=\"users\",service=\"users\",code_class=\"2xx\"} 7\n") !=
        std::string::npos);
  CHECK(text.find(
            "portico_requests_total{route=\"unmatched\",service=\"\",code_class=\"4xx\"} 4\n") !=
        std::string::npos);
  CHECK(text.find("portico_request_duration_seconds_count{route=\"users\"} 10\n") !=
        std::string::npos);
  CHECK(text.find("portico_request_duration_seconds_bucket{route=\"users\",le=\"+Inf\"} 10\n") !=
        std::string::npos);
  CHECK(text.find("# TYPE portico_request_duration_seconds histogram\n") != std::string::npos);
}

TEST_CASE("observe: the access log has the expected fields and never the query or credentials") {
  Upstream up([](const std::string&) { return ok_response("hello"); });
  TempFile file("portico-access");
  detail::AccessLogOptions lo;
  lo.path = file.path();
  auto log = detail::AccessLog::open(lo, 1);
  REQUIRE(log);
  metrics::Registry registry;
  auto m = detail::GatewayMetrics::register_in(registry);
  REQUIRE(m);
  detail::ObserveOptions oo;
  oo.routes = {{"users", {"users"}}};
  oo.access_log = *log;
  auto observe = detail::make_observe(*m, oo);
  REQUIRE(observe);

  proxy::ServerOptions o;
  o.filters.push_back(std::make_shared<Identify>());
  o.filters.push_back(*observe);
  o.clusters.push_back(cluster_of("users", {up.port()}));
  auto users = cluster_route("/users/**", "users");
  users.name = "users";
  o.routes.push_back(users);
  Gateway gw(o);

  CHECK(status_of(get(gw.port(), "/users/42?api_key=sk-live-abc123&x=1",
                      "Authorization: Bearer tok-secret-xyz\r\n")) == 200);
  CHECK(status_of(get(gw.port(), "/users/\"odd\"?token=qq-secret")) == 200);
  CHECK(status_of(get(gw.port(), "/missing?key=abc")) == 404);
  gw.stop();
  (*log)->flush();

  const std::string all = file.read();
  for (const char* secret : {"sk-live-abc123", "tok-secret-xyz", "qq-secret", "api_key", "?"})
    CHECK_MESSAGE(all.find(secret) == std::string::npos, secret);
  const auto lines = lines_of(all);
  REQUIRE(lines.size() == 3);

  const picojson::object a = parse_line(lines[0]);
  CHECK(is_rfc3339_ms(text(a, "time")));
  CHECK(text(a, "request_id") == "req-7f3a");
  CHECK(text(a, "trace_id") == "0af7651916cd43dd8448eb211c80319c");
  CHECK(text(a, "consumer") == "alice");
  CHECK(text(a, "route") == "users");
  CHECK(text(a, "service") == "users");
  CHECK(text(a, "endpoint") == "127.0.0.1:" + std::to_string(up.port()));
  CHECK(text(a, "method") == "GET");
  CHECK(text(a, "path") == "/users/42");
  CHECK(number(a, "status") == 200);
  CHECK(number(a, "bytes_in") == 0);
  CHECK(number(a, "bytes_out") == 5);
  CHECK(number(a, "upstream_ms") >= 0);
  // The upstream time has the loop clock's millisecond resolution.
  CHECK(number(a, "duration_ms") + 1.0 >= number(a, "upstream_ms"));
  CHECK(number(a, "retries") == 0);
  CHECK(text(a, "client") == "127.0.0.1");
  CHECK(text(a, "error") == "");

  // No request state: the numeric request id, empty identity fields; the
  // path's quotes escaped so the line still parses.
  const picojson::object b = parse_line(lines[1]);
  CHECK(std::stoull(text(b, "request_id")) > 0);
  CHECK(text(b, "consumer") == "");
  CHECK(text(b, "trace_id") == "");
  CHECK(text(b, "service") == "users");  // from the cluster of the attempt
  CHECK(text(b, "path").find("odd") != std::string::npos);

  // Unrouted: no route, no endpoint, no upstream time.
  const picojson::object c = parse_line(lines[2]);
  CHECK(number(c, "status") == 404);
  CHECK(text(c, "route") == "");
  CHECK(text(c, "endpoint") == "");
  CHECK(c.at("upstream_ms").is<picojson::null>());
  CHECK(text(c, "path") == "/missing");
}

TEST_CASE("observe: retries are counted and logged") {
  Upstream up([](const std::string&) { return ok_response("ok"); });
  RefusingPort refusing;
  metrics::Registry registry;
  auto m = detail::GatewayMetrics::register_in(registry);
  REQUIRE(m);
  TempFile file("portico-retries");
  detail::AccessLogOptions lo;
  lo.path = file.path();
  auto log = detail::AccessLog::open(lo, 1);
  REQUIRE(log);
  detail::ObserveOptions oo;
  oo.routes = {{"r", {"svc"}}};
  oo.access_log = *log;
  auto observe = detail::make_observe(*m, oo);
  REQUIRE(observe);
  proxy::ServerOptions o;
  o.filters.push_back(*observe);
  auto cluster = cluster_of("svc", {refusing.port(), up.port()});
  cluster.retry.backoff_base = 1ms;
  cluster.retry.backoff_max = 1ms;
  cluster.outlier.consecutive_failures = 0;  // keep the refusing endpoint in rotation
  o.clusters.push_back(cluster);
  auto route = cluster_route("/**", "svc");
  route.name = "r";
  o.routes.push_back(route);
  Gateway gw(o);
  for (int i = 0; i < 6; ++i)
    CHECK(status_of(get(gw.port(), "/x")) == 200);
  gw.stop();
  (*log)->flush();

  std::uint64_t logged = 0;
  for (const std::string& line : lines_of(file.read()))
    logged += static_cast<std::uint64_t>(number(parse_line(line), "retries"));
  const std::uint64_t counted_retries = m->retries.series({"svc"})->value();
  CHECK(counted_retries >= 1);
  CHECK(counted_retries == logged);
  CHECK(requests(*m, "r", "svc", "2xx") == 6);
}

TEST_CASE("observe: the access log is buffered, flushed by size, by age and on flush()") {
  Upstream up([](const std::string&) { return ok_response("hi"); });
  metrics::Registry registry;
  auto m = detail::GatewayMetrics::register_in(registry);
  REQUIRE(m);

  auto logged = std::make_shared<Logged>();
  auto run = [&](const detail::AccessLogOptions& lo, TempFile& file, const auto& scenario) {
    auto log = detail::AccessLog::open(lo, 1);
    REQUIRE(log);
    detail::ObserveOptions oo;
    oo.routes = {{"r", {"svc"}}};
    oo.access_log = *log;
    auto observe = detail::make_observe(*m, oo);
    REQUIRE(observe);
    proxy::ServerOptions o;
    o.filters.push_back(*observe);
    o.filters.push_back(logged);
    o.clusters.push_back(cluster_of("svc", {up.port()}));
    auto route = cluster_route("/**", "svc");
    route.name = "r";
    o.routes.push_back(route);
    Gateway gw(o);
    logged->count = 0;
    scenario(gw, **log, file);
  };
  // on_log runs just after the client has its answer: wait for it.
  auto wait_for_requests = [&](int n) { REQUIRE(logged->wait_for(n)); };

  SUBCASE("nothing is written per request; flush() writes everything") {
    TempFile file("portico-buffered");
    detail::AccessLogOptions lo;
    lo.path = file.path();
    lo.flush_bytes = 1 << 20;
    lo.max_age = std::chrono::hours(1);
    run(lo, file, [&](Gateway& gw, detail::AccessLog& log, TempFile& f) {
      for (int i = 0; i < 20; ++i)
        CHECK(status_of(get(gw.port(), "/b")) == 200);
      wait_for_requests(20);
      CHECK(f.read().empty());
      log.flush();
      CHECK(lines_of(f.read()).size() == 20);
    });
  }
  SUBCASE("a buffer past flush_bytes is written at once") {
    TempFile file("portico-by-size");
    detail::AccessLogOptions lo;
    lo.path = file.path();
    lo.flush_bytes = 600;  // about two lines
    lo.max_age = std::chrono::hours(1);
    run(lo, file, [&](Gateway& gw, detail::AccessLog&, TempFile& f) {
      for (int i = 0; i < 10; ++i)
        CHECK(status_of(get(gw.port(), "/s")) == 200);
      wait_for_requests(10);
      const std::size_t written = lines_of(f.read()).size();
      CHECK(written >= 6);   // written in batches...
      CHECK(written <= 10);  // ...the last maybe not yet
    });
  }
  SUBCASE("a line older than max_age is written with the next request, or by flush_stale()") {
    TempFile file("portico-by-age");
    detail::AccessLogOptions lo;
    lo.path = file.path();
    lo.flush_bytes = 1 << 20;
    lo.max_age = 100ms;
    run(lo, file, [&](Gateway& gw, detail::AccessLog& log, TempFile& f) {
      CHECK(status_of(get(gw.port(), "/a1")) == 200);
      wait_for_requests(1);
      CHECK(f.read().empty());
      std::this_thread::sleep_for(150ms);
      CHECK(status_of(get(gw.port(), "/a2")) == 200);
      wait_for_requests(2);
      CHECK(lines_of(f.read()).size() == 2);
      CHECK(status_of(get(gw.port(), "/a3")) == 200);
      wait_for_requests(3);
      log.flush_stale();  // too young yet
      CHECK(lines_of(f.read()).size() == 2);
      std::this_thread::sleep_for(150ms);
      log.flush_stale();
      CHECK(lines_of(f.read()).size() == 3);
    });
  }
}

TEST_CASE("observe: several workers count exactly; on_log allocates nothing") {
  Upstream up([](const std::string&) { return ok_response("w"); });
  constexpr unsigned kWorkers = 2;
  metrics::Registry registry(kWorkers);
  auto m = detail::GatewayMetrics::register_in(registry);
  REQUIRE(m);
  TempFile file("portico-workers");
  detail::AccessLogOptions lo;
  lo.path = file.path();
  lo.flush_bytes = 2048;  // several writes during the run
  auto log = detail::AccessLog::open(lo, kWorkers);
  REQUIRE(log);
  detail::ObserveOptions oo;
  oo.routes = {{"w", {"users"}}};  // the service Identify names
  oo.access_log = *log;
  auto observe = detail::make_observe(*m, oo);
  REQUIRE(observe);
  proxy::ServerOptions o;
  o.filters.push_back(std::make_shared<Identify>());
  o.filters.push_back(std::make_shared<Counted>(*observe));
  o.clusters.push_back(cluster_of("svc", {up.port()}));
  auto route = cluster_route("/**", "svc");
  route.name = "w";
  o.routes.push_back(route);
  auto workers = proxy::Workers::start(o, kWorkers);
  REQUIRE(workers);

  constexpr int kClients = 4, kPerClient = 50;
  std::vector<std::thread> clients;
  std::atomic<int> ok{0};
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&] {
      int fd = connect_to((*workers)->port());
      if (fd < 0) return;
      for (int i = 0; i < kPerClient; ++i) {
        send_all(fd, "GET /x?secret=1 HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer t\r\n\r\n");
        if (status_of(read_until(fd, [](const std::string& s) { return has_responses(s, 1); })) ==
            200)
          ++ok;
      }
      ::close(fd);
    });
  }
  for (auto& t : clients)
    t.join();
  // The connection gauges come from the live server counters at scrape time.
  registry.add_collector([&] { m->set_connections((*workers)->stats()); });
  const std::string scraped = registry.render();
  CHECK(scraped.find("portico_connections_total " + std::to_string(kClients) + "\n") !=
        std::string::npos);
  (*workers)->stop(1s);
  (*log)->flush();

  CHECK(ok == kClients * kPerClient);
  CHECK(requests(*m, "w", "users", "2xx") == kClients * kPerClient);
  CHECK(m->request_duration.series({"w"})->count() == kClients * kPerClient);
  CHECK(lines_of(file.read()).size() == kClients * kPerClient);
  // The first requests warm up nothing in on_log: it never allocates.
  CHECK(portico::test::thread_counted_allocations() == 0);
}

TEST_CASE("observe: endpoint state and connections are set by a collector at scrape time") {
  metrics::Registry registry;
  auto m = detail::GatewayMetrics::register_in(registry);
  REQUIRE(m);
  std::vector<proxy::EndpointStatus> endpoints;
  proxy::EndpointStatus a;
  a.cluster = "users";
  a.endpoint = "10.0.0.1:80";
  a.ejections = 2;
  proxy::EndpointStatus a_other_worker = a;
  a_other_worker.healthy = false;
  a_other_worker.breaker = BreakerState::half_open;
  a_other_worker.ejections = 1;
  proxy::EndpointStatus b;
  b.cluster = "users";
  b.endpoint = "10.0.0.2:80";
  b.ejected = true;
  b.breaker = BreakerState::open;
  endpoints = {a, a_other_worker, b};
  registry.add_collector([&] {
    proxy::ServerStats stats;
    stats.connections_active = 3;
    stats.connections_accepted = 17;
    m->set_connections(stats);
    m->set_endpoints(endpoints);
  });
  m->rate_limit_counter("route:orders").add(0, 5);

  std::string text = registry.render();
  const char* expected[] = {
      "portico_connections_active 3\n",
      "portico_connections_total 17\n",
      "portico_upstream_endpoint_healthy{service=\"users\",endpoint=\"10.0.0.1:80\"} 0\n",
      "portico_upstream_endpoint_healthy{service=\"users\",endpoint=\"10.0.0.2:80\"} 1\n",
      "portico_upstream_endpoint_ejected{service=\"users\",endpoint=\"10.0.0.2:80\"} 1\n",
      "portico_upstream_breaker_state{service=\"users\",endpoint=\"10.0.0.1:80\"} 2\n",
      "portico_upstream_breaker_state{service=\"users\",endpoint=\"10.0.0.2:80\"} 1\n",
      "portico_upstream_outlier_ejections_total{service=\"users\",endpoint=\"10.0.0.1:80\"} 3\n",
      "portico_rate_limit_rejections_total{scope=\"route:orders\"} 5\n",
  };
  for (const char* line : expected)
    CHECK_MESSAGE(text.find(line) != std::string::npos, line);

  endpoints = {b};  // 10.0.0.1 left the cluster
  text = registry.render();
  CHECK(text.find("10.0.0.1:80") == std::string::npos);
  CHECK(text.find(
            "portico_upstream_endpoint_healthy{service=\"users\",endpoint=\"10.0.0.2:80\"} 1\n") !=
        std::string::npos);
}

TEST_CASE("observe: configuration errors and registering twice") {
  metrics::Registry registry;
  auto m = detail::GatewayMetrics::register_in(registry);
  REQUIRE(m);
  detail::ObserveOptions oo;
  oo.routes = {{"", {"svc"}}};
  auto bad = detail::make_observe(*m, oo);
  REQUIRE_FALSE(bad);
  CHECK(bad.error().message.find("routes[0].name") != std::string::npos);
  // A reload registers again and keeps the values.
  m->requests.series({"r", "s", "2xx"})->add(0, 9);
  auto again = detail::GatewayMetrics::register_in(registry);
  REQUIRE(again);
  CHECK(requests(*again, "r", "s", "2xx") == 9);
}

TEST_CASE("observe: JSON text escaping and RFC 3339 times") {
  std::string out;
  detail::append_json_text(out, "a\"b\\c\nd\x01\x7f");
  CHECK(out == "a\\\"b\\\\c\\u000ad\\u0001\\u007f");
  out.clear();
  detail::append_json_text(out, "caf\xc3\xa9 \xe2\x82\xac \xff \xc3");  // valid, valid, stray, cut
  CHECK(out == "caf\xc3\xa9 \xe2\x82\xac \\u00ff \\u00c3");
  out.clear();
  detail::append_json_text(out, "abcdef", 3);
  CHECK(out == "abc...");

  using namespace std::chrono;
  out.clear();
  detail::append_rfc3339_ms(out, system_clock::time_point{});
  CHECK(out == "1970-01-01T00:00:00.000Z");
  out.clear();
  const auto t = sys_days{year{2024} / May / 1} + 12h + 3min + 4s + 56ms + 999us;
  detail::append_rfc3339_ms(out, time_point_cast<system_clock::duration>(t));
  CHECK(out == "2024-05-01T12:03:04.056Z");
}

TEST_CASE("observe: a reload's filter reuses unchanged routes' series and counts changed ones") {
  Upstream up([](const std::string&) { return ok_response("hello"); });
  metrics::Registry registry;
  auto m = detail::GatewayMetrics::register_in(registry);
  REQUIRE(m);
  detail::ObserveOptions first;
  first.routes = {{"a", {"s1"}}, {"b", {"s1", "s2"}}, {"c", {}}};
  auto before = detail::make_observe(*m, first);
  REQUIRE(before);

  // The next configuration: a and b unchanged, c gains a service, d is new.
  detail::ObserveOptions next;
  next.routes = {{"d", {"s1"}}, {"c", {"s2"}}, {"b", {"s1", "s2"}}, {"a", {"s1"}}};
  next.previous = *before;
  auto observe = detail::make_observe(*m, next);
  REQUIRE(observe);
  before->reset();  // the new filter does not depend on the old one

  proxy::ServerOptions o;
  o.filters.push_back(*observe);
  o.clusters.push_back(cluster_of("s1", {up.port()}));
  o.clusters.push_back(cluster_of("s2", {up.port()}));
  auto route = [&](const char* name, const char* path, const char* cluster) {
    auto r = cluster_route(path, cluster);
    r.name = name;
    o.routes.push_back(r);
  };
  route("a", "/a", "s1");
  route("b", "/b", "s2");
  route("c", "/c", "s2");
  route("d", "/d", "s1");
  auto handler = handler_route("/b-local", echo_handler());
  handler.name = "b";
  o.routes.push_back(handler);
  Gateway gw(o);
  for (const char* path : {"/a", "/a", "/b", "/b-local", "/c", "/d"})
    CHECK(status_of(get(gw.port(), path)) == 200);
  gw.stop();

  CHECK(requests(*m, "a", "s1", "2xx") == 2);
  CHECK(requests(*m, "b", "s2", "2xx") == 1);
  CHECK(requests(*m, "b", "", "2xx") == 1);  // no service: the route's fallback
  CHECK(requests(*m, "c", "s2", "2xx") == 1);
  CHECK(requests(*m, "d", "s1", "2xx") == 1);
  CHECK(m->request_duration.series({"a"})->count() == 2);
  CHECK(m->upstream_duration.series({"s2"})->count() == 2);
}
