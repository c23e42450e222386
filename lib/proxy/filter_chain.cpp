// The filter chain: running the phases, pausing and resuming, and the
// RequestContext filters use to read and change a request.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>

#include "../common/ascii.hpp"
#include "../common/mix.hpp"
#include "../http/fields.hpp"
#include "session.hpp"

namespace portico::proxy {

namespace {

constexpr std::uint64_t kEachByte = 0x0101010101010101ULL;

// Whether any of the eight bytes of `word` is below `n` (n <= 128). The
// classic bit trick: which byte it flags can be off, but whether one is
// below is exact.
constexpr bool has_byte_below(std::uint64_t word, std::uint64_t n) noexcept {
  return ((word - kEachByte * n) & ~word & (kEachByte << 7)) != 0;
}

bool unsafe_byte(char ch) noexcept {
  return ch == '\r' || ch == '\n' || ch == '\0';
}

// No CR, LF or NUL, which would let a filter inject header lines. Eight
// bytes per step, and one test per step: the three bytes are all below
// 0x0e, and a value's bytes seldom are (a tab is; then the exact test).
bool safe_value(std::string_view value) noexcept {
  const std::size_t size = value.size();
  if (size < 8) {
    for (const char ch : value)
      if (unsafe_byte(ch)) return false;
    return true;
  }
  auto word_safe = [&](std::size_t at) {
    std::uint64_t word;
    std::memcpy(&word, value.data() + at, sizeof word);
    if (!has_byte_below(word, 0x0e)) return true;
    for (std::size_t i = at; i < at + 8; ++i)
      if (unsafe_byte(value[i])) return false;
    return true;
  };
  for (std::size_t i = 0; i + 8 <= size; i += 8)
    if (!word_safe(i)) return false;
  return word_safe(size - 8);  // the tail, overlapping the last whole word
}

// A name's slot of 64 (in ServerImpl::checked_names), and its bit in
// HeaderEdits' name masks: a hash of its length and its last eight bytes,
// case folded (| 0x20 folds letters, and leaves other bytes, which a
// case-insensitive match needs equal, equal). The end, not the start: names
// set together often share a prefix (X-RateLimit-Limit, X-RateLimit-Reset),
// and two names with one bit cost a byte-wise compare.
unsigned name_slot(std::string_view name) noexcept {
  std::uint64_t tail = name.size();
  if (name.size() >= 8) {
    std::uint64_t word;
    std::memcpy(&word, name.data() + name.size() - 8, sizeof word);
    tail ^= word | (kEachByte * 0x20);
  } else {
    for (const char ch : name)
      tail = (tail << 8) | (static_cast<unsigned char>(ch) | 0x20u);
  }
  return static_cast<unsigned>((tail * detail::kGoldenGamma) >> 58);
}

std::uint64_t name_bit(std::string_view name) noexcept {
  return std::uint64_t{1} << name_slot(name);
}

// Whether a filter may set a header of this name: a token (the same rule
// the parser applies), and none of the fields the proxy owns, the framing
// and connection management of both sides, plus Host.
bool editable_name(std::string_view name) noexcept {
  return detail::is_token(name) && !is_hop_by_hop(name, {}) &&
         !(name.size() == 4 && detail::ascii_iequals(name, "host"));
}

// editable_name() through the server's checked_names: filters set the same
// few names on every request, and comparing their bytes with a name that
// passed costs less than judging them again.
bool editable_name(Exchange* x, std::string_view name) noexcept {
  ServerImpl* server = x->conn != nullptr ? x->conn->server : nullptr;
  if (server == nullptr) return editable_name(name);
  CheckedName& known = server->checked_names[name_slot(name)];
  if (known.size == name.size() && !name.empty() &&
      std::memcmp(known.bytes, name.data(), name.size()) == 0)
    return true;
  if (!editable_name(name)) return false;
  if (name.size() <= sizeof known.bytes) {
    known.size = static_cast<std::uint8_t>(name.size());
    std::memcpy(known.bytes, name.data(), name.size());
  }
  return true;
}

// A header edit from a filter, if the name may be edited and the value is
// safe.
void edit(Exchange* x, HeaderEdits& edits, EditOp op, std::string_view name,
          std::string_view value) {
  if (!editable_name(x, name) || !safe_value(value)) return;
  edits.add(op, name, value);
}

// The filter a phase runs next, or null at the end of the phase.
Filter* next_filter(Exchange* x) noexcept {
  const bool forward = x->phase == Phase::request_headers || x->phase == Phase::request_body;
  if (forward) {
    const std::size_t end = x->phase == Phase::request_headers ? x->chain.size() : x->entered;
    if (x->filter >= end) return nullptr;
    x->current = x->filter;
    return x->chain[x->filter];
  }
  if (x->filter == 0) return nullptr;
  x->current = x->filter - 1;
  return x->chain[x->current];
}

FilterStatus call(Filter* f, Exchange* x) {
  switch (x->phase) {
    case Phase::request_headers:
      x->entered = x->current + 1;
      return f->on_request_headers(x->ctx);
    case Phase::request_body:
      return f->on_request_body(x->ctx, x->handler_body);
    case Phase::response_headers:
      return f->on_response_headers(x->ctx);
    case Phase::response_body:
      return f->on_response_body(x->ctx, x->response_body);
    default:
      return FilterStatus::next;
  }
}

void advance(Exchange* x) noexcept {
  if (x->phase == Phase::request_headers || x->phase == Phase::request_body) {
    ++x->filter;
  } else {
    --x->filter;
  }
}

// The end of a phase: hand the exchange back to the I/O code.
void phase_done(Conn* c) {
  Exchange* x = c->x;
  switch (x->phase) {
    case Phase::request_headers:
      x->phase = Phase::none;
      conn_after_request_filters(c);
      break;
    case Phase::request_body:
      x->phase = Phase::none;
      conn_after_request_body_filters(c);
      break;
    case Phase::response_headers:
    case Phase::response_body:
      conn_after_response_filters(c);
      break;
    default:
      break;
  }
}

}  // namespace

// ------------------------------------------------------------- HeaderEdits

void HeaderEdits::add(EditOp op, std::string_view name, std::string_view value) {
  const std::uint64_t bit = name_bit(name);
  if (op != EditOp::add && (edited_names & bit) != 0) {
    // A set or remove supersedes earlier edits of the same name.
    std::size_t kept = 0;
    for (std::size_t i = 0; i < count; ++i) {
      if (items[i].name_size == name.size() && detail::ascii_iequals(this->name(items[i]), name))
        continue;
      items[kept++] = items[i];
    }
    count = kept;
  }
  const bool written = op != EditOp::remove;
  const std::size_t needed = text_size + name.size() + (written ? value.size() + 4 : 0);
  if (needed > text_capacity) grow(needed, name, value);
  if (count == items.size()) items.emplace_back();
  HeaderEdit& e = items[count++];
  e.op = op;
  e.name_at = static_cast<std::uint32_t>(text_size);
  e.name_size = static_cast<std::uint32_t>(name.size());
  char* at = text.get() + text_size;
  if (!name.empty()) std::memcpy(at, name.data(), name.size());
  at += name.size();
  if (written) {
    std::memcpy(at, ": ", 2);
    at += 2;
    if (!value.empty()) std::memcpy(at, value.data(), value.size());
    e.value_at = static_cast<std::uint32_t>(at - text.get());
    at += value.size();
    std::memcpy(at, "\r\n", 2);
    at += 2;
  } else {
    e.value_at = static_cast<std::uint32_t>(at - text.get());
  }
  e.value_size = written ? static_cast<std::uint32_t>(value.size()) : 0;
  text_size = static_cast<std::size_t>(at - text.get());
  edited_names |= bit;
  if (op != EditOp::add) dropped_names |= bit;
}

void HeaderEdits::grow(std::size_t needed, std::string_view& name, std::string_view& value) {
  // The name or value may be a view of this text (a lookup's result): taken
  // as offsets across the move.
  const std::less_equal<const char*> at_or_before;
  const char* begin = text.get();
  const char* end = begin + text_size;
  auto inside = [&](std::string_view s) {
    return !s.empty() && begin != nullptr && at_or_before(begin, s.data()) &&
           at_or_before(s.data() + s.size(), end);
  };
  const bool name_inside = inside(name), value_inside = inside(value);
  const std::size_t name_at = name_inside ? static_cast<std::size_t>(name.data() - begin) : 0;
  const std::size_t value_at = value_inside ? static_cast<std::size_t>(value.data() - begin) : 0;
  const std::size_t capacity = std::max({needed, 2 * text_capacity, std::size_t{256}});
  auto next = std::make_unique_for_overwrite<char[]>(capacity);
  if (text_size != 0) std::memcpy(next.get(), text.get(), text_size);
  text = std::move(next);
  text_capacity = capacity;
  if (name_inside) name = std::string_view(text.get() + name_at, name.size());
  if (value_inside) value = std::string_view(text.get() + value_at, value.size());
}

bool HeaderEdits::drops(std::string_view name) const noexcept {
  if ((dropped_names & name_bit(name)) == 0) return false;
  for (std::size_t i = 0; i < count; ++i) {
    const HeaderEdit& e = items[i];
    if (e.op != EditOp::add && e.name_size == name.size() &&
        detail::ascii_iequals(this->name(e), name))
      return true;
  }
  return false;
}

std::optional<std::string_view> HeaderEdits::lookup(
    std::string_view name, std::optional<std::string_view> original) const noexcept {
  if ((edited_names & name_bit(name)) == 0) return original;
  std::optional<std::string_view> v = original;
  for (std::size_t i = 0; i < count; ++i) {
    const HeaderEdit& e = items[i];
    if (e.name_size != name.size() || !detail::ascii_iequals(this->name(e), name)) continue;
    if (e.op == EditOp::remove) {
      v.reset();
    } else if (e.op == EditOp::set || !v) {
      v = value(e);
    }
  }
  return v;
}

void HeaderEdits::write(HeadWriter& w) const {
  for (std::size_t i = 0; i < count; ++i) {
    const HeaderEdit& e = items[i];
    if (e.op != EditOp::remove) w << line(e);
  }
}

// ------------------------------------------------------------- the chain

void chain_reset(Exchange* x) {
  x->chain = {};
  x->filter = x->current = x->entered = 0;
  x->phase = Phase::none;
  x->paused = x->buffer_request = x->buffer_response = x->body_replaced = false;
  x->logged = false;
  x->request_edits.clear();
  x->response_edits.clear();
  x->local_headers.clear();
  x->upstream_path.clear();
  x->local_status = 0;
  x->local_body.clear();
  x->response_body.clear();
  x->error_text.clear();
  x->upstream_head = nullptr;
  x->response_status = 0;
  x->outcome = {};
  x->shared_state = nullptr;
  x->pick_failure = x->unavailability = Unavailability::none;
  x->arena.release();
  x->endpoint = nullptr;
  x->permit.reset();
  x->attempts = 0;
  x->is_retry = false;
  x->replayable = false;
  x->retry_after = Duration::zero();
  x->request_id = 0;
  x->body_seen = 0;
}

void chain_start(Conn* c) {
  Exchange* x = c->x;
  x->slots.assign(x->chain.size(), nullptr);
  x->phase = Phase::request_headers;
  x->filter = 0;
  chain_run(c);
}

void chain_run(Conn* c) {
  Exchange* x = c->x;
  const std::uint64_t serial = x->serial;
  for (;;) {
    Filter* f = next_filter(x);
    if (f == nullptr) break;
    const FilterStatus st = call(f, x);
    if (c->x != x || x->serial != serial || c->state == ConnState::closing) return;
    if (st == FilterStatus::pause) {
      x->paused = true;
      return;
    }
    if (st == FilterStatus::respond && x->phase != Phase::response_headers &&
        x->phase != Phase::response_body) {
      if (x->local_status == 0) x->ctx.respond(500, "a filter answered without a response");
      // The answer goes through the response phases of the filters that ran.
      chain_response(c);
      return;
    }
    advance(x);
  }
  phase_done(c);
}

void chain_response(Conn* c) {
  Exchange* x = c->x;
  x->phase = Phase::response_headers;
  x->filter = x->entered;
  x->response_status = x->upstream_head != nullptr ? x->upstream_head->status : x->local_status;
  chain_run(c);
}

void chain_early_error(Conn* c, int status, std::string_view cause) {
  Exchange* x = c->x;
  // No request phase ran, so the slots still hold the last request's
  // pointers: on_log must find them empty.
  x->slots.assign(x->chain.size(), nullptr);
  x->response_status = status;
  x->error_text.assign(cause.substr(0, 400));
  x->phase = Phase::early_error;
  for (std::size_t i = 0; i < x->chain.size(); ++i) {
    x->current = i;
    x->chain[i]->on_early_error(x->ctx);
  }
  x->phase = Phase::none;
}

void chain_log(Conn* c) {
  Exchange* x = c->x;
  if (x == nullptr || x->logged || x->start == TimePoint{}) return;
  x->logged = true;
  x->outcome.duration = Duration(uv_hrtime() - x->start_ns);
  x->outcome.attempts = x->attempts;
  x->outcome.error = x->error_text;
  x->phase = Phase::done;
  for (std::size_t i = 0; i < x->chain.size(); ++i) {
    x->current = i;
    x->chain[i]->on_log(x->ctx);
  }
}

// ---------------------------------------------------------- ResumeHandle

bool ResumeHandle::pending() const noexcept {
  return exchange_ != nullptr && exchange_->serial == serial_ && exchange_->paused &&
         exchange_->conn != nullptr;
}

RequestContext* ResumeHandle::context() const noexcept {
  return pending() ? &exchange_->ctx : nullptr;
}

void ResumeHandle::resume() noexcept {
  if (!pending()) return;
  Exchange* x = exchange_;
  x->paused = false;
  advance(x);
  chain_run(x->conn);
}

void ResumeHandle::respond(int status, std::string_view body,
                           std::span<const http::Header> headers) {
  if (!pending()) return;
  Exchange* x = exchange_;
  x->paused = false;
  x->ctx.respond(status, body, headers);
  if (x->phase == Phase::response_headers || x->phase == Phase::response_body) {
    advance(x);
    chain_run(x->conn);
  } else {
    chain_response(x->conn);
  }
}

// -------------------------------------------------------- RequestContext

const http::RequestHead& RequestContext::request() const noexcept {
  return x_->parser.head();
}
std::string_view RequestContext::path() const noexcept {
  return x_->path;
}
std::string_view RequestContext::query() const noexcept {
  return x_->query;
}
std::string_view RequestContext::client_address() const noexcept {
  return x_->client_ip;
}
std::uint64_t RequestContext::request_id() const noexcept {
  return x_->request_id;
}
std::string_view RequestContext::route_name() const noexcept {
  return x_->match.route != nullptr ? std::string_view(x_->match.route->name())
                                    : std::string_view();
}
std::optional<std::string_view> RequestContext::param(std::string_view name) const noexcept {
  return x_->match.param(name);
}
TimePoint RequestContext::start_time() const noexcept {
  return x_->start;
}

void RequestContext::set_request_header(std::string_view name, std::string_view value) {
  edit(x_, x_->request_edits, EditOp::set, name, value);
}
void RequestContext::add_request_header(std::string_view name, std::string_view value) {
  edit(x_, x_->request_edits, EditOp::add, name, value);
}
void RequestContext::remove_request_header(std::string_view name) {
  edit(x_, x_->request_edits, EditOp::remove, name, {});
}
void RequestContext::set_upstream_path(std::string_view path_and_query) {
  if (path_and_query.empty() || path_and_query.front() != '/') return;
  for (char ch : path_and_query) {
    const auto u = static_cast<unsigned char>(ch);
    if (u <= 0x20 || u >= 0x7f) return;  // would break the request line
  }
  x_->upstream_path.assign(path_and_query);
}
std::string_view RequestContext::upstream_path() const noexcept {
  if (!x_->upstream_path.empty()) return x_->upstream_path;
  return x_->parser.head().path;
}
std::optional<std::string_view> RequestContext::request_header(
    std::string_view name) const noexcept {
  const std::string_view original = x_->parser.head().header(name);
  std::optional<std::string_view> o;
  for (const http::Header& h : x_->parser.head().headers) {
    if (detail::ascii_iequals(h.name, name)) {
      o = original;
      break;
    }
  }
  return x_->request_edits.lookup(name, o);
}

int RequestContext::response_status() const noexcept {
  return x_->response_status;
}
std::optional<std::string_view> RequestContext::response_header(
    std::string_view name) const noexcept {
  std::optional<std::string_view> o;
  if (x_->upstream_head != nullptr) {
    for (const http::Header& h : x_->upstream_head->headers) {
      if (detail::ascii_iequals(h.name, name)) {
        o = h.value;
        break;
      }
    }
  } else {
    o = x_->local_headers.lookup(name, std::nullopt);
  }
  return x_->response_edits.lookup(name, o);
}
void RequestContext::set_response_status(int status) {
  if (x_->phase == Phase::early_error) return;
  if (status >= 200 && status <= 599) x_->response_status = status;
}
void RequestContext::set_response_header(std::string_view name, std::string_view value) {
  edit(x_, x_->response_edits, EditOp::set, name, value);
}
void RequestContext::add_response_header(std::string_view name, std::string_view value) {
  edit(x_, x_->response_edits, EditOp::add, name, value);
}
void RequestContext::remove_response_header(std::string_view name) {
  edit(x_, x_->response_edits, EditOp::remove, name, {});
}

void RequestContext::buffer_request_body() noexcept {
  if (x_->phase == Phase::request_headers) x_->buffer_request = true;
}
void RequestContext::buffer_response_body() noexcept {
  if (x_->phase == Phase::request_headers ||
      (x_->phase == Phase::response_headers && x_->upstream_head != nullptr))
    x_->buffer_response = true;
}
void RequestContext::replace_body(std::string_view body) {
  if (x_->phase == Phase::request_body) {
    x_->handler_body.assign(body);
    x_->body_replaced = true;
  } else if (x_->phase == Phase::response_body) {
    x_->response_body.assign(body);
  }
}

void RequestContext::respond(int status, std::string_view body,
                             std::span<const http::Header> headers) {
  if (x_->phase == Phase::early_error) return;  // the proxy's answer stands
  if (status < 200 || status > 599) status = 500;
  x_->local_status = status;
  x_->response_status = status;
  x_->local_body.assign(body);
  if (x_->phase == Phase::response_body) x_->response_body.assign(body);
  x_->local_headers.clear();
  for (const http::Header& h : headers)
    edit(x_, x_->local_headers, EditOp::add, h.name, h.value);
  if (x_->upstream_head != nullptr) {
    // Replacing an upstream response: the upstream side is given up.
    x_->upstream_head = nullptr;
    x_->response_body.clear();
    x_->buffer_response = false;
    conn_abort(x_->conn);
  }
}

ResumeHandle RequestContext::pause_handle() noexcept {
  ResumeHandle h;
  h.exchange_ = x_;
  h.serial_ = x_->serial;
  return h;
}

void* RequestContext::state() const noexcept {
  return x_->current < x_->slots.size() ? x_->slots[x_->current] : nullptr;
}
void RequestContext::set_state(void* state) noexcept {
  if (x_->current < x_->slots.size()) x_->slots[x_->current] = state;
}
void* RequestContext::allocate(std::size_t size, std::size_t align) {
  return x_->arena.allocate(size, align);
}

std::string_view RequestContext::proxy_error() const noexcept {
  return x_->error_text;
}

Unavailability RequestContext::unavailability() const noexcept {
  return x_->unavailability;
}

void* RequestContext::shared_state() const noexcept {
  return x_->shared_state;
}
void RequestContext::set_shared_state(void* state) noexcept {
  x_->shared_state = state;
}
uv_loop_t* RequestContext::loop() const noexcept {
  return x_->conn != nullptr ? x_->conn->server->loop : nullptr;
}
unsigned RequestContext::worker_index() const noexcept {
  return x_->conn != nullptr ? x_->conn->server->options.worker_index : 0;
}

const RequestOutcomeInfo& RequestContext::outcome() const noexcept {
  return x_->outcome;
}

}  // namespace portico::proxy
