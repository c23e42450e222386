#include "observe.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <functional>
#include <optional>
#include <unordered_map>

#include "portico/filters/request_state.hpp"

namespace portico::detail {

// ------------------------------------------------------------ access log

AccessLog::AccessLog(int fd, bool owned, const AccessLogOptions& options, unsigned workers)
    : fd_(fd),
      owned_(owned),
      flush_bytes_(options.flush_bytes == 0 ? 1 : options.flush_bytes),
      max_age_(std::chrono::duration_cast<std::chrono::steady_clock::duration>(options.max_age)),
      buffers_(std::make_unique<Buffer[]>(workers == 0 ? 1 : workers)),
      buffer_count_(workers == 0 ? 1 : workers) {
  // Room for a full buffer and the line that crosses the threshold, so
  // appending a line does not allocate (lines are bounded: long fields are
  // cut by append_json_text).
  for (unsigned i = 0; i < buffer_count_; ++i)
    buffers_[i].text.reserve(flush_bytes_ + 16 * 1024);
}

Result<std::shared_ptr<AccessLog>> AccessLog::open(const AccessLogOptions& options,
                                                   unsigned workers) {
  if (options.path.empty())
    return std::shared_ptr<AccessLog>(new AccessLog(STDOUT_FILENO, false, options, workers));
  const int fd = ::open(options.path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (fd < 0)
    return make_error(ErrorKind::invalid_argument,
                      "access log " + options.path + ": " + std::strerror(errno));
  return std::shared_ptr<AccessLog>(new AccessLog(fd, true, options, workers));
}

std::shared_ptr<AccessLog> AccessLog::to_descriptor(int fd, const AccessLogOptions& options,
                                                    unsigned workers) {
  return std::shared_ptr<AccessLog>(new AccessLog(fd, false, options, workers));
}

AccessLog::~AccessLog() {
  flush();
  if (owned_) ::close(fd_);
}

void AccessLog::after_append(Buffer& b, bool was_empty) {
  const auto now = std::chrono::steady_clock::now();
  if (was_empty) b.oldest = now;
  if (b.text.size() >= flush_bytes_ || now - b.oldest >= max_age_) write_out(b);
}

void AccessLog::write_out(Buffer& b) {
  if (b.text.empty()) return;
  std::lock_guard<std::mutex> lock(write_mutex_);
  std::string_view rest = b.text;
  while (!rest.empty()) {
    const ssize_t n = ::write(fd_, rest.data(), rest.size());
    if (n > 0) {
      rest.remove_prefix(static_cast<std::size_t>(n));
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      // A full disk or a descriptor that would block: the lines are lost,
      // counted, and the worker goes on serving.
      dropped_.fetch_add(rest.size(), std::memory_order_relaxed);
      break;
    }
  }
  b.text.clear();  // keeps the capacity
}

void AccessLog::flush() {
  for (unsigned i = 0; i < buffer_count_; ++i)
    write_out(buffers_[i]);
}

void AccessLog::flush_stale(unsigned worker) {
  Buffer& b = buffer(worker);
  if (!b.text.empty() && std::chrono::steady_clock::now() - b.oldest >= max_age_) write_out(b);
}

void AccessLog::flush_stale() {
  for (unsigned i = 0; i < buffer_count_; ++i)
    flush_stale(i);
}

std::uint64_t AccessLog::dropped_bytes() const noexcept {
  return dropped_.load(std::memory_order_relaxed);
}

namespace {

// The length of the UTF-8 sequence starting at s[i], or 0 when it is not
// a well-formed one (overlong forms, surrogates and values past U+10FFFF
// included).
std::size_t utf8_sequence(std::string_view s, std::size_t i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  std::size_t len;
  unsigned char lo = 0x80, hi = 0xbf;
  if (b0 >= 0xc2 && b0 <= 0xdf) {
    len = 2;
  } else if (b0 >= 0xe0 && b0 <= 0xef) {
    len = 3;
    if (b0 == 0xe0) lo = 0xa0;
    if (b0 == 0xed) hi = 0x9f;
  } else if (b0 >= 0xf0 && b0 <= 0xf4) {
    len = 4;
    if (b0 == 0xf0) lo = 0x90;
    if (b0 == 0xf4) hi = 0x8f;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  for (std::size_t k = 1; k < len; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xbf)) return 0;
  }
  return len;
}

void append_hex_escape(std::string& out, unsigned char ch) {
  static constexpr char kHex[] = "0123456789abcdef";
  const char esc[] = {'\\', 'u', '0', '0', kHex[ch >> 4], kHex[ch & 15]};
  out.append(esc, sizeof esc);
}

void append_digits(std::string& out, std::uint64_t value, int min_width = 1) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
  for (int pad = min_width - static_cast<int>(end - buf); pad > 0; --pad)
    out += '0';
  out.append(buf, end);
}

// Milliseconds with microsecond precision: "12.345".
void append_ms(std::string& out, Duration d) {
  char buf[32];
  const double ms = std::chrono::duration<double, std::milli>(d).count();
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, ms, std::chars_format::fixed, 3);
  out.append(buf, end);
}

}  // namespace

