// Server: the listener, downstream connections, upstream keep-alive pools and
// the exchange between them.
//
// One request at a time per downstream connection (pipelined requests wait
// in the read buffer). Bytes are never copied between the two sides: a body
// piece is written from the buffer it was read into, and the side it came
// from stops reading until that write completes. That one rule gives
// back-pressure in both directions and bounds each exchange to two buffers,
// whatever the body size.
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <unordered_map>

#include "../common/ascii.hpp"
#include "portico/path.hpp"
#include "session.hpp"

namespace portico::proxy {

namespace {

std::uint64_t to_ms(Duration d) noexcept {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  return ms <= 0 ? 1 : static_cast<std::uint64_t>(ms);
}

const char* reason_phrase(int status) noexcept {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 304:
      return "Not Modified";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

}  // namespace

bool token_list_has(std::string_view list, std::string_view token) noexcept {
  while (!list.empty()) {
    std::size_t comma = list.find(',');
    std::string_view item = list.substr(0, comma);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t'))
      item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t'))
      item.remove_suffix(1);
    if (detail::ascii_iequals(item, token)) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

namespace {

// The fixed hop-by-hop fields (RFC 9110 section 7.6.1), Proxy and Proxy-*,
// and the framing fields the proxy sets itself.
bool is_fixed_hop_by_hop(std::string_view name) noexcept {
  switch (name.size()) {
    case 2:
      if (detail::ascii_iequals(name, "te")) return true;
      break;
    case 5:
      // "Proxy" itself too: CGI-style upstreams read it as HTTP_PROXY and
      // would send their own outbound requests through the client's choice
      // of proxy (httpoxy).
      if (detail::ascii_iequals(name, "proxy")) return true;
      break;
    case 7:
      if (detail::ascii_iequals(name, "trailer") || detail::ascii_iequals(name, "upgrade"))
        return true;
      break;
    case 10:
      if (detail::ascii_iequals(name, "connection") || detail::ascii_iequals(name, "keep-alive"))
        return true;
      break;
    case 14:
      if (detail::ascii_iequals(name, "content-length")) return true;
      break;
    case 17:
      if (detail::ascii_iequals(name, "transfer-encoding")) return true;
      break;
    default:
      break;
  }
  // Proxy-Connection, Proxy-Authenticate, Proxy-Authorization and the rest
  // concern the hop, never the origin.
  return name.size() > 6 && detail::ascii_iequals(name.substr(0, 6), "proxy-");
}

}  // namespace

// The fixed ones and those the Connection header names.
bool is_hop_by_hop(std::string_view name, std::string_view connection) noexcept {
  // Called for every header forwarded and every header a filter sets, and
  // most names do not start with a letter any fixed one starts with.
  const char first = name.empty() ? '\0' : detail::ascii_lower(name.front());
  const bool may_be_fixed =
      first == 't' || first == 'p' || first == 'u' || first == 'c' || first == 'k';
  if (may_be_fixed && is_fixed_hop_by_hop(name)) return true;
  return !connection.empty() && token_list_has(connection, name);
}

namespace {

template <class T>
T* owner_of(uv_handle_t* h) {
  return static_cast<T*>(h->data);
}

}  // namespace

// ----------------------------------------------------------- forward decls

void conn_close(Conn* c);
void conn_read_start(Conn* c);
void conn_process(Conn* c);
void conn_finish_exchange(Conn* c);
void conn_write_local(Conn* c);
void conn_dispatch_upstream(Conn* c);
void up_close(UpConn* u);
void up_process(UpConn* u);
void up_start_exchange(Conn* c, EndpointState* ep, bool allow_pooled, Duration delay);
void up_send_request(UpConn* u);
void up_fail(UpConn* u, int status, std::string_view cause);
void up_release(UpConn* u);
void up_stream_body(UpConn* u);
void tunnel_to_upstream(Conn* c);
bool conn_write_response_head(Conn* c, const http::ResponseHead& head);

// ---------------------------------------------------------------- allocs

void alloc_conn(uv_handle_t* h, std::size_t, uv_buf_t* out) {
  Conn* c = owner_of<Conn>(h);
  if (c->buf == nullptr) {
    c->buf = c->server->pool.get();
    c->len = c->cursor = 0;
  }
  const std::size_t cap = c->server->pool.block_size();
  *out = uv_buf_init(c->buf + c->len, static_cast<unsigned>(cap - c->len));
}

void alloc_up(uv_handle_t* h, std::size_t, uv_buf_t* out) {
  UpConn* u = owner_of<UpConn>(h);
  if (u->buf == nullptr) {
    u->buf = u->server->pool.get();
    u->len = 0;
  }
  const std::size_t cap = u->server->pool.block_size();
  *out = uv_buf_init(u->buf + u->len, static_cast<unsigned>(cap - u->len));
}

void on_conn_handle_closed(uv_handle_t* h);
void on_up_handle_closed(uv_handle_t* h);

// ------------------------------------------------------------ downstream

void conn_release_buffers(Conn* c) {
  c->server->stats.connections_active.sub();
  if (c->x != nullptr) {
    c->server->give_back(c->x);
    c->x = nullptr;
  }
  c->server->pool.put(c->buf);
  c->server->pool.put(c->out);
  c->buf = c->out = nullptr;
  c->len = c->cursor = 0;
}

// Gives up the upstream side of the exchange (its connection cannot be
// reused: the exchange on it was cut).
void conn_abort(Conn* c) {
  if (c->up != nullptr) {
    UpConn* u = c->up;
    c->up = nullptr;
    u->client = nullptr;
    up_close(u);
  }
  if (c->x != nullptr && c->x->endpoint != nullptr)
    cluster_attempt_end(c, RequestOutcome::cancelled);
}

void conn_close(Conn* c) {
  if (c->state == ConnState::closing) return;
  const bool aborted = c->x != nullptr && !c->response_done;
  c->state = ConnState::closing;
  conn_abort(c);
  if (c->x != nullptr) {
    c->x->paused = false;  // a ResumeHandle of this request now does nothing
    if (aborted) c->x->outcome.client_aborted = true;
    chain_log(c);
  }
  c->link.unlink();
  c->deadline.disarm();
  uv_close(reinterpret_cast<uv_handle_t*>(&c->tcp), on_conn_handle_closed);
}

void on_conn_idle_timeout(void* owner) {
  conn_close(static_cast<Conn*>(owner));
}

void on_conn_header_timeout(void* owner) {
  conn_respond_error(static_cast<Conn*>(owner), 408, "the request head did not arrive in time",
                     AfterError::close);
}

void on_conn_request_timeout(void* owner) {
  conn_respond_error(static_cast<Conn*>(owner), 504, "the request did not complete in time");
}

void on_conn_read(uv_stream_t* s, ssize_t nread, const uv_buf_t*);

void conn_read_start(Conn* c) {
  if (!c->reading && c->state != ConnState::closing) {
    c->reading =
        uv_read_start(reinterpret_cast<uv_stream_t*>(&c->tcp), alloc_conn, on_conn_read) == 0;
  }
}

void conn_read_stop(Conn* c) {
  if (c->reading) {
    uv_read_stop(reinterpret_cast<uv_stream_t*>(&c->tcp));
    c->reading = false;
  }
}

// Moves unprocessed bytes to the front of the buffer, or gives the buffer
// back when there are none (so an idle connection holds no block).
void conn_compact(Conn* c) {
  if (c->buf == nullptr) return;
  if (c->cursor >= c->len) {
    c->server->pool.put(c->buf);
    c->buf = nullptr;
    c->len = c->cursor = 0;
    return;
  }
  if (c->cursor > 0) {
    std::memmove(c->buf, c->buf + c->cursor, c->len - c->cursor);
    c->len -= c->cursor;
    c->cursor = 0;
  }
}

void on_conn_write(uv_write_t* req, int status);

void run_done_writes(ServerImpl* s) {
  while (!s->done_writes.empty()) {
    s->running_writes.swap(s->done_writes);
    for (const ServerImpl::DoneWrite& d : s->running_writes)
      d.cb(d.req, d.status);
    s->running_writes.clear();
  }
  uv_idle_stop(&s->write_idle);
}

void queue_done_write(ServerImpl* s, uv_write_t* req, uv_stream_t* stream, uv_write_cb cb,
                      int status) {
  req->handle = stream;
  s->done_writes.push_back({req, cb, status});
  if (!uv_is_active(reinterpret_cast<uv_handle_t*>(&s->write_idle))) {
    uv_idle_start(&s->write_idle,
                  [](uv_idle_t* idle) { run_done_writes(static_cast<ServerImpl*>(idle->data)); });
  }
}

// Writes with uv_try_write first. A write libuv queues and then completes
// costs an epoll_ctl when its queue drains (libuv re-arms the watcher even
// though only POLLOUT, never set, is dropped): one syscall per write, two
// per proxied request. What the socket does not take now goes through
// uv_write. Either way the callback runs later in the same loop iteration
// (the check phase after poll, or the idle phase for a write made by a
// timer), never from inside this call.
int stream_write(ServerImpl* s, uv_write_t* req, uv_stream_t* stream, const uv_buf_t* bufs,
                 std::size_t n, uv_write_cb cb) {
  const int wrote = uv_try_write(stream, bufs, static_cast<unsigned>(n));
  if (wrote < 0 && wrote != UV_EAGAIN) {
    queue_done_write(s, req, stream, cb, wrote);
    return 0;
  }
  std::size_t skip = wrote < 0 ? 0 : static_cast<std::size_t>(wrote);
  std::size_t first = 0;
  while (first < n && skip >= bufs[first].len) {
    skip -= bufs[first].len;
    ++first;
  }
  if (first == n) {
    queue_done_write(s, req, stream, cb, 0);
    return 0;
  }
  uv_buf_t rest[kMaxPieces * 3 + 2];
  std::copy(bufs + first, bufs + n, rest);
  rest[0].base += skip;
  rest[0].len -= skip;
  return uv_write(req, stream, rest, static_cast<unsigned>(n - first), cb);
}

void conn_write(Conn* c, const uv_buf_t* bufs, std::size_t n) {
  c->writing = true;
  if (stream_write(c->server, &c->x->write_req, reinterpret_cast<uv_stream_t*>(&c->tcp), bufs, n,
                   on_conn_write) != 0) {
    c->writing = false;
    conn_close(c);
  }
}

char* conn_out(Conn* c) {
  if (c->out == nullptr) c->out = c->server->pool.get();
  return c->out;
}

Exchange* conn_exchange(Conn* c) {
  if (c->x == nullptr) {
    c->x = c->server->take_exchange();
    c->x->conn = c;
  }
  return c->x;
}

// Sends a local answer (filter, handler or error) through the response
// phases of the filters that saw the request.
void conn_respond_local(Conn* c) {
  Exchange* x = c->x;
  x->upstream_head = nullptr;
  if (x->entered > 0 && x->phase != Phase::response_headers && x->phase != Phase::response_body &&
      x->phase != Phase::done) {
    chain_response(c);
  } else {
    conn_write_local(c);
  }
}

// The default body of a proxy error: the cause and the request's number.
std::string_view write_text_error(const RequestContext& request, std::string_view cause,
                                  std::string& body) {
  char id[24];
  const int id_len =
      std::snprintf(id, sizeof id, "%llu", static_cast<unsigned long long>(request.request_id()));
  body.append(cause).append(" (request ").append(id, static_cast<std::size_t>(id_len)) += ")\n";
  return "text/plain";
}

// The body and Content-Type of a proxy error, by the host's formatter when
// it set one. A formatter that throws gets the default body instead: an
// exception must not unwind through the loop's callbacks.
std::string_view write_error_body(Conn* c, int status, std::string_view cause) {
  Exchange* x = c->x;
  x->local_body.clear();
  const ErrorFormatter& format = c->server->options.error_formatter;
  if (format) {
    try {
      return format(x->ctx, status, cause, x->local_body);
    } catch (...) {
      x->local_body.clear();
    }
  }
  return write_text_error(x->ctx, cause, x->local_body);
}

// A complete response of the proxy's own: the request cannot go on.
// `after` says whether the connection may stay open for the next request.
void conn_respond_error(Conn* c, int status, std::string_view cause, AfterError after) {
  if (c->state == ConnState::closing) return;
  if (c->response_started || c->writing) {
    conn_close(c);  // a status cannot be changed once the response began
    return;
  }
  Exchange* x = conn_exchange(c);
  conn_abort(c);
  conn_read_stop(c);
  c->deadline.disarm();
  c->head_timer = false;
  if (after == AfterError::close) c->close_after_response = true;
  // A head that never parsed still gets a number to quote.
  if (x->request_id == 0) x->request_id = c->server->next_request_id++;
  x->paused = false;
  x->error_text.assign(cause.substr(0, 400));
  x->local_status = x->response_status = status;
  const std::string_view content_type = write_error_body(c, status, x->error_text);
  x->local_headers.clear();
  x->local_headers.add(EditOp::set, "content-type", content_type);
  if (status == 503 && x->retry_after > Duration::zero()) {
    // Whole seconds, rounded up (RFC 9110 section 10.2.3).
    const auto secs = std::chrono::ceil<std::chrono::seconds>(x->retry_after).count();
    char v[24];
    std::snprintf(v, sizeof v, "%lld", static_cast<long long>(secs));
    x->local_headers.add(EditOp::set, "retry-after", v);
  }
  // A 405 must say which methods the resource has (RFC 9110 section 15.5.6).
  if (status == 405 && x->match.status == MatchStatus::method_not_allowed)
    x->local_headers.add(EditOp::set, "allow", x->match.allowed.to_string());
  x->buffer_response = false;
  conn_respond_local(c);
}

// Passes over a request body nobody read, when it is all in the buffer
// already (a small body of a request answered locally, such as a 404 or a
// 401), so that the connection can carry the next request. A body not yet
// arrived, or partly parsed, leaves the connection to be closed.
bool conn_skip_body(Conn* c) {
  const Exchange* x = c->x;
  if (c->request_framing != http::Framing::content_length || x->body_seen != 0 ||
      x->parser.head().content_length > c->len - c->cursor)
    return false;
  c->cursor += static_cast<std::size_t>(x->parser.head().content_length);
  c->request_done = true;
  return true;
}

// Writes x's local answer: status, headers and body.
void conn_write_local(Conn* c) {
  Exchange* x = c->x;
  if (c->state == ConnState::closing) return;
  if (c->response_started || c->writing) {
    conn_close(c);
    return;
  }
  if (c->server->stopping) c->keep_alive = false;
  if (!c->request_done && c->request_framing != http::Framing::none && !conn_skip_body(c)) {
    c->close_after_response = true;  // the rest of the request body is unread
    conn_read_stop(c);
  }
  if (c->state == ConnState::reading_body) c->state = ConnState::waiting;
  HeadWriter w(conn_out(c), c->server->pool.block_size());
  const int status = x->response_status != 0 ? x->response_status : x->local_status;
  w << "HTTP/1.1 ";
  w.number(static_cast<unsigned>(status)) << " " << reason_phrase(status) << "\r\n";
  for (std::size_t i = 0; i < x->local_headers.count; ++i) {
    const HeaderEdit& h = x->local_headers.items[i];
    if (x->response_edits.drops(x->local_headers.name(h))) continue;
    w << x->local_headers.line(h);
  }
  x->response_edits.write(w);
  // 1xx, 204 and 304 have no body and may not announce one (RFC 9110 8.6).
  const bool bodiless = status < 200 || status == 204 || status == 304;
  if (bodiless) {
    x->local_body.clear();
  } else {
    w << "content-length: ";
    w.number(x->local_body.size()) << "\r\n";
  }
  if (!c->keep_alive || c->close_after_response) w << "connection: close\r\n";
  w << "\r\n";
  if (w.overflow()) {
    c->close_after_response = true;
    static const char kTooLarge[] =
        "HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
    w = HeadWriter(c->out, c->server->pool.block_size());
    w << std::string_view(kTooLarge, sizeof kTooLarge - 1);
    x->local_body.clear();
    x->error_text.assign("the response head is too large");
  }
  x->response_status = status;
  x->outcome.status = status;
  x->outcome.response_body_bytes = c->is_head_request ? 0 : x->local_body.size();
  c->response_started = true;
  c->response_done = true;
  uv_buf_t bufs[2] = {
      uv_buf_init(c->out, static_cast<unsigned>(w.size())),
      uv_buf_init(x->local_body.data(), static_cast<unsigned>(x->local_body.size()))};
  conn_write(c, bufs, c->is_head_request || x->local_body.empty() ? 1 : 2);
}

// libuv copies a list of more than four buffers into memory it allocates
// for each write. Such lists come from bodies of many small chunks: their
// pieces are copied into one reused buffer instead (at most a read
// buffer's worth), so that no write allocates.
std::size_t gather(uv_buf_t* pieces, std::size_t n, std::string& into) {
  constexpr std::size_t kInlineBufs = 4;
  if (n <= kInlineBufs) return n;
  into.clear();
  for (std::size_t i = 0; i < n; ++i)
    into.append(pieces[i].base, pieces[i].len);
  pieces[0] = uv_buf_init(into.data(), static_cast<unsigned>(into.size()));
  return 1;
}

// Appends one body piece to the gather list, framed as a chunk when the
// body is being re-framed.
void conn_add_piece(Conn* c, char* data, std::size_t size) {
  Exchange* x = c->x;
  if (x->sink_chunked) {
    HeadWriter w(x->chunk_lines[x->chunk_line_count], sizeof x->chunk_lines[0]);
    w.hex(size) << "\r\n";
    x->pieces[x->piece_count++] =
        uv_buf_init(x->chunk_lines[x->chunk_line_count++], static_cast<unsigned>(w.size()));
  }
  x->pieces[x->piece_count++] = uv_buf_init(data, static_cast<unsigned>(size));
  if (x->sink_chunked) x->pieces[x->piece_count++] = uv_buf_init(const_cast<char*>("\r\n"), 2);
}

// Gathers body pieces from the parser into c->x->pieces. Past the array's
// room (a buffer of many tiny chunks), the rest is copied into the
// direction's overflow buffer, sent as one more piece. Buffered bodies
// (handlers, filters that asked, replayable requests) are copied whole.
void Conn::on_body(std::string_view data) {
  Exchange* ex = x;
  if (ex->sink_to_response) {
    ex->outcome.response_body_bytes += data.size();
    ex->response_body.append(data);
    return;
  }
  ex->body_seen += data.size();
  if (ex->sink_to_handler) {
    ex->handler_body.append(data);
    return;
  }
  if (ex->sink_full) {
    ex->sink_overflow->append(data);
    return;
  }
  conn_add_piece(this, const_cast<char*>(data.data()), data.size());
  // Room stays for the overflow (3 pieces) and a final chunk (1).
  if (ex->chunk_line_count == kMaxPieces - 1 || ex->piece_count + 3 + 4 > std::size(ex->pieces)) {
    ex->sink_full = true;
  }
}

// Points the body sink at one direction's chunk-size lines and overflow
// buffer, before a parse of that direction's body bytes.
void aim_sink(Exchange* x, char (*lines)[24], std::string& overflow, bool chunked) {
  x->chunk_lines = lines;
  x->chunk_line_count = 0;
  x->sink_overflow = &overflow;
  overflow.clear();
  x->sink_full = false;
  x->sink_chunked = chunked;
}

// Adds the overflow gathered by on_body as the last body piece.
void conn_flush_overflow(Conn* c) {
  if (!c->x->sink_full || c->x->sink_overflow->empty()) return;
  conn_add_piece(c, c->x->sink_overflow->data(), c->x->sink_overflow->size());
}

// An in-process handler's answer.
std::optional<std::string_view> Conn::param(std::string_view name) const noexcept {
  if (x == nullptr) return std::nullopt;
  return x->match.param(name);
}

void Conn::send(int status, std::span<const http::Header> headers, std::string_view body) {
  if (response_started || state == ConnState::closing || x == nullptr || x->local_status != 0)
    return;
  if (status < 100 || status > 599) status = 500;
  x->local_status = x->response_status = status;
  x->local_headers.clear();
  for (const http::Header& h : headers) {
    if (!is_hop_by_hop(h.name, {})) x->local_headers.add(EditOp::add, h.name, h.value);
  }
  x->local_body.assign(body);
  conn_respond_local(this);
}

// The request as the filters left it, for an in-process handler: their
// header edits and upstream path applied, as an upstream would see them.
http::RequestHead handler_head(Exchange* x) {
  http::RequestHead head = x->parser.head();
  if (!x->upstream_path.empty()) head.path = x->upstream_path;
  if (x->request_edits.count == 0) return head;
  x->handler_headers.clear();
  for (const http::Header& h : head.headers)
    if (!x->request_edits.drops(h.name)) x->handler_headers.push_back(h);
  for (std::size_t i = 0; i < x->request_edits.count; ++i) {
    const HeaderEdit& e = x->request_edits.items[i];
    if (e.op != EditOp::remove)
      x->handler_headers.push_back({x->request_edits.name(e), x->request_edits.value(e)});
  }
  head.headers = x->handler_headers;
  return head;
}

void conn_run_handler(Conn* c) {
  const auto& handler = std::get<Handler>(c->route->options->target);
  c->state = ConnState::waiting;
  handler(handler_head(c->x), c->x->handler_body, *c);
  if (c->state != ConnState::closing && c->x != nullptr && c->x->local_status == 0)
    conn_respond_error(c, 502, "the in-process handler sent no response");
}

// Keeps the head (which filters and handlers still read) and drops the
// body bytes already consumed, so a long body never fills the buffer.
void conn_compact_after_head(Conn* c) {
  if (c->cursor > c->x->head_end) {
    std::memmove(c->buf + c->x->head_end, c->buf + c->cursor, c->len - c->cursor);
    c->len -= c->cursor - c->x->head_end;
    c->cursor = c->x->head_end;
  }
}

void on_up_write(uv_write_t* req, int status);

// The whole request body is in handler_body.
void conn_body_buffered(Conn* c) {
  Exchange* x = c->x;
  c->state = ConnState::waiting;
  if (x->buffer_request && x->entered > 0) {
    x->phase = Phase::request_body;
    x->filter = 0;
    chain_run(c);
    return;
  }
  conn_after_request_body_filters(c);
}

void conn_after_request_body_filters(Conn* c) {
  if (c->cluster == nullptr) {
    conn_run_handler(c);
  } else {
    conn_dispatch_upstream(c);
  }
}

// Parses the request body bytes in buf[cursor, len) and passes them on: into
// handler_body when buffering, or as one writev to the upstream (after
// `head_pieces` pieces already in c->x->pieces, the request head).
void conn_forward_body(Conn* c, std::size_t head_pieces) {
  Exchange* x = c->x;
  const bool buffering = x->sink_to_handler;
  x->piece_count = head_pieces;
  aim_sink(x, x->request_lines, x->request_overflow, c->chunked_to_upstream);
  x->sink_to_response = false;
  bool done = c->request_done;
  if (!done && c->buf != nullptr && c->len > c->cursor) {
    http::BodyProgress p = x->parser.parse_body({c->buf + c->cursor, c->len - c->cursor}, *c);
    c->cursor += p.consumed;
    if (p.state == http::ParseState::error) {
      conn_respond_error(c, x->parser.error().status, x->parser.error().reason, AfterError::close);
      return;
    }
    conn_flush_overflow(c);
    done = p.state == http::ParseState::complete;
  }
  // No body, or an empty one: there is nothing to wait for.
  if (c->request_framing == http::Framing::none ||
      (c->request_framing == http::Framing::content_length && x->parser.head().content_length == 0))
    done = true;
  if (c->x->body_seen > c->route->options->max_body_bytes) {
    // Mid-body: where the request ends is not known.
    conn_respond_error(c, 413, "the request body is larger than this route allows",
                       AfterError::close);
    return;
  }
  x->outcome.request_body_bytes = c->x->body_seen;
  if (done && !c->request_done) {
    c->request_done = true;
    if (c->chunked_to_upstream && !buffering) {
      x->pieces[x->piece_count++] = uv_buf_init(const_cast<char*>("0\r\n\r\n"), 5);
    }
  }
  if (buffering) {
    if (c->request_done) {
      x->sink_to_handler = false;
      conn_body_buffered(c);
    } else {
      conn_compact_after_head(c);
      conn_read_start(c);
    }
    return;
  }
  if (c->request_done) c->state = ConnState::waiting;
  UpConn* u = c->up;
  if (x->piece_count == 0) {
    if (!c->request_done) conn_read_start(c);
    return;
  }
  // The pieces point into buf, which keeps them in place until the write
  // completes: reading goes on into the free space after them (and stops,
  // for back-pressure, only when the buffer is full).
  u->writing = true;
  x->piece_count = gather(x->pieces, x->piece_count, x->request_gather);
  if (stream_write(u->server, &u->write_req, reinterpret_cast<uv_stream_t*>(&u->tcp), x->pieces,
                   x->piece_count, on_up_write) != 0) {
    u->writing = false;
    up_fail(u, 502, "the upstream connection failed while sending the request");
  }
}

// Finds the client's address: the peer's, unless the peer is a trusted
// proxy, in which case X-Forwarded-For is read from the right, skipping
// trusted hops, and the first untrusted address is the client.
void conn_find_client_ip(Conn* c, const http::RequestHead& head) {
  c->x->client_ip = c->peer_ip;
  if (!c->peer_trusted) return;
  std::string_view xff = head.header("x-forwarded-for");
  while (!xff.empty()) {
    const std::size_t comma = xff.rfind(',');
    std::string_view hop = comma == std::string_view::npos ? xff : xff.substr(comma + 1);
    xff = comma == std::string_view::npos ? std::string_view() : xff.substr(0, comma);
    while (!hop.empty() && (hop.front() == ' ' || hop.front() == '\t'))
      hop.remove_prefix(1);
    while (!hop.empty() && (hop.back() == ' ' || hop.back() == '\t'))
      hop.remove_suffix(1);
    // A link-local hop may carry its zone ("fe80::1%eth0"): matched without it.
    const auto address = detail::parse_ip_address_ignoring_zone(hop);
    if (!address) return;  // not an address: believe nothing further left
    c->x->client_ip_storage.assign(hop);
    c->x->client_ip = c->x->client_ip_storage;
    if (!is_trusted_proxy(*c->server, *address)) return;
  }
}

// An error answer to a parsed request before its filters ran (no route, a
// target that is not a path, a body over the route's limit): the chain
// hears of it first (Filter::on_early_error), so that the answer and the
// log carry what its filters record, such as the request id.
void conn_refuse_early(Conn* c, int status, std::string_view cause,
                       AfterError after = AfterError::keep_if_complete) {
  chain_early_error(c, status, cause);
  conn_respond_error(c, status, cause, after);
}

// Routes a complete head and starts its filter chain.
void conn_start_request(Conn* c) {
  ServerImpl* s = c->server;
  Exchange* x = c->x;
  const http::RequestHead& head = x->parser.head();
  c->x->request_id = s->next_request_id++;
  s->stats.requests.add();
  c->keep_alive = head.keep_alive && !s->stopping;
  c->is_head_request = head.method == "HEAD";
  c->x->body_seen = 0;
  c->request_done = c->response_started = c->response_done = false;
  c->close_after_response = false;
  c->route = nullptr;
  x->handler_body.clear();
  x->start = s->now();
  x->start_ns = uv_hrtime();  // the loop's clock counts milliseconds: too coarse for logs
  x->table = s->table.get();
  ++x->table->users;
  x->chain = x->table->set->unrouted_chain;  // until a route matches
  c->cluster = nullptr;
  conn_find_client_ip(c, head);
  c->state = ConnState::reading_body;
  c->cursor += x->parser.head_size();
  c->x->head_end = c->cursor;
  c->request_framing = head.framing;
  c->chunked_to_upstream = head.framing == http::Framing::chunked;
  if (s->request_timeouts.open) s->request_timeouts.arm(c->deadline);

  std::string_view path = head.path;
  x->query = {};
  if (std::size_t q = path.find('?'); q != std::string_view::npos) {
    x->query = path.substr(q + 1);
    path = path.substr(0, q);
  }
  if (path.empty() || path.front() != '/') {
    conn_refuse_early(c, 400, "the request target is not a path", AfterError::close);
    return;
  }
  x->path.resize(path.size());
  auto normal = normalize_path(path, std::span<char>(x->path.data(), x->path.size()));
  if (!normal) {
    conn_refuse_early(c, 400, "the request path is malformed", AfterError::close);
    return;
  }
  x->path.resize(*normal);
  const RouteTable& table = *x->table;
  const RouteSet& set = *table.set;
  MatchInput in{head.method, head.host, x->path, x->query, {}};
  // Header predicates see the request's fields; converted on the stack,
  // only when a route has such predicates.
  HeaderField fields[kMaxMatchHeaders];
  if (set.match_headers) {
    std::size_t n = 0;
    for (const http::Header& h : head.headers) {
      if (n == kMaxMatchHeaders) break;
      fields[n++] = HeaderField{h.name, h.value};
    }
    in.headers = std::span<const HeaderField>(fields, n);
  }
  x->match = set.router->match(in);
  if (x->match.status != MatchStatus::matched) {
    const bool not_found = x->match.status == MatchStatus::not_found;
    conn_refuse_early(
        c, not_found ? 404 : 405,
        not_found ? "no route matches this request" : "the route does not allow this method");
    return;
  }
  c->route = &set.routes[x->match.route->id()];
  std::uint32_t cluster = c->route->cluster;
  if (!c->route->weighted.empty()) {
    // Canary and blue-green: a weighted pick per request.
    if (auto i = c->route->route->pick_target(s->weighted_picks.next()))
      cluster = c->route->weighted[*i];
  }
  if (cluster != kNoCluster) c->cluster = table.clusters[cluster].get();
  x->chain = c->route->filters;
  if (head.framing == http::Framing::content_length &&
      head.content_length > c->route->options->max_body_bytes) {
    conn_refuse_early(c, 413, "the request body is larger than this route allows");
    return;
  }
  chain_start(c);
}

// The request-header phase passed: send the request on.
void conn_after_request_filters(Conn* c) {
  Exchange* x = c->x;
  const http::RequestHead& head = x->parser.head();
  if (head.expect_continue && head.framing != http::Framing::none) {
    static const char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";
    uv_buf_t b = uv_buf_init(const_cast<char*>(kContinue), sizeof kContinue - 1);
    uv_try_write(reinterpret_cast<uv_stream_t*>(&c->tcp), &b, 1);
  }
  Cluster* cl = c->cluster;
  // A body is collected whole for a handler, for a filter that asked, and
  // (up to the replay buffer) for a request that may need to be retried.
  bool buffer = cl == nullptr || x->buffer_request;
  if (cl != nullptr && cl->options.retry.max_retries > 0) {
    if (head.framing == http::Framing::none) {
      x->replayable = true;
    } else if (head.framing == http::Framing::content_length &&
               head.content_length <= cl->options.retry.replay_buffer_bytes) {
      x->replayable = buffer = true;
    }
  }
  x->body_buffered = buffer;
  if (buffer && head.framing != http::Framing::none) {
    x->sink_to_handler = true;
    c->chunked_to_upstream = false;  // sent with a Content-Length once whole
    conn_forward_body(c, 0);
    return;
  }
  if (buffer) {
    c->request_done = true;
    conn_body_buffered(c);
    return;
  }
  conn_dispatch_upstream(c);
}

// Picks an endpoint and starts an attempt.
void conn_dispatch_upstream(Conn* c) {
  const char* cause = nullptr;
  int status = 503;
  EndpointState* ep = cluster_pick(c->cluster, c, nullptr, &cause, &status);
  if (ep == nullptr) {
    c->x->unavailability = c->x->pick_failure;
    conn_respond_error(c, status, cause);
    return;
  }
  up_start_exchange(c, ep, true, Duration::zero());
}

void conn_process(Conn* c) {
  while (c->state == ConnState::reading_head) {
    if (c->buf == nullptr || c->len == c->cursor) {
      conn_compact(c);
      if (!c->head_timer) c->server->idle_timeouts.arm(c->deadline);
      conn_read_start(c);
      return;
    }
    Exchange* x = conn_exchange(c);
    if (!c->head_timer) {
      c->head_timer = true;
      c->server->header_timeouts.arm(c->deadline);
    }
    http::ParseState st = x->parser.parse_head({c->buf + c->cursor, c->len - c->cursor});
    if (st == http::ParseState::incomplete) {
      if (c->cursor > 0) conn_compact(c);
      conn_read_start(c);
      return;
    }
    if (st == http::ParseState::error) {
      conn_respond_error(c, x->parser.error().status, x->parser.error().reason, AfterError::close);
      return;
    }
    c->deadline.disarm();
    c->head_timer = false;
    conn_start_request(c);
  }
  if (c->state == ConnState::reading_body && c->x != nullptr && !c->x->paused) {
    if (c->x->sink_to_handler) {
      conn_forward_body(c, 0);
    } else if (c->up != nullptr && c->up->connected && !c->up->writing) {
      conn_forward_body(c, 0);
    }
  }
}

void on_conn_read(uv_stream_t* s, ssize_t nread, const uv_buf_t*) {
  Conn* c = owner_of<Conn>(reinterpret_cast<uv_handle_t*>(s));
  if (nread == UV_ENOBUFS) {
    conn_read_stop(c);  // the buffer is full: resume once a write frees it
    return;
  }
  if (nread == UV_EOF && c->state == ConnState::waiting && c->request_done) {
    // The client half-closed after a complete request: answer, then close.
    conn_read_stop(c);
    c->keep_alive = false;
    return;
  }
  if (nread < 0) {
    conn_close(c);  // EOF or error: a half-sent request cannot be completed
    return;
  }
  if (nread == 0) return;
  c->len += static_cast<std::size_t>(nread);
  // Pipelined bytes while a response is in progress wait in the buffer.
  if (c->state == ConnState::tunnel) {
    tunnel_to_upstream(c);
  } else if (c->state != ConnState::waiting) {
    conn_process(c);
  }
}

void conn_finish_exchange(Conn* c) {
  chain_log(c);
  c->route = nullptr;
  c->state = ConnState::reading_head;
  c->deadline.disarm();  // the request timeout
  c->server->give_back(c->x);
  c->x = nullptr;
  if (c->out != nullptr) {
    c->server->pool.put(c->out);
    c->out = nullptr;
  }
  if (!c->keep_alive || c->close_after_response || c->server->stopping) {
    conn_close(c);
    return;
  }
  conn_process(c);
}

void on_conn_write(uv_write_t* req, int status) {
  Conn* c = owner_of<Conn>(reinterpret_cast<uv_handle_t*>(req->handle));
  c->writing = false;
  if (c->state == ConnState::closing) return;
  if (status < 0) {
    conn_close(c);
    return;
  }
  if (c->response_done) {
    if (c->up != nullptr && c->request_done) up_release(c->up);
    if (c->up == nullptr || c->request_done) {
      conn_finish_exchange(c);
    } else {
      // The response ended before the request did (e.g. an early error from
      // the upstream): this connection cannot be reused.
      conn_close(c);
    }
    return;
  }
  // More response body: let the upstream side read again.
  if (c->up != nullptr) up_process(c->up);
}

// -------------------------------------------------------------- upstream

void up_release_buffers(UpConn* u) {
  u->server->pool.put(u->buf);
  u->server->pool.put(u->out);
  u->buf = u->out = nullptr;
  u->len = 0;
  endpoint_release(u->endpoint);
}

void up_close(UpConn* u) {
  if (u->closing) return;
  u->closing = true;
  if (u->idle_link.linked()) {
    u->idle_link.unlink();
    --u->endpoint->idle_count;
  }
  u->deadline.disarm();
  uv_close(reinterpret_cast<uv_handle_t*>(&u->tcp), on_up_handle_closed);
}

void on_up_read(uv_stream_t* s, ssize_t nread, const uv_buf_t*);

void up_read_start(UpConn* u) {
  if (!u->reading && !u->closing) {
    u->reading = uv_read_start(reinterpret_cast<uv_stream_t*>(&u->tcp), alloc_up, on_up_read) == 0;
  }
}

void up_read_stop(UpConn* u) {
  if (u->reading) {
    uv_read_stop(reinterpret_cast<uv_stream_t*>(&u->tcp));
    u->reading = false;
  }
}

void on_up_timeout(void* owner) {
  UpConn* u = static_cast<UpConn*>(owner);
  if (u->client == nullptr) {
    up_close(u);  // idle in the pool too long
    return;
  }
  up_fail(u, 504,
          u->connected ? "the upstream did not respond in time"
                       : "the upstream connection was not established in time");
}

// Starts another attempt after a failed one, on another endpoint where
// there is one, after a jittered backoff.
void conn_retry(Conn* c) {
  Exchange* x = c->x;
  Cluster* cl = c->cluster;
  const char* cause = nullptr;
  int status = 503;
  EndpointState* ep = cluster_pick(cl, c, x->last_endpoint, &cause, &status);
  if (ep == nullptr) {
    c->x->unavailability = c->x->pick_failure;
    conn_respond_error(c, status, cause);
    return;
  }
  x->is_retry = true;
  up_start_exchange(c, ep, false, cluster_backoff(cl, x->attempts));
}

// Whether a failed attempt may be tried again. `sent_nothing`: the request
// cannot have reached the upstream's application (no connection).
bool conn_may_retry(Conn* c, bool sent_nothing) {
  Exchange* x = c->x;
  if (c->state == ConnState::closing || c->response_started || c->route == nullptr ||
      c->cluster == nullptr)
    return false;
  const RetryOptions& r = c->cluster->options.retry;
  if (x->attempts > r.max_retries) return false;
  if (!sent_nothing && !(x->replayable && is_idempotent(x->parser.head().method))) return false;
  // Streaming bodies are consumed as they are sent: only a request whose
  // body is still whole (buffered, or never sent) can go again.
  if (!x->replayable && !sent_nothing) return false;
  return cluster_retry_allowed(c->cluster);
}

// The exchange on `u` failed before or during the response.
void up_fail(UpConn* u, int status, std::string_view cause) {
  Conn* c = u->client;
  u->client = nullptr;
  up_close(u);
  if (c == nullptr) return;
  c->up = nullptr;
  Exchange* x = c->x;
  // A reused keep-alive connection that the upstream had already closed:
  // nothing of the request can have been processed, so try a new one once.
  const bool stale = u->reused && !u->response_bytes && !u->request_sent;
  if (stale && (x->replayable || c->request_framing == http::Framing::none) &&
      c->state != ConnState::closing && !c->response_started) {
    // The attempt goes on (same endpoint, same breaker permit) on a new
    // connection: it is not a retry.
    up_start_exchange(c, u->endpoint, false, Duration::zero());
    return;
  }
  cluster_attempt_end(c, RequestOutcome::failure);
  const bool sent_nothing = !u->connected;
  if (!u->response_bytes && !u->request_sent && conn_may_retry(c, sent_nothing)) {
    conn_retry(c);
    return;
  }
  // The endpoint's address stays out of the body: clients have no business
  // learning internal addresses (the access log records the endpoint).
  conn_respond_error(c, status, cause);
}

// Returns a finished exchange's connection to its endpoint's pool.
void up_release(UpConn* u) {
  Conn* c = u->client;
  u->client = nullptr;
  if (c != nullptr) c->up = nullptr;
  EndpointState* ep = u->endpoint;
  const ClusterOptions& o = ep->cluster->options;
  const bool reusable =
      u->parser.head().keep_alive && u->len == u->cursor && !u->closing && !u->writing &&
      (o.max_requests_per_connection == 0 || u->requests < o.max_requests_per_connection) &&
      ep->idle_count < o.max_idle_per_endpoint && !u->server->stopping && !ep->removed;
  u->parser.reset();
  u->head_done = false;
  if (!reusable) {
    up_close(u);
    return;
  }
  up_release_buffers(u);
  ++ep->users;  // up_release_buffers gave the connection's reference back
  u->cursor = 0;
  ep->idle.push_back(u->idle_link);
  ++ep->idle_count;
  ep->cluster->pool_timeouts.arm(u->deadline);
  up_read_start(u);  // an idle connection that speaks or closes is dropped
}

void up_connect(UpConn* u);

void on_up_connect(uv_connect_t* req, int status) {
  UpConn* u = owner_of<UpConn>(reinterpret_cast<uv_handle_t*>(req->handle));
  if (u->closing) return;
  if (status < 0) {
    up_fail(u, 502,
            status == UV_ECONNREFUSED ? "the upstream refused the connection"
                                      : "the upstream connection failed");
    return;
  }
  u->connected = true;
  up_send_request(u);
}

void up_connect(UpConn* u) {
  EndpointState* ep = u->endpoint;
  ep->cluster->connect_timeouts.arm(u->deadline);
  if (uv_tcp_connect(&u->connect_req, &u->tcp, reinterpret_cast<const sockaddr*>(&ep->addr),
                     on_up_connect) != 0) {
    up_fail(u, 502, "the upstream connection could not be started");
  }
}

void on_up_backoff(void* owner) {
  UpConn* u = static_cast<UpConn*>(owner);
  if (u->client == nullptr) {
    up_close(u);
    return;
  }
  up_connect(u);
}

// Serialises the request head for the upstream into u->out.
bool up_write_head(UpConn* u, Conn* c) {
  Exchange* x = c->x;
  const http::RequestHead& head = x->parser.head();
  if (u->out == nullptr) u->out = u->server->pool.get();
  HeadWriter w(u->out, u->server->pool.block_size());
  const std::string_view connection = head.header("connection");
  w << head.method << " " << (x->upstream_path.empty() ? head.path : x->upstream_path)
    << " HTTP/1.1\r\n";
  std::string_view forwarded_for;
  for (const http::Header& h : head.headers) {
    if (is_hop_by_hop(h.name, connection)) continue;
    if (detail::ascii_iequals(h.name, "expect")) continue;  // answered here
    if (detail::ascii_iequals(h.name, "x-forwarded-for")) {
      forwarded_for = h.value;
      continue;
    }
    if (detail::ascii_iequals(h.name, "x-forwarded-proto") ||
        detail::ascii_iequals(h.name, "x-forwarded-host") ||
        detail::ascii_iequals(h.name, "host")) {
      continue;  // set below from what the gateway saw
    }
    if (x->request_edits.count != 0 && x->request_edits.drops(h.name)) continue;
    w << h.name << ": " << h.value << "\r\n";
  }
  x->request_edits.write(w);
  if (head.upgrade) {
    // An upgrade (WebSocket and others) asks for a tunnel: these two are
    // hop-by-hop, but the upstream must see them to agree.
    w << "connection: upgrade\r\nupgrade: " << head.header("upgrade") << "\r\n";
  }
  w << "host: " << head.host << "\r\n";
  // Only a trusted proxy's X-Forwarded-For is kept; anyone else's is
  // replaced, so a client cannot choose the address the upstream sees.
  w << "x-forwarded-for: ";
  if (c->peer_trusted && !forwarded_for.empty()) w << forwarded_for << ", ";
  w << c->peer_ip << "\r\nx-forwarded-proto: http\r\nx-forwarded-host: " << head.host << "\r\n";
  if (x->body_buffered) {
    if (head.framing != http::Framing::none || !x->handler_body.empty()) {
      w << "content-length: ";
      w.number(x->handler_body.size()) << "\r\n";
    }
  } else if (head.framing == http::Framing::content_length) {
    w << "content-length: ";
    w.number(head.content_length) << "\r\n";
  } else if (c->chunked_to_upstream) {
    w << "transfer-encoding: chunked\r\n";
  }
  w << "\r\n";
  u->out_len = w.size();
  return !w.overflow();
}

void up_send_request(UpConn* u) {
  Conn* c = u->client;
  if (c == nullptr) {
    up_close(u);
    return;
  }
  Exchange* x = c->x;
  ++u->requests;
  u->response_bytes = false;
  u->request_sent = false;
  // The response timeout starts once the last request byte is written (see
  // on_up_write); an upload's own pace is bounded by request_timeout.
  u->deadline.disarm();
  up_read_start(u);
  // The head, then whatever body bytes are already buffered, in one writev.
  x->pieces[0] = uv_buf_init(u->out, static_cast<unsigned>(u->out_len));
  if (!x->body_buffered) {
    conn_forward_body(c, 1);
    return;
  }
  std::size_t n = 1;
  if (!x->handler_body.empty()) {
    x->pieces[n++] =
        uv_buf_init(x->handler_body.data(), static_cast<unsigned>(x->handler_body.size()));
  }
  c->state = ConnState::waiting;
  u->writing = true;
  if (stream_write(u->server, &u->write_req, reinterpret_cast<uv_stream_t*>(&u->tcp), x->pieces, n,
                   on_up_write) != 0) {
    u->writing = false;
    up_fail(u, 502, "the upstream connection failed while sending the request");
  }
}

void on_up_write(uv_write_t* req, int status) {
  UpConn* u = owner_of<UpConn>(reinterpret_cast<uv_handle_t*>(req->handle));
  u->writing = false;
  if (u->closing) return;
  if (status < 0) {
    up_fail(u, 502, "the upstream connection failed while sending the request");
    return;
  }
  Conn* c = u->client;
  if (c != nullptr && c->state == ConnState::tunnel) {
    conn_compact(c);
    conn_read_start(c);
    tunnel_to_upstream(c);
    return;
  }
  if (c != nullptr && c->request_done && !u->request_sent) {
    u->request_sent = true;
    if (!u->response_bytes) {
      u->endpoint->cluster->response_timeouts.arm(u->deadline);
    }
  }
  if (c == nullptr || c->state != ConnState::reading_body) return;
  conn_compact(c);  // the written pieces are no longer referenced
  if (c->buf != nullptr && c->len > c->cursor) {
    conn_forward_body(c, 0);
  } else {
    conn_read_start(c);
  }
}

void up_start_exchange(Conn* c, EndpointState* ep, bool allow_pooled, Duration delay) {
  ServerImpl* s = c->server;
  UpConn* u = nullptr;
  if (allow_pooled && ep->idle.linked()) {
    // The most recently used connection: the least likely to have timed out.
    u = static_cast<UpConn*>(ep->idle.prev->owner);
    u->idle_link.unlink();
    --ep->idle_count;
    u->deadline.disarm();
    u->reused = true;
    s->stats.upstream_connections_reused.add();
  } else {
    u = new UpConn(s, ep);
    ++ep->users;
    uv_tcp_init(s->loop, &u->tcp);
    u->tcp.data = u;
    u->handles = 1;
    s->open_handles += 1;
    s->stats.upstream_connections_opened.add();
    uv_tcp_nodelay(&u->tcp, 1);
  }
  if (c->x->endpoint != ep) cluster_attempt_start(c, ep);
  u->client = c;
  c->up = u;
  u->head_done = false;
  if (!up_write_head(u, c)) {
    u->client = nullptr;
    c->up = nullptr;
    up_close(u);
    cluster_attempt_end(c, RequestOutcome::cancelled);
    conn_respond_error(c, 431, "the request head is too large to forward");
    return;
  }
  if (u->connected) {
    up_send_request(u);
  } else if (delay > Duration::zero()) {
    ep->cluster->backoffs.arm_in(u->deadline, to_ms(delay));
  } else {
    up_connect(u);
  }
}

// Writes the response head for the client into c->out; false if too large.
bool conn_write_response_head(Conn* c, const http::ResponseHead& head) {
  Exchange* x = c->x;
  HeadWriter w(conn_out(c), c->server->pool.block_size());
  const int status = x->response_status != 0 ? x->response_status : head.status;
  w << "HTTP/1.1 ";
  w.number(static_cast<unsigned>(status))
      << " " << (head.reason.empty() || status != head.status ? reason_phrase(status) : head.reason)
      << "\r\n";
  const std::string_view connection = head.header("connection");
  for (const http::Header& h : head.headers) {
    if (is_hop_by_hop(h.name, connection)) continue;
    if (x->response_edits.count != 0 && x->response_edits.drops(h.name)) continue;
    w << h.name << ": " << h.value << "\r\n";
  }
  x->response_edits.write(w);
  const bool http10 = x->parser.head().version == http::Version::http10;
  c->chunked_to_client = false;
  if (head.framing == http::Framing::content_length) {
    w << "content-length: ";
    w.number(head.content_length) << "\r\n";
  } else if (c->is_head_request) {
    // A HEAD response describes the GET response: keep its length if given.
    if (auto cl = head.header("content-length"); !cl.empty())
      w << "content-length: " << cl << "\r\n";
  } else if (head.framing == http::Framing::chunked || head.framing == http::Framing::until_close) {
    if (http10) {
      c->close_after_response = true;  // the end of the body is the end of the connection
    } else {
      c->chunked_to_client = true;
      w << "transfer-encoding: chunked\r\n";
    }
  }
  if (c->server->stopping) c->keep_alive = false;  // draining: this is the last response
  if (!c->keep_alive || c->close_after_response) w << "connection: close\r\n";
  w << "\r\n";
  x->piece_count = 1;
  x->pieces[0] = uv_buf_init(c->out, static_cast<unsigned>(w.size()));
  x->outcome.status = status;
  return !w.overflow();
}

// Sends the upstream's 101 to the client and turns the exchange into a
// tunnel: from now on bytes are relayed as they are, both ways.
void conn_start_tunnel(Conn* c, UpConn* u, const http::ResponseHead& head) {
  HeadWriter w(conn_out(c), c->server->pool.block_size());
  w << "HTTP/1.1 101 " << (head.reason.empty() ? "Switching Protocols" : head.reason) << "\r\n";
  const std::string_view connection = head.header("connection");
  for (const http::Header& h : head.headers) {
    if (is_hop_by_hop(h.name, connection)) continue;
    w << h.name << ": " << h.value << "\r\n";
  }
  w << "connection: upgrade\r\nupgrade: " << head.header("upgrade") << "\r\n\r\n";
  u->cursor += u->parser.head_size();
  u->head_done = true;
  c->response_started = true;
  c->x->outcome.status = 101;
  c->state = ConnState::tunnel;
  c->keep_alive = false;
  u->deadline.disarm();  // a tunnel may stay quiet for as long as its peers like
  c->deadline.disarm();
  c->x->piece_count = 0;
  c->x->pieces[c->x->piece_count++] = uv_buf_init(c->out, static_cast<unsigned>(w.size()));
  if (u->len > u->cursor) {
    c->x->pieces[c->x->piece_count++] =
        uv_buf_init(u->buf + u->cursor, static_cast<unsigned>(u->len - u->cursor));
    u->cursor = u->len;
  }
  conn_write(c, c->x->pieces, c->x->piece_count);
  tunnel_to_upstream(c);  // bytes the client sent after its request
}

// Relays the client's unsent bytes to the upstream (one write at a time).
void tunnel_to_upstream(Conn* c) {
  UpConn* u = c->up;
  if (u == nullptr || u->writing || c->buf == nullptr || c->len == c->cursor) return;
  uv_buf_t b = uv_buf_init(c->buf + c->cursor, static_cast<unsigned>(c->len - c->cursor));
  c->cursor = c->len;
  u->writing = true;
  if (stream_write(u->server, &u->write_req, reinterpret_cast<uv_stream_t*>(&u->tcp), &b, 1,
                   on_up_write) != 0) {
    u->writing = false;
    conn_close(c);
  }
}

void up_tunnel(UpConn* u, Conn* c) {
  if (u->buf != nullptr && u->cursor == u->len) u->len = u->cursor = 0;
  up_read_start(u);
  if (u->len > u->cursor) {
    uv_buf_t b = uv_buf_init(u->buf + u->cursor, static_cast<unsigned>(u->len - u->cursor));
    u->cursor = u->len;
    conn_write(c, &b, 1);
  }
}

// A final response head arrived: account for the attempt, retry a
// retriable status, or hand the head to the response filters.
void up_on_final_head(UpConn* u, Conn* c) {
  Exchange* x = c->x;
  const http::ResponseHead& head = u->parser.head();
  cluster_attempt_end(c, head.status >= 500 ? RequestOutcome::failure : RequestOutcome::success);
  const auto& statuses = c->cluster->options.retry.retry_on_statuses;
  if (std::find(statuses.begin(), statuses.end(), head.status) != statuses.end() &&
      conn_may_retry(c, false)) {
    u->client = nullptr;
    c->up = nullptr;
    up_close(u);  // its body is not wanted; closing is cheaper than draining
    conn_retry(c);
    return;
  }
  x->upstream_head = &head;
  u->endpoint->cluster->between_bytes_timeouts.arm(u->deadline);
  if (x->entered > 0) {
    up_read_stop(u);  // the head's views must stay put while filters look
    chain_response(c);
  } else {
    conn_after_response_filters(c);
  }
}

// Parses response heads until the final one (1xx are skipped; 101 starts a
// tunnel).
void up_read_head(UpConn* u, Conn* c) {
  while (u->buf != nullptr && u->len > u->cursor) {
    const http::ParseState st = u->parser.parse_head({u->buf + u->cursor, u->len - u->cursor},
                                                     c->is_head_request ? "HEAD" : "GET");
    if (st == http::ParseState::incomplete) break;
    if (st == http::ParseState::error) {
      up_fail(u, 502, "the upstream sent an invalid response head");
      return;
    }
    const http::ResponseHead& head = u->parser.head();
    if (head.status == 101) {
      if (!c->x->parser.head().upgrade) {
        up_fail(u, 502, "the upstream switched protocols without being asked");
        return;
      }
      cluster_attempt_end(c, RequestOutcome::success);
      conn_start_tunnel(c, u, head);
      return;
    }
    if (head.status >= 100 && head.status < 200) {
      u->cursor += u->parser.head_size();  // interim response: skipped
      u->parser.reset();
      continue;
    }
    up_on_final_head(u, c);
    return;
  }
  up_read_start(u);
}

// The response filters passed: send the head (or start collecting the body
// a filter asked for), then the body.
void conn_after_response_filters(Conn* c) {
  Exchange* x = c->x;
  if (x->upstream_head == nullptr) {
    // A collected upstream body is the answer's body now.
    if (x->phase == Phase::response_body) x->local_body.swap(x->response_body);
    x->phase = Phase::done;
    conn_write_local(c);
    return;
  }
  UpConn* u = c->up;
  const http::ResponseHead& head = *x->upstream_head;
  if (x->phase == Phase::response_headers && x->buffer_response && !c->is_head_request &&
      head.framing != http::Framing::none) {
    // The body is collected whole; the response then goes out as a local
    // one, so the upstream's head is copied now (its bytes are reused).
    x->phase = Phase::none;
    x->local_status = head.status;
    x->local_headers.clear();
    const std::string_view connection = head.header("connection");
    for (const http::Header& h : head.headers) {
      if (!is_hop_by_hop(h.name, connection)) x->local_headers.add(EditOp::add, h.name, h.value);
    }
    x->sink_to_response = true;
    u->cursor += u->parser.head_size();
    u->head_done = true;
    x->upstream_head = nullptr;
    x->piece_count = 0;
    up_process(u);
    return;
  }
  x->phase = Phase::done;
  if (!conn_write_response_head(c, head)) {
    up_fail(u, 502, "the upstream's response head is too large");
    return;
  }
  u->cursor += u->parser.head_size();
  u->head_done = true;
  c->response_started = true;
  up_stream_body(u);
}

// A buffered response body is complete: run the body phase, then answer.
void conn_response_collected(Conn* c, UpConn* u) {
  Exchange* x = c->x;
  x->sink_to_response = false;
  // The upstream side is done: its connection goes back to the pool.
  if (c->request_done) {
    up_release(u);
  } else {
    conn_abort(c);
  }
  if (x->entered > 0) {
    x->phase = Phase::response_body;
    x->filter = x->entered;
    chain_run(c);
  } else {
    x->phase = Phase::done;
    conn_write_local(c);
  }
}

void up_process(UpConn* u) {
  Conn* c = u->client;
  if (c == nullptr) {
    up_close(u);
    return;
  }
  if (c->writing || c->x->paused) return;  // resumed from on_conn_write or the chain
  if (c->state == ConnState::tunnel) {
    up_tunnel(u, c);
    return;
  }
  if (c->x->phase == Phase::response_headers || c->x->phase == Phase::response_body) return;
  // What was written to the client is no longer referenced.
  if (u->buf != nullptr && u->cursor > 0) {
    std::memmove(u->buf, u->buf + u->cursor, u->len - u->cursor);
    u->len -= u->cursor;
    u->cursor = 0;
  }
  up_read_start(u);  // after a full buffer stopped it
  if (u->head_done && !c->response_done) {
    u->endpoint->cluster->between_bytes_timeouts.arm(u->deadline);
  }
  c->x->piece_count = 0;
  if (!u->head_done) {
    up_read_head(u, c);
    return;
  }
  up_stream_body(u);
}

// Passes response body bytes on, after the pieces already gathered (the
// head, when it was just written): as pieces to the client, or into the
// buffer a filter asked for.
void up_stream_body(UpConn* u) {
  Conn* c = u->client;
  Exchange* x = c->x;
  aim_sink(x, x->response_lines, x->response_overflow, c->chunked_to_client);
  x->sink_to_handler = false;
  const http::ResponseHead& head = u->parser.head();
  bool complete = false;
  if (u->len > u->cursor) {
    const std::uint64_t before = x->outcome.response_body_bytes;
    http::BodyProgress p = u->parser.parse_body({u->buf + u->cursor, u->len - u->cursor}, *c);
    u->cursor += p.consumed;
    if (!x->sink_to_response) x->outcome.response_body_bytes = before + p.consumed;
    if (p.state == http::ParseState::error) {
      if (x->sink_to_response) {
        up_fail(u, 502, "the upstream sent an invalid response body");
        return;
      }
      u->client = nullptr;
      c->up = nullptr;
      up_close(u);
      conn_close(c);  // the response began: closing is the only signal left
      return;
    }
    if (x->sink_to_response && x->response_body.size() > c->route->options->max_body_bytes) {
      up_fail(u, 502, "the upstream's response body is larger than a filter may buffer");
      return;
    }
    conn_flush_overflow(c);
    complete = p.state == http::ParseState::complete;
  } else if (head.framing == http::Framing::none ||
             (head.framing == http::Framing::content_length && head.content_length == 0) ||
             c->is_head_request) {
    complete = true;
  }
  if (x->sink_to_response) {
    if (complete) {
      conn_response_collected(c, u);
    } else {
      up_read_start(u);
    }
    return;
  }
  if (complete) c->response_done = true;
  if (c->response_done && c->chunked_to_client) {
    x->pieces[x->piece_count++] = uv_buf_init(const_cast<char*>("0\r\n\r\n"), 5);
  }
  if (x->piece_count == 0) {
    up_read_start(u);
    return;
  }
  // The pieces stay in place in u->buf until the client has them; reading
  // goes on into the space after them.
  // Waiting for a slow client is not the upstream's silence: the timer
  // starts again when reading resumes (up_process).
  u->deadline.disarm();
  x->piece_count = gather(x->pieces, x->piece_count, x->response_gather);
  conn_write(c, x->pieces, x->piece_count);
}

// The upstream closed a response delimited by the connection's end.
void up_finish_at_eof(UpConn* u, Conn* c) {
  Exchange* x = c->x;
  u->client = nullptr;
  c->up = nullptr;
  up_close(u);
  if (x->sink_to_response) {
    x->sink_to_response = false;
    if (x->entered > 0) {
      x->phase = Phase::response_body;
      x->filter = x->entered;
      chain_run(c);
    } else {
      x->phase = Phase::done;
      conn_write_local(c);
    }
    return;
  }
  c->response_done = true;
  x->piece_count = 0;
  if (c->chunked_to_client) {
    x->pieces[x->piece_count++] = uv_buf_init(const_cast<char*>("0\r\n\r\n"), 5);
  }
  if (x->piece_count > 0) {
    conn_write(c, x->pieces, x->piece_count);
  } else {
    conn_finish_exchange(c);
  }
}

void on_up_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t*) {
  UpConn* u = owner_of<UpConn>(reinterpret_cast<uv_handle_t*>(stream));
  Conn* c = u->client;
  if (c == nullptr) {
    up_close(u);  // an idle pooled connection spoke or closed
    return;
  }
  if (nread == UV_ENOBUFS) {
    up_read_stop(u);  // the buffer is full: resume once the client has taken some
    return;
  }
  if (nread == 0) return;
  if (nread < 0) {
    if (u->head_done && u->parser.head().framing == http::Framing::until_close && !c->writing &&
        u->parser.finish_at_eof() == http::ParseState::complete) {
      up_finish_at_eof(u, c);
      return;
    }
    if (!u->head_done || c->x->sink_to_response) {
      up_fail(u, 502, "the upstream closed the connection before responding");
    } else {
      u->client = nullptr;
      c->up = nullptr;
      up_close(u);
      conn_close(c);
    }
    return;
  }
  u->len += static_cast<std::size_t>(nread);
  u->response_bytes = true;
  if (c->state != ConnState::tunnel) {
    Cluster* cl = u->endpoint->cluster;
    (u->head_done ? cl->between_bytes_timeouts : cl->response_timeouts).arm(u->deadline);
  }
  up_process(u);
}

// A connection object (Conn or UpConn) is freed with the last of its handles.
template <class T, void (*release)(T*)>
void on_handle_closed(uv_handle_t* h) {
  T* object = owner_of<T>(h);
  ServerImpl* s = object->server;
  --s->open_handles;
  if (--object->handles == 0) {
    release(object);
    delete object;
  }
  if (!s->retiring.empty()) s->collect_retired();
  s->maybe_stopped();
}

void on_conn_handle_closed(uv_handle_t* h) {
  on_handle_closed<Conn, conn_release_buffers>(h);
}
void on_up_handle_closed(uv_handle_t* h) {
  on_handle_closed<UpConn, up_release_buffers>(h);
}

void on_listener_connection(uv_stream_t* listener, int status) {
  static_cast<ServerImpl*>(listener->data)->on_connection(status);
}

bool resolve(const std::string& address, std::uint16_t port, sockaddr_storage& out) {
  if (uv_ip4_addr(address.c_str(), port, reinterpret_cast<sockaddr_in*>(&out)) == 0) return true;
  return uv_ip6_addr(address.c_str(), port, reinterpret_cast<sockaddr_in6*>(&out)) == 0;
}

// ------------------------------------------------------------- ServerImpl

ServerImpl::ServerImpl(uv_loop_t* l, ServerOptions o)
    : loop(l),
      options(std::move(o)),
      pool(std::max<std::size_t>(options.limits.max_head_bytes + 1024, 16 * 1024)) {}

ServerImpl::~ServerImpl() {
  if (listen_fd_copy >= 0) ::close(listen_fd_copy);
  for (Exchange* x : free_exchanges)
    delete x;
}

Status ServerImpl::compile(std::shared_ptr<const RouteSet> set) {
  for (std::size_t i = 0; i < options.trusted_proxies.size(); ++i) {
    auto net = detail::parse_ip_network(options.trusted_proxies[i]);
    if (!net)
      return make_error(ErrorKind::invalid_argument,
                        "trusted_proxies[" + std::to_string(i) + "]: " + net.error().message);
    trusted.push_back(*net);
  }
  if (options.request_timeout < Duration::zero() || options.header_timeout <= Duration::zero() ||
      options.idle_timeout <= Duration::zero())
    return make_error(ErrorKind::invalid_argument,
                      "header_timeout and idle_timeout must be positive, request_timeout not "
                      "negative");
  auto t = make_table(std::move(set));
  if (!t) return std::move(t).error();
  table = std::move(*t);
  return {};
}

namespace {

std::string route_field(std::size_t i, std::string_view rest) {
  return "routes[" + std::to_string(i) + "]" + std::string(rest);
}

using ClusterIndex = std::unordered_map<std::string_view, std::uint32_t>;

// The route's target: a cluster, weighted clusters, or a handler.
Status compile_target(const ClusterIndex& clusters, std::size_t i, const RouteOptions& ro,
                      CompiledRoute& cr) {
  auto find = [&](const std::string& name) {
    auto it = clusters.find(name);
    return it == clusters.end() ? kNoCluster : it->second;
  };
  if (!ro.weighted_clusters.empty()) {
    for (const WeightedTarget& w : ro.weighted_clusters) {
      const std::uint32_t cl = find(w.name);
      if (cl == kNoCluster)
        return make_error(ErrorKind::not_found,
                          route_field(i, ": no cluster named '" + w.name + "'"));
      cr.weighted.push_back(cl);
    }
    return {};
  }
  if (const auto* name = std::get_if<std::string>(&ro.target)) {
    cr.cluster = find(*name);
    if (cr.cluster == kNoCluster)
      return make_error(ErrorKind::not_found, route_field(i, ": no cluster named '" + *name + "'"));
  } else if (!std::get<Handler>(ro.target)) {
    return make_error(ErrorKind::invalid_argument, route_field(i, ": the handler is empty"));
  }
  return {};
}

bool is_header_predicate(const Predicate& p) noexcept {
  return p.kind != Predicate::Kind::query_equals && p.kind != Predicate::Kind::query_present;
}

Result<ClusterIndex> index_clusters(const std::vector<ClusterOptions>& clusters) {
  ClusterIndex index;
  index.reserve(clusters.size());
  for (std::size_t i = 0; i < clusters.size(); ++i) {
    const ClusterOptions& co = clusters[i];
    if (auto st = validate_cluster(co); !st) return std::move(st).error();
    if (!index.emplace(co.name, static_cast<std::uint32_t>(i)).second)
      return make_error(ErrorKind::conflict, "clusters['" + co.name + "']: defined twice");
  }
  return index;
}

RouteSpec route_spec(const RouteOptions& ro) {
  RouteSpec spec;
  spec.name = ro.name;
  spec.host = ro.host;
  spec.path = ro.path;
  spec.methods = ro.methods;
  spec.predicates = ro.predicates;
  spec.targets = ro.weighted_clusters;
  return spec;
}

bool same_route(const RouteSpec& held, const RouteOptions& ro) {
  return held.name == ro.name && held.host == ro.host && held.path == ro.path &&
         held.methods == ro.methods && held.predicates == ro.predicates &&
         held.targets == ro.weighted_clusters;
}

// A router handed over must hold the routes as this set would have added
// them: route i is routes[i], field for field, so that it matches what the
// options say (a stale router would route to the wrong chain).
Status check_given_router(const Router& router, const std::vector<RouteOptions>& routes) {
  if (router.size() != routes.size())
    return make_error(ErrorKind::invalid_argument,
                      "router: holds " + std::to_string(router.size()) + " routes for " +
                          std::to_string(routes.size()) + " in routes");
  for (std::size_t i = 0; i < routes.size(); ++i) {
    if (!same_route(router.route(static_cast<RouteId>(i)).spec(), routes[i]))
      return make_error(
          ErrorKind::invalid_argument,
          route_field(i, ": differs from route " + std::to_string(i) + " of the given router"));
  }
  return {};
}

// The router of the set: the given one once checked, or one built here.
Status compile_router(RouteSet& set, std::shared_ptr<const Router> given) {
  if (given) {
    if (auto st = check_given_router(*given, set.route_options); !st) return st;
    set.router = std::move(given);
    return {};
  }
  auto router = std::make_shared<Router>();
  router->reserve(set.route_options.size());
  for (std::size_t i = 0; i < set.route_options.size(); ++i) {
    auto id = router->add(route_spec(set.route_options[i]));
    if (!id) return make_error(id.error().kind, route_field(i, ": " + id.error().message));
  }
  set.router = std::move(router);
  return {};
}

// Every route's target and filter chain, by RouteId (route i of the router
// is routes[i]: both count up in the order of the options).
Status compile_routes(RouteSet& set, const ClusterIndex& clusters) {
  set.routes.reserve(set.route_options.size());
  for (std::size_t i = 0; i < set.route_options.size(); ++i) {
    const RouteOptions& ro = set.route_options[i];
    CompiledRoute cr{&ro, kNoCluster, {}, nullptr, {}};
    if (auto st = compile_target(clusters, i, ro, cr); !st) return st;
    cr.filters.reserve(set.global_filters.size() + ro.filters.size());
    cr.filters = set.global_filters;
    for (std::size_t j = 0; j < ro.filters.size(); ++j) {
      if (!ro.filters[j])
        return make_error(
            ErrorKind::invalid_argument,
            route_field(i, ".filters[" + std::to_string(j) + "]: the filter is null"));
      cr.filters.push_back(ro.filters[j].get());
    }
    for (const Predicate& p : ro.predicates)
      if (is_header_predicate(p)) set.match_headers = true;
    cr.route = &set.router->route(static_cast<RouteId>(i));
    set.routes.push_back(std::move(cr));
  }
  return {};
}

}  // namespace

Result<std::shared_ptr<const RouteSet>> compile_route_set(ServerOptions& options) {
  auto set = std::make_shared<RouteSet>();
  set->cluster_options = std::move(options.clusters);
  set->route_options = std::move(options.routes);
  set->filter_options = std::move(options.filters);
  set->unrouted_filter_options = std::move(options.unrouted_filters);
  std::shared_ptr<const Router> given = std::move(options.router);
  options.clusters.clear();
  options.routes.clear();
  options.filters.clear();
  options.unrouted_filters.clear();
  auto clusters = index_clusters(set->cluster_options);
  if (!clusters) return std::move(clusters).error();
  for (std::size_t i = 0; i < set->filter_options.size(); ++i) {
    if (!set->filter_options[i])
      return make_error(ErrorKind::invalid_argument,
                        "filters[" + std::to_string(i) + "]: the filter is null");
    set->global_filters.push_back(set->filter_options[i].get());
  }
  set->unrouted_chain = set->global_filters;
  for (std::size_t i = 0; i < set->unrouted_filter_options.size(); ++i) {
    if (!set->unrouted_filter_options[i])
      return make_error(ErrorKind::invalid_argument,
                        "unrouted_filters[" + std::to_string(i) + "]: the filter is null");
    set->unrouted_chain.push_back(set->unrouted_filter_options[i].get());
  }
  if (auto st = compile_router(*set, std::move(given)); !st) return std::move(st).error();
  if (auto st = compile_routes(*set, *clusters); !st) return std::move(st).error();
  return std::shared_ptr<const RouteSet>(std::move(set));
}

Result<std::unique_ptr<RouteTable>> ServerImpl::make_table(std::shared_ptr<const RouteSet> set) {
  auto t = std::make_unique<RouteTable>();
  t->server = this;
  t->set = std::move(set);
  if (auto st = make_clusters(*t); !st) return std::move(st).error();
  return t;
}

// Server::install checked that `next` is this server's and that it is not
// stopping: from here on nothing fails.
void ServerImpl::install(std::unique_ptr<RouteTable> next) {
  std::unique_ptr<RouteTable> old = std::move(table);
  table = std::move(next);
  if (started) {
    start_cluster_timers(*table);
    start_clusters(*table);
  }
  stats.reloads.add();
  old->retiring = true;
  RouteTable* raw = old.get();
  retiring.push_back(std::move(old));
  if (raw->users == 0) retire(raw);
}

bool RouteTable::idle() const noexcept {
  if (users != 0 || closing != 0) return false;
  for (const auto& cl : clusters)
    for (const auto& ep : cl->endpoints)
      if (ep->users != 0 || ep->idle.linked()) return false;
  return true;
}

void ServerImpl::release_table(RouteTable* t) {
  if (--t->users == 0 && t->retiring) retire(t);
}

// A replaced table's last request ended: close what it holds open. Each
// close counts in open_handles too, so a stop waits for them.
void ServerImpl::retire(RouteTable* t) {
  if (t->retired) return;
  t->retired = true;
  stop_clusters(*t);
  for (auto& cl : t->clusters) {
    for (auto& ep : cl->endpoints) {
      while (ep->idle.linked())
        up_close(static_cast<UpConn*>(ep->idle.next->owner));
    }
    for (TimeoutList* l : {&cl->connect_timeouts, &cl->response_timeouts,
                           &cl->between_bytes_timeouts, &cl->pool_timeouts, &cl->backoffs}) {
      if (!l->open) continue;
      ++t->closing;
      ++open_handles;
      l->user = t;
      l->close([](uv_handle_t* h) {
        auto* list = static_cast<TimeoutList*>(h->data);
        auto* table = static_cast<RouteTable*>(list->user);
        ServerImpl* s = table->server;
        --table->closing;
        --s->open_handles;
        s->collect_retired();
        s->maybe_stopped();
      });
    }
  }
  collect_retired();
}

void ServerImpl::collect_retired() {
  for (std::size_t i = 0; i < retiring.size();) {
    if (retiring[i]->retired && retiring[i]->idle()) {
      release_off_loop(std::move(retiring[i]->set));
      retiring.erase(retiring.begin() + static_cast<std::ptrdiff_t>(i));
    } else {
      ++i;
    }
  }
}

namespace {

struct SetRelease {
  uv_work_t work{};
  std::shared_ptr<const RouteSet> set;
  ServerImpl* server = nullptr;
};

}  // namespace

void ServerImpl::release_off_loop(std::shared_ptr<const RouteSet> set) {
  auto* r = new SetRelease;
  r->work.data = r;
  r->set = std::move(set);
  r->server = this;
  ++open_handles;  // a stop waits for it
  uv_queue_work(
      loop, &r->work, [](uv_work_t* w) { static_cast<SetRelease*>(w->data)->set.reset(); },
      [](uv_work_t* w, int) {
        auto* r = static_cast<SetRelease*>(w->data);
        ServerImpl* s = r->server;
        delete r;  // its set was released on the pool (or here, when cancelled)
        --s->open_handles;
        s->maybe_stopped();
      });
}

namespace {

// libuv 1.44 has no UV_TCP_REUSEPORT, so this socket is made here and then
// handed to libuv. Returns the bound socket, or an error naming the call that
// failed (the socket is closed then).
Result<int> bind_reuse_port_socket(const sockaddr_storage& addr) {
  const int fd = ::socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return make_error(ErrorKind::invalid_argument,
                      std::string("socket: ") + uv_strerror(uv_translate_sys_error(errno)));
  }
  const int on = 1;
  const socklen_t len = addr.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  const char* failed = nullptr;
  if (::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0) {
    failed = "setsockopt SO_REUSEADDR";
  } else if (::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0) {
    failed = "setsockopt SO_REUSEPORT";
  } else if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), len) != 0) {
    failed = "bind";
  }
  if (failed == nullptr) return fd;
  const int err = errno;
  ::close(fd);
  return make_error(ErrorKind::invalid_argument,
                    std::string(failed) + ": " + uv_strerror(uv_translate_sys_error(err)));
}

}  // namespace

