// Server: the listener, downstream connections, upstream keep-alive pools and
// the exchange between them.
//
// One request at a time per downstream connection (pipelined requests wait
// in the read buffer). Bytes are never copied between the two sides: a body
// piece is written from the buffer it was read into, and the side it came
// from stops reading until that write completes. That one rule gives
// back-pressure in both directions and bounds each exchange to two buffers,
// whatever the body size.
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdio>
#include <string>

#include "../common/ascii.hpp"
#include "internal.hpp"
#include "portico/path.hpp"
#include "portico/proxy.hpp"

namespace portico::proxy {

using detail::BufferPool;
using detail::HeadWriter;
using detail::Link;

namespace {

constexpr std::size_t kMaxPieces = 32;  // body pieces gathered into one writev

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
    case 400:
      return "Bad Request";
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

// Hop-by-hop fields (RFC 9110 section 7.6.1), those the Connection header
// names, and the framing fields the proxy sets itself.
bool is_hop_by_hop(std::string_view name, std::string_view connection) noexcept {
  static constexpr std::string_view kFixed[] = {"connection",
                                                "keep-alive",
                                                "proxy-connection",
                                                "te",
                                                "trailer",
                                                "transfer-encoding",
                                                "upgrade",
                                                "content-length",
                                                "proxy-authenticate",
                                                "proxy-authorization"};
  for (std::string_view h : kFixed) {
    if (detail::ascii_iequals(name, h)) return true;
  }
  return !connection.empty() && token_list_has(connection, name);
}

}  // namespace

struct Cluster;
struct UpConn;
struct Conn;
struct Exchange;

namespace {
void conn_on_body(Conn* c, std::string_view data);
void conn_send(Conn* c, int status, std::span<const http::Header> headers, std::string_view body);
}  // namespace

struct EndpointState {
  sockaddr_storage addr{};
  std::string label;  // "127.0.0.1:8080", for error bodies
  Link idle;          // pooled UpConns
  std::size_t idle_count = 0;
  Cluster* cluster = nullptr;
};

struct Cluster {
  ClusterOptions options;
  std::vector<std::unique_ptr<EndpointState>> endpoints;
  std::size_t next = 0;  // round robin
};

struct CompiledRoute {
  const RouteOptions* options = nullptr;
  Cluster* cluster = nullptr;  // null: the handler
};

class ServerImpl {
 public:
  ServerImpl(uv_loop_t* loop, ServerOptions options);
  ~ServerImpl();

  Status compile();
  Status start();
  void stop(Duration drain, std::function<void()> on_stopped);

  // Connection bookkeeping.
  void on_connection(int status);
  void handle_closed();
  void maybe_stopped();

  uv_loop_t* loop;
  ServerOptions options;
  Router router;
  std::vector<CompiledRoute> routes;  // by RouteId
  std::vector<std::unique_ptr<Cluster>> clusters;
  BufferPool pool;
  uv_tcp_t listener{};
  bool listener_open = false;
  bool stopping = false;
  uv_timer_t drain_timer{};
  bool drain_timer_open = false;
  std::function<void()> on_stopped;
  Link conns;                    // every downstream connection
  std::size_t open_handles = 0;  // handles of connections (down and up) not yet closed
  std::uint16_t bound_port = 0;
  ServerStats stats;
  std::uint64_t next_request_id = 1;
  std::string path_scratch;  // normalised path of the request being routed
  std::vector<Exchange*> free_exchanges;

  Exchange* take_exchange();
  void give_back(Exchange* x);
};

// ------------------------------------------------------------- upstream side

struct UpConn {
  uv_tcp_t tcp{};
  uv_timer_t timer{};
  uv_connect_t connect_req{};
  uv_write_t write_req{};
  ServerImpl* server;
  EndpointState* endpoint;
  Link idle_link;
  Conn* client = nullptr;
  char* buf = nullptr;
  std::size_t len = 0;
  char* out = nullptr;  // the request head
  std::size_t out_len = 0;
  http::ResponseParser parser;
  std::uint32_t requests = 0;
  int handles = 0;
  bool connected = false;
  bool reading = false;
  bool closing = false;
  bool reused = false;  // this exchange runs on a pooled connection
  bool writing = false;
  bool response_bytes = false;  // any byte of a response arrived
  bool head_done = false;       // the response head went to the client
  std::size_t cursor = 0;       // bytes of buf already processed

  UpConn(ServerImpl* s, EndpointState* ep) : server(s), endpoint(ep), parser(s->options.limits) {
    idle_link.owner = this;
  }
};

// ----------------------------------------------------------- downstream side

enum class ConnState : std::uint8_t {
  reading_head,
  reading_body,  // request body: to the handler's buffer or to the upstream
  waiting,       // request complete, response in progress
  tunnel,        // after a 101: raw bytes both ways until either side closes
  closing,
};

// What a connection needs only while it has a request in progress: taken
// from a per-server pool when the first byte of a request arrives and given
// back when the exchange ends, so an idle keep-alive connection is small.
struct Exchange {
  uv_write_t write_req{};
  http::RequestParser parser;
  std::string handler_body;  // in-process handlers get the whole body