void append_json_text(std::string& out, std::string_view text, std::size_t max_bytes) {
  const bool cut = text.size() > max_bytes;
  if (cut) text = text.substr(0, max_bytes);
  for (std::size_t i = 0; i < text.size();) {
    const auto ch = static_cast<unsigned char>(text[i]);
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += static_cast<char>(ch);
      ++i;
    } else if (ch < 0x20 || ch == 0x7f) {
      append_hex_escape(out, ch);
      ++i;
    } else if (ch < 0x80) {
      out += static_cast<char>(ch);
      ++i;
    } else if (std::size_t n = utf8_sequence(text, i); n != 0) {
      out.append(text.data() + i, n);
      i += n;
    } else {
      append_hex_escape(out, ch);  // a stray byte: its value, as Latin-1
      ++i;
    }
  }
  if (cut) out += "...";
}

void append_rfc3339_ms(std::string& out, std::chrono::system_clock::time_point t) {
  using namespace std::chrono;
  // Computed, not gmtime_r: glibc's takes a process-wide lock.
  const auto ms = floor<milliseconds>(t);
  const auto day = floor<days>(ms);
  const year_month_day ymd{day};
  const hh_mm_ss<milliseconds> hms{ms - day};
  append_digits(out, static_cast<std::uint64_t>(static_cast<int>(ymd.year())), 4);
  out += '-';
  append_digits(out, static_cast<unsigned>(ymd.month()), 2);
  out += '-';
  append_digits(out, static_cast<unsigned>(ymd.day()), 2);
  out += 'T';
  append_digits(out, static_cast<std::uint64_t>(hms.hours().count()), 2);
  out += ':';
  append_digits(out, static_cast<std::uint64_t>(hms.minutes().count()), 2);
  out += ':';
  append_digits(out, static_cast<std::uint64_t>(hms.seconds().count()), 2);
  out += '.';
  append_digits(out, static_cast<std::uint64_t>(hms.subseconds().count()), 3);
  out += 'Z';
}

// ------------------------------------------------------------ metrics

Result<GatewayMetrics> GatewayMetrics::register_in(metrics::Registry& r) {
  GatewayMetrics m;
  Error first{ErrorKind::invalid_argument, {}};
  bool failed = false;
  auto take = [&](auto result, auto& into) {
    if (!result) {
      if (!failed) first = std::move(result).error();
      failed = true;
      return;
    }
    into = *result;
  };
  take(r.counter("portico_requests_total",
                 "Requests by route, service and status class (none: no response was sent).",
                 {"route", "service", "code_class"}),
       m.requests);
  take(r.histogram("portico_request_duration_seconds",
                   "Time from a request's head to the end of its response, by route.", {"route"}),
       m.request_duration);
  take(r.histogram("portico_upstream_duration_seconds",
                   "Duration of the last upstream attempt of a request, by service.", {"service"}),
       m.upstream_duration);
  take(r.counter("portico_request_body_bytes_total", "Request body bytes received.",
                 {"route", "service"}),
       m.request_bytes);
  take(r.counter("portico_response_body_bytes_total", "Response body bytes sent.",
                 {"route", "service"}),
       m.response_bytes);
  take(r.counter("portico_upstream_retries_total", "Upstream attempts after the first.",
                 {"service"}),
       m.retries);
  take(r.gauge("portico_connections_active", "Client connections open now."), m.connections_active);
  take(r.counter("portico_connections_total", "Client connections accepted."), m.connections_total);
  take(r.gauge("portico_upstream_endpoint_healthy",
               "1 when the endpoint passes its active health checks, else 0.",
               {"service", "endpoint"}),
       m.endpoint_healthy);
  take(r.gauge("portico_upstream_endpoint_ejected",
               "1 while outlier detection keeps the endpoint out of rotation, else 0.",
               {"service", "endpoint"}),
       m.endpoint_ejected);
  take(r.gauge("portico_upstream_breaker_state",
               "The endpoint's circuit breaker: 0 closed, 1 open, 2 half-open.",
               {"service", "endpoint"}),
       m.breaker_state);
  take(r.counter("portico_upstream_outlier_ejections_total",
                 "Times outlier detection ejected the endpoint.", {"service", "endpoint"}),
       m.outlier_ejections);
  take(r.counter("portico_rate_limit_rejections_total", "Requests refused by a rate limit.",
                 {"scope"}),
       m.rate_limit_rejections);
  take(r.counter("portico_jwks_fetches_total", "JWKS fetches by jwt-auth, by result (ok, error).",
                 {"source", "url", "result"}),
       m.jwks_fetches);
  take(r.gauge("portico_jwks_keys", "Keys in the JWKS in force (the last good fetch).",
               {"source", "url"}),
       m.jwks_keys);
  take(r.gauge("portico_jwks_last_success_timestamp_seconds",
               "When the JWKS was last fetched well, in Unix seconds (0: never).",
               {"source", "url"}),
       m.jwks_last_success);
  if (failed) return first;
  return m;
}