Status ServerImpl::start() {
  sockaddr_storage addr{};
  if (!resolve(options.address, options.port, addr)) {
    return make_error(ErrorKind::invalid_argument,
                      "address '" + options.address + "' is not numeric");
  }
  const std::string cannot_listen =
      "cannot listen on " + options.address + ":" + std::to_string(options.port) + ": ";
  int reuse_port_fd = -1;
  if (options.reuse_port) {
    auto fd = bind_reuse_port_socket(addr);
    if (!fd) return make_error(fd.error().kind, cannot_listen + fd.error().message);
    reuse_port_fd = *fd;
  }
  uv_tcp_init(loop, &listener);
  listener.data = this;
  listener_open = true;
  int rc = options.reuse_port ? uv_tcp_open(&listener, reuse_port_fd)
                              : uv_tcp_bind(&listener, reinterpret_cast<const sockaddr*>(&addr), 0);
  if (rc != 0 && options.reuse_port) ::close(reuse_port_fd);  // the handle did not adopt it
  if (rc == 0)
    rc = uv_listen(reinterpret_cast<uv_stream_t*>(&listener), options.backlog,
                   on_listener_connection);
  if (rc != 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(&listener), [](uv_handle_t* h) {
      auto* self = static_cast<ServerImpl*>(h->data);
      self->listener_open = false;
      self->maybe_stopped();  // stop() may have been called since
    });
    return make_error(ErrorKind::invalid_argument, cannot_listen + uv_strerror(rc));
  }
  uv_os_fd_t fd = -1;
  uv_fileno(reinterpret_cast<uv_handle_t*>(&listener), &fd);
  listen_fd_copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);  // -1: EMFILE will not pause, as before
  uv_timer_init(loop, &accept_timer);
  accept_timer.data = this;
  accept_timer_open = true;
  sockaddr_storage bound{};
  int len = sizeof bound;
  uv_tcp_getsockname(&listener, reinterpret_cast<sockaddr*>(&bound), &len);
  bound_port =
      ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                        : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  return {};
}

