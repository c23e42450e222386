// The route table: (method, host, path) plus request predicates -> a route.
//
// Paths are matched by a compressed radix trie, one per host pattern. A path
// pattern is made of static text and whole-segment captures:
//
//   /users/{id}/events      `{id}` matches exactly one non-empty segment
//   /files/{*rest}          `{*rest}` matches the rest of the path, possibly
//   /api/orders/**          empty; `/**` is the unnamed form (captured as "*")
//
// A trailing catch-all also matches its base: `/api/orders/**` matches
// `/api/orders`, `/api/orders/` and `/api/orders/7/items`.
//
// At every level static text beats a `{param}`, which beats a catch-all; when
// the preferred branch fails further down, matching backtracks into the next
// one, so `/users/me/events` still finds `/users/{id}/events` next to a
// static `/users/me/profile`. Among routes ending at the same place, the one
// with more predicates is tried first, then the one added first. Each trie
// node is visited at most once per lookup, so the cost follows the depth of
// the path, not the number of routes.
//
// Hosts: exact (`api.example.com`), wildcard (`*.example.com`, matching any
// name that ends in `.example.com`, longest wildcard first) or any (empty or
// `*`). A request's host is tried exactly, then against wildcards, then
// against host-less routes; the first table that yields a route wins.
//
// Matching does not allocate (header_regex predicates excepted: the C
// library's regex engine allocates) and returns captures as views into the caller's
// path. The router expects a path already normalised by normalize_path()
// (path.hpp) and without its query string.
//
// Threading: build the table on one thread with add(); afterwards match() is
// const and may run on any number of threads at once. add() must not run
// concurrently with match().
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "portico/export.hpp"
#include "portico/result.hpp"

namespace portico {

enum class Method : std::uint8_t { get, head, post, put, delete_, connect, options, trace, patch };

// The method named exactly (methods are case-sensitive, RFC 9110 §9.1), or
// nullopt for an extension method such as PROPFIND.
PORTICO_API std::optional<Method> parse_method(std::string_view name) noexcept;
PORTICO_API std::string_view method_name(Method method) noexcept;

// A set of methods. `any()` also admits extension methods.
class MethodSet {
 public:
  constexpr MethodSet() = default;
  constexpr MethodSet(std::initializer_list<Method> methods) {
    for (Method m : methods)
      add(m);
  }
  static constexpr MethodSet any() {
    MethodSet s;
    s.bits_ = kAll;
    return s;
  }
  constexpr void add(Method m) { bits_ |= bit(m); }
  constexpr bool contains(Method m) const { return (bits_ & bit(m)) != 0; }
  constexpr bool admits_extensions() const { return (bits_ & kExtension) != 0; }
  constexpr bool empty() const { return bits_ == 0; }
  constexpr bool intersects(MethodSet o) const { return (bits_ & o.bits_) != 0; }
  constexpr MethodSet operator|(MethodSet o) const {
    MethodSet s;
    s.bits_ = bits_ | o.bits_;
    return s;
  }
  constexpr MethodSet operator&(MethodSet o) const {
    MethodSet s;
    s.bits_ = bits_ & o.bits_;
    return s;
  }
  constexpr bool operator==(const MethodSet&) const = default;
  // "GET, HEAD, POST": the value of an `Allow` header (RFC 9110 §10.2.1).
  PORTICO_API std::string to_string() const;

 private:
  static constexpr std::uint16_t bit(Method m) {
    return static_cast<std::uint16_t>(1u << static_cast<unsigned>(m));
  }
  static constexpr std::uint16_t kExtension = 1u << 15;
  static constexpr std::uint16_t kAll = 0x1ff | kExtension;
  std::uint16_t bits_ = 0;
};

// A request header as the router sees it: views into the caller's buffers.
struct HeaderField {
  std::string_view name;
  std::string_view value;
};

// A condition a request must meet, beyond method, host and path.
// Header names compare case-insensitively, values exactly. Query names and
// values compare in their encoded form, as they appear in the request.
struct Predicate {
  enum class Kind : std::uint8_t {
    header_equals,
    header_present,
    header_prefix,
    header_regex,  // POSIX extended syntax, must match the whole value
    query_equals,
    query_present,
  };
  Kind kind;
  std::string name;
  std::string value;  // unused for *_present

  static Predicate header_equals(std::string name, std::string value) {
    return {Kind::header_equals, std::move(name), std::move(value)};
  }
  static Predicate header_present(std::string name) {
    return {Kind::header_present, std::move(name), {}};
  }
  static Predicate header_prefix(std::string name, std::string prefix) {
    return {Kind::header_prefix, std::move(name), std::move(prefix)};
  }
  static Predicate header_regex(std::string name, std::string pattern) {
    return {Kind::header_regex, std::move(name), std::move(pattern)};
  }
  static Predicate query_equals(std::string name, std::string value) {
    return {Kind::query_equals, std::move(name), std::move(value)};
  }
  static Predicate query_present(std::string name) {
    return {Kind::query_present, std::move(name), {}};
  }
  bool operator==(const Predicate&) const = default;
};

// One of a route's weighted targets (a service, a cluster, a version).
struct WeightedTarget {
  std::string name;
  std::uint32_t weight = 1;  // 0 keeps a target configured but idle (blue-green)
  bool operator==(const WeightedTarget&) const = default;
};

// What a caller asks the router to hold.
struct RouteSpec {
  std::string name;  // used in error messages; generated from the pattern if empty
  std::string host;  // "", "*", "api.example.com" or "*.example.com"
  std::string path;  // the pattern, see the top of this file
  MethodSet methods = MethodSet::any();
  std::vector<Predicate> predicates;
  std::vector<WeightedTarget> targets;  // optional; weights may not all be 0
};

using RouteId = std::uint32_t;

namespace detail {
struct CompiledPredicates;
class RouterImpl;
}  // namespace detail

// A route held by a Router. Immutable; owned by the Router, and valid as long
// as it is.
class PORTICO_API Route {
 public:
  RouteId id() const noexcept { return id_; }
  const RouteSpec& spec() const noexcept { return spec_; }
  const std::string& name() const noexcept { return spec_.name; }