metrics::Counter GatewayMetrics::rate_limit_counter(std::string_view scope) const {
  auto c = rate_limit_rejections.series({scope});
  return c ? *c : metrics::Counter();
}

void GatewayMetrics::set_connections(const proxy::ServerStats& stats) const {
  if (auto g = connections_active.series()) g->set(static_cast<double>(stats.connections_active));
  if (auto c = connections_total.series()) c->set(stats.connections_accepted);
}

namespace {

double unix_seconds(std::chrono::system_clock::time_point t) {
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}

// Worse states sort higher: closed < half-open < open.
int breaker_severity(BreakerState s) {
  switch (s) {
    case BreakerState::closed:
      return 0;
    case BreakerState::half_open:
      return 1;
    case BreakerState::open:
      return 2;
  }
  return 0;
}

}  // namespace

void GatewayMetrics::set_endpoints(std::span<const proxy::EndpointStatus> all) const {
  struct Merged {
    bool healthy = true;
    bool ejected = false;
    BreakerState breaker = BreakerState::closed;
    std::uint64_t ejections = 0;
  };
  std::vector<std::pair<std::pair<std::string_view, std::string_view>, Merged>> merged;
  std::unordered_map<std::string, std::size_t> at;
  for (const proxy::EndpointStatus& e : all) {
    std::string key = e.cluster;
    key += '\0';
    key += e.endpoint;
    auto [it, fresh] = at.try_emplace(std::move(key), merged.size());
    if (fresh) merged.push_back({{e.cluster, e.endpoint}, Merged{}});
    Merged& m = merged[it->second].second;
    m.healthy = m.healthy && e.healthy;
    m.ejected = m.ejected || e.ejected;
    if (breaker_severity(e.breaker) > breaker_severity(m.breaker)) m.breaker = e.breaker;
    m.ejections += e.ejections;
  }
  endpoint_healthy.remove_all();
  endpoint_ejected.remove_all();
  breaker_state.remove_all();
  outlier_ejections.remove_all();
  for (const auto& [labels, m] : merged) {
    const auto [service, endpoint] = labels;
    if (auto g = endpoint_healthy.series({service, endpoint})) g->set(m.healthy ? 1.0 : 0.0);
    if (auto g = endpoint_ejected.series({service, endpoint})) g->set(m.ejected ? 1.0 : 0.0);
    if (auto g = breaker_state.series({service, endpoint}))
      g->set(static_cast<double>(static_cast<int>(m.breaker)));
    if (auto c = outlier_ejections.series({service, endpoint})) c->set(m.ejections);
  }
}

void GatewayMetrics::set_jwks(std::span<const JwksReport> sources) const {
  jwks_fetches.remove_all();
  jwks_keys.remove_all();
  jwks_last_success.remove_all();
  for (const JwksReport& r : sources) {
    const std::string_view source = r.source, url = r.status.url;
    if (auto c = jwks_fetches.series({source, url, "ok"})) c->set(r.status.fetches_ok);
    if (auto c = jwks_fetches.series({source, url, "error"})) c->set(r.status.fetches_failed);
    if (auto g = jwks_keys.series({source, url})) g->set(static_cast<double>(r.status.keys));
    if (auto g = jwks_last_success.series({source, url}))
      g->set(r.status.last_success ? unix_seconds(*r.status.last_success) : 0.0);
  }
}