void ServerImpl::on_connection(int status) {
  // libuv sheds connections on EMFILE with a reserve descriptor; EMFILE
  // arrives here only when that failed, and libuv then retries accept() in
  // a loop until the listener is closed: pause instead of spinning.
  if (status == UV_EMFILE || status == UV_ENFILE) return pause_accepting();
  if (status < 0 || stopping) return;
  Conn* c = new Conn(this);
  uv_tcp_init(loop, &c->tcp);
  c->tcp.data = c;
  stats.connections_active.add();  // until conn_release_buffers
  if (uv_accept(reinterpret_cast<uv_stream_t*>(&listener),
                reinterpret_cast<uv_stream_t*>(&c->tcp)) != 0) {
    c->handles = 1;
    ++open_handles;
    c->state = ConnState::closing;
    uv_close(reinterpret_cast<uv_handle_t*>(&c->tcp), on_conn_handle_closed);
    return;
  }
  c->handles = 1;
  open_handles += 1;
  conns.push_back(c->link);
  stats.connections_accepted.add();
  uv_tcp_nodelay(&c->tcp, 1);
  sockaddr_storage peer{};
  int len = sizeof peer;
  if (uv_tcp_getpeername(&c->tcp, reinterpret_cast<sockaddr*>(&peer), &len) == 0) {
    if (peer.ss_family == AF_INET6) {
      uv_ip6_name(reinterpret_cast<sockaddr_in6*>(&peer), c->peer_ip, sizeof c->peer_ip);
    } else {
      uv_ip4_name(reinterpret_cast<sockaddr_in*>(&peer), c->peer_ip, sizeof c->peer_ip);
    }
    const auto address = detail::ip_address_of(peer);
    c->peer_trusted = address && is_trusted_proxy(*this, *address);
  }
  conn_process(c);
}

