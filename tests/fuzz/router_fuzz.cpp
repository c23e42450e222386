// Fuzz target for the Router: the input drives a small interpreter that adds
// routes built from a small alphabet of pattern pieces, hosts, method sets,
// predicates and targets, and matches requests built the same way. Every
// step is checked against a reference model kept in this file, written to be
// obviously right rather than fast: patterns are lists of segments, a lookup
// tries every route, and the winner is the minimum of an explicit ranking.
//
// Asserted (a violation aborts, and libFuzzer keeps the input):
//  - add() accepts exactly what the model accepts; a refusal has one of the
//    kinds the model expects, leaves size() unchanged and changes no earlier
//    lookup result;
//  - a match's route really fits the request (host, path, method,
//    predicates), its captures are the model's and are views into the path;
//  - the route chosen is the model's winner: host table first (exact, then
//    the longest wildcard, then any), then per segment static before capture
//    before catch-all (an exact route before a catch-all's base), then more
//    predicates, then the earlier route;
//  - not_found only when no route's path, host and predicates fit, and
//    method_not_allowed with `allowed` equal to the union of the methods of
//    the routes that fit but for the method;
//  - a copied or assigned Match holds the same captures.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "portico/router.hpp"
#include "rfc3986.hpp"

namespace {

using namespace portico;

[[noreturn]] void fail(const char* what, const std::string& detail = {}) {
  std::fprintf(stderr, "router_fuzz: %s\n  %s\n", what, detail.c_str());
  std::abort();
}

// ---------------------------------------------------------------------------
// The alphabet

// Pattern pieces. "{p}" is replaced by a capture with a fresh name, so that
// patterns with many captures can be built. The single letters give a trie
// node more than eight children, the router's wide fan-out case.
constexpr const char* kPatternPieces[] = {
    "/",   "a",   "b",   "{x}", "{y}", "{*r}", "/**",  "%2e", ".", "..", "{", "}", "*", "**",
    "{*}", "%2F", "%61", "/a",  "/b",  "/{x}", "/{p}", "{p}", "c", "d",  "e", "f", "g",
};
constexpr const char* kPathPieces[] = {
    "/",   "a", "b",  "x",  "ab", "%2e", ".", "..", "%2F", "%61",
    "{x}", "*", "/a", "/b", "c",  "d",   "e", "f",  "g",
};
constexpr const char* kHostPatterns[] = {
    "",         "*",      "a.e.com", "A.e.COM",    "a.e.com.", "*.e.com", "*.a.e.com",
    "*.com",    "[::1]",  "[::1]:8", "a.e.com:80", "a..e.com", "*.",      "x*.e.com",
    "*.e.com.", ".e.com", "e.com",   "a b",        "*..e.com", "[a::b]",  "[::1",
};
const std::string kRequestHosts[] = {
    "",
    "a.e.com",
    "A.E.COM:8080",
    "a.e.com.",
    "b.a.e.com",
    "e.com",
    ".e.com",
    "a..e.com",
    "x.e.com:",
    "[::1]",
    "[::1]:443",
    "[::1",
    "::1",
    "com",
    "a.e.com..",
    "Q.B.A.E.COM",
    "[A::B]",
    "x.com",
    // Longest hosts: one that still fits the lookup's 256 bytes, one that does not.
    std::string(249, 'w') + ".e.com",
    std::string(251, 'w') + ".e.com",
};
constexpr const char* kMethods[] = {"GET",     "HEAD",  "POST",  "PUT",      "DELETE", "CONNECT",
                                    "OPTIONS", "TRACE", "PATCH", "PROPFIND", "get",    ""};
constexpr const char* kQueries[] = {"",   "q",    "q=1",     "q=1&r=", "r&q=2", "Q=1",
                                    "q=", "&q=1", "q=2&q=1", "a=b&q",  "r",     "q=1&r"};
const HeaderField kHeaders[] = {{"X-A", "1"},     {"x-a", "2"},   {"X-B", "aab"},
                                {"x-b", "ab"},    {"X-B", ""},    {"x-a", "a"},
                                {"X-A", "azzzz"}, {"x-b", "abc"}, {"X-a", "9"}};

// The request as the model sees it.
struct Request {
  std::string method;
  std::string host;
  std::string path;
  std::string query;
  std::vector<HeaderField> headers;
};

std::optional<std::string_view> header(const Request& r, std::string_view name) {
  for (const HeaderField& h : r.headers) {
    if (h.name.size() != name.size()) continue;
    bool same = true;
    for (std::size_t i = 0; i < name.size(); ++i) {
      same = same && std::tolower(static_cast<unsigned char>(h.name[i])) ==
                         std::tolower(static_cast<unsigned char>(name[i]));
    }
    if (same) return h.value;
  }
  return std::nullopt;
}

std::optional<std::string_view> query(const Request& r, std::string_view name) {
  std::string_view q = r.query;
  for (;;) {
    const std::size_t amp = q.find('&');
    const std::string_view pair = q.substr(0, amp);
    const std::size_t eq = pair.find('=');
    if (!pair.empty() && pair.substr(0, eq) == name) {
      return eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    }
    if (amp == std::string_view::npos) return std::nullopt;
    q.remove_prefix(amp + 1);
  }
}

bool all_of_a_then_b(std::string_view v) {  // the regex a+b?
  if (!v.empty() && v.back() == 'b') v.remove_suffix(1);
  return !v.empty() && v.find_first_not_of('a') == std::string_view::npos;
}

struct PredicateCase {
  Predicate spec;
  bool valid;
  bool (*holds)(const Request&);
};

const PredicateCase kPredicates[] = {
    {Predicate::header_equals("X-A", "1"), true,
     [](const Request& r) { return header(r, "x-a") == "1"; }},
    {Predicate::header_equals("x-a", "2"), true,
     [](const Request& r) { return header(r, "x-a") == "2"; }},
    {Predicate::header_present("X-A"), true,
     [](const Request& r) { return header(r, "x-a").has_value(); }},
    {Predicate::header_present("x-b"), true,
     [](const Request& r) { return header(r, "x-b").has_value(); }},
    {Predicate::header_prefix("X-B", "ab"), true,
     [](const Request& r) {
       const auto v = header(r, "x-b");
       return v && v->starts_with("ab");
     }},
    {Predicate::header_prefix("x-b", ""), true,
     [](const Request& r) { return header(r, "x-b").has_value(); }},
    {Predicate::header_regex("X-B", "a+b?"), true,
     [](const Request& r) {
       const auto v = header(r, "x-b");
       return v && all_of_a_then_b(*v);
     }},
    {Predicate::header_regex("x-a", "[0-9]"), true,
     [](const Request& r) {
       const auto v = header(r, "x-a");
       return v && v->size() == 1 && (*v)[0] >= '0' && (*v)[0] <= '9';
     }},
    // Not a regular expression on its own: it must not become one by being
    // wrapped in "^(" and ")$".
    {Predicate::header_regex("x-a", "a)|(b"), false, nullptr},
    {Predicate::header_regex("x-b", "("), false, nullptr},
    {Predicate::query_equals("q", "1"), true,
     [](const Request& r) { return query(r, "q") == "1"; }},
    {Predicate::query_present("q"), true,
     [](const Request& r) { return query(r, "q").has_value(); }},
    {Predicate::query_present("Q"), true,
     [](const Request& r) { return query(r, "Q").has_value(); }},
    {Predicate::query_equals("r", ""), true, [](const Request& r) { return query(r, "r") == ""; }},
    {Predicate::header_present(""), false, nullptr},
    // Conditions no request can meet: refused rather than hiding the route.
    {Predicate::header_present("X A"), false, nullptr},
    {Predicate::query_present("a=b"), false, nullptr},
    {Predicate::query_equals("q", "1&r"), false, nullptr},
    {Predicate::header_equals("X-B", ""), true,
     [](const Request& r) { return header(r, "x-b") == ""; }},
    // The same condition as header_present("X-A"), spelled in lower case.
    {Predicate::header_present("x-a"), true,
     [](const Request& r) { return header(r, "x-a").has_value(); }},
};
constexpr std::size_t kPredicateCount = sizeof kPredicates / sizeof kPredicates[0];

const std::vector<WeightedTarget> kTargets[] = {
    {},
    {{"a", 1}},
    {{"a", 0}},
    {{"a", 0}, {"b", 3}},
    {{"a", 0xffffffffu}, {"b", 0xffffffffu}, {"c", 0}},
};

// ---------------------------------------------------------------------------
// The model

struct Segment {
  enum class Kind { literal, param, catchall } kind;
  std::string text;  // static text in normal form, or the capture name
  bool operator==(const Segment&) const = default;
};

using portico::fuzz::hex_digit;
using portico::fuzz::unreserved;

// One static segment of a pattern in the form normalize_path gives it.
std::optional<std::string> static_segment(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '%') {
      if (i + 2 >= s.size()) return std::nullopt;
      const int hi = hex_digit(s[i + 1]);
      const int lo = hex_digit(s[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      if (unreserved(hi * 16 + lo)) {
        out += static_cast<char>(hi * 16 + lo);
      } else {
        out += {'%', "0123456789ABCDEF"[hi], "0123456789ABCDEF"[lo]};
      }
      i += 2;
    } else if (c > 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      return std::nullopt;
    }
  }
  if (out == "." || out == "..") return std::nullopt;  // refused: write the path they stand for
  return out;
}

bool name_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
}

