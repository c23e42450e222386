// Metrics in the Prometheus text exposition format (version 0.0.4).
//
// A Registry holds families (a name, a help text, a type and the names of
// its labels); a family holds series, one per set of label values. Families
// and series are created when a configuration is built, never per request:
// recording then goes through a small handle (Counter, Gauge, Histogram)
// that costs one relaxed atomic add on memory no other worker writes, with
// no lock and no allocation.
//
// Counters and histograms are sharded: the Registry is created with one
// shard per worker thread, and a recording names its shard (a filter passes
// RequestContext::worker_index()). Each shard's cells sit on cache lines of
// their own, so workers do not bounce lines between cores; the shards are
// summed when the registry is rendered. Recording is still exact if two
// threads share a shard (the add is atomic), only slower. A shard index past
// the last wraps around.
//
// Gauges hold one value each and are meant to be set from outside the
// request path, typically by a collector: a callback the Registry runs
// before each render (connections open now, an endpoint's health).
//
// Handles are const: recording changes the registry's cells, not the
// handle.
//
// Lifetime: handles and family objects are cheap values that point into
// the Registry; they must not be used after it is destroyed. Series are
// never freed while the Registry lives: creating the same family or series
// again (a configuration reload) returns the existing one, values included.
//
// Threading: every method is safe from any thread. Recording is lock-free;
// creating families and series, removing series and rendering take the
// registry's lock.
#pragma once

#include <atomic>
#include <bit>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "portico/clock.hpp"
#include "portico/export.hpp"
#include "portico/result.hpp"

namespace portico::detail {
class MetricsRegistryImpl;
struct MetricFamily;
// Cells of one shard of an arena chunk; shard s of a series is s *
// kMetricShardStride cells after shard 0.
inline constexpr std::size_t kMetricShardStride = 512;
}  // namespace portico::detail

namespace portico::metrics {

// The most buckets a histogram may have (besides +Inf).
inline constexpr std::size_t kMaxBuckets = 64;

// Upper bounds, in seconds, for request latencies: fine enough around the
// usual p50/p95/p99 of a gateway (sub-millisecond to a second) to estimate
// quantiles with histogram_quantile(), coarse beyond.
inline constexpr double kLatencyBuckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                             0.1,    0.25,  0.5,    1,     2.5,  5,     10};

// A monotonically increasing integer, summed over shards.
class Counter {
 public:
  Counter() noexcept = default;  // a null handle: records nothing, reads 0
  explicit operator bool() const noexcept { return cell_ != nullptr; }

  void add(unsigned shard, std::uint64_t n = 1) const noexcept {
    if (cell_ == nullptr) return;
    if (shard >= shards_) shard %= shards_;
    cell_[shard * detail::kMetricShardStride].fetch_add(n, std::memory_order_relaxed);
  }
  void inc(unsigned shard) const noexcept { add(shard, 1); }
  // Replaces the value, for a total kept elsewhere (an upstream cluster's
  // ejection count) and copied in by a collector. Not to be mixed with
  // add() on the same series.
  PORTICO_API void set(std::uint64_t total) const noexcept;
  PORTICO_API std::uint64_t value() const noexcept;

 private:
  friend class CounterFamily;
  Counter(std::atomic<std::uint64_t>* cell, unsigned shards) noexcept
      : cell_(cell), shards_(shards) {}
  std::atomic<std::uint64_t>* cell_ = nullptr;
  unsigned shards_ = 0;
};

// A value that goes up and down: one cell, not sharded.
class Gauge {
 public:
  Gauge() noexcept = default;  // a null handle
  explicit operator bool() const noexcept { return cell_ != nullptr; }

  void set(double value) const noexcept {
    if (cell_ != nullptr)
      cell_->store(std::bit_cast<std::uint64_t>(value), std::memory_order_relaxed);
  }
  PORTICO_API void add(double delta) const noexcept;
  double value() const noexcept {
    return cell_ == nullptr ? 0.0 : std::bit_cast<double>(cell_->load(std::memory_order_relaxed));
  }

 private:
  friend class GaugeFamily;
  explicit Gauge(std::atomic<std::uint64_t>* cell) noexcept : cell_(cell) {}
  std::atomic<std::uint64_t>* cell_ = nullptr;
};

// Observations counted into fixed buckets, with their sum: rendered as
// cumulative `_bucket{le=...}` lines, `_sum` and `_count`.
class Histogram {
 public:
  Histogram() noexcept = default;  // a null handle
  explicit operator bool() const noexcept { return cell_ != nullptr; }

  // Counts `value` in the first bucket whose bound is >= value (+Inf when
  // none is) and adds it to the sum.
  PORTICO_API void observe(unsigned shard, double value) const noexcept;
  // A duration in seconds.
  void observe(unsigned shard, Duration d) const noexcept {
    observe(shard, std::chrono::duration<double>(d).count());
  }
  // The observations so far, summed over shards.
  PORTICO_API std::uint64_t count() const noexcept;
  PORTICO_API double sum() const noexcept;
  // Observations in bucket `i` alone (not cumulative); i == bounds().size()
  // is the +Inf bucket.
  PORTICO_API std::uint64_t bucket_count(std::size_t i) const noexcept;
  std::span<const double> bounds() const noexcept { return {bounds_, bound_count_}; }

