// Registration of families and series, and the recording handles.
#include <cmath>
#include <string>

#include "internal.hpp"
#include "portico/metrics.hpp"

namespace portico::detail {

namespace {

bool is_name_start(char ch, bool colon_allowed) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' ||
         (colon_allowed && ch == ':');
}

bool is_name_char(char ch, bool colon_allowed) {
  return is_name_start(ch, colon_allowed) || (ch >= '0' && ch <= '9');
}

bool valid_name(std::string_view name, bool colon_allowed) {
  if (name.empty() || !is_name_start(name[0], colon_allowed)) return false;
  for (char ch : name)
    if (!is_name_char(ch, colon_allowed)) return false;
  return true;
}

Status check_labels(MetricType type, std::string_view metric,
                    const std::vector<std::string>& names) {
  for (std::size_t i = 0; i < names.size(); ++i) {
    const std::string& label = names[i];
    if (!valid_name(label, false) || label.starts_with("__"))
      return make_error(ErrorKind::invalid_argument,
                        std::string(metric) + ": invalid label name '" + label + "'");
    if (type == MetricType::histogram && label == "le")
      return make_error(ErrorKind::invalid_argument,
                        std::string(metric) + ": a histogram may not have the label 'le'");
    for (std::size_t j = 0; j < i; ++j)
      if (names[j] == label)
        return make_error(ErrorKind::invalid_argument,
                          std::string(metric) + ": label '" + label + "' appears twice");
  }
  return {};
}

Status check_bounds(std::string_view metric, std::span<const double> bounds) {
  if (bounds.empty() || bounds.size() > metrics::kMaxBuckets)
    return make_error(ErrorKind::invalid_argument,
                      std::string(metric) + ": a histogram needs 1 to " +
                          std::to_string(metrics::kMaxBuckets) + " bucket bounds");
  for (std::size_t i = 0; i < bounds.size(); ++i) {
    if (!std::isfinite(bounds[i]) || (i > 0 && bounds[i] <= bounds[i - 1]))
      return make_error(
          ErrorKind::invalid_argument,
          std::string(metric) + ": bucket bounds must be finite and strictly increasing");
  }
  return {};
}

// Label values, each prefixed with its length, so no two lists share a key.
std::string series_key(std::span<const std::string_view> values) {
  std::string key;
  for (std::string_view v : values) {
    key += std::to_string(v.size());
    key += ':';
    key += v;
  }
  return key;
}

Error wrong_arity(const MetricFamily& family, std::size_t given) {
  return make_error(ErrorKind::invalid_argument, family.name + ": expected " +
                                                     std::to_string(family.label_names.size()) +
                                                     " label values, got " + std::to_string(given));
}

}  // namespace

std::atomic<std::uint64_t>* CellArena::allocate(std::size_t cells) {
  if (used_ + cells > kMetricShardStride) {
    chunks_.push_back(std::make_unique<Block[]>(shards_));  // value-initialised: zero
    used_ = 0;
  }
  std::atomic<std::uint64_t>* first = &chunks_.back()[0].cells[used_];
  used_ += cells;
  return first;
}

Result<MetricFamily*> MetricsRegistryImpl::family(MetricType type, std::string_view name,
                                                  std::string_view help,
                                                  std::vector<std::string> label_names,
                                                  std::span<const double> bounds) {
  if (!valid_name(name, true))
    return make_error(ErrorKind::invalid_argument,
                      "invalid metric name '" + std::string(name) + "'");
  if (auto st = check_labels(type, name, label_names); !st) return std::move(st).error();
  if (type == MetricType::histogram) {
    if (auto st = check_bounds(name, bounds); !st) return std::move(st).error();
  } else {
    bounds = {};
  }
  std::lock_guard<std::mutex> lock(mutex);
  for (auto& f : families) {
    if (f->name != name) continue;
    const bool same = f->type == type && f->label_names == label_names &&
                      std::equal(f->bounds.begin(), f->bounds.end(), bounds.begin(), bounds.end());
    if (same) return f.get();
    return make_error(ErrorKind::conflict, "metric '" + std::string(name) +
                                               "' is already registered as a " +
                                               metric_type_name(f->type) + " with other labels");
  }
  auto f = std::make_unique<MetricFamily>();
  f->type = type;
  f->name = name;
  f->help = help;
  f->label_names = std::move(label_names);
  f->bounds.assign(bounds.begin(), bounds.end());
  families.push_back(std::move(f));
  return families.back().get();
}