void on_accept_timer(uv_timer_t* t) {
  static_cast<ServerImpl*>(t->data)->resume_accepting();
}

void ServerImpl::pause_accepting() {
  if (stopping || !listener_open || listen_fd_copy < 0) return;
  uv_close(reinterpret_cast<uv_handle_t*>(&listener), [](uv_handle_t* h) {
    auto* self = static_cast<ServerImpl*>(h->data);
    self->listener_open = false;
    self->maybe_stopped();
  });
  uv_timer_start(&accept_timer, on_accept_timer, 100, 0);
}

// Pending connections waited in the backlog; they are accepted now, or the
// timer tries again while descriptors are still short.
void ServerImpl::resume_accepting() {
  if (stopping) return;
  const int fd = listener_open ? -1 : ::fcntl(listen_fd_copy, F_DUPFD_CLOEXEC, 0);
  if (fd < 0) {
    uv_timer_start(&accept_timer, on_accept_timer, 100, 0);
    return;
  }
  uv_tcp_init(loop, &listener);
  listener.data = this;
  listener_open = true;
  if (uv_tcp_open(&listener, fd) != 0) {
    ::close(fd);
    pause_accepting();
  } else if (uv_listen(reinterpret_cast<uv_stream_t*>(&listener), options.backlog,
                       on_listener_connection) != 0) {
    pause_accepting();
  }
}