 private:
  friend class HistogramFamily;
  Histogram(std::atomic<std::uint64_t>* cell, unsigned shards, const double* bounds,
            std::size_t bound_count) noexcept
      : cell_(cell), bounds_(bounds), bound_count_(bound_count), shards_(shards) {}
  // Per shard: bound_count_ + 1 bucket counts, then the sum (double bits).
  std::atomic<std::uint64_t>* cell_ = nullptr;
  const double* bounds_ = nullptr;
  std::size_t bound_count_ = 0;
  unsigned shards_ = 0;
};

using LabelValues = std::initializer_list<std::string_view>;

// Family handles: cheap to copy, null by default. series() returns the
// series for the label values (one per label name, in order), creating it
// on first use; an error when the count of values is wrong. remove() hides
// a series from the output (an endpoint that is gone); asking for it again
// shows it again with its cells as they were. A collector that reports a
// changing set (the endpoints of the moment) calls remove_all() and then
// series() for each member: renders are serialised, so no render sees the
// set half made.
class PORTICO_API CounterFamily {
 public:
  CounterFamily() = default;
  Result<Counter> series(LabelValues values = {}) const;
  Result<Counter> series(std::span<const std::string_view> values) const;
  void remove(std::span<const std::string_view> values) const;
  void remove(LabelValues values) const { remove(std::span(values.begin(), values.size())); }
  void remove_all() const;

 private:
  friend class Registry;
  CounterFamily(detail::MetricsRegistryImpl* r, detail::MetricFamily* f)
      : registry_(r), family_(f) {}
  detail::MetricsRegistryImpl* registry_ = nullptr;
  detail::MetricFamily* family_ = nullptr;
};

class PORTICO_API GaugeFamily {
 public:
  GaugeFamily() = default;
  Result<Gauge> series(LabelValues values = {}) const;
  Result<Gauge> series(std::span<const std::string_view> values) const;
  void remove(std::span<const std::string_view> values) const;
  void remove(LabelValues values) const { remove(std::span(values.begin(), values.size())); }
  void remove_all() const;

 private:
  friend class Registry;
  GaugeFamily(detail::MetricsRegistryImpl* r, detail::MetricFamily* f) : registry_(r), family_(f) {}
  detail::MetricsRegistryImpl* registry_ = nullptr;
  detail::MetricFamily* family_ = nullptr;
};

class PORTICO_API HistogramFamily {
 public:
  HistogramFamily() = default;
  Result<Histogram> series(LabelValues values = {}) const;
  Result<Histogram> series(std::span<const std::string_view> values) const;
  void remove(std::span<const std::string_view> values) const;
  void remove(LabelValues values) const { remove(std::span(values.begin(), values.size())); }
  void remove_all() const;

 private:
  friend class Registry;
  HistogramFamily(detail::MetricsRegistryImpl* r, detail::MetricFamily* f)
      : registry_(r), family_(f) {}
  detail::MetricsRegistryImpl* registry_ = nullptr;
  detail::MetricFamily* family_ = nullptr;
};

class PORTICO_API Registry {
 public:
  // `shards`: the number of threads that record (0 counts as 1).
  explicit Registry(unsigned shards = 1);
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  unsigned shards() const noexcept;

  // Registers a family, or returns the one already registered under `name`
  // when its type, label names (and buckets) are the same; a different one
  // is a conflict. Names follow Prometheus: metric [a-zA-Z_:][a-zA-Z0-9_:]*,
  // label [a-zA-Z_][a-zA-Z0-9_]* not starting with "__", and a histogram's
  // labels may not include "le". Buckets are finite and strictly
  // increasing; +Inf is implicit.
  Result<CounterFamily> counter(std::string_view name, std::string_view help,
                                std::vector<std::string> label_names = {});
  Result<GaugeFamily> gauge(std::string_view name, std::string_view help,
                            std::vector<std::string> label_names = {});
  Result<HistogramFamily> histogram(std::string_view name, std::string_view help,
                                    std::vector<std::string> label_names,
                                    std::span<const double> buckets = kLatencyBuckets);

  // A collector runs at the start of every render(), on the rendering
  // thread, to set gauges (or counters with Counter::set) from state kept
  // elsewhere. It may create and remove series; it must not render nor add
  // or remove collectors (they wait for the render that runs it). The
  // returned id removes it: once remove_collector() returns the collector
  // is not running and will not run again, so what it captures may go.
  using CollectorId = std::uint64_t;
  CollectorId add_collector(std::function<void()> collect);
  void remove_collector(CollectorId id);

  // Runs the collectors, then writes every family in registration order:
  // "# HELP", "# TYPE", then its visible series in creation order. One
  // render runs at a time. The content type to serve it with is
  // kContentType.
  std::string render();
  void render(std::string& out);

  static constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";

 private:
  std::unique_ptr<detail::MetricsRegistryImpl> impl_;
};

}  // namespace portico::metrics
