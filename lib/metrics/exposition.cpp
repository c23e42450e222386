// The Prometheus text exposition format, version 0.0.4:
//   # HELP <name> <help, with \\ and \n escaped>
//   # TYPE <name> counter|gauge|histogram
//   <name>{<label>="<value, with \\ \" \n escaped>",...} <value>
// A histogram's series become <name>_bucket lines with a cumulative count
// per upper bound `le` (the last "+Inf"), then <name>_sum and <name>_count.
#include <fmt/format.h>

#include <cmath>
#include <iterator>

#include "internal.hpp"

namespace portico::detail {

void append_label_value(std::string& out, std::string_view value) {
  for (char ch : value) {
    if (ch == '\\') {
      out += "\\\\";
    } else if (ch == '"') {
      out += "\\\"";
    } else if (ch == '\n') {
      out += "\\n";
    } else {
      out += ch;
    }
  }
}

void append_help_text(std::string& out, std::string_view help) {
  for (char ch : help) {
    if (ch == '\\') {
      out += "\\\\";
    } else if (ch == '\n') {
      out += "\\n";
    } else {
      out += ch;
    }
  }
}

void append_sample_value(std::string& out, double value) {
  if (std::isnan(value)) {
    out += "NaN";
  } else if (std::isinf(value)) {
    out += value > 0 ? "+Inf" : "-Inf";
  } else {
    // The shortest text that reads back as the same double.
    fmt::format_to(std::back_inserter(out), "{}", value);
  }
}

std::string render_labels(std::span<const std::string> names,
                          std::span<const std::string_view> values) {
  std::string out;
  for (std::size_t i = 0; i < names.size() && i < values.size(); ++i) {
    if (i > 0) out += ',';
    out += names[i];
    out += "=\"";
    append_label_value(out, values[i]);
    out += '"';
  }
  return out;
}

const char* metric_type_name(MetricType type) {
  switch (type) {
    case MetricType::counter:
      return "counter";
    case MetricType::gauge:
      return "gauge";
    case MetricType::histogram:
      return "histogram";
  }
  return "untyped";
}

namespace {

void append_integer(std::string& out, std::uint64_t value) {
  fmt::format_to(std::back_inserter(out), "{}", value);
}

// name{labels} or name{labels,extra} or name{extra} or name.
void append_series_name(std::string& out, std::string_view name, std::string_view suffix,
                        std::string_view labels, std::string_view extra = {}) {
  out += name;
  out += suffix;
  if (labels.empty() && extra.empty()) {
    out += ' ';
    return;
  }
  out += '{';
  out += labels;
  if (!labels.empty() && !extra.empty()) out += ',';
  out += extra;
  out += "} ";
}

std::uint64_t sum_shards(const std::atomic<std::uint64_t>* cell, unsigned shards) {
  std::uint64_t sum = 0;
  for (unsigned s = 0; s < shards; ++s)
    sum += cell[s * kMetricShardStride].load(std::memory_order_relaxed);
  return sum;
}

double sum_shards_double(const std::atomic<std::uint64_t>* cell, unsigned shards) {
  double sum = 0;
  for (unsigned s = 0; s < shards; ++s)
    sum += std::bit_cast<double>(cell[s * kMetricShardStride].load(std::memory_order_relaxed));
  return sum;
}

void render_histogram(std::string& out, const MetricFamily& f, const MetricSeries& s,
                      unsigned shards) {
  std::uint64_t cumulative = 0;
  std::string le;
  for (std::size_t i = 0; i <= f.bounds.size(); ++i) {
    cumulative += sum_shards(s.cells + i, shards);
    le = "le=\"";
    if (i < f.bounds.size()) {
      append_sample_value(le, f.bounds[i]);
    } else {
      le += "+Inf";
    }
    le += '"';
    append_series_name(out, f.name, "_bucket", s.labels, le);
    append_integer(out, cumulative);
    out += '\n';
  }
  append_series_name(out, f.name, "_sum", s.labels);
  append_sample_value(out, sum_shards_double(s.cells + f.bounds.size() + 1, shards));
  out += '\n';
  // The count is the +Inf bucket by definition: both come from one read.
  append_series_name(out, f.name, "_count", s.labels);
  append_integer(out, cumulative);
  out += '\n';
}

}  // namespace

void MetricsRegistryImpl::render(std::string& out) {
  std::lock_guard<std::mutex> lock(mutex);
  for (const auto& f : families) {
    out += "# HELP ";
    out += f->name;
    out += ' ';
    append_help_text(out, f->help);
    out += "\n# TYPE ";
    out += f->name;
    out += ' ';
    out += metric_type_name(f->type);
    out += '\n';
    for (const auto& s : f->series) {
      if (s->hidden) continue;
      switch (f->type) {
        case MetricType::counter:
          append_series_name(out, f->name, "", s->labels);
          append_integer(out, sum_shards(s->cells, shards));
          out += '\n';
          break;
        case MetricType::gauge:
          append_series_name(out, f->name, "", s->labels);
          append_sample_value(out,
                              std::bit_cast<double>(s->cells->load(std::memory_order_relaxed)));
          out += '\n';
          break;
        case MetricType::histogram:
          render_histogram(out, *f, *s, shards);
          break;
      }
    }
  }
}

}  // namespace portico::detail
