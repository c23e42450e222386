#include "health_check.hpp"

#include <algorithm>
#include <array>
#include <cassert>
#include <string_view>
#include <utility>

#include "portico/http.hpp"
#include "timer_ms.hpp"

namespace portico::detail {

namespace {

// A response head larger than this fails the check: health endpoints answer
// small heads, and the bound is the whole memory a check in flight holds.
constexpr std::size_t kHeadBytes = 8 * 1024;

std::shared_ptr<const std::string> build_request(const proxy::HealthCheckOptions& options,
                                                 const std::string& label) {
  const std::string_view path = options.path.empty() ? "/" : std::string_view(options.path);
  const std::string_view host = options.host.empty() ? label : options.host;
  std::string request;
  request.reserve(path.size() + host.size() + 96);
  request.append("GET ").append(path).append(" HTTP/1.1\r\nHost: ").append(host);
  request.append("\r\nUser-Agent: portico-health-check\r\nConnection: close\r\n\r\n");
  return std::make_shared<const std::string>(std::move(request));
}

http::Limits head_limits() noexcept {
  http::Limits limits;
  limits.max_head_bytes = kHeadBytes;
  return limits;
}

}  // namespace

// One check: a connection, its deadline and the response head read so far.
struct HealthChecker::Probe {
  Probe(HealthChecker& checker, Target& checked)
      : owner(checker), target(&checked), request(checked.request), parser(head_limits()) {}

  HealthChecker& owner;
  Target* target;  // null once the target is removed or the checker stops
  std::shared_ptr<const std::string> request;
  http::ResponseParser parser;
  uv_tcp_t tcp{};
  uv_timer_t deadline{};
  uv_connect_t connect{};
  uv_write_t write{};
  int open_handles = 0;
  bool finished = false;
  std::size_t received = 0;
  std::array<char, kHeadBytes> head;
};

HealthChecker::HealthChecker(uv_loop_t* loop, const proxy::HealthCheckOptions& options,
                             Callback on_change)
    : loop_(loop),
      options_(options),
      interval_ms_(timer_ms(options.interval)),
      timeout_ms_(timer_ms(options.timeout)),
      healthy_threshold_(std::max<std::uint32_t>(options.healthy_threshold, 1)),
      unhealthy_threshold_(std::max<std::uint32_t>(options.unhealthy_threshold, 1)),
      on_change_(std::move(on_change)) {}

HealthChecker::~HealthChecker() {
  assert(open_probes_ == 0 && !round_timer_open_);
}

void HealthChecker::add_target(std::uint64_t id, const sockaddr_storage& addr, std::string label) {
  remove_target(id);
  Target& target = targets_[id];
  target.id = id;
  target.addr = addr;
  target.request = build_request(options_, label);
}

void HealthChecker::remove_target(std::uint64_t id) {
  const auto it = targets_.find(id);
  if (it == targets_.end()) return;
  if (it->second.probe != nullptr) abandon(*it->second.probe);
  targets_.erase(it);
}

bool HealthChecker::healthy(std::uint64_t id) const {
  const auto it = targets_.find(id);
  return it != targets_.end() && it->second.healthy;
}

void HealthChecker::start() {
  if (started_ || stopping_) return;
  started_ = true;
  uv_timer_init(loop_, &round_timer_);
  round_timer_.data = this;
  round_timer_open_ = true;
  uv_timer_start(&round_timer_, on_round, 0, interval_ms_);
}

void HealthChecker::stop(std::function<void()> on_closed) {
  if (stopping_) return;
  stopping_ = true;
  on_closed_ = std::move(on_closed);
  if (round_timer_open_) {
    uv_close(reinterpret_cast<uv_handle_t*>(&round_timer_), on_round_timer_closed);
  }
  while (!running_.empty())
    abandon(**running_.begin());
  maybe_closed();
}

void HealthChecker::on_round(uv_timer_t* timer) {
  static_cast<HealthChecker*>(timer->data)->run_round();
}

void HealthChecker::on_round_timer_closed(uv_handle_t* handle) {
  auto* self = static_cast<HealthChecker*>(handle->data);
  self->round_timer_open_ = false;
  self->maybe_closed();
}

// The ids are taken first: a check that fails at once reports at once, and
// the callback may add or remove targets.
void HealthChecker::run_round() {
  round_ids_.clear();
  for (const auto& [id, target] : targets_) {
    if (target.probe == nullptr) round_ids_.push_back(id);
  }
  for (const std::uint64_t id : round_ids_) {
    if (stopping_) return;
    const auto it = targets_.find(id);
    if (it != targets_.end() && it->second.probe == nullptr) start_probe(it->second);
  }
}

void HealthChecker::start_probe(Target& target) {
  auto* probe = new Probe(*this, target);
  target.probe = probe;
  running_.insert(probe);
  ++open_probes_;
  ++checks_started_;
  // Neither init can fail: the socket itself is created by the connect.
  uv_tcp_init(loop_, &probe->tcp);
  uv_timer_init(loop_, &probe->deadline);
  probe->tcp.data = probe;
  probe->deadline.data = probe;
  probe->connect.data = probe;
  probe->open_handles = 2;
  uv_timer_start(&probe->deadline, on_deadline, timeout_ms_, 0);
  const int rc = uv_tcp_connect(&probe->connect, &probe->tcp,
                                reinterpret_cast<const sockaddr*>(&target.addr), on_connected);
  if (rc != 0) finish(*probe, false);
}

void HealthChecker::on_connected(uv_connect_t* req, int status) {
  auto& probe = *static_cast<Probe*>(req->data);
  if (probe.finished) return;  // cancelled by the close
  HealthChecker& self = probe.owner;
  if (status != 0) return self.finish(probe, false);
  auto* stream = reinterpret_cast<uv_stream_t*>(&probe.tcp);
  const uv_buf_t request = uv_buf_init(const_cast<char*>(probe.request->data()),
                                       static_cast<unsigned>(probe.request->size()));
  // A failed write needs no callback of its own: the peer's close or reset
  // reaches the read side too, and an upstream that answered before reading
  // the request has still answered.
  if (uv_write(&probe.write, stream, &request, 1, nullptr) != 0 ||
      uv_read_start(stream, alloc_head, on_read) != 0) {
    self.finish(probe, false);
  }
}

void HealthChecker::on_deadline(uv_timer_t* timer) {
  auto& probe = *static_cast<Probe*>(timer->data);
  probe.owner.finish(probe, false);
}

// The head accumulates in the probe's buffer; when it is full libuv reports
// UV_ENOBUFS, which fails the check.
void HealthChecker::alloc_head(uv_handle_t* handle, std::size_t, uv_buf_t* buf) {
  auto& probe = *static_cast<Probe*>(handle->data);
  buf->base = probe.head.data() + probe.received;
  buf->len = kHeadBytes - probe.received;
}

void HealthChecker::on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t*) {
  auto& probe = *static_cast<Probe*>(stream->data);
  probe.owner.read_head(probe, nread);
}