  // Picks a target in proportion to the weights. `value` is a uniformly
  // random number (independent picks) or a hash of something stable such as a
  // user id (sticky canaries). Returns the index into spec().targets, or
  // nullopt when the route has no targets.
  std::optional<std::size_t> pick_target(std::uint64_t value) const noexcept;

  Route(RouteId id, RouteSpec spec, std::unique_ptr<detail::CompiledPredicates> predicates);
  ~Route();
  Route(const Route&) = delete;
  Route& operator=(const Route&) = delete;

 private:
  friend class detail::RouterImpl;
  RouteId id_;
  RouteSpec spec_;
  std::vector<std::uint64_t> cumulative_weights_;
  std::unique_ptr<detail::CompiledPredicates> predicates_;
};

// A captured parameter: the name is owned by the router, the value is a view
// into the path given to match().
struct Param {
  std::string_view name;
  std::string_view value;
};

inline constexpr std::size_t kMaxParams = 16;

// What match() looks at. Views only; nothing is copied.
struct MatchInput {
  std::string_view method;  // "GET"; extension methods match routes with any()
  std::string_view host;    // Host header or :authority; port and case are ignored
  std::string_view path;    // normalised, without the query string
  std::string_view query;   // raw query string without '?', for query predicates
  std::span<const HeaderField> headers;
};

enum class MatchStatus : std::uint8_t {
  matched,
  not_found,           // no route's path (and predicates) fit: 404
  method_not_allowed,  // a route's path fit but not its methods: 405, see allowed
};

// The outcome of a lookup. Holds views into the router (route, names) and
// into the MatchInput's path (values): valid while both are.
class Match {
 public:
  MatchStatus status = MatchStatus::not_found;
  const Route* route = nullptr;
  MethodSet allowed;  // on method_not_allowed: the methods that would match

  Match() noexcept {}  // leaves the capture slots unwritten: a lookup pays only for what it uses
  Match(const Match& o) noexcept : status(o.status), route(o.route), allowed(o.allowed) {
    for (std::size_t i = 0; i < o.count_; ++i)
      slots_.params[i] = o.slots_.params[i];
    count_ = o.count_;
  }
  Match& operator=(const Match& o) noexcept {
    status = o.status;
    route = o.route;
    allowed = o.allowed;
    for (std::size_t i = 0; i < o.count_; ++i)
      slots_.params[i] = o.slots_.params[i];
    count_ = o.count_;
    return *this;
  }

  std::span<const Param> params() const noexcept { return {slots_.params, count_}; }
  std::optional<std::string_view> param(std::string_view name) const noexcept {
    for (std::size_t i = 0; i < count_; ++i) {
      if (slots_.params[i].name == name) return slots_.params[i].value;
    }
    return std::nullopt;
  }

 private:
  friend class detail::RouterImpl;
  union Slots {
    Slots() noexcept {}
    Param params[kMaxParams];
  } slots_;
  std::size_t count_ = 0;
};

class PORTICO_API Router {
 public:
  Router();
  ~Router();
  Router(Router&&) noexcept;
  Router& operator=(Router&&) noexcept;

  // Adds a route and returns its id (ids count up from 0 in insertion order).
  // Errors, each leaving the table unchanged:
  //  - malformed: a bad path pattern (unclosed '{', a capture that is not a
  //    whole segment, a catch-all that is not last, two captures of one
  //    name, more than kMaxParams captures, `/**` counting as one) or host
  //    pattern (host patterns take no port and no empty label; a trailing
  //    dot is ignored);
  //  - invalid_argument: no methods, all target weights 0, a predicate no
  //    request can meet (empty name, a header name that is not an HTTP
  //    token, a query name with '&' or '=', a query value with '&'), a
  //    regular expression that does not compile on its own;
  //  - conflict: same host, path, predicates and an overlapping method as an
  //    existing route, or a capture named differently from an existing one at
  //    the same position; the message names both routes.
  Result<RouteId> add(RouteSpec spec);

  // Makes room for `routes` more routes, so that adding thousands does not
  // move the table over and over as it grows. Only a hint: add() works
  // without it, and more routes than announced may follow.
  void reserve(std::size_t routes);

  // Looks a request up. Never fails: an unknown method, an over-long host or
  // a path that fits nothing simply does not match.
  Match match(const MatchInput& input) const noexcept;

  // The route `id`, which must be an id add() returned (throws
  // std::out_of_range otherwise: a programming error, not a request's).
  const Route& route(RouteId id) const;
  std::size_t size() const noexcept;

 private:
  std::unique_ptr<detail::RouterImpl> impl_;
};

}  // namespace portico
