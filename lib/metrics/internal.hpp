// The registry's storage, shared by its two files: registration and
// handles (registry.cpp) and the text format (exposition.cpp).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "portico/metrics.hpp"

namespace portico::detail {

enum class MetricType : std::uint8_t { counter, gauge, histogram };

// Cells that never move once handed out, so handles can point at them.
// Memory comes in chunks of `shards` blocks of kMetricShardStride cells;
// block s of a chunk belongs to shard s, so a series' cells for shard s are
// s * kMetricShardStride after its shard-0 cells, and two shards never share
// a cache line.
class CellArena {
 public:
  explicit CellArena(unsigned shards) : shards_(shards) {}
  // `cells` zeroed cells per shard (at most kMetricShardStride); the
  // pointer is shard 0's first.
  std::atomic<std::uint64_t>* allocate(std::size_t cells);

 private:
  struct alignas(64) Block {
    std::atomic<std::uint64_t> cells[kMetricShardStride];
  };
  unsigned shards_;
  std::vector<std::unique_ptr<Block[]>> chunks_;
  std::size_t used_ = kMetricShardStride;  // in the last chunk; full: none yet
};

struct MetricSeries {
  std::vector<std::string> values;
  std::string labels;  // rendered and escaped: a="x",b="y"; empty without labels
  std::atomic<std::uint64_t>* cells = nullptr;
  bool hidden = false;
};

struct MetricFamily {
  MetricType type = MetricType::counter;
  std::string name;
  std::string help;
  std::vector<std::string> label_names;
  std::vector<double> bounds;                         // histograms
  std::vector<std::unique_ptr<MetricSeries>> series;  // in creation order
  std::unordered_map<std::string, MetricSeries*> by_values;

  // Cells per shard: one, or a histogram's buckets (with +Inf) and its sum.
  std::size_t cells() const noexcept {
    return type == MetricType::histogram ? bounds.size() + 2 : 1;
  }
};

class MetricsRegistryImpl {
 public:
  explicit MetricsRegistryImpl(unsigned shard_count)
      : shards(shard_count), sharded(shard_count), plain(1) {}

  Result<MetricFamily*> family(MetricType type, std::string_view name, std::string_view help,
                               std::vector<std::string> label_names,
                               std::span<const double> bounds);
  Result<MetricSeries*> series(MetricFamily& family, std::span<const std::string_view> values);
  void remove(MetricFamily& family, std::span<const std::string_view> values);
  void remove_all(MetricFamily& family);
  void render(std::string& out);

  const unsigned shards;
  std::mutex mutex;  // families, series, arenas
  CellArena sharded;
  CellArena plain;  // gauges: one cell, no shards
  std::vector<std::unique_ptr<MetricFamily>> families;

  // Held while collectors run and the text is written, so a removed
  // collector is not running once remove_collector() returns, and renders
  // do not interleave.
  std::mutex collect_mutex;
  std::vector<std::pair<std::uint64_t, std::function<void()>>> collectors;
  std::uint64_t next_collector = 1;
};

const char* metric_type_name(MetricType type);  // "counter", as in # TYPE

// The text format's pieces, exposed for the tests of the exact output.
void append_label_value(std::string& out, std::string_view value);  // \\ \" \n escaped
void append_help_text(std::string& out, std::string_view help);     // \\ \n escaped
void append_sample_value(std::string& out, double value);           // shortest, +Inf, NaN
std::string render_labels(std::span<const std::string> names,
                          std::span<const std::string_view> values);

}  // namespace portico::detail
