// The proxy's per-server and per-connection state, shared by the I/O code
// (server.cpp), the filter chain (filter_chain.cpp) and the upstream
// clusters (cluster.cpp).
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <uv.h>

#include <array>
#include <atomic>
#include <memory>
#include <memory_resource>
#include <optional>
#include <string>
#include <vector>

#include "../common/cidr.hpp"
#include "../common/mix.hpp"
#include "../upstream/health_check.hpp"
#include "../upstream/resolver.hpp"
#include "internal.hpp"
#include "portico/balancer.hpp"
#include "portico/breaker.hpp"
#include "portico/filter.hpp"
#include "portico/proxy.hpp"

namespace portico::proxy {

using detail::BufferPool;
using detail::Deadline;
using detail::HeadWriter;
using detail::Link;
using detail::TimeoutList;

inline constexpr std::size_t kMaxPieces = 32;         // body pieces gathered into one writev
inline constexpr std::size_t kMaxMatchHeaders = 128;  // header fields route predicates see

struct Cluster;
struct UpConn;
struct Conn;
struct Exchange;
class ServerImpl;

struct EndpointState {
  sockaddr_storage addr{};
  std::string label;  // "127.0.0.1:8080", for error bodies and logs
  Link idle;          // pooled UpConns
  std::size_t idle_count = 0;
  Cluster* cluster = nullptr;
  EndpointRef ref;  // in the cluster's balancer
  std::optional<CircuitBreaker> breaker;
  std::uint64_t id = 0;     // the health checker's target id
  std::size_t source = 0;   // index of the ClusterOptions endpoint it came from
  bool removed = false;     // gone from DNS; freed when its last connection closes
  std::uint32_t users = 0;  // exchanges and connections referring to it
};

struct RouteTable;

struct Cluster {
  ServerImpl* server = nullptr;
  RouteTable* table = nullptr;
  ClusterOptions options;
  std::optional<Balancer> balancer;
  std::vector<std::unique_ptr<EndpointState>> endpoints;  // current and draining
  std::unique_ptr<detail::HealthChecker> health;
  std::vector<std::unique_ptr<detail::Resolver>> resolvers;
  std::uint32_t active_requests = 0;  // attempts in flight
  std::uint32_t active_retries = 0;   // of which retries
  std::uint64_t next_endpoint_id = 1;
  // Upstream connections' deadlines (connect, response, between bytes,
  // idle in the pool; backoff before a retry's connect).
  TimeoutList connect_timeouts, response_timeouts, between_bytes_timeouts, pool_timeouts;
  TimeoutList backoffs;
  std::uint64_t rng = 0x9e3779b97f4a7c15ull;

  EndpointState* find(EndpointRef ref) const noexcept;
  EndpointState* find_id(std::uint64_t id) const noexcept;
};

inline constexpr std::uint32_t kNoCluster = 0xffffffffu;

// A route as the proxy runs it. Cluster indexes, not pointers: every
// server's table has its own clusters, in the order of the options.
struct CompiledRoute {
  const RouteOptions* options = nullptr;
  std::uint32_t cluster = kNoCluster;   // kNoCluster: the handler (or weighted clusters)
  std::vector<std::uint32_t> weighted;  // RouteOptions::weighted_clusters, in order
  const Route* route = nullptr;         // in the router: picks among `weighted`
  std::vector<Filter*> filters;         // global, then the route's
};

// The part of a reload that does not depend on a loop: the validated
// options, the router and every route's filter chain. Built once, on any
// thread (compile_route_set), then shared read-only by the tables of every
// server it is installed on, so N workers do not build N routers. The
// last table to let go of it frees it off the loop (release_off_loop).
struct RouteSet {
  std::vector<ClusterOptions> cluster_options;
  std::vector<RouteOptions> route_options;
  std::vector<std::shared_ptr<Filter>> filter_options;
  std::vector<std::shared_ptr<Filter>> unrouted_filter_options;
  // Built here, or handed over (ServerOptions::router) by a caller that
  // built it to validate its configuration; read-only either way.
  std::shared_ptr<const Router> router;
  std::vector<CompiledRoute> routes;  // by RouteId
  std::vector<Filter*> global_filters;
  // The chain of a request no route takes: the global filters, then the
  // unrouted ones (ServerOptions::unrouted_filters).
  std::vector<Filter*> unrouted_chain;
  bool match_headers = false;  // a route has header predicates
};

// Validates the clusters, routes, filters and router of `options` and
// compiles them; takes them (they are left empty). Touches no loop and no
// server: safe on any thread.
Result<std::shared_ptr<const RouteSet>> compile_route_set(ServerOptions& options);

// What a reload replaces on one server: a shared RouteSet and this
// server's clusters with their pools, health checkers and resolvers. A
// request keeps the table it started on until it ends, so a reload never
// changes a request midway; a replaced table retires (its idle connections
// and timers close) once its last request has ended, and is freed when all
// of that has closed.
//
// A table is built off the loop (ServerImpl::make_table: the clusters'
// endpoints and balancers, no handle) and handed to the loop, which starts
// its clusters' timers, health checkers and resolvers when it installs it.
struct RouteTable {
  ServerImpl* server = nullptr;
  std::shared_ptr<const RouteSet> set;
  std::vector<std::unique_ptr<Cluster>> clusters;  // as set->cluster_options
  std::uint32_t users = 0;                         // exchanges that started on it
  std::uint32_t closing = 0;                       // handles closing while it retires
  bool retiring = false;                           // replaced, waiting for its last user
  bool retired = false;                            // its handles are closing