void ServerImpl::stop(Duration drain, std::function<void()> done) {
  if (stopping) return;
  stopping = true;
  on_stopped = std::move(done);
  if (listen_fd_copy >= 0) {
    ::close(listen_fd_copy);
    listen_fd_copy = -1;
  }
  if (accept_timer_open) {
    uv_close(reinterpret_cast<uv_handle_t*>(&accept_timer), [](uv_handle_t* h) {
      auto* self = static_cast<ServerImpl*>(h->data);
      self->accept_timer_open = false;
      self->maybe_stopped();
    });
  }
  // A listener already closing (a failed start, accepting paused) finishes
  // closing on its own.
  if (listener_open && !uv_is_closing(reinterpret_cast<uv_handle_t*>(&listener))) {
    uv_close(reinterpret_cast<uv_handle_t*>(&listener), [](uv_handle_t* h) {
      auto* self = static_cast<ServerImpl*>(h->data);
      self->listener_open = false;
      self->maybe_stopped();
    });
  }
  stop_clusters(*table);
  // Idle downstream connections and pooled upstream ones close now; busy
  // ones close when their exchange ends, or at the drain deadline.
  for (Link* l = conns.next; l != &conns;) {
    Conn* c = static_cast<Conn*>(l->owner);
    l = l->next;
    if (c->state == ConnState::reading_head && (c->buf == nullptr || c->len == c->cursor))
      conn_close(c);
  }
  for (auto& cl : table->clusters) {
    for (auto& ep : cl->endpoints) {
      while (ep->idle.linked())
        up_close(static_cast<UpConn*>(ep->idle.next->owner));
    }
  }
  uv_timer_init(loop, &drain_timer);
  drain_timer.data = this;
  drain_timer_open = true;
  uv_timer_start(
      &drain_timer,
      [](uv_timer_t* t) {
        auto* self = static_cast<ServerImpl*>(t->data);
        for (Link* l = self->conns.next; l != &self->conns;) {
          Conn* c = static_cast<Conn*>(l->owner);
          l = l->next;
          conn_close(c);
        }
      },
      to_ms(drain), 0);
  maybe_stopped();
}

