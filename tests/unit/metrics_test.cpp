// The metrics registry: exact Prometheus text for every type (escaping
// included), registration rules, and exact sums when several threads record
// at once.
#include "portico/metrics.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <cmath>
#include <limits>
#include <thread>
#include <vector>

#include "../support/alloc_counter.hpp"

using namespace portico;
using namespace portico::metrics;

TEST_CASE("metrics: counter text, labels in order, values escaped") {
  Registry r;
  auto f = r.counter("http_requests_total", "Requests.\nBy route \\ code.", {"route", "code"});
  REQUIRE(f);
  auto a = f->series({"/a", "200"});
  auto b = f->series({"say \"hi\"\\\n", "500"});
  REQUIRE(a);
  REQUIRE(b);
  a->inc(0);
  a->add(0, 4);
  b->inc(0);
  CHECK(r.render() ==
        "# HELP http_requests_total Requests.\\nBy route \\\\ code.\n"
        "# TYPE http_requests_total counter\n"
        "http_requests_total{route=\"/a\",code=\"200\"} 5\n"
        "http_requests_total{route=\"say \\\"hi\\\"\\\\\\n\",code=\"500\"} 1\n");
}

TEST_CASE("metrics: gauge and unlabelled series, special values") {
  Registry r;
  auto g = r.gauge("temperature", "Now.");
  auto h = r.gauge("ratio", "Things.", {"kind"});
  REQUIRE(g);
  REQUIRE(h);
  g->series()->set(-2.5);
  h->series({"a"})->set(0.1);
  h->series({"b"})->set(std::numeric_limits<double>::infinity());
  h->series({"c"})->set(std::nan(""));
  auto d = h->series({"d"});
  d->set(3);
  d->add(1.5);
  CHECK(d->value() == 4.5);
  CHECK(r.render() ==
        "# HELP temperature Now.\n"
        "# TYPE temperature gauge\n"
        "temperature -2.5\n"
        "# HELP ratio Things.\n"
        "# TYPE ratio gauge\n"
        "ratio{kind=\"a\"} 0.1\n"
        "ratio{kind=\"b\"} +Inf\n"
        "ratio{kind=\"c\"} NaN\n"
        "ratio{kind=\"d\"} 4.5\n");
}

TEST_CASE("metrics: histogram buckets are cumulative, with sum and count") {
  Registry r(2);
  const double bounds[] = {0.1, 1};
  auto f = r.histogram("latency_seconds", "Latency.", {"route"}, bounds);
  REQUIRE(f);
  auto h = f->series({"a"});
  REQUIRE(h);
  h->observe(0, 0.0625);
  h->observe(1, 0.5);
  h->observe(0, 4.0);
  h->observe(1, 0.1);  // on a bound: counted in it (le is inclusive)
  CHECK(h->count() == 4);
  CHECK(h->bucket_count(0) == 2);
  CHECK(h->bucket_count(2) == 1);
  auto empty = f->series({"b"});
  REQUIRE(empty);
  CHECK(r.render() ==
        "# HELP latency_seconds Latency.\n"
        "# TYPE latency_seconds histogram\n"
        "latency_seconds_bucket{route=\"a\",le=\"0.1\"} 2\n"
        "latency_seconds_bucket{route=\"a\",le=\"1\"} 3\n"
        "latency_seconds_bucket{route=\"a\",le=\"+Inf\"} 4\n"
        "latency_seconds_sum{route=\"a\"} 4.6625\n"
        "latency_seconds_count{route=\"a\"} 4\n"
        "latency_seconds_bucket{route=\"b\",le=\"0.1\"} 0\n"
        "latency_seconds_bucket{route=\"b\",le=\"1\"} 0\n"
        "latency_seconds_bucket{route=\"b\",le=\"+Inf\"} 0\n"
        "latency_seconds_sum{route=\"b\"} 0\n"
        "latency_seconds_count{route=\"b\"} 0\n");
}