  bool idle() const noexcept;  // nothing refers to it any more
};

// A counter written by the loop thread and read by any (Workers::stats(),
// a metrics scrape): relaxed atomics cost a plain load and store on the
// writer's side.
struct LiveCounter {
  std::atomic<std::uint64_t> value{0};
  void add(std::uint64_t n = 1) noexcept {
    value.store(value.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  void sub(std::uint64_t n = 1) noexcept {
    value.store(value.load(std::memory_order_relaxed) - n, std::memory_order_relaxed);
  }
  std::uint64_t get() const noexcept { return value.load(std::memory_order_relaxed); }
};

struct LiveStats {
  LiveCounter connections_accepted, connections_active, requests;
  LiveCounter upstream_connections_opened, upstream_connections_reused, reloads;
};

// A header name a filter set that passed the edit checks (see
// ServerImpl::checked_names).
struct CheckedName {
  std::uint8_t size = 0;  // 0: none
  char bytes[39];
};

class ServerImpl {
 public:
  ServerImpl(uv_loop_t* loop, ServerOptions options);
  ~ServerImpl();

  // Checks the listener-side options and builds the first table from `set`.
  Status compile(std::shared_ptr<const RouteSet> set);
  // A table of `set` for this server: its own clusters. Reads nothing of the
  // server but its address and touches no loop, so any thread may call it
  // while the loop runs.
  Result<std::unique_ptr<RouteTable>> make_table(std::shared_ptr<const RouteSet> set);
  Status make_clusters(RouteTable& t);
  Status start();
  void start_clusters(RouteTable& t);
  void start_cluster_timers(RouteTable& t);
  void stop(Duration drain, std::function<void()> on_stopped);
  void stop_clusters(RouteTable& t);
  // Swaps in a table made by make_table; loop thread.
  void install(std::unique_ptr<RouteTable> next);
  // Reload bookkeeping: a request ends on its table; a replaced table whose
  // last request ended starts closing; a closed one is freed.
  void release_table(RouteTable* t);
  void retire(RouteTable* t);
  void collect_retired();
  // A freed table's RouteSet reference, dropped on the loop's thread pool:
  // the last reference frees thousands of routes, which is no work for the
  // loop.
  void release_off_loop(std::shared_ptr<const RouteSet> set);

  // Connection bookkeeping.
  void on_connection(int status);
  void pause_accepting();
  void resume_accepting();
  void maybe_stopped();

  TimePoint now() const noexcept { return TimePoint(std::chrono::milliseconds(uv_now(loop))); }

  uv_loop_t* loop;
  ServerOptions options;
  std::unique_ptr<RouteTable> table;                  // where new requests go
  std::vector<std::unique_ptr<RouteTable>> retiring;  // replaced, still in use or closing
  bool started = false;
  std::vector<detail::IpNetwork> trusted;  // ServerOptions::trusted_proxies
  BufferPool pool;
  uv_tcp_t listener{};
  bool listener_open = false;
  // A second descriptor of the listening socket. While accepting is paused
  // (EMFILE) the listener handle is closed, and this keeps the socket, its
  // port and its backlog; resuming opens a new handle on a dup of it.
  int listen_fd_copy = -1;
  uv_timer_t accept_timer{};  // retries accepting while paused
  bool accept_timer_open = false;
  bool stopping = false;
  uv_timer_t drain_timer{};
  bool drain_timer_open = false;
  std::function<void()> on_stopped;
  Link conns;                    // every downstream connection
  std::size_t open_handles = 0;  // handles not yet closed (connections, checkers, resolvers)
  std::uint16_t bound_port = 0;
  LiveStats stats;
  std::uint64_t next_request_id = 1;
  detail::SplitMix64 weighted_picks{0x853c49e6748fea9bull};  // routes' weighted clusters
  std::vector<Exchange*> free_exchanges;
  // The last header name of each of 64 slots (by a hash of the name) that a
  // filter set and that passed the edit checks; the same bytes pass again
  // without being judged again (filter_chain.cpp).
  std::array<CheckedName, 64> checked_names{};

  // Writes the socket took whole at once, whose callbacks are still to run
  // (see stream_write in server.cpp).
  struct DoneWrite {
    uv_write_t* req;
    uv_write_cb cb;
    int status;
  };
  std::vector<DoneWrite> done_writes, running_writes;
  uv_check_t write_check{};
  uv_idle_t write_idle{};
  bool write_queue_open = false;
  // Downstream connections' deadlines.
  TimeoutList idle_timeouts, header_timeouts, request_timeouts;
  void start_loop_handles();
  void close_loop_handles();

  Exchange* take_exchange();
  void give_back(Exchange* x);
};

// ------------------------------------------------------------- upstream side

struct UpConn {
  uv_tcp_t tcp{};
  Deadline deadline;
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
  bool request_sent = false;    // the whole request was written
  bool head_done = false;       // the response head went to the client
  std::size_t cursor = 0;       // bytes of buf already processed

  UpConn(ServerImpl* s, EndpointState* ep) : server(s), endpoint(ep), parser(s->options.limits) {
    idle_link.owner = this;
    deadline.owner = this;
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

// Which phase the filter chain is in.
enum class Phase : std::uint8_t {
  none,
  request_headers,
  request_body,
  response_headers,
  response_body,
  early_error,  // Filter::on_early_error
  done,
};

enum class EditOp : std::uint8_t { set, add, remove };

// One edit: its name and value are ranges of the HeaderEdits' text, so an
// edit is a few integers and moving one is a copy of them.
struct HeaderEdit {
  EditOp op = EditOp::set;
  std::uint32_t name_at = 0, name_size = 0;
  std::uint32_t value_at = 0, value_size = 0;
};

// Header edits for one direction. A set or add is kept in the text as the
// line it will be written as, "name: value\r\n", so writing it is one
// copy; a remove keeps only its name. The text and the edit list keep their
// capacity between requests, so steady-state edits do not allocate; an edit
// superseded by a later set or remove leaves its bytes in the text until
// clear().
struct HeaderEdits {
  std::vector<HeaderEdit> items;
  std::size_t count = 0;
  std::unique_ptr<char[]> text;
  std::size_t text_size = 0, text_capacity = 0;
  // One bit per name (name_bit) of every edit since clear(), and of every
  // set or remove: most names looked up were never edited, and a clear bit
  // says so without a pass over the edits. A superseded edit leaves its bit
  // set, which costs only that pass.
  std::uint64_t edited_names = 0, dropped_names = 0;

  void clear() noexcept {
    count = 0;
    text_size = 0;
    edited_names = dropped_names = 0;
  }
  void add(EditOp op, std::string_view name, std::string_view value);
  std::string_view name(const HeaderEdit& e) const noexcept {
    return {text.get() + e.name_at, e.name_size};
  }
  std::string_view value(const HeaderEdit& e) const noexcept {
    return {text.get() + e.value_at, e.value_size};
  }
  // A set's or add's "name: value\r\n".
  std::string_view line(const HeaderEdit& e) const noexcept {
    return {text.get() + e.name_at, e.value_at + e.value_size + 2 - e.name_at};
  }
  // Whether an original header of this name is replaced or removed.
  bool drops(std::string_view name) const noexcept;
  // The value after edits: `original` unless set/removed/added.
  std::optional<std::string_view> lookup(std::string_view name,
                                         std::optional<std::string_view> original) const noexcept;
  void write(HeadWriter& w) const;

 private:
  // Makes room for `needed` bytes of text; `name` and `value` may be views
  // of the text, and follow it when it moves.
  void grow(std::size_t needed, std::string_view& name, std::string_view& value);
};

// What a connection needs only while it has a request in progress: taken
// from a per-server pool when the first byte of a request arrives and given
// back when the exchange ends, so an idle keep-alive connection is small.
// Never freed before the server, which is what makes a ResumeHandle safe
// after its request ended.
struct Exchange {
  uv_write_t write_req{};
  http::RequestParser parser;
  std::string handler_body;  // in-process handlers and buffered bodies get the whole body
  // The headers an in-process handler sees when filters edited them (kept
  // between requests, so steady-state edits do not allocate).
  std::vector<http::Header> handler_headers;

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
  std::string request_gather, response_gather;  // see gather() in server.cpp
  std::string* sink_overflow = &request_overflow;
  bool sink_full = false;
  bool sink_chunked = false;
  bool sink_to_handler = false;
  bool sink_to_response = false;  // a buffered response body

  // ---- the filter chain
  Conn* conn = nullptr;
  std::uint64_t serial = 1;  // changes when the exchange is given back
  RequestContext ctx;
  std::string path;  // normalised request path; router params point into it
  std::string_view query;
  Match match;
  std::span<Filter* const> chain;
  std::vector<void*> slots;     // per-filter state
  RouteTable* table = nullptr;  // the routes the request started on
  void* shared_state = nullptr;
  std::size_t filter = 0;   // the next filter of the phase (counting down in response phases)
  std::size_t current = 0;  // the filter running, for its state slot
  std::size_t entered = 0;  // filters whose on_request_headers ran
  Phase phase = Phase::none;
  bool paused = false;
  bool buffer_request = false;
  bool buffer_response = false;
  bool body_replaced = false;
  bool logged = false;
  HeaderEdits request_edits, response_edits;
  std::string upstream_path;  // set_upstream_path; empty: unchanged
  // A local answer (filter, handler or proxy error).
  int local_status = 0;
  std::string local_body;
  HeaderEdits local_headers;
  std::string response_body;                          // a buffered upstream response body
  const http::ResponseHead* upstream_head = nullptr;  // null: a local answer
  std::uint64_t request_id = 0;
  std::uint64_t body_seen = 0;  // request body bytes so far
  std::size_t head_end = 0;     // where the request head ends in the connection's buffer
  std::string error_text;       // the cause of a proxy error, for on_log
  // The client: the peer, or from X-Forwarded-For when the peer is trusted.
  std::string_view client_ip;
  std::string client_ip_storage;
  int response_status = 0;
  RequestOutcomeInfo outcome;
  TimePoint start{};
  std::uint64_t start_ns = 0;  // uv_hrtime() at the head's arrival
  std::pmr::monotonic_buffer_resource arena;
  alignas(std::max_align_t) char arena_block[1024];

  // ---- the upstream attempt
  EndpointState* endpoint = nullptr;
  std::optional<BreakerPermit> permit;
  TimePoint attempt_start{};
  std::uint64_t attempt_start_ns = 0;  // uv_hrtime(), for the outcome's upstream duration
  std::uint32_t attempts = 0;
  const EndpointState* last_endpoint = nullptr;  // compared only: avoided by a retry
  Duration retry_after{};                        // from open breakers, for a 503's Retry-After
  Unavailability pick_failure = Unavailability::none;    // why the last pick found no endpoint
  Unavailability unavailability = Unavailability::none;  // why the proxy answered 503
  bool is_retry = false;
  bool replayable = false;     // the request can be sent again
  bool body_buffered = false;  // the whole request body is in handler_body

  explicit Exchange(const http::Limits& limits)
      : parser(limits), ctx(this), arena(arena_block, sizeof arena_block) {}
};

struct Conn final : http::BodySink, Reply {
  uv_tcp_t tcp{};
  Deadline deadline;
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
  Cluster* cluster = nullptr;  // the route's, or the one picked among its weighted clusters
  UpConn* up = nullptr;
  bool is_head_request = false;
  bool request_done = false;  // the whole request reached the upstream (or the handler)
  bool response_started = false;
  bool response_done = false;
  bool chunked_to_upstream = false;
  bool chunked_to_client = false;
  bool close_after_response = false;
  http::Framing request_framing = http::Framing::none;
  char peer_ip[INET6_ADDRSTRLEN] = "";
  bool peer_trusted = false;

  explicit Conn(ServerImpl* s) : server(s) {
    link.owner = this;
    deadline.owner = this;
  }

  void on_body(std::string_view data) override;
  void send(int status, std::span<const http::Header> headers, std::string_view body) override;
  std::optional<std::string_view> param(std::string_view name) const noexcept override;
};

// ---- the filter chain (filter_chain.cpp)

// Runs the request-header phase over the route's chain; then continues the
// exchange (conn_after_request_filters) unless a filter paused or answered.
void chain_start(Conn* c);
// Runs the phase from x->filter on; what follows each phase is decided here.
void chain_run(Conn* c);
// Tells every filter of the chain that the proxy answers `status` before
// the request phases (Filter::on_early_error); conn_respond_error follows.
void chain_early_error(Conn* c, int status, std::string_view cause);
// Calls on_log of every filter (once per request).
void chain_log(Conn* c);
// Runs the response phases for a response whose head is known (upstream or
// local); continues with conn_send_response_head when done.
void chain_response(Conn* c);
void chain_reset(Exchange* x);

// ---- server.cpp entry points the chain continues with
void conn_after_request_filters(Conn* c);
void conn_after_request_body_filters(Conn* c);
void conn_after_response_filters(Conn* c);
// Whether a connection may carry another request after a proxy error.
enum class AfterError : std::uint8_t {
  // Yes, when the request's framing says where it ends and it was read
  // whole (conn_write_local closes otherwise).
  keep_if_complete,
  // No: what follows on the connection cannot be trusted (the head did not
  // parse or arrive, or the body did not parse).
  close,
};
void conn_respond_error(Conn* c, int status, std::string_view cause,
                        AfterError after = AfterError::keep_if_complete);
void conn_abort(Conn* c);
void up_close(UpConn* u);

// ---- clusters (cluster.cpp)
// Checks one cluster's options (all but the uniqueness of its name).
Status validate_cluster(const ClusterOptions& co);
// Picks an endpoint whose breaker admits a request; null with a cause.
EndpointState* cluster_pick(Cluster* cl, Conn* c, const EndpointState* avoid, const char** cause,
                            int* status);
Result<EndpointState*> cluster_add_endpoint(Cluster* cl, const sockaddr_storage& addr,
                                            std::size_t source);
void cluster_remove_endpoint(Cluster* cl, EndpointState* ep);
// An attempt starts on `ep` (the request is about to be sent), and ends:
// accounting for the balancer, the breaker and the retry budget. Ending an
// attempt that is not running does nothing.
void cluster_attempt_start(Conn* c, EndpointState* ep);
void cluster_attempt_end(Conn* c, RequestOutcome outcome);
bool cluster_retry_allowed(Cluster* cl) noexcept;
Duration cluster_backoff(Cluster* cl, std::uint32_t retry) noexcept;
void endpoint_release(EndpointState* ep) noexcept;

bool is_idempotent(std::string_view method) noexcept;
// Hop-by-hop fields, those `connection` names, the framing fields the proxy
// sets itself, and Proxy/Proxy-* (server.cpp).
bool is_hop_by_hop(std::string_view name, std::string_view connection) noexcept;
// Whether `address` is one of the server's trusted proxies.
bool is_trusted_proxy(const ServerImpl& server, const detail::IpAddress& address) noexcept;

}  // namespace portico::proxy