void ServerImpl::maybe_stopped() {
  if (!stopping || listener_open || accept_timer_open || open_handles != 0 || !drain_timer_open)
    return;
  drain_timer_open = false;
  uv_timer_stop(&drain_timer);
  uv_close(reinterpret_cast<uv_handle_t*>(&drain_timer), [](uv_handle_t* h) {
    auto* self = static_cast<ServerImpl*>(h->data);
    if (self->on_stopped) {
      auto cb = std::move(self->on_stopped);
      cb();
    }
  });
  // Closed after the drain timer: libuv finishes closes last in, first out,
  // so these are done with before on_stopped may free the server.
  close_loop_handles();
}

void ServerImpl::close_loop_handles() {
  if (write_queue_open) {
    write_queue_open = false;
    uv_close(reinterpret_cast<uv_handle_t*>(&write_check), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&write_idle), nullptr);
  }
  idle_timeouts.close();
  header_timeouts.close();
  request_timeouts.close();
  auto close_timers = [](RouteTable& t) {
    for (auto& cl : t.clusters) {
      for (TimeoutList* l : {&cl->connect_timeouts, &cl->response_timeouts,
                             &cl->between_bytes_timeouts, &cl->pool_timeouts, &cl->backoffs})
        l->close();
    }
  };
  close_timers(*table);
  for (auto& t : retiring)
    close_timers(*t);
}