Result<MetricSeries*> MetricsRegistryImpl::series(MetricFamily& family,
                                                  std::span<const std::string_view> values) {
  if (values.size() != family.label_names.size()) return wrong_arity(family, values.size());
  std::string key = series_key(values);
  std::lock_guard<std::mutex> lock(mutex);
  if (auto it = family.by_values.find(key); it != family.by_values.end()) {
    it->second->hidden = false;
    return it->second;
  }
  auto s = std::make_unique<MetricSeries>();
  s->values.assign(values.begin(), values.end());
  s->labels = render_labels(family.label_names, values);
  CellArena& arena = family.type == MetricType::gauge ? plain : sharded;
  s->cells = arena.allocate(family.cells());
  MetricSeries* raw = s.get();
  family.series.push_back(std::move(s));
  family.by_values.emplace(std::move(key), raw);
  return raw;
}

void MetricsRegistryImpl::remove_all(MetricFamily& family) {
  std::lock_guard<std::mutex> lock(mutex);
  for (auto& s : family.series)
    s->hidden = true;
}

void MetricsRegistryImpl::remove(MetricFamily& family, std::span<const std::string_view> values) {
  if (values.size() != family.label_names.size()) return;
  const std::string key = series_key(values);
  std::lock_guard<std::mutex> lock(mutex);
  if (auto it = family.by_values.find(key); it != family.by_values.end()) it->second->hidden = true;
}

}  // namespace portico::detail