  // Pieces gathered for the next writev (to the upstream or the client).
  uv_buf_t pieces[kMaxPieces * 3 + 2];
  std::size_t piece_count = 0;
  // Chunk-size lines, one array per direction: a request body and an early
  // response may both be in flight.
  char request_lines[kMaxPieces][24];
  char response_lines[kMaxPieces][24];
  char (*chunk_lines)[24] = request_lines;
  std::size_t chunk_line_count = 0;
  std::string request_overflow, response_overflow;
  std::string* sink_overflow = &request_overflow;
  bool sink_full = false;
  bool sink_chunked = false;
  bool sink_to_handler = false;

  explicit Exchange(const http::Limits& limits) : parser(limits) {}
};

struct Conn final : http::BodySink, Reply {
  uv_tcp_t tcp{};
  uv_timer_t timer{};
  ServerImpl* server;
  Link link;
  Exchange* x = nullptr;  // while a request is in progress
  char* buf = nullptr;
  std::size_t len = 0;     // bytes in buf
  std::size_t cursor = 0;  // bytes of buf already processed
  char* out = nullptr;     // response head (and small responses)
  ConnState state = ConnState::reading_head;
  int handles = 0;
  bool reading = false;
  bool writing = false;
  bool keep_alive = true;
  bool head_timer = false;  // the header timeout is running

  // The request in progress.
  const CompiledRoute* route = nullptr;
  UpConn* up = nullptr;
  std::uint64_t request_id = 0;
  std::uint64_t body_seen = 0;
  bool is_head_request = false;
  bool request_done = false;  // the whole request reached the upstream (or the handler)
  bool response_started = false;
  bool response_done = false;
  bool chunked_to_upstream = false;
  bool chunked_to_client = false;
  bool close_after_response = false;
  std::size_t head_end = 0;  // where the head ends in buf
  http::Framing request_framing = http::Framing::none;
  char client_ip[INET6_ADDRSTRLEN] = "";

  explicit Conn(ServerImpl* s) : server(s) { link.owner = this; }