void ServerImpl::start_cluster_timers(RouteTable& t) {
  for (auto& cl : t.clusters) {
    const ClusterOptions& o = cl->options;
    cl->connect_timeouts.start(loop, to_ms(o.connect_timeout), on_up_timeout);
    cl->response_timeouts.start(loop, to_ms(o.response_timeout), on_up_timeout);
    cl->between_bytes_timeouts.start(loop, to_ms(o.idle_between_bytes_timeout), on_up_timeout);
    cl->pool_timeouts.start(loop, to_ms(o.idle_timeout), on_up_timeout);
    cl->backoffs.start(loop, 1, on_up_backoff);
  }
}

void ServerImpl::start_loop_handles() {
  idle_timeouts.start(loop, to_ms(options.idle_timeout), on_conn_idle_timeout);
  header_timeouts.start(loop, to_ms(options.header_timeout), on_conn_header_timeout);
  if (options.request_timeout > Duration::zero())
    request_timeouts.start(loop, to_ms(options.request_timeout), on_conn_request_timeout);
  start_cluster_timers(*table);
  uv_check_init(loop, &write_check);
  uv_idle_init(loop, &write_idle);
  write_check.data = write_idle.data = this;
  write_queue_open = true;
  uv_check_start(&write_check,
                 [](uv_check_t* check) { run_done_writes(static_cast<ServerImpl*>(check->data)); });
  // Neither keeps the loop alive: the writes they complete belong to
  // connections, which do.
  uv_unref(reinterpret_cast<uv_handle_t*>(&write_check));
  uv_unref(reinterpret_cast<uv_handle_t*>(&write_idle));
}