TEST_CASE("metrics: unlabelled histogram and the default latency buckets") {
  Registry r;
  auto f = r.histogram("d_seconds", "D.", {});
  REQUIRE(f);
  auto h = f->series();
  REQUIRE(h);
  h->observe(0, std::chrono::microseconds(300));
  h->observe(0, std::chrono::milliseconds(30));
  const std::string text = r.render();
  CHECK(text.find("d_seconds_bucket{le=\"0.0005\"} 1\n") != std::string::npos);
  CHECK(text.find("d_seconds_bucket{le=\"0.025\"} 1\n") != std::string::npos);
  CHECK(text.find("d_seconds_bucket{le=\"0.05\"} 2\n") != std::string::npos);
  CHECK(text.find("d_seconds_bucket{le=\"10\"} 2\n") != std::string::npos);
  CHECK(text.find("d_seconds_bucket{le=\"+Inf\"} 2\n") != std::string::npos);
  CHECK(text.find("d_seconds_count 2\n") != std::string::npos);
  CHECK(text.find("d_seconds_sum 0.030") != std::string::npos);
  // 14 bounds and +Inf.
  std::size_t lines = 0;
  for (std::size_t p = text.find("d_seconds_bucket"); p != std::string::npos;
       p = text.find("d_seconds_bucket", p + 1))
    ++lines;
  CHECK(lines == std::size(kLatencyBuckets) + 1);
}

TEST_CASE("metrics: an empty family still says HELP and TYPE; removed series are hidden") {
  Registry r;
  auto f = r.counter("c_total", "C.", {"k"});
  REQUIRE(f);
  CHECK(r.render() == "# HELP c_total C.\n# TYPE c_total counter\n");
  auto s = f->series({"x"});
  s->add(0, 7);
  f->remove({"x"});
  CHECK(r.render() == "# HELP c_total C.\n# TYPE c_total counter\n");
  auto again = f->series({"x"});  // shown again, with its value
  CHECK(again->value() == 7);
  CHECK(r.render() == "# HELP c_total C.\n# TYPE c_total counter\nc_total{k=\"x\"} 7\n");
}

TEST_CASE("metrics: registering again returns the same family and series; conflicts refused") {
  Registry r;
  auto a = r.counter("x_total", "X.", {"route"});
  REQUIRE(a);
  a->series({"r"})->add(0, 3);
  auto b = r.counter("x_total", "X.", {"route"});
  REQUIRE(b);
  CHECK(b->series({"r"})->value() == 3);  // a reload keeps counting

  auto other_labels = r.counter("x_total", "X.", {"service"});
  REQUIRE_FALSE(other_labels);
  CHECK(other_labels.error().kind == ErrorKind::conflict);
  CHECK_FALSE(r.gauge("x_total", "X.", {"route"}));
  const double b1[] = {1, 2};
  const double b2[] = {1, 3};
  REQUIRE(r.histogram("h", "H.", {}, b1));
  CHECK(r.histogram("h", "H.", {}, b1));
  CHECK_FALSE(r.histogram("h", "H.", {}, b2));
}

TEST_CASE("metrics: invalid names, labels, buckets and label counts are errors") {
  Registry r;
  CHECK_FALSE(r.counter("", "."));
  CHECK_FALSE(r.counter("9lives", "."));
  CHECK_FALSE(r.counter("has-dash", "."));
  CHECK(r.counter("ns:sub_total", "."));  // colons are allowed in metric names
  CHECK_FALSE(r.counter("a_total", ".", {"bad-label"}));
  CHECK_FALSE(r.counter("b_total", ".", {"__reserved"}));
  CHECK_FALSE(r.counter("c_total", ".", {"x", "x"}));
  CHECK_FALSE(r.counter("d_total", ".", {"has:colon"}));
  CHECK_FALSE(r.histogram("e", ".", {"le"}));
  const double unordered[] = {1, 0.5};
  const double infinite[] = {1, std::numeric_limits<double>::infinity()};
  CHECK_FALSE(r.histogram("f", ".", {}, unordered));
  CHECK_FALSE(r.histogram("g", ".", {}, infinite));
  CHECK_FALSE(r.histogram("h", ".", {}, std::span<const double>()));
  auto f = r.counter("ok_total", ".", {"a", "b"});
  REQUIRE(f);
  CHECK_FALSE(f->series({"only one"}));
  CHECK_FALSE(f->series({"1", "2", "3"}));
  CounterFamily null_family;
  CHECK_FALSE(null_family.series());
  Counter null_counter;
  null_counter.inc(0);  // does nothing
  CHECK(null_counter.value() == 0);
}