void HealthChecker::read_head(Probe& probe, ssize_t nread) {
  if (probe.finished || nread == 0) return;
  if (nread < 0) return finish(probe, false);  // EOF, reset or a head too large
  probe.received += static_cast<std::size_t>(nread);
  const std::string_view bytes(probe.head.data(), probe.received);
  switch (probe.parser.parse_head(bytes, "GET")) {
    case http::ParseState::complete: {
      const int status = probe.parser.head().status;
      return finish(probe, status >= options_.min_status && status <= options_.max_status);
    }
    case http::ParseState::error:
      return finish(probe, false);
    case http::ParseState::incomplete:
      return;
  }
}

// The handles close first, so that a callback reporting the result sees the
// probe gone and may stop the checker or remove the target.
void HealthChecker::finish(Probe& probe, bool passed) {
  if (probe.finished) return;
  probe.finished = true;
  running_.erase(&probe);
  Target* target = probe.target;
  if (target != nullptr) target->probe = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(&probe.tcp), on_probe_handle_closed);
  uv_close(reinterpret_cast<uv_handle_t*>(&probe.deadline), on_probe_handle_closed);
  if (target != nullptr) record(*target, passed);
}

void HealthChecker::abandon(Probe& probe) {
  if (probe.target != nullptr) probe.target->probe = nullptr;
  probe.target = nullptr;
  finish(probe, false);
}

void HealthChecker::record(Target& target, bool passed) {
  if (passed) {
    target.failures = 0;
    if (target.healthy) return;
    if (++target.passes < healthy_threshold_) return;
    target.passes = 0;
    target.healthy = true;
  } else {
    target.passes = 0;
    if (!target.healthy) return;
    if (++target.failures < unhealthy_threshold_) return;
    target.failures = 0;
    target.healthy = false;
  }
  if (on_change_) on_change_(target.id, target.healthy);
}

void HealthChecker::on_probe_handle_closed(uv_handle_t* handle) {
  auto* probe = static_cast<Probe*>(handle->data);
  if (--probe->open_handles == 0) probe->owner.release(probe);
}

void HealthChecker::release(Probe* probe) {
  delete probe;
  --open_probes_;
  maybe_closed();
}

// on_closed may destroy the checker: it is the last thing done here.
void HealthChecker::maybe_closed() {
  if (!stopping_ || closed_ || round_timer_open_ || open_probes_ != 0) return;
  closed_ = true;
  const std::function<void()> on_closed = std::move(on_closed_);
  on_closed_ = nullptr;
  if (on_closed) on_closed();
}

}  // namespace portico::detail
