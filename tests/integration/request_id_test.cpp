// request-id over real sockets: ids kept or generated, the trace context
// propagated or started, both sent upstream, echoed, and seen by the
// filters after it.
#include <doctest/doctest.h>

#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "../../lib/filters/error_response.hpp"
#include "gateway.hpp"
#include "headers.hpp"
#include "net.hpp"
#include "portico/filters/request_id.hpp"
#include "portico/filters/request_state.hpp"
#include "routes.hpp"

using namespace portico;
using namespace portico::test;

namespace {

bool is_hex(const std::string& s, std::size_t length) {
  return s.size() == length && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

std::shared_ptr<proxy::Filter> request_id_filter(filters::RequestIdOptions o = {}) {
  auto f = filters::make_request_id(std::move(o));
  REQUIRE(f);
  return *f;
}

// What a later filter sees in the shared request state, sent upstream as
// headers so the test can read it.
class StateProbe : public proxy::Filter {
 public:
  proxy::FilterStatus on_request_headers(proxy::RequestContext& ctx) override {
    const filters::RequestState* s = filters::find_request_state(ctx);
    REQUIRE(s != nullptr);
    ctx.set_request_header("x-seen-request-id", s->request_id);
    ctx.set_request_header("x-seen-trace-id", s->trace_id);
    ctx.set_request_header("x-seen-span-id", s->span_id);
    if (ctx.request().header("x-refuse") == "1") {
      detail::respond_error(ctx, 403, "refused for the test");
      return proxy::FilterStatus::respond;
    }
    return proxy::FilterStatus::next;
  }
};

struct Setup {
  explicit Setup(filters::RequestIdOptions o = {})
      : up([](const std::string&) { return ok_response("up"); }) {
    proxy::ServerOptions so;
    so.filters.push_back(request_id_filter(std::move(o)));
    so.clusters.push_back(cluster_of("svc", {up.port()}));
    auto route = cluster_route("/**", "svc");
    route.filters.push_back(std::make_shared<StateProbe>());
    so.routes.push_back(route);
    gw = std::make_unique<Gateway>(so);
  }
  std::string get(const std::string& extra_headers) {
    return roundtrip(gw->port(), "GET /a HTTP/1.1\r\nHost: a\r\n" + extra_headers + "\r\n");
  }
  std::string last_upstream_request() {
    auto all = up.requests();
    REQUIRE(!all.empty());
    return all.back();
  }
  Upstream up;
  std::unique_ptr<Gateway> gw;
};

constexpr const char* kTraceId = "4bf92f3577b34da6a3ce929d0e0e4736";
constexpr const char* kParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";

}  // namespace

TEST_CASE("request-id: without headers an id and a trace are generated, sent and echoed") {
  Setup s;
  std::set<std::string> ids;
  std::set<std::string> traces;
  for (int i = 0; i < 5; ++i) {
    const std::string r = s.get("");
    REQUIRE(status_of(r) == 200);
    const std::string q = s.last_upstream_request();
    const std::string id = header_value(q, "x-request-id");
    CHECK(is_hex(id, 32));
    CHECK(header_value(r, "x-request-id") == id);
    CHECK(header_values(q, "x-request-id").size() == 1);
    const std::string tp = header_value(q, "traceparent");
    REQUIRE(tp.size() == 55);
    CHECK(tp.rfind("00-", 0) == 0);
    CHECK(tp.substr(52) == "-01");  // new traces are sampled by default
    // The state the later filter saw is what went upstream.
    CHECK(header_value(q, "x-seen-request-id") == id);
    CHECK(header_value(q, "x-seen-trace-id") == tp.substr(3, 32));
    CHECK(header_value(q, "x-seen-span-id") == tp.substr(36, 16));
    ids.insert(id);
    traces.insert(tp.substr(3, 32));
  }
  CHECK(ids.size() == 5);
  CHECK(traces.size() == 5);
}

TEST_CASE("request-id: a valid id and trace are kept; this hop gets its own span") {
  Setup s;
  const std::string r = s.get(std::string("X-Request-ID: client-id-42\r\ntraceparent: ") + kParent +
                              "\r\ntracestate: vendor=abc,other=xyz\r\n");
  REQUIRE(status_of(r) == 200);
  const std::string q = s.last_upstream_request();
  CHECK(header_value(q, "x-request-id") == "client-id-42");
  CHECK(header_value(r, "x-request-id") == "client-id-42");
  const std::string tp = header_value(q, "traceparent");
  REQUIRE(tp.size() == 55);
  CHECK(tp.substr(3, 32) == kTraceId);
  CHECK(tp.substr(36, 16) != "00f067aa0ba902b7");
  CHECK(is_hex(tp.substr(36, 16), 16));
  CHECK(tp.substr(53) == "00");  // the client's flags
  CHECK(header_values(q, "traceparent").size() == 1);
  CHECK(header_value(q, "tracestate") == "vendor=abc,other=xyz");
  CHECK(header_value(q, "x-seen-trace-id") == kTraceId);
}

TEST_CASE("request-id: malformed ids are replaced, never forwarded") {
  Setup s;
  const std::vector<std::string> bad = {
      "X-Request-ID: " + std::string(2000, 'x') + "\r\n",  // huge
      "X-Request-ID: " + std::string(129, 'y') + "\r\n",   // just over the bound
      "X-Request-ID: has space\r\n",                       // not visible ASCII
      "X-Request-ID: caf\xc3\xa9\r\n",                     // not ASCII
      "X-Request-ID: one\r\nX-Request-ID: two\r\n",        // ambiguous
      "X-Request-ID: {\"a\":1}\r\nX-Request-ID: \r\n",     // ambiguous, one empty
  };
  for (const auto& headers : bad) {
    CAPTURE(headers.substr(0, 40));
    const std::string r = s.get(headers);
    REQUIRE(status_of(r) == 200);
    const std::string q = s.last_upstream_request();
    const auto sent = header_values(q, "x-request-id");
    REQUIRE(sent.size() == 1);
    CHECK(is_hex(sent[0], 32));
    CHECK(header_value(r, "x-request-id") == sent[0]);
  }
  // Exactly max_length is kept.
  const std::string edge(128, 'z');
  s.get("X-Request-ID: " + edge + "\r\n");
  CHECK(header_value(s.last_upstream_request(), "x-request-id") == edge);
}

TEST_CASE("request-id: a malformed traceparent starts a new trace and drops its tracestate") {
  Setup s;
  const std::vector<std::string> bad = {
      "traceparent: garbage\r\n",
      "traceparent: 00-00000000000000000000000000000000-00f067aa0ba902b7-01\r\n",
      "traceparent: 00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01\r\n",
      "traceparent: ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n",
      "traceparent: " + std::string(kParent) + "\r\ntraceparent: " + kParent + "\r\n",
      "traceparent: " + std::string(kParent) + std::string(4000, 'a') + "\r\n",
  };
  for (const auto& headers : bad) {
    CAPTURE(headers.substr(0, 60));
    const std::string r = s.get(headers + "tracestate: vendor=abc\r\n");
    REQUIRE(status_of(r) == 200);
    const std::string q = s.last_upstream_request();
    const auto sent = header_values(q, "traceparent");
    REQUIRE(sent.size() == 1);
    CHECK(sent[0].size() == 55);
    CHECK(sent[0].substr(3, 32) != kTraceId);
    CHECK(is_hex(sent[0].substr(3, 32), 32));
    CHECK(header_values(q, "tracestate").empty());
  }
}

TEST_CASE("request-id: errors of later filters carry the id; untrusted input is replaced") {
  SUBCASE("the JSON error body names the echoed id") {
    Setup s;
    const std::string r = s.get("X-Refuse: 1\r\nX-Request-ID: abc-123\r\n");
    CHECK(status_of(r) == 403);
    CHECK(header_value(r, "x-request-id") == "abc-123");
    CHECK(r.find(R"({"error":"refused for the test","request_id":"abc-123"})") !=
          std::string::npos);
  }
  SUBCASE("trust_incoming and trust_incoming_trace off") {
    filters::RequestIdOptions o;
    o.trust_incoming = false;
    o.trust_incoming_trace = false;
    o.sample_new_traces = false;
    o.header = "X-Correlation-ID";
    Setup s(o);
    const std::string r =
        s.get(std::string("X-Correlation-ID: mine\r\ntraceparent: ") + kParent + "\r\n");
    REQUIRE(status_of(r) == 200);
    const std::string q = s.last_upstream_request();
    const std::string id = header_value(q, "x-correlation-id");
    CHECK(is_hex(id, 32));
    CHECK(header_value(r, "x-correlation-id") == id);
    const std::string tp = header_value(q, "traceparent");
    CHECK(tp.substr(3, 32) != kTraceId);
    CHECK(tp.substr(53) == "00");
  }
}

namespace {

// What on_log sees of an unrouted request: the id the error body quoted.
class LogProbe : public proxy::Filter {
 public:
  void on_log(const proxy::RequestContext& ctx) override {
    const filters::RequestState* s = filters::find_request_state(ctx);
    std::lock_guard<std::mutex> lock(mutex_);
    logged_.push_back(s != nullptr ? std::string(s->request_id) : std::string("<none>"));
  }
  // The next request's id, once logged: on_log runs after the last byte
  // was written, which may be just after the client has read it.
  std::string next() {
    for (int i = 0; i < 200; ++i) {
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (read_ < logged_.size()) return logged_[read_++];
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return "<not logged>";
  }

 private:
  std::mutex mutex_;
  std::vector<std::string> logged_;
  std::size_t read_ = 0;
};

// A server with one GET route; the request-id policy either global or
// among the unrouted filters only.
struct UnroutedSetup {
  UnroutedSetup(filters::RequestIdOptions o, bool as_unrouted_filter)
      : probe(std::make_shared<LogProbe>()) {
    proxy::ServerOptions so;
    auto rid = request_id_filter(std::move(o));
    if (as_unrouted_filter) {
      so.unrouted_filters.push_back(rid);
    } else {
      so.filters.push_back(rid);
    }
    so.unrouted_filters.push_back(probe);
    so.error_formatter = detail::format_proxy_error;  // the gateway's JSON bodies
    auto route = handler_route("/only-get", echo_handler());
    route.methods = MethodSet{Method::get};
    so.routes.push_back(route);
    gw = std::make_unique<Gateway>(so);
  }
  std::string send(const std::string& request_line, const std::string& headers) {
    return roundtrip(gw->port(), request_line + "\r\nHost: a\r\n" + headers + "\r\n");
  }
  std::shared_ptr<LogProbe> probe;
  std::unique_ptr<Gateway> gw;
};

std::string error_json(const std::string& message, const std::string& id) {
  return R"({"error":")" + message + R"(","request_id":")" + id + "\"}\n";
}

}  // namespace

TEST_CASE("request-id: unrouted answers (404, 405, 400) carry the id in body, header and log") {
  for (const bool as_unrouted_filter : {false, true}) {
    CAPTURE(as_unrouted_filter);
    UnroutedSetup s({}, as_unrouted_filter);
    // The client's valid id, everywhere.
    std::string r = s.send("GET /nowhere HTTP/1.1", "X-Request-ID: client-404\r\n");
    CHECK(status_of(r) == 404);
    CHECK(header_value(r, "x-request-id") == "client-404");
    CHECK(body_of(r) == error_json("no route matches this request", "client-404"));
    CHECK(s.probe->next() == "client-404");

    r = s.send("POST /only-get HTTP/1.1", "X-Request-ID: client-405\r\nContent-Length: 0\r\n");
    CHECK(status_of(r) == 405);
    CHECK(header_value(r, "x-request-id") == "client-405");
    CHECK(body_of(r) == error_json("the route does not allow this method", "client-405"));
    CHECK(s.probe->next() == "client-405");

    // Without one (or with an invalid one): a generated id, the same in all three.
    for (const char* headers : {"", "X-Request-ID: not valid\r\n"}) {
      r = s.send("GET /nowhere HTTP/1.1", headers);
      CHECK(status_of(r) == 404);
      const std::string id = header_value(r, "x-request-id");
      CHECK(is_hex(id, 32));
      CHECK(body_of(r) == error_json("no route matches this request", id));
      CHECK(s.probe->next() == id);
    }

    // A target that is not a path is refused before routing: the same.
    r = s.send("OPTIONS * HTTP/1.1", "X-Request-ID: client-400\r\n");
    CHECK(status_of(r) == 400);
    CHECK(header_value(r, "x-request-id") == "client-400");
    CHECK(body_of(r) == error_json("the request target is not a path", "client-400"));
    CHECK(s.probe->next() == "client-400");
  }
}

TEST_CASE("request-id: unrouted answers follow trust_incoming and echo_on_response") {
  filters::RequestIdOptions o;
  o.trust_incoming = false;
  o.echo_on_response = false;
  UnroutedSetup s(o, false);
  const std::string r = s.send("GET /nowhere HTTP/1.1", "X-Request-ID: chosen-by-client\r\n");
  CHECK(status_of(r) == 404);
  CHECK_FALSE(has_header(r, "x-request-id"));
  const std::string logged = s.probe->next();
  CHECK(is_hex(logged, 32));
  CHECK(body_of(r) == error_json("no route matches this request", logged));
  CHECK(r.find("chosen-by-client") == std::string::npos);
}