// ------------------------------------------------------------ the filter

namespace {

// Names to indexes with open addressing over views: lookups hash and
// compare, never allocate.
class NameIndex {
 public:
  // `names` must outlive the index.
  void build(const std::vector<std::string_view>& names) {
    std::size_t size = 8;
    while (size < names.size() * 2)
      size *= 2;
    slots_.assign(size, -1);
    names_ = names;
    mask_ = size - 1;
    for (std::size_t i = 0; i < names.size(); ++i) {
      std::size_t at = std::hash<std::string_view>{}(names[i]) & mask_;
      while (slots_[at] >= 0)
        at = (at + 1) & mask_;
      slots_[at] = static_cast<std::int32_t>(i);
    }
  }
  int find(std::string_view name) const noexcept {
    if (slots_.empty()) return -1;
    for (std::size_t at = std::hash<std::string_view>{}(name)&mask_;; at = (at + 1) & mask_) {
      const std::int32_t i = slots_[at];
      if (i < 0) return -1;
      if (names_[static_cast<std::size_t>(i)] == name) return i;
    }
  }

 private:
  std::vector<std::int32_t> slots_;
  std::vector<std::string_view> names_;
  std::size_t mask_ = 0;
};

struct ServiceSeries {
  std::string name;
  metrics::Histogram upstream;
  metrics::Counter retries;
};

// One (route, service) pair.
struct PairSeries {
  std::string service;
  int service_index = -1;  // into the filter's services; -1: ""
  metrics::Counter requests[std::size(kCodeClasses)];
  metrics::Counter bytes_in;
  metrics::Counter bytes_out;
};

struct RouteSeries {
  std::string name;
  metrics::Histogram duration;
  std::size_t first = 0;  // its pairs
  std::size_t count = 0;
  std::size_t fallback = 0;  // the pair for a service that is not one of them
};

std::size_t code_class_index(int status) {
  return status >= 100 && status <= 599 ? static_cast<std::size_t>(status / 100) : 0;
}

class ObserveFilter final : public proxy::Filter {
 public:
  ObserveFilter(const GatewayMetrics& m, std::shared_ptr<AccessLog> log)
      : metrics_(m), log_(std::move(log)) {}

  Status build(const std::vector<ObservedRoute>& routes, const ObserveFilter* previous);

  std::string_view name() const noexcept override { return "observe"; }

  void on_log(const proxy::RequestContext& ctx) override {
    const proxy::RequestOutcomeInfo& out = ctx.outcome();
    const filters::RequestState* state = filters::find_request_state(ctx);
    const std::string_view service =
        state != nullptr && !state->service.empty() ? state->service : out.cluster;
    const unsigned worker = ctx.worker_index();

    const RouteSeries& route = route_for(ctx.route_name());
    const PairSeries& pair = pair_for(route, service);
    pair.requests[code_class_index(out.status)].inc(worker);
    if (out.request_body_bytes != 0) pair.bytes_in.add(worker, out.request_body_bytes);
    if (out.response_body_bytes != 0) pair.bytes_out.add(worker, out.response_body_bytes);
    route.duration.observe(worker, out.duration);
    const int s = pair.service_index >= 0 ? pair.service_index : service_index_.find(service);
    if (s >= 0) {
      const ServiceSeries& svc = services_[static_cast<std::size_t>(s)];
      if (!out.upstream.empty()) svc.upstream.observe(worker, out.upstream_duration);
      if (out.attempts > 1) svc.retries.add(worker, out.attempts - 1);
    }
    if (log_) {
      log_->write(worker, [&](std::string& line) { append_line(line, ctx, state, service); });
    }
  }

 private:
  const RouteSeries& route_for(std::string_view name) const noexcept {
    const int i = name.empty() ? -1 : route_index_.find(name);
    return i < 0 ? unmatched_ : routes_[static_cast<std::size_t>(i)];
  }