  // BodySink: gather a piece (with chunk framing when re-framing).
  void on_body(std::string_view data) override { conn_on_body(this, data); }
  // Reply: an in-process handler's response.
  void send(int status, std::span<const http::Header> headers, std::string_view body) override {
    conn_send(this, status, headers, body);
  }
};

namespace {

template <class T>
T* owner_of(uv_handle_t* h) {
  return static_cast<T*>(h->data);
}

// ----------------------------------------------------------- forward decls

void conn_close(Conn* c);
void conn_read_start(Conn* c);
void conn_process(Conn* c);
void conn_respond_error(Conn* c, int status, std::string_view cause);
void conn_finish_exchange(Conn* c);
void up_close(UpConn* u);
void up_process(UpConn* u);
void up_start_exchange(Conn* c, EndpointState* ep, bool allow_pooled);
void up_send_request(UpConn* u);
void up_fail(UpConn* u, int status, std::string_view cause);
void up_release(UpConn* u);
void tunnel_to_upstream(Conn* c);

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
  if (c->x != nullptr) {
    c->server->give_back(c->x);
    c->x = nullptr;
  }
  c->server->pool.put(c->buf);
  c->server->pool.put(c->out);
  c->buf = c->out = nullptr;
  c->len = c->cursor = 0;
}

void conn_close(Conn* c) {
  if (c->state == ConnState::closing) return;
  c->state = ConnState::closing;
  if (c->up != nullptr) {
    UpConn* u = c->up;
    c->up = nullptr;
    u->client = nullptr;
    up_close(u);  // the exchange is cut: the upstream connection cannot be reused
  }
  c->link.unlink();
  uv_timer_stop(&c->timer);
  uv_close(reinterpret_cast<uv_handle_t*>(&c->timer), on_conn_handle_closed);
  uv_close(reinterpret_cast<uv_handle_t*>(&c->tcp), on_conn_handle_closed);
}

void conn_timer_start(Conn* c, Duration d, uv_timer_cb cb) {
  uv_timer_start(&c->timer, cb, to_ms(d), 0);
}

void on_conn_idle_timeout(uv_timer_t* t) {
  conn_close(owner_of<Conn>(reinterpret_cast<uv_handle_t*>(t)));
}

void on_conn_header_timeout(uv_timer_t* t) {
  Conn* c = owner_of<Conn>(reinterpret_cast<uv_handle_t*>(t));
  conn_respond_error(c, 408, "the request head did not arrive in time");
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

void conn_write(Conn* c, const uv_buf_t* bufs, std::size_t n) {
  c->writing = true;
  if (uv_write(&c->x->write_req, reinterpret_cast<uv_stream_t*>(&c->tcp), bufs,
               static_cast<unsigned>(n), on_conn_write) != 0) {
    c->writing = false;
    conn_close(c);
  }
}

char* conn_out(Conn* c) {
  if (c->out == nullptr) c->out = c->server->pool.get();
  return c->out;
}

// A complete response of the proxy's own (errors, 100 Continue is separate).
void conn_respond_error(Conn* c, int status, std::string_view cause) {
  if (c->state == ConnState::closing) return;
  if (c->response_started || c->writing) {
    conn_close(c);  // a status cannot be changed once the response began
    return;
  }
  if (c->x == nullptr) c->x = c->server->take_exchange();
  conn_read_stop(c);
  uv_timer_stop(&c->timer);
  c->close_after_response = true;  // the request's remaining bytes are unknown
  char* out = conn_out(c);
  const std::size_t cap = c->server->pool.block_size();
  char body[512];
  const int body_len = std::snprintf(body, sizeof body, "%.*s (request %llu)\n",
                                     static_cast<int>(std::min<std::size_t>(cause.size(), 400)),
                                     cause.data(), static_cast<unsigned long long>(c->request_id));
  HeadWriter w(out, cap);
  w << "HTTP/1.1 ";
  w.number(static_cast<unsigned>(status))
      << " " << reason_phrase(status) << "\r\ncontent-type: text/plain\r\ncontent-length: ";
  w.number(static_cast<unsigned>(body_len))
      << "\r\nconnection: close\r\n\r\n"
      << std::string_view(body, static_cast<std::size_t>(body_len));
  c->response_started = true;
  c->response_done = true;
  c->state = ConnState::waiting;
  uv_buf_t b = uv_buf_init(out, static_cast<unsigned>(w.size()));
  conn_write(c, &b, 1);
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
// direction's overflow buffer, sent as one more piece.
void conn_on_body(Conn* c, std::string_view data) {
  Exchange* x = c->x;
  c->body_seen += data.size();
  if (x->sink_to_handler) {
    x->handler_body.append(data);
    return;
  }
  if (x->sink_full) {
    x->sink_overflow->append(data);
    return;
  }
  conn_add_piece(c, const_cast<char*>(data.data()), data.size());
  // Room stays for the overflow (3 pieces) and a final chunk (1).
  if (x->chunk_line_count == kMaxPieces - 1 || x->piece_count + 3 + 4 > std::size(x->pieces)) {
    x->sink_full = true;
  }
}

// Adds the overflow gathered by conn_on_body as the last body piece.
void conn_flush_overflow(Conn* c) {
  if (!c->x->sink_full || c->x->sink_overflow->empty()) return;
  conn_add_piece(c, c->x->sink_overflow->data(), c->x->sink_overflow->size());
}

void conn_send(Conn* c, int status, std::span<const http::Header> headers, std::string_view body) {
  if (c->response_started || c->state == ConnState::closing) return;
  if (c->server->stopping) c->keep_alive = false;
  char* o = conn_out(c);
  const std::size_t cap = c->server->pool.block_size();
  HeadWriter w(o, cap);
  w << "HTTP/1.1 ";
  w.number(static_cast<unsigned>(status)) << " " << reason_phrase(status) << "\r\n";
  for (const http::Header& h : headers) {
    if (is_hop_by_hop(h.name, {})) continue;
    w << h.name << ": " << h.value << "\r\n";
  }
  w << "content-length: ";
  w.number(body.size()) << "\r\n";
  if (!c->keep_alive) w << "connection: close\r\n";
  w << "\r\n";
  if (w.overflow()) {
    conn_respond_error(c, 500, "the handler's response head is too large");
    return;
  }
  c->response_started = true;
  c->response_done = true;
  // The body is copied into the handler-body buffer, which lives until the
  // write completes (the request body is no longer needed).
  c->x->handler_body.assign(body);
  uv_buf_t bufs[2] = {
      uv_buf_init(o, static_cast<unsigned>(w.size())),
      uv_buf_init(c->x->handler_body.data(), static_cast<unsigned>(c->x->handler_body.size()))};
  conn_write(c, bufs, c->is_head_request || c->x->handler_body.empty() ? 1 : 2);
}

void conn_run_handler(Conn* c) {
  const auto& handler = std::get<Handler>(c->route->options->target);
  c->state = ConnState::waiting;
  handler(c->x->parser.head(), c->x->handler_body, *c);
  if (!c->response_started) conn_respond_error(c, 502, "the in-process handler sent no response");
}

// Keeps the head (which an in-process handler still reads) and drops the
// body bytes already consumed, so a long body never fills the buffer.
void conn_compact_after_head(Conn* c) {
  if (c->cursor > c->head_end) {
    std::memmove(c->buf + c->head_end, c->buf + c->cursor, c->len - c->cursor);
    c->len -= c->cursor - c->head_end;
    c->cursor = c->head_end;
  }
}

void on_up_write(uv_write_t* req, int status);

// Parses the request body bytes in buf[cursor, len) and passes them on: into
// handler_body for an in-process handler, or as one writev to the upstream
// (after `head_pieces` pieces already in c->x->pieces, the request head).
void conn_forward_body(Conn* c, std::size_t head_pieces) {
  const bool to_handler = c->route->cluster == nullptr;
  c->x->piece_count = head_pieces;
  c->x->chunk_lines = c->x->request_lines;
  c->x->chunk_line_count = 0;
  c->x->sink_overflow = &c->x->request_overflow;
  c->x->request_overflow.clear();
  c->x->sink_full = false;
  c->x->sink_chunked = c->chunked_to_upstream;
  c->x->sink_to_handler = to_handler;
  bool done = c->request_done;
  if (!done && c->buf != nullptr && c->len > c->cursor) {
    http::BodyProgress p = c->x->parser.parse_body({c->buf + c->cursor, c->len - c->cursor}, *c);
    c->cursor += p.consumed;
    if (p.state == http::ParseState::error) {
      conn_respond_error(c, c->x->parser.error().status, c->x->parser.error().reason);
      return;
    }
    conn_flush_overflow(c);
    done = p.state == http::ParseState::complete;
  }
  if (c->request_framing == http::Framing::none) done = true;
  if (c->body_seen > c->route->options->max_body_bytes) {
    conn_respond_error(c, 413, "the request body is larger than this route allows");
    return;
  }
  if (done && !c->request_done) {
    c->request_done = true;
    if (c->chunked_to_upstream && !to_handler) {
      c->x->pieces[c->x->piece_count++] = uv_buf_init(const_cast<char*>("0\r\n\r\n"), 5);
    }
  }
  if (to_handler) {
    if (c->request_done) {
      conn_run_handler(c);
    } else {
      conn_compact_after_head(c);
      conn_read_start(c);
    }
    return;
  }
  if (c->request_done) c->state = ConnState::waiting;
  UpConn* u = c->up;
  if (c->x->piece_count == 0) {
    if (!c->request_done) conn_read_start(c);
    return;
  }
  // The pieces point into buf, which keeps them in place until the write
  // completes: reading goes on into the free space after them (and stops,
  // for back-pressure, only when the buffer is full).
  u->writing = true;
  if (uv_write(&u->write_req, reinterpret_cast<uv_stream_t*>(&u->tcp), c->x->pieces,
               static_cast<unsigned>(c->x->piece_count), on_up_write) != 0) {
    u->writing = false;
    up_fail(u, 502, "the upstream connection failed while sending the request");
  }
}

// Routes a complete head and starts its exchange.
void conn_start_request(Conn* c) {
  ServerImpl* s = c->server;
  const http::RequestHead& head = c->x->parser.head();
  c->request_id = s->next_request_id++;
  ++s->stats.requests;
  c->keep_alive = head.keep_alive && !s->stopping;
  c->is_head_request = head.method == "HEAD";
  c->body_seen = 0;
  c->request_done = c->response_started = c->response_done = false;
  c->close_after_response = false;
  c->x->handler_body.clear();

  std::string_view path = head.path, query;
  if (std::size_t q = path.find('?'); q != std::string_view::npos) {
    query = path.substr(q + 1);
    path = path.substr(0, q);
  }
  if (path.empty() || path.front() != '/') {
    conn_respond_error(c, 400, "the request target is not a path");
    return;
  }
  s->path_scratch.resize(path.size());
  auto normal =
      normalize_path(path, std::span<char>(s->path_scratch.data(), s->path_scratch.size()));
  if (!normal) {
    conn_respond_error(c, 400, "the request path is malformed");
    return;
  }
  const std::string_view normalized(s->path_scratch.data(), *normal);
  MatchInput in{head.method, head.host, normalized, query, {}};
  Match m = s->router.match(in);
  if (m.status != MatchStatus::matched) {
    conn_respond_error(c, m.status == MatchStatus::not_found ? 404 : 405,
                       m.status == MatchStatus::not_found ? "no route matches this request"
                                                          : "the route does not allow this method");
    return;
  }
  c->route = &s->routes[m.route->id()];
  if (head.framing == http::Framing::content_length &&
      head.content_length > c->route->options->max_body_bytes) {
    conn_respond_error(c, 413, "the request body is larger than this route allows");
    return;
  }
  if (head.expect_continue && head.framing != http::Framing::none) {
    static const char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";
    uv_buf_t b = uv_buf_init(const_cast<char*>(kContinue), sizeof kContinue - 1);
    uv_try_write(reinterpret_cast<uv_stream_t*>(&c->tcp), &b, 1);
  }
  c->state = ConnState::reading_body;
  c->cursor += c->x->parser.head_size();
  c->head_end = c->cursor;
  c->request_framing = head.framing;
  c->chunked_to_upstream = head.framing == http::Framing::chunked;
  if (c->route->cluster == nullptr) {
    conn_forward_body(c, 0);
    return;
  }
  Cluster* cl = c->route->cluster;
  if (cl->endpoints.empty()) {
    conn_respond_error(c, 503, "the cluster has no endpoint");
    return;
  }
  EndpointState* ep = cl->endpoints[cl->next++ % cl->endpoints.size()].get();
  up_start_exchange(c, ep, true);
}

void conn_process(Conn* c) {
  while (c->state == ConnState::reading_head) {
    if (c->buf == nullptr || c->len == c->cursor) {
      conn_compact(c);
      if (!c->head_timer)
        conn_timer_start(c, c->server->options.idle_timeout, on_conn_idle_timeout);
      conn_read_start(c);
      return;
    }
    if (c->x == nullptr) c->x = c->server->take_exchange();
    if (!c->head_timer) {
      c->head_timer = true;
      conn_timer_start(c, c->server->options.header_timeout, on_conn_header_timeout);
    }
    http::ParseState st = c->x->parser.parse_head({c->buf + c->cursor, c->len - c->cursor});
    if (st == http::ParseState::incomplete) {
      if (c->cursor > 0) conn_compact(c);
      conn_read_start(c);
      return;
    }
    if (st == http::ParseState::error) {
      conn_respond_error(c, c->x->parser.error().status, c->x->parser.error().reason);
      return;
    }
    uv_timer_stop(&c->timer);
    c->head_timer = false;
    conn_start_request(c);
  }
  if (c->state == ConnState::reading_body && c->up != nullptr && c->up->connected &&
      !c->up->writing) {
    conn_forward_body(c, 0);
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
  c->route = nullptr;
  c->state = ConnState::reading_head;
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
}

void up_close(UpConn* u) {
  if (u->closing) return;
  u->closing = true;
  if (u->idle_link.linked()) {
    u->idle_link.unlink();
    --u->endpoint->idle_count;
  }
  uv_timer_stop(&u->timer);
  uv_close(reinterpret_cast<uv_handle_t*>(&u->timer), on_up_handle_closed);
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

void on_up_timeout(uv_timer_t* t) {
  UpConn* u = owner_of<UpConn>(reinterpret_cast<uv_handle_t*>(t));
  if (u->client == nullptr) {
    up_close(u);  // idle in the pool too long
    return;
  }
  up_fail(u, 504,
          u->connected ? "the upstream did not respond in time"
                       : "the upstream connection was not established in time");
}

// The exchange on `u` failed before or during the response.
void up_fail(UpConn* u, int status, std::string_view cause) {
  Conn* c = u->client;
  u->client = nullptr;
  up_close(u);
  if (c == nullptr) return;
  c->up = nullptr;
  // A reused keep-alive connection that the upstream had already closed:
  // nothing of the request can have been processed, so try a new one once.
  if (u->reused && !u->response_bytes && c->request_framing == http::Framing::none &&
      c->state != ConnState::closing && !c->response_started) {
    up_start_exchange(c, u->endpoint, false);
    return;
  }
  std::string text = std::string(cause) + " (" + u->endpoint->label + ")";
  conn_respond_error(c, status, text);
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
      ep->idle_count < o.max_idle_per_endpoint && !u->server->stopping;
  u->parser.reset();
  u->head_done = false;
  if (!reusable) {
    up_close(u);
    return;
  }
  up_release_buffers(u);
  u->cursor = 0;
  ep->idle.push_back(u->idle_link);
  ++ep->idle_count;
  uv_timer_start(&u->timer, on_up_timeout, to_ms(o.idle_timeout), 0);
  up_read_start(u);  // an idle connection that speaks or closes is dropped
}

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

// Serialises the request head for the upstream into u->out.
bool up_write_head(UpConn* u, Conn* c) {
  const http::RequestHead& head = c->x->parser.head();
  if (u->out == nullptr) u->out = u->server->pool.get();
  HeadWriter w(u->out, u->server->pool.block_size());
  const std::string_view connection = head.header("connection");
  w << head.method << " " << head.path << " HTTP/1.1\r\n";
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
    w << h.name << ": " << h.value << "\r\n";
  }
  if (head.upgrade) {
    // An upgrade (WebSocket and others) asks for a tunnel: these two are
    // hop-by-hop, but the upstream must see them to agree.
    w << "connection: upgrade\r\nupgrade: " << head.header("upgrade") << "\r\n";
  }
  w << "host: " << head.host << "\r\n";
  w << "x-forwarded-for: ";
  if (!forwarded_for.empty()) w << forwarded_for << ", ";
  w << c->client_ip << "\r\nx-forwarded-proto: http\r\nx-forwarded-host: " << head.host << "\r\n";
  if (head.framing == http::Framing::content_length) {
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
  ++u->requests;
  u->response_bytes = false;
  uv_timer_start(&u->timer, on_up_timeout, to_ms(u->endpoint->cluster->options.response_timeout),
                 0);
  up_read_start(u);
  // The head, then whatever body bytes are already buffered, in one writev.
  c->x->pieces[0] = uv_buf_init(u->out, static_cast<unsigned>(u->out_len));
  conn_forward_body(c, 1);
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
  if (c == nullptr || c->state != ConnState::reading_body) return;
  conn_compact(c);  // the written pieces are no longer referenced
  if (c->buf != nullptr && c->len > c->cursor) {
    conn_forward_body(c, 0);
  } else {
    conn_read_start(c);
  }
}

void up_start_exchange(Conn* c, EndpointState* ep, bool allow_pooled) {
  ServerImpl* s = c->server;
  UpConn* u = nullptr;
  if (allow_pooled && ep->idle.linked()) {
    // The most recently used connection: the least likely to have timed out.
    u = static_cast<UpConn*>(ep->idle.prev->owner);
    u->idle_link.unlink();
    --ep->idle_count;
    uv_timer_stop(&u->timer);
    u->reused = true;
    ++s->stats.upstream_connections_reused;
  } else {
    u = new UpConn(s, ep);
    uv_tcp_init(s->loop, &u->tcp);
    uv_timer_init(s->loop, &u->timer);
    u->tcp.data = u->timer.data = u;
    u->handles = 2;
    s->open_handles += 2;
    ++s->stats.upstream_connections_opened;
    uv_tcp_nodelay(&u->tcp, 1);
  }
  u->client = c;
  c->up = u;
  u->head_done = false;
  if (!up_write_head(u, c)) {
    u->client = nullptr;
    c->up = nullptr;
    up_close(u);
    conn_respond_error(c, 431, "the request head is too large to forward");
    return;
  }
  if (u->connected) {
    up_send_request(u);
    return;
  }
  uv_timer_start(&u->timer, on_up_timeout, to_ms(ep->cluster->options.connect_timeout), 0);
  if (uv_tcp_connect(&u->connect_req, &u->tcp, reinterpret_cast<const sockaddr*>(&ep->addr),
                     on_up_connect) != 0) {
    up_fail(u, 502, "the upstream connection could not be started");
  }
}

// Writes the response head for the client into c->out; false if too large.
bool conn_write_response_head(Conn* c, const http::ResponseHead& head) {
  HeadWriter w(conn_out(c), c->server->pool.block_size());
  w << "HTTP/1.1 ";
  w.number(static_cast<unsigned>(head.status))
      << " " << (head.reason.empty() ? reason_phrase(head.status) : head.reason) << "\r\n";
  const std::string_view connection = head.header("connection");
  for (const http::Header& h : head.headers) {
    if (is_hop_by_hop(h.name, connection)) continue;
    w << h.name << ": " << h.value << "\r\n";
  }
  const bool http10 = c->x->parser.head().version == http::Version::http10;
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
  c->x->piece_count = 1;
  c->x->pieces[0] = uv_buf_init(c->out, static_cast<unsigned>(w.size()));
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
  c->state = ConnState::tunnel;
  c->keep_alive = false;
  uv_timer_stop(&u->timer);  // a tunnel may stay quiet for as long as its peers like
  uv_timer_stop(&c->timer);
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
  if (uv_write(&u->write_req, reinterpret_cast<uv_stream_t*>(&u->tcp), &b, 1, on_up_write) != 0) {
    u->writing = false;
    conn_close(c);
  }
}

void up_process(UpConn* u) {
  Conn* c = u->client;
  if (c == nullptr) {
    up_close(u);
    return;
  }
  if (c->writing) return;  // resumed from on_conn_write
  if (c->state == ConnState::tunnel) {
    if (u->buf != nullptr && u->cursor == u->len) u->len = u->cursor = 0;
    up_read_start(u);
    if (u->len > u->cursor) {
      uv_buf_t b = uv_buf_init(u->buf + u->cursor, static_cast<unsigned>(u->len - u->cursor));
      u->cursor = u->len;
      conn_write(c, &b, 1);
    }
    return;
  }
  // What was written to the client is no longer referenced.
  if (u->buf != nullptr && u->cursor > 0) {
    std::memmove(u->buf, u->buf + u->cursor, u->len - u->cursor);
    u->len -= u->cursor;
    u->cursor = 0;
  }
  up_read_start(u);  // after a full buffer stopped it
  c->x->piece_count = 0;
  while (!u->head_done) {
    if (u->buf == nullptr || u->len == u->cursor) {
      up_read_start(u);
      return;
    }
    const http::ParseState st = u->parser.parse_head({u->buf + u->cursor, u->len - u->cursor},
                                                     c->is_head_request ? "HEAD" : "GET");
    if (st == http::ParseState::incomplete) {
      up_read_start(u);
      return;
    }
    if (st == http::ParseState::error) {
      up_fail(u, 502, "the upstream sent an invalid response head");
      return;
    }
    const http::ResponseHead& head = u->parser.head();
    if (head.status >= 100 && head.status < 200) {
      if (head.status == 101) {
        if (!c->x->parser.head().upgrade) {
          up_fail(u, 502, "the upstream switched protocols without being asked");
          return;
        }
        conn_start_tunnel(c, u, head);
        return;
      }
      u->cursor += u->parser.head_size();  // interim response: skipped
      u->parser.reset();
      continue;
    }
    if (!conn_write_response_head(c, head)) {
      up_fail(u, 502, "the upstream's response head is too large");
      return;
    }
    u->cursor += u->parser.head_size();
    u->head_done = true;
    c->response_started = true;
  }
  // Body pieces after the head piece (if any).
  c->x->chunk_lines = c->x->response_lines;
  c->x->chunk_line_count = 0;
  c->x->sink_overflow = &c->x->response_overflow;
  c->x->response_overflow.clear();
  c->x->sink_full = false;
  c->x->sink_chunked = c->chunked_to_client;
  c->x->sink_to_handler = false;
  if (u->len > u->cursor) {
    http::BodyProgress p = u->parser.parse_body({u->buf + u->cursor, u->len - u->cursor}, *c);
    u->cursor += p.consumed;
    if (p.state == http::ParseState::error) {
      u->client = nullptr;
      c->up = nullptr;
      up_close(u);
      conn_close(c);  // the response began: closing is the only signal left
      return;
    }
    conn_flush_overflow(c);
    if (p.state == http::ParseState::complete) c->response_done = true;
  } else if (u->parser.head().framing == http::Framing::none ||
             (u->parser.head().framing == http::Framing::content_length &&
              u->parser.head().content_length == 0) ||
             c->is_head_request) {
    c->response_done = true;
  }
  if (c->response_done && c->chunked_to_client) {
    c->x->pieces[c->x->piece_count++] = uv_buf_init(const_cast<char*>("0\r\n\r\n"), 5);
  }
  if (c->x->piece_count == 0) {
    up_read_start(u);
    return;
  }
  // The pieces stay in place in u->buf until the client has them; reading
  // goes on into the space after them.
  if (c->response_done) uv_timer_stop(&u->timer);
  conn_write(c, c->x->pieces, c->x->piece_count);
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
      c->response_done = true;
      c->x->piece_count = 0;
      if (c->chunked_to_client) {
        c->x->pieces[c->x->piece_count++] = uv_buf_init(const_cast<char*>("0\r\n\r\n"), 5);
      }
      u->client = nullptr;
      c->up = nullptr;
      up_close(u);
      if (c->x->piece_count > 0) {
        conn_write(c, c->x->pieces, c->x->piece_count);
      } else {
        conn_finish_exchange(c);
      }
      return;
    }
    if (!u->head_done) {
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
    uv_timer_start(&u->timer, on_up_timeout, to_ms(u->endpoint->cluster->options.response_timeout),
                   0);
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

}  // namespace

// ------------------------------------------------------------- ServerImpl

ServerImpl::ServerImpl(uv_loop_t* l, ServerOptions o)
    : loop(l),
      options(std::move(o)),
      pool(std::max<std::size_t>(options.limits.max_head_bytes + 1024, 16 * 1024)) {}

ServerImpl::~ServerImpl() {
  for (Exchange* x : free_exchanges)
    delete x;
}

Status ServerImpl::compile() {
  for (const ClusterOptions& co : options.clusters) {
    auto cl = std::make_unique<Cluster>();
    cl->options = co;
    for (const Endpoint& e : co.endpoints) {
      auto ep = std::make_unique<EndpointState>();
      if (!resolve(e.address, e.port, ep->addr) || e.port == 0) {
        return make_error(ErrorKind::invalid_argument,
                          "clusters['" + co.name + "']: endpoint '" + e.address + ":" +
                              std::to_string(e.port) + "' is not a numeric address and port");
      }
      ep->label = e.address + ":" + std::to_string(e.port);
      ep->cluster = cl.get();
      cl->endpoints.push_back(std::move(ep));
    }
    clusters.push_back(std::move(cl));
  }
  for (std::size_t i = 0; i < options.routes.size(); ++i) {
    const RouteOptions& ro = options.routes[i];
    CompiledRoute cr{&ro, nullptr};
    if (const auto* name = std::get_if<std::string>(&ro.target)) {
      auto it = std::find_if(clusters.begin(), clusters.end(),
                             [&](const auto& c) { return c->options.name == *name; });
      if (it == clusters.end()) {
        return make_error(ErrorKind::not_found,
                          "routes[" + std::to_string(i) + "]: no cluster named '" + *name + "'");
      }
      cr.cluster = it->get();
    } else if (!std::get<Handler>(ro.target)) {
      return make_error(ErrorKind::invalid_argument,
                        "routes[" + std::to_string(i) + "]: the handler is empty");
    }
    RouteSpec spec;
    spec.name = ro.name;
    spec.host = ro.host;
    spec.path = ro.path;
    spec.methods = ro.methods;
    auto id = router.add(std::move(spec));
    if (!id)
      return make_error(id.error().kind,
                        "routes[" + std::to_string(i) + "]: " + id.error().message);
    if (routes.size() <= *id) routes.resize(*id + 1);
    routes[*id] = cr;
  }
  path_scratch.reserve(options.limits.max_request_line);
  return {};
}

Status ServerImpl::start() {
  sockaddr_storage addr{};
  if (!resolve(options.address, options.port, addr)) {
    return make_error(ErrorKind::invalid_argument,
                      "address '" + options.address + "' is not numeric");
  }
  uv_tcp_init(loop, &listener);
  listener.data = this;
  listener_open = true;
  int rc = uv_tcp_bind(&listener, reinterpret_cast<const sockaddr*>(&addr), 0);
  if (rc == 0)
    rc = uv_listen(reinterpret_cast<uv_stream_t*>(&listener), options.backlog,
                   on_listener_connection);
  if (rc != 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(&listener),
             [](uv_handle_t* h) { static_cast<ServerImpl*>(h->data)->listener_open = false; });
    return make_error(ErrorKind::invalid_argument,
                      std::string("cannot listen on ") + options.address + ":" +
                          std::to_string(options.port) + ": " + uv_strerror(rc));
  }
  sockaddr_storage bound{};
  int len = sizeof bound;
  uv_tcp_getsockname(&listener, reinterpret_cast<sockaddr*>(&bound), &len);
  bound_port =
      ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                        : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  return {};
}

void ServerImpl::on_connection(int status) {
  if (status < 0 || stopping) return;  // libuv already sheds connections on EMFILE
  Conn* c = new Conn(this);
  uv_tcp_init(loop, &c->tcp);
  c->tcp.data = c;
  if (uv_accept(reinterpret_cast<uv_stream_t*>(&listener),
                reinterpret_cast<uv_stream_t*>(&c->tcp)) != 0) {
    c->handles = 1;
    ++open_handles;
    c->state = ConnState::closing;
    uv_close(reinterpret_cast<uv_handle_t*>(&c->tcp), on_conn_handle_closed);
    return;
  }
  uv_timer_init(loop, &c->timer);
  c->timer.data = c;
  c->handles = 2;
  open_handles += 2;
  conns.push_back(c->link);
  ++stats.connections_accepted;
  uv_tcp_nodelay(&c->tcp, 1);
  sockaddr_storage peer{};
  int len = sizeof peer;
  if (uv_tcp_getpeername(&c->tcp, reinterpret_cast<sockaddr*>(&peer), &len) == 0) {
    if (peer.ss_family == AF_INET6) {
      uv_ip6_name(reinterpret_cast<sockaddr_in6*>(&peer), c->client_ip, sizeof c->client_ip);
    } else {
      uv_ip4_name(reinterpret_cast<sockaddr_in*>(&peer), c->client_ip, sizeof c->client_ip);
    }
  }
  conn_process(c);
}

void ServerImpl::stop(Duration drain, std::function<void()> done) {
  if (stopping) return;
  stopping = true;
  on_stopped = std::move(done);
  if (listener_open) {
    uv_close(reinterpret_cast<uv_handle_t*>(&listener), [](uv_handle_t* h) {
      auto* self = static_cast<ServerImpl*>(h->data);
      self->listener_open = false;
      self->maybe_stopped();
    });
  }
  // Idle downstream connections and pooled upstream ones close now; busy
  // ones close when their exchange ends, or at the drain deadline.
  for (Link* l = conns.next; l != &conns;) {
    Conn* c = static_cast<Conn*>(l->owner);
    l = l->next;
    if (c->state == ConnState::reading_head && (c->buf == nullptr || c->len == c->cursor))
      conn_close(c);
  }
  for (auto& cl : clusters) {
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
  if (!stopping || listener_open || open_handles != 0 || !drain_timer_open) return;
  drain_timer_open = false;
  uv_timer_stop(&drain_timer);
  uv_close(reinterpret_cast<uv_handle_t*>(&drain_timer), [](uv_handle_t* h) {
    auto* self = static_cast<ServerImpl*>(h->data);
    if (self->on_stopped) {
      auto cb = std::move(self->on_stopped);
      cb();
    }
  });
}

Exchange* ServerImpl::take_exchange() {
  if (free_exchanges.empty()) return new Exchange(options.limits);
  Exchange* x = free_exchanges.back();
  free_exchanges.pop_back();
  return x;
}

void ServerImpl::give_back(Exchange* x) {
  x->parser.reset();
  x->handler_body.clear();
  free_exchanges.push_back(x);
}

// ----------------------------------------------------------------- Server

Server::Server(std::unique_ptr<ServerImpl> impl) : impl_(std::move(impl)) {}
Server::~Server() = default;

Result<std::unique_ptr<Server>> Server::create(uv_loop_t* loop, ServerOptions options) {
  if (loop == nullptr) return make_error(ErrorKind::invalid_argument, "loop is null");
  auto impl = std::make_unique<ServerImpl>(loop, std::move(options));
  if (auto st = impl->compile(); !st) return std::move(st).error();
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

Status Server::start() {
  return impl_->start();
}
std::uint16_t Server::port() const noexcept {
  return impl_->bound_port;
}
void Server::stop(Duration drain, std::function<void()> on_stopped) {
  impl_->stop(drain, std::move(on_stopped));
}
const ServerStats& Server::stats() const noexcept {
  return impl_->stats;
}

}  // namespace portico::proxy