Exchange* ServerImpl::take_exchange() {
  if (free_exchanges.empty()) return new Exchange(options.limits);
  Exchange* x = free_exchanges.back();
  free_exchanges.pop_back();
  return x;
}

void ServerImpl::give_back(Exchange* x) {
  if (x->table != nullptr) {
    RouteTable* t = x->table;
    x->table = nullptr;
    release_table(t);
  }
  x->parser.reset();
  x->handler_body.clear();
  ++x->serial;  // outstanding ResumeHandles of the request go stale
  x->conn = nullptr;
  chain_reset(x);
  free_exchanges.push_back(x);
}

// --------------------------------------------------------- PreparedRoutes

PreparedRoutes::PreparedRoutes() noexcept = default;
PreparedRoutes::~PreparedRoutes() = default;
PreparedRoutes::PreparedRoutes(PreparedRoutes&&) noexcept = default;
PreparedRoutes& PreparedRoutes::operator=(PreparedRoutes&&) noexcept = default;
PreparedRoutes::PreparedRoutes(std::unique_ptr<RouteTable> table) noexcept
    : table_(std::move(table)) {}

// ----------------------------------------------------------------- Server

Server::Server(std::unique_ptr<ServerImpl> impl) : impl_(std::move(impl)) {}
Server::~Server() = default;

Result<std::unique_ptr<Server>> Server::create(uv_loop_t* loop, ServerOptions options) {
  if (loop == nullptr) return make_error(ErrorKind::invalid_argument, "loop is null");
  auto set = compile_route_set(options);
  if (!set) return std::move(set).error();
  return create(loop, std::move(options), std::move(*set));
}

Result<std::unique_ptr<Server>> Server::create(uv_loop_t* loop, ServerOptions options,
                                               std::shared_ptr<const RouteSet> set) {
  if (loop == nullptr) return make_error(ErrorKind::invalid_argument, "loop is null");
  options.clusters.clear();  // in `set`
  options.routes.clear();
  options.filters.clear();
  options.unrouted_filters.clear();
  options.router.reset();
  auto impl = std::make_unique<ServerImpl>(loop, std::move(options));
  if (auto st = impl->compile(std::move(set)); !st) return std::move(st).error();
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

Status Server::start() {
  auto st = impl_->start();
  if (st) {
    impl_->start_loop_handles();
    impl_->start_clusters(*impl_->table);
    impl_->started = true;
  }
  return st;
}
std::uint16_t Server::port() const noexcept {
  return impl_->bound_port;
}
void Server::stop(Duration drain, std::function<void()> on_stopped) {
  impl_->stop(drain, std::move(on_stopped));
}
Status Server::reload(ServerOptions options) {
  auto prepared = prepare(std::move(options));
  if (!prepared) return std::move(prepared).error();
  return install(std::move(*prepared));
}

Result<PreparedRoutes> Server::prepare(ServerOptions options) const {
  auto set = compile_route_set(options);
  if (!set) return std::move(set).error();
  return prepare(std::move(*set));
}

Result<PreparedRoutes> Server::prepare(std::shared_ptr<const RouteSet> set) const {
  auto table = impl_->make_table(std::move(set));
  if (!table) return std::move(table).error();
  return PreparedRoutes(std::move(*table));
}

Status Server::install(PreparedRoutes&& routes) {
  if (!routes.table_)
    return make_error(ErrorKind::invalid_argument, "the prepared routes are empty (installed?)");
  if (routes.table_->server != impl_.get())
    return make_error(ErrorKind::invalid_argument, "the routes were prepared for another server");
  if (impl_->stopping) return make_error(ErrorKind::invalid_argument, "the server is stopping");
  impl_->install(std::move(routes.table_));
  return {};
}

std::uint64_t Server::generation() const noexcept {
  return impl_->stats.reloads.get();
}

ServerStats Server::stats() const noexcept {
  const LiveStats& s = impl_->stats;
  ServerStats out;
  out.connections_accepted = s.connections_accepted.get();
  out.connections_active = s.connections_active.get();
  out.requests = s.requests.get();
  out.upstream_connections_opened = s.upstream_connections_opened.get();
  out.upstream_connections_reused = s.upstream_connections_reused.get();
  out.reloads = s.reloads.get();
  return out;
}

std::vector<EndpointStatus> Server::endpoint_status() const {
  std::vector<EndpointStatus> out;
  const TimePoint now = impl_->now();
  for (const auto& cl : impl_->table->clusters) {
    for (const auto& ep : cl->endpoints) {
      if (ep->removed) continue;
      EndpointStatus st;
      st.cluster = cl->options.name;
      st.endpoint = ep->label;
      if (cl->balancer) {
        if (auto bs = cl->balancer->stats(ep->ref)) {
          st.healthy = bs->healthy;
          st.ejected = bs->ejected;
          st.active_requests = bs->in_flight;
          st.ejections = bs->times_ejected;
        }
      }
      if (ep->breaker) st.breaker = ep->breaker->state(now);
      st.idle_connections = static_cast<std::uint32_t>(ep->idle_count);
      out.push_back(std::move(st));
    }
  }
  return out;
}

}  // namespace portico::proxy