  const PairSeries& pair_for(const RouteSeries& route, std::string_view service) const noexcept {
    const PairSeries* pairs = route.first < pairs_.size() ? &pairs_[route.first] : nullptr;
    for (std::size_t i = 0; i < route.count; ++i)
      if (pairs[i].service == service) return pairs[i];
    return pairs_[route.fallback];
  }

  static void append_line(std::string& line, const proxy::RequestContext& ctx,
                          const filters::RequestState* state, std::string_view service);
  Result<std::size_t> add_pair(std::string_view route, std::string_view service);
  Result<RouteSeries> make_route(std::string_view name, const std::vector<std::string>& services);
  std::optional<RouteSeries> reuse_route(const ObserveFilter& previous, std::string_view name,
                                         const std::vector<std::string>& services);

  GatewayMetrics metrics_;
  std::shared_ptr<AccessLog> log_;
  std::vector<RouteSeries> routes_;
  RouteSeries unmatched_;
  std::vector<PairSeries> pairs_;
  std::vector<ServiceSeries> services_;
  NameIndex route_index_;
  NameIndex service_index_;
};

void ObserveFilter::append_line(std::string& line, const proxy::RequestContext& ctx,
                                const filters::RequestState* state, std::string_view service) {
  const proxy::RequestOutcomeInfo& out = ctx.outcome();
  auto text_field = [&line](std::string_view key, std::string_view value) {
    line += ",\"";
    line += key;
    line += "\":\"";
    append_json_text(line, value);
    line += '"';
  };
  auto number_field = [&line](std::string_view key, std::uint64_t value) {
    line += ",\"";
    line += key;
    line += "\":";
    append_digits(line, value);
  };
  line += "{\"time\":\"";
  append_rfc3339_ms(line, std::chrono::system_clock::now());
  line += "\",\"request_id\":\"";
  if (state != nullptr && !state->request_id.empty()) {
    append_json_text(line, state->request_id, 256);
  } else {
    append_digits(line, ctx.request_id());
  }
  line += '"';
  text_field("trace_id", state != nullptr ? state->trace_id : std::string_view());
  text_field("consumer", state != nullptr ? state->consumer : std::string_view());
  text_field("route", ctx.route_name());
  text_field("service", service);
  text_field("endpoint", out.upstream);
  text_field("method", ctx.request().method);
  // The normalised path alone: the query may carry an API key or a token.
  text_field("path", ctx.path());
  number_field("status", static_cast<std::uint64_t>(out.status));
  number_field("bytes_in", out.request_body_bytes);
  number_field("bytes_out", out.response_body_bytes);
  line += ",\"upstream_ms\":";
  if (out.upstream.empty()) {
    line += "null";
  } else {
    append_ms(line, out.upstream_duration);
  }
  line += ",\"duration_ms\":";
  append_ms(line, out.duration);
  number_field("retries", out.attempts > 1 ? out.attempts - 1 : 0);
  text_field("client", ctx.client_address());
  text_field("error", !out.error.empty()   ? out.error
                      : out.client_aborted ? std::string_view("client closed the connection")
                                           : std::string_view());
  line += "}\n";
}

Result<std::size_t> ObserveFilter::add_pair(std::string_view route, std::string_view service) {
  PairSeries p;
  p.service = service;
  p.service_index = service.empty() ? -1 : service_index_.find(service);
  for (std::size_t c = 0; c < std::size(kCodeClasses); ++c) {
    auto counter = metrics_.requests.series({route, service, kCodeClasses[c]});
    if (!counter) return std::move(counter).error();
    p.requests[c] = *counter;
  }
  auto in = metrics_.request_bytes.series({route, service});
  if (!in) return std::move(in).error();
  auto out = metrics_.response_bytes.series({route, service});
  if (!out) return std::move(out).error();
  p.bytes_in = *in;
  p.bytes_out = *out;
  pairs_.push_back(std::move(p));
  return pairs_.size() - 1;
}

Result<RouteSeries> ObserveFilter::make_route(std::string_view name,
                                              const std::vector<std::string>& services) {
  RouteSeries r;
  r.name = name;
  auto h = metrics_.request_duration.series({name});
  if (!h) return std::move(h).error();
  r.duration = *h;
  r.first = pairs_.size();
  for (const std::string& s : services) {
    if (auto p = add_pair(name, s); !p) return std::move(p).error();
  }
  r.count = services.size();
  r.fallback = r.first;
  // No service, or several: a request that ended before one was chosen
  // (refused by a policy) counts under service="".
  if (services.size() != 1) {
    auto p = add_pair(name, "");
    if (!p) return std::move(p).error();
    r.fallback = *p;
  }
  return r;
}

// The series of route `name` in `previous`, when it counted it with the same
// services (in order); its pairs are copied into this filter's.
std::optional<RouteSeries> ObserveFilter::reuse_route(const ObserveFilter& previous,
                                                      std::string_view name,
                                                      const std::vector<std::string>& services) {
  const int i = previous.route_index_.find(name);
  if (i < 0) return std::nullopt;
  const RouteSeries& old = previous.routes_[static_cast<std::size_t>(i)];
  if (old.count != services.size()) return std::nullopt;
  for (std::size_t k = 0; k < old.count; ++k)
    if (previous.pairs_[old.first + k].service != services[k]) return std::nullopt;
  RouteSeries r;
  r.name = name;
  r.duration = old.duration;
  r.first = pairs_.size();
  r.count = old.count;
  r.fallback = r.first;
  auto copy_pair = [&](const PairSeries& p) {
    pairs_.push_back(p);
    pairs_.back().service_index = p.service.empty() ? -1 : service_index_.find(p.service);
    return pairs_.size() - 1;
  };
  for (std::size_t k = 0; k < old.count; ++k)
    copy_pair(previous.pairs_[old.first + k]);
  if (old.fallback < old.first || old.fallback >= old.first + old.count)
    r.fallback = copy_pair(previous.pairs_[old.fallback]);
  return r;
}

Status ObserveFilter::build(const std::vector<ObservedRoute>& routes,
                            const ObserveFilter* previous) {
  // Merge duplicate route names and collect the distinct services.
  std::vector<std::string> order;
  std::unordered_map<std::string, std::vector<std::string>> services_of;
  std::vector<std::string> service_names;
  std::unordered_map<std::string, bool> service_seen;
  for (std::size_t i = 0; i < routes.size(); ++i) {
    const ObservedRoute& r = routes[i];
    if (r.name.empty())
      return make_error(ErrorKind::invalid_argument,
                        "routes[" + std::to_string(i) + "].name: the observe filter needs a name");
    auto [it, fresh] = services_of.try_emplace(r.name);
    if (fresh) order.push_back(r.name);
    for (const std::string& s : r.services) {
      if (s.empty()) continue;
      if (std::find(it->second.begin(), it->second.end(), s) == it->second.end())
        it->second.push_back(s);
      if (service_seen.emplace(s, true).second) service_names.push_back(s);
    }
  }
  for (const std::string& s : service_names) {
    ServiceSeries svc;
    svc.name = s;
    auto h = metrics_.upstream_duration.series({s});
    if (!h) return std::move(h).error();
    auto c = metrics_.retries.series({s});
    if (!c) return std::move(c).error();
    svc.upstream = *h;
    svc.retries = *c;
    services_.push_back(std::move(svc));
  }
  std::vector<std::string_view> views;
  for (const ServiceSeries& s : services_)
    views.push_back(s.name);
  service_index_.build(views);

  routes_.reserve(order.size());
  for (const std::string& name : order) {
    const std::vector<std::string>& services = services_of[name];
    if (previous != nullptr) {
      if (auto r = reuse_route(*previous, name, services)) {
        routes_.push_back(std::move(*r));
        continue;
      }
    }
    auto r = make_route(name, services);
    if (!r) return std::move(r).error();
    routes_.push_back(std::move(*r));
  }
  auto u = make_route(kUnmatchedRoute, {});
  if (!u) return std::move(u).error();
  unmatched_ = std::move(*u);
  views.clear();
  for (const RouteSeries& r : routes_)
    views.push_back(r.name);
  route_index_.build(views);
  return {};
}

}  // namespace

Result<std::shared_ptr<proxy::Filter>> make_observe(const GatewayMetrics& metrics,
                                                    ObserveOptions options) {
  auto filter = std::make_shared<ObserveFilter>(metrics, std::move(options.access_log));
  // Only make_observe makes filters of this type, and the contract says
  // `previous` is one of them.
  const auto* previous = static_cast<const ObserveFilter*>(options.previous.get());
  if (auto st = filter->build(options.routes, previous); !st) return std::move(st).error();
  return std::shared_ptr<proxy::Filter>(std::move(filter));
}

}  // namespace portico::detail