TEST_CASE("metrics: collectors run before each render; removed ones do not") {
  Registry r;
  auto g = r.gauge("open_now", "Open.");
  REQUIRE(g);
  int runs = 0;
  const auto id = r.add_collector([&] { g->series()->set(++runs); });
  CHECK(r.render().find("open_now 1\n") != std::string::npos);
  CHECK(r.render().find("open_now 2\n") != std::string::npos);
  r.remove_collector(id);
  CHECK(r.render().find("open_now 2\n") != std::string::npos);
  CHECK(runs == 2);

  // A collector may copy in a total kept elsewhere.
  auto c = r.counter("ejections_total", "E.");
  REQUIRE(c);
  r.add_collector([&] { c->series()->set(42); });
  CHECK(r.render().find("ejections_total 42\n") != std::string::npos);
}

TEST_CASE("metrics: several threads record at once and the sums are exact") {
  constexpr unsigned kThreads = 4;
  constexpr std::uint64_t kPerThread = 200000;
  Registry r(kThreads - 1);  // one shard fewer than threads: two share one
  auto cf = r.counter("hits_total", "Hits.", {"route"});
  const double bounds[] = {0.5, 1.5};
  auto hf = r.histogram("v", "V.", {"route"}, bounds);
  REQUIRE(cf);
  REQUIRE(hf);
  const Counter c = *cf->series({"a"});
  const Histogram h = *hf->series({"a"});
  std::atomic<bool> done{false};
  // A scraper renders all along.
  std::thread scraper([&] {
    while (!done.load())
      (void)r.render();
  });
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (std::uint64_t i = 0; i < kPerThread; ++i) {
        c.inc(t);                                  // shard kThreads - 1 wraps to 0
        h.observe(t, static_cast<double>(i % 3));  // 0, 1, 2
      }
    });
  }
  for (auto& t : threads)
    t.join();
  done = true;
  scraper.join();
  CHECK(c.value() == kThreads * kPerThread);
  CHECK(h.count() == kThreads * kPerThread);
  // Values 0, 1 and 2 land one per bucket; the sums are small integers, so
  // exact in a double.
  std::uint64_t per_value = 0;
  for (std::uint64_t i = 0; i < kPerThread; ++i)
    per_value += (i % 3 == 0) ? 1 : 0;
  CHECK(h.bucket_count(0) == kThreads * per_value);
  CHECK(h.bucket_count(0) + h.bucket_count(1) + h.bucket_count(2) == kThreads * kPerThread);
  double expected_sum = 0;
  for (std::uint64_t i = 0; i < kPerThread; ++i)
    expected_sum += static_cast<double>(i % 3);
  CHECK(h.sum() == kThreads * expected_sum);
  const std::string text = r.render();
  CHECK(text.find("hits_total{route=\"a\"} 800000\n") != std::string::npos);
  CHECK(text.find("v_count{route=\"a\"} 800000\n") != std::string::npos);
}

TEST_CASE("metrics: recording allocates nothing") {
  Registry r(2);
  auto c = *r.counter("a_total", ".", {"k"})->series({"v"});
  auto h = *r.histogram("b_seconds", ".", {"k"})->series({"v"});
  auto g = *r.gauge("c", ".", {"k"})->series({"v"});
  const auto before = portico::test::allocation_count();
  for (unsigned i = 0; i < 1000; ++i) {
    c.inc(i % 2);
    h.observe(i % 2, std::chrono::microseconds(i));
    g.set(i);
    g.add(1);
  }
  CHECK(portico::test::allocation_count() == before);
  CHECK(c.value() == 1000);
}

TEST_CASE("metrics: many series spill across arena chunks and stay separate") {
  Registry r(3);
  auto f = r.histogram("many_seconds", ".", {"i"});
  REQUIRE(f);
  std::vector<Histogram> hs;
  for (int i = 0; i < 200; ++i)  // 16 cells each: several chunks
    hs.push_back(*f->series({std::to_string(i)}));
  for (int i = 0; i < 200; ++i)
    for (int k = 0; k <= i; ++k)
      hs[static_cast<std::size_t>(i)].observe(static_cast<unsigned>(k), 0.001);
  for (int i = 0; i < 200; ++i)
    CHECK(hs[static_cast<std::size_t>(i)].count() == static_cast<std::uint64_t>(i + 1));
}