namespace portico::metrics {

using detail::kMetricShardStride;

// ------------------------------------------------------------- handles

void Counter::set(std::uint64_t total) const noexcept {
  if (cell_ == nullptr) return;
  cell_[0].store(total, std::memory_order_relaxed);
  for (unsigned s = 1; s < shards_; ++s)
    cell_[s * kMetricShardStride].store(0, std::memory_order_relaxed);
}

std::uint64_t Counter::value() const noexcept {
  std::uint64_t sum = 0;
  if (cell_ == nullptr) return sum;
  for (unsigned s = 0; s < shards_; ++s)
    sum += cell_[s * kMetricShardStride].load(std::memory_order_relaxed);
  return sum;
}

namespace {
// A double kept as its bits in an integer cell: the shard's own cell, so
// the exchange almost never has to retry.
void add_double(std::atomic<std::uint64_t>& cell, double delta) noexcept {
  std::uint64_t old = cell.load(std::memory_order_relaxed);
  while (!cell.compare_exchange_weak(
      old, std::bit_cast<std::uint64_t>(std::bit_cast<double>(old) + delta),
      std::memory_order_relaxed)) {
  }
}
}  // namespace

void Gauge::add(double delta) const noexcept {
  if (cell_ != nullptr) add_double(*cell_, delta);
}

void Histogram::observe(unsigned shard, double value) const noexcept {
  if (cell_ == nullptr) return;
  if (shard >= shards_) shard %= shards_;
  std::size_t bucket = 0;
  while (bucket < bound_count_ && !(value <= bounds_[bucket]))
    ++bucket;
  std::atomic<std::uint64_t>* cells = cell_ + shard * kMetricShardStride;
  cells[bucket].fetch_add(1, std::memory_order_relaxed);
  add_double(cells[bound_count_ + 1], value);
}

std::uint64_t Histogram::bucket_count(std::size_t i) const noexcept {
  std::uint64_t sum = 0;
  if (cell_ == nullptr || i > bound_count_) return sum;
  for (unsigned s = 0; s < shards_; ++s)
    sum += cell_[s * kMetricShardStride + i].load(std::memory_order_relaxed);
  return sum;
}

std::uint64_t Histogram::count() const noexcept {
  std::uint64_t sum = 0;
  for (std::size_t i = 0; i <= bound_count_; ++i)
    sum += bucket_count(i);
  return sum;
}

double Histogram::sum() const noexcept {
  double sum = 0;
  if (cell_ == nullptr) return sum;
  for (unsigned s = 0; s < shards_; ++s)
    sum += std::bit_cast<double>(
        cell_[s * kMetricShardStride + bound_count_ + 1].load(std::memory_order_relaxed));
  return sum;
}

// ------------------------------------------------------------- families

Result<Counter> CounterFamily::series(LabelValues values) const {
  return series(std::span(values.begin(), values.size()));
}
Result<Counter> CounterFamily::series(std::span<const std::string_view> values) const {
  if (family_ == nullptr) return make_error(ErrorKind::invalid_argument, "null metric family");
  auto s = registry_->series(*family_, values);
  if (!s) return std::move(s).error();
  return Counter((*s)->cells, registry_->shards);
}
void CounterFamily::remove(std::span<const std::string_view> values) const {
  if (family_ != nullptr) registry_->remove(*family_, values);
}
void CounterFamily::remove_all() const {
  if (family_ != nullptr) registry_->remove_all(*family_);
}

Result<Gauge> GaugeFamily::series(LabelValues values) const {
  return series(std::span(values.begin(), values.size()));
}
Result<Gauge> GaugeFamily::series(std::span<const std::string_view> values) const {
  if (family_ == nullptr) return make_error(ErrorKind::invalid_argument, "null metric family");
  auto s = registry_->series(*family_, values);
  if (!s) return std::move(s).error();
  return Gauge((*s)->cells);
}
void GaugeFamily::remove(std::span<const std::string_view> values) const {
  if (family_ != nullptr) registry_->remove(*family_, values);
}
void GaugeFamily::remove_all() const {
  if (family_ != nullptr) registry_->remove_all(*family_);
}

Result<Histogram> HistogramFamily::series(LabelValues values) const {
  return series(std::span(values.begin(), values.size()));
}
Result<Histogram> HistogramFamily::series(std::span<const std::string_view> values) const {
  if (family_ == nullptr) return make_error(ErrorKind::invalid_argument, "null metric family");
  auto s = registry_->series(*family_, values);
  if (!s) return std::move(s).error();
  return Histogram((*s)->cells, registry_->shards, family_->bounds.data(), family_->bounds.size());
}
void HistogramFamily::remove(std::span<const std::string_view> values) const {
  if (family_ != nullptr) registry_->remove(*family_, values);
}
void HistogramFamily::remove_all() const {
  if (family_ != nullptr) registry_->remove_all(*family_);
}

// ------------------------------------------------------------- registry

Registry::Registry(unsigned shards)
    : impl_(std::make_unique<detail::MetricsRegistryImpl>(shards == 0 ? 1 : shards)) {}
Registry::~Registry() = default;

unsigned Registry::shards() const noexcept {
  return impl_->shards;
}

Result<CounterFamily> Registry::counter(std::string_view name, std::string_view help,
                                        std::vector<std::string> label_names) {
  auto f = impl_->family(detail::MetricType::counter, name, help, std::move(label_names), {});
  if (!f) return std::move(f).error();
  return CounterFamily(impl_.get(), *f);
}

Result<GaugeFamily> Registry::gauge(std::string_view name, std::string_view help,
                                    std::vector<std::string> label_names) {
  auto f = impl_->family(detail::MetricType::gauge, name, help, std::move(label_names), {});
  if (!f) return std::move(f).error();
  return GaugeFamily(impl_.get(), *f);
}

Result<HistogramFamily> Registry::histogram(std::string_view name, std::string_view help,
                                            std::vector<std::string> label_names,
                                            std::span<const double> buckets) {
  auto f =
      impl_->family(detail::MetricType::histogram, name, help, std::move(label_names), buckets);
  if (!f) return std::move(f).error();
  return HistogramFamily(impl_.get(), *f);
}

Registry::CollectorId Registry::add_collector(std::function<void()> collect) {
  std::lock_guard<std::mutex> lock(impl_->collect_mutex);
  const CollectorId id = impl_->next_collector++;
  impl_->collectors.emplace_back(id, std::move(collect));
  return id;
}

void Registry::remove_collector(CollectorId id) {
  std::lock_guard<std::mutex> lock(impl_->collect_mutex);
  std::erase_if(impl_->collectors, [id](const auto& c) { return c.first == id; });
}

std::string Registry::render() {
  std::string out;
  render(out);
  return out;
}

void Registry::render(std::string& out) {
  // Held through the text too: a second render's collectors must not
  // change series while this one writes them.
  std::lock_guard<std::mutex> lock(impl_->collect_mutex);
  for (auto& c : impl_->collectors)
    c.second();
  impl_->render(out);
}

}  // namespace portico::metrics