// The path pattern grammar of router.hpp, segment by segment.
std::optional<std::vector<Segment>> parse_pattern(std::string_view p) {
  if (p.empty() || p[0] != '/') return std::nullopt;
  std::vector<std::string_view> raw;
  for (std::size_t start = 1;;) {
    const std::size_t end = p.find('/', start);
    raw.push_back(p.substr(start, end - start));
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  std::vector<Segment> out;
  std::set<std::string> names;
  for (std::size_t i = 0; i < raw.size(); ++i) {
    const std::string_view s = raw[i];
    const bool last = i + 1 == raw.size();
    if (s.starts_with("**")) {
      if (s != "**" || !last) return std::nullopt;
      out.push_back({Segment::Kind::catchall, "*"});
    } else if (s.find_first_of("{}") == std::string_view::npos) {
      auto text = static_segment(s);
      if (!text) return std::nullopt;
      out.push_back({Segment::Kind::literal, *text});
    } else {
      if (s.size() < 2 || s.front() != '{' || s.back() != '}') return std::nullopt;
      std::string_view name = s.substr(1, s.size() - 2);
      const bool catchall = name.starts_with("*");
      if (catchall) name.remove_prefix(1);
      if (!std::all_of(name.begin(), name.end(), name_char)) return std::nullopt;
      if (catchall && !last) return std::nullopt;
      if (!catchall && name.empty()) return std::nullopt;
      const std::string n = name.empty() ? "*" : std::string(name);
      out.push_back({catchall ? Segment::Kind::catchall : Segment::Kind::param, n});
    }
    if (out.back().kind != Segment::Kind::literal && !names.insert(out.back().text).second) {
      return std::nullopt;  // one name, two captures
    }
  }
  if (names.size() > kMaxParams) return std::nullopt;
  return out;
}

struct Host {
  enum Kind { any, exact, wildcard } kind = any;
  std::string text;  // exact: the name; wildcard: ".suffix"
  bool operator==(const Host&) const = default;
};

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool ip_literal(std::string_view h) {
  return h.size() > 2 && h.front() == '[' && h.back() == ']' &&
         h.substr(1, h.size() - 2).find_first_not_of("0123456789abcdef:.") ==
             std::string_view::npos;
}

bool dns_name(std::string_view h) {
  if (h.empty() || h.front() == '.' || h.back() == '.' || h.find("..") != std::string_view::npos) {
    return false;
  }
  return std::all_of(h.begin(), h.end(), [](char c) { return name_char(c) || c == '.'; });
}

// Host patterns: "" or "*"; "[v6]"; a name; "*." and a name. Case and one
// trailing dot do not count, as for request hosts; a port is refused since
// the request's port is never compared.
std::optional<Host> parse_host(std::string_view h) {
  if (h.empty() || h == "*") return Host{};
  std::string l = lower(h);
  if (l.size() > 255) return std::nullopt;
  if (ip_literal(l)) return Host{Host::exact, l};
  if (l.size() > 1 && l.back() == '.') l.pop_back();
  if (l.starts_with("*.")) {
    if (!dns_name(l.substr(2))) return std::nullopt;
    return Host{Host::wildcard, l.substr(1)};
  }
  if (!dns_name(l)) return std::nullopt;
  return Host{Host::exact, l};
}

// The request's host without port, case and trailing dot; nullopt when it
// names nothing a host pattern could hold.
std::optional<std::string> request_host(std::string_view h) {
  if (!h.empty() && h[0] == '[') {
    const std::size_t close = h.find(']');
    if (close != std::string_view::npos) h = h.substr(0, close + 1);
  } else {
    h = h.substr(0, h.find(':'));
  }
  if (!h.empty() && h.back() == '.') h.remove_suffix(1);
  if (h.empty() || h.size() > 256) return std::nullopt;
  std::string l = lower(h);
  if (l[0] != '[' && (l[0] == '.' || l.find("..") != std::string::npos)) return std::nullopt;
  return l;
}

// Lower is tried first: exact, then wildcards by falling suffix length, then any.
std::optional<int> host_rank(const Host& pattern, const std::optional<std::string>& host) {
  switch (pattern.kind) {
    case Host::any:
      return 100000;
    case Host::exact:
      if (host && *host == pattern.text) return 0;
      return std::nullopt;
    case Host::wildcard:
      if (host && (*host)[0] != '[' && host->size() > pattern.text.size() &&
          host->ends_with(pattern.text)) {
        return 1000 - static_cast<int>(pattern.text.size());
      }
      return std::nullopt;
  }
  return std::nullopt;
}

struct Model {
  RouteId id;
  Host host;
  std::vector<Segment> segments;
  MethodSet methods;
  std::vector<std::size_t> predicates;  // indexes into kPredicates
};

struct Capture {
  std::string name;
  std::size_t offset;  // into the path
  std::size_t size;
};

struct PathFit {
  std::vector<int> kinds;  // per path segment: 0 static, 1 capture, 2 catch-all
  std::vector<Capture> captures;
};

// Segment by segment: static text must equal, {x} takes one non-empty
// segment, a catch-all takes the rest after its base's slash, or nothing when
// the path is exactly its (non-root) base.
std::optional<PathFit> fit_path(const std::vector<Segment>& pattern, std::string_view path) {
  if (path.empty() || path[0] != '/') return std::nullopt;
  std::vector<std::size_t> starts;  // offset of each path segment
  for (std::size_t start = 1;;) {
    starts.push_back(start);
    const std::size_t end = path.find('/', start);
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  auto segment = [&](std::size_t i) {
    const std::size_t end = i + 1 < starts.size() ? starts[i + 1] - 1 : path.size();
    return path.substr(starts[i], end - starts[i]);
  };
  const bool catchall = !pattern.empty() && pattern.back().kind == Segment::Kind::catchall;
  const std::size_t fixed = catchall ? pattern.size() - 1 : pattern.size();
  if (starts.size() < fixed || (!catchall && starts.size() != fixed)) return std::nullopt;
  PathFit fit;
  for (std::size_t i = 0; i < fixed; ++i) {
    const std::string_view s = segment(i);
    if (pattern[i].kind == Segment::Kind::literal) {
      if (s != pattern[i].text) return std::nullopt;
      fit.kinds.push_back(0);
    } else {
      if (s.empty()) return std::nullopt;
      fit.kinds.push_back(1);
      fit.captures.push_back({pattern[i].text, starts[i], s.size()});
    }
  }
  if (catchall) {
    fit.kinds.push_back(2);
    if (starts.size() == fixed) {  // the base itself: an empty remainder
      fit.captures.push_back({pattern.back().text, path.size(), 0});
    } else {
      fit.captures.push_back({pattern.back().text, starts[fixed], path.size() - starts[fixed]});
    }
  }
  return fit;
}

bool method_fits(MethodSet methods, std::string_view method) {
  for (unsigned m = 0; m <= static_cast<unsigned>(Method::patch); ++m) {
    if (method_name(static_cast<Method>(m)) == method)
      return methods.contains(static_cast<Method>(m));
  }
  return methods == MethodSet::any();  // an extension method
}

bool predicates_hold(const Model& route, const Request& r) {
  return std::all_of(route.predicates.begin(), route.predicates.end(),
                     [&](std::size_t p) { return kPredicates[p].holds(r); });
}

std::string predicate_key(const Predicate& p) {
  const bool query =
      p.kind == Predicate::Kind::query_equals || p.kind == Predicate::Kind::query_present;
  return std::to_string(static_cast<int>(p.kind)) + ":" + (query ? p.name : lower(p.name)) + "=" +
         p.value;
}

std::multiset<std::string> predicate_keys(const Model& route) {
  std::multiset<std::string> keys;
  for (std::size_t p : route.predicates)
    keys.insert(predicate_key(kPredicates[p].spec));
  return keys;
}

// add()'s conflict rule: on the same host, a capture at the same position
// (everything before it equal) named differently, or the same pattern and
// predicates with a shared method.
bool conflicts(const Model& a, const Model& b) {
  if (!(a.host == b.host)) return false;
  const std::size_t n = std::min(a.segments.size(), b.segments.size());
  for (std::size_t i = 0; i < n; ++i) {
    const Segment& x = a.segments[i];
    const Segment& y = b.segments[i];
    if (x == y) continue;
    if (x.kind == y.kind && x.kind != Segment::Kind::literal) return true;
    return false;
  }
  return a.segments == b.segments && predicate_keys(a) == predicate_keys(b) &&
         a.methods.intersects(b.methods);
}

// What a lookup must return, from first principles.
struct Expected {
  MatchStatus status = MatchStatus::not_found;
  const Model* route = nullptr;
  PathFit fit;
  MethodSet allowed;
};

Expected expect(const std::vector<Model>& table, const Request& r) {
  const auto host = request_host(r.host);
  Expected e;
  std::optional<std::tuple<int, std::vector<int>, long, RouteId>> best;
  for (const Model& route : table) {
    const auto rank = host_rank(route.host, host);
    if (!rank) continue;
    auto fit = fit_path(route.segments, r.path);
    if (!fit || !predicates_hold(route, r)) continue;
    if (!method_fits(route.methods, r.method)) {
      e.allowed = e.allowed | route.methods;
      continue;
    }
    auto key =
        std::make_tuple(*rank, fit->kinds, -static_cast<long>(route.predicates.size()), route.id);
    if (!best || key < *best) {
      best = key;
      e.route = &route;
      e.fit = std::move(*fit);
    }
  }
  if (e.route != nullptr) {
    e.status = MatchStatus::matched;
    e.allowed = MethodSet();
  } else if (!e.allowed.empty()) {
    e.status = MatchStatus::method_not_allowed;
  }
  return e;
}

// ---------------------------------------------------------------------------
// The interpreter

struct Observed {
  MatchStatus status;
  RouteId route;
  MethodSet allowed;
  std::vector<std::pair<std::string, std::string>> params;
  bool operator==(const Observed&) const = default;
};

Match lookup(const Router& router, const Request& r) {
  return router.match(MatchInput{r.method, r.host, r.path, r.query, r.headers});
}

Observed observe(const Router& router, const Request& r) {
  const Match m = lookup(router, r);
  Observed o{m.status, m.route ? m.route->id() : 0xffffffffu, m.allowed, {}};
  for (const Param& p : m.params())
    o.params.emplace_back(std::string(p.name), std::string(p.value));
  return o;
}

std::string describe(const Request& r) {
  std::string s = r.method + " host='" + r.host + "' path='" + r.path + "' query='" + r.query + "'";
  for (const HeaderField& h : r.headers)
    s += " " + std::string(h.name) + ": " + std::string(h.value);
  return s;
}

std::string describe(const std::vector<Model>& table, const std::vector<RouteSpec>& specs) {
  std::string s;
  for (const Model& m : table) {
    const RouteSpec& spec = specs[m.id];
    s += "\n    #" + std::to_string(m.id) + " host='" + spec.host + "' path='" + spec.path +
         "' methods=" + (spec.methods == MethodSet::any() ? "*" : spec.methods.to_string()) +
         " predicates=" + std::to_string(spec.predicates.size());
  }
  return s;
}

void check_params(const Match& m, const Request& r, const PathFit& fit, const std::string& ctx) {
  const auto params = m.params();
  if (params.size() != fit.captures.size()) fail("capture count differs from the model", ctx);
  for (std::size_t i = 0; i < params.size(); ++i) {
    const Param& p = params[i];
    const Capture& c = fit.captures[i];
    if (p.name != c.name) fail("capture name differs from the model", ctx);
    const char* begin = r.path.data();
    if (p.value.data() < begin || p.value.data() + p.value.size() > begin + r.path.size()) {
      fail("capture value is not a view into the path", ctx);
    }
    if (static_cast<std::size_t>(p.value.data() - begin) != c.offset || p.value.size() != c.size) {
      fail("capture value differs from the model",
           ctx + " capture " + c.name + "='" + std::string(p.value) + "'");
    }
    if (m.param(p.name) != p.value) fail("param(name) disagrees with params()", ctx);
  }
}

void check_match(const Router& router, const std::vector<Model>& table,
                 const std::vector<RouteSpec>& specs, const Request& r, std::uint64_t pick) {
  const Match m = lookup(router, r);
  const Expected e = expect(table, r);
  const std::string ctx = describe(r) + describe(table, specs);
  if (m.status != e.status) {
    fail(m.status == MatchStatus::not_found ? "not_found, but a route fits"
                                            : "status differs from the model",
         ctx + "\n  got " + std::to_string(static_cast<int>(m.status)) + ", expected " +
             std::to_string(static_cast<int>(e.status)));
  }
  if (m.status == MatchStatus::method_not_allowed && !(m.allowed == e.allowed)) {
    fail("allowed methods differ from the model",
         ctx + "\n  got '" + m.allowed.to_string() + "', expected '" + e.allowed.to_string() + "'");
  }
  if (m.status != MatchStatus::matched) {
    if (m.route != nullptr || !m.params().empty()) fail("no match, yet a route or captures", ctx);
    return;
  }
  if (m.route == nullptr) fail("matched without a route", ctx);
  if (m.route->id() != e.route->id) {
    fail("matched a different route than the model's winner",
         ctx + "\n  got #" + std::to_string(m.route->id()) + ", expected #" +
             std::to_string(e.route->id));
  }
  check_params(m, r, e.fit, ctx);

  // Copies carry the same captures, whatever the target held before.
  const Match copy = m;
  Match assigned = lookup(router, Request{"GET", "", "/", "", {}});
  assigned = m;
  for (const Match* c : {&copy, static_cast<const Match*>(&assigned)}) {
    if (c->status != m.status || c->route != m.route) fail("a copied Match differs", ctx);
    if (c->params().size() != m.params().size()) fail("a copied Match lost captures", ctx);
    for (std::size_t i = 0; i < m.params().size(); ++i) {
      if (c->params()[i].name != m.params()[i].name ||
          c->params()[i].value.data() != m.params()[i].value.data() ||
          c->params()[i].value.size() != m.params()[i].value.size()) {
        fail("a copied Match holds other captures", ctx);
      }
    }
  }

  const auto& targets = m.route->spec().targets;
  const auto t = m.route->pick_target(pick);
  if (targets.empty() != !t.has_value()) fail("pick_target and targets disagree", ctx);
  if (t && (*t >= targets.size() || targets[*t].weight == 0)) {
    fail("pick_target chose an idle or missing target", ctx);
  }
}

std::string build(FuzzedDataProvider& in, const char* const* pieces, std::size_t count,
                  std::size_t max) {
  std::string s = in.ConsumeBool() ? "" : "/";
  const std::size_t n = in.ConsumeIntegralInRange<std::size_t>(0, max);
  int fresh = 0;
  for (std::size_t i = 0; i < n && in.remaining_bytes() > 0; ++i) {
    const std::string_view piece = pieces[in.ConsumeIntegralInRange<std::size_t>(0, count - 1)];
    if (piece == "{p}" || piece == "/{p}") {
      s += (piece[0] == '/' ? "/{p" : "{p") + std::to_string(fresh++) + "}";
    } else {
      s += piece;
    }
  }
  return s;
}

template <class T, std::size_t N>
const T& pick(FuzzedDataProvider& in, const T (&options)[N]) {
  return options[in.ConsumeIntegralInRange<std::size_t>(0, N - 1)];
}

RouteSpec make_route(FuzzedDataProvider& in, std::vector<std::size_t>& predicates) {
  RouteSpec spec;
  spec.path = build(in, kPatternPieces, std::size(kPatternPieces), 24);
  spec.host = pick(in, kHostPatterns);
  const auto bits = in.ConsumeIntegral<std::uint16_t>();
  if ((bits & 0x8000) != 0) {
    spec.methods = MethodSet::any();
  } else {
    spec.methods = MethodSet();
    for (unsigned m = 0; m <= static_cast<unsigned>(Method::patch); ++m) {
      if ((bits & (1u << m)) != 0) spec.methods.add(static_cast<Method>(m));
    }
  }
  const std::size_t n = in.ConsumeIntegralInRange<std::size_t>(0, 3);
  for (std::size_t i = 0; i < n; ++i) {
    predicates.push_back(in.ConsumeIntegralInRange<std::size_t>(0, kPredicateCount - 1));
    spec.predicates.push_back(kPredicates[predicates.back()].spec);
  }
  spec.targets = pick(in, kTargets);
  return spec;
}

Request make_request(FuzzedDataProvider& in) {
  Request r;
  r.method = pick(in, kMethods);
  r.host = pick(in, kRequestHosts);
  r.path = build(in, kPathPieces, std::size(kPathPieces), 16);
  r.query = pick(in, kQueries);
  const std::size_t n = in.ConsumeIntegralInRange<std::size_t>(0, 3);
  for (std::size_t i = 0; i < n; ++i)
    r.headers.push_back(pick(in, kHeaders));
  return r;
}

// The kinds of error the model expects for `spec`, or none when it must be
// accepted.
std::set<ErrorKind> expected_errors(const RouteSpec& spec, const std::vector<std::size_t>& preds,
                                    const std::vector<Model>& table, Model& model) {
  std::set<ErrorKind> kinds;
  const auto segments = parse_pattern(spec.path);
  const auto host = parse_host(spec.host);
  if (!segments || !host) kinds.insert(ErrorKind::malformed);
  if (spec.methods.empty()) kinds.insert(ErrorKind::invalid_argument);
  bool weighted = spec.targets.empty();
  for (const auto& t : spec.targets)
    weighted = weighted || t.weight > 0;
  if (!weighted) kinds.insert(ErrorKind::invalid_argument);
  for (std::size_t p : preds) {
    if (!kPredicates[p].valid) kinds.insert(ErrorKind::invalid_argument);
  }
  if (!kinds.empty()) return kinds;
  model = Model{static_cast<RouteId>(table.size()), *host, *segments, spec.methods, preds};
  for (const Model& other : table) {
    if (conflicts(other, model)) return {ErrorKind::conflict};
  }
  return {};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  Router router;
  std::vector<Model> table;
  std::vector<RouteSpec> specs;  // the specs of accepted routes, by id
  std::deque<Request> seen;      // earlier requests, replayed around failed adds

  for (int step = 0; step < 64 && in.remaining_bytes() > 0; ++step) {
    if (in.ConsumeIntegralInRange<int>(0, 2) == 0 && table.size() < 32) {
      std::vector<std::size_t> preds;
      RouteSpec spec = make_route(in, preds);
      Model model{};
      const auto expected = expected_errors(spec, preds, table, model);
      std::vector<Observed> before;
      for (const Request& r : seen)
        before.push_back(observe(router, r));
      const std::string label = "host='" + spec.host + "' path='" + spec.path + "'";
      auto id = router.add(spec);
      if (id.ok()) {
        if (!expected.empty()) {
          fail("add accepted a route the model refuses", label + describe(table, specs));
        }
        if (*id != table.size()) fail("route ids do not count up from 0", label);
        table.push_back(model);
        specs.push_back(spec);
      } else {
        if (expected.empty()) {
          fail("add refused a route the model accepts",
               label + " (" + id.error().message + ")" + describe(table, specs));
        }
        if (expected.count(id.error().kind) == 0) {
          fail("add refused with an unexpected kind", label + " (" + id.error().message + ")");
        }
        if (id.error().message.empty()) fail("add refused without a message", label);
        if (router.size() != table.size()) fail("a refused add changed size()", label);
        for (std::size_t i = 0; i < seen.size(); ++i) {
          if (!(observe(router, seen[i]) == before[i])) {
            fail("a refused add changed an earlier lookup", label + " " + describe(seen[i]));
          }
        }
      }
    } else {
      Request r = make_request(in);
      const std::uint64_t value = in.ConsumeIntegral<std::uint64_t>();
      check_match(router, table, specs, r, value);
      seen.push_back(std::move(r));
      if (seen.size() > 8) seen.pop_front();
    }
  }
  if (router.size() != table.size()) fail("size() differs from the number of routes added");
  return 0;
}
