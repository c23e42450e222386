#include "portico/router.hpp"

#include <algorithm>
#include <cstring>
#include <iterator>
#include <numeric>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include <regex.h>

#include "../common/ascii.hpp"
#include "pattern.hpp"

namespace portico {

// ---------------------------------------------------------------------------
// Methods

std::optional<Method> parse_method(std::string_view name) noexcept {
  switch (name.size()) {
    case 3:
      if (name == "GET") return Method::get;
      if (name == "PUT") return Method::put;
      break;
    case 4:
      if (name == "POST") return Method::post;
      if (name == "HEAD") return Method::head;
      break;
    case 5:
      if (name == "PATCH") return Method::patch;
      if (name == "TRACE") return Method::trace;
      break;
    case 6:
      if (name == "DELETE") return Method::delete_;
      break;
    case 7:
      if (name == "OPTIONS") return Method::options;
      if (name == "CONNECT") return Method::connect;
      break;
    default:
      break;
  }
  return std::nullopt;
}

std::string_view method_name(Method method) noexcept {
  static constexpr std::string_view kNames[] = {"GET",     "HEAD",    "POST",  "PUT",  "DELETE",
                                                "CONNECT", "OPTIONS", "TRACE", "PATCH"};
  const auto i = static_cast<std::size_t>(method);
  return i < std::size(kNames) ? kNames[i] : std::string_view();
}

std::string MethodSet::to_string() const {
  std::string out;
  for (unsigned m = 0; m <= static_cast<unsigned>(Method::patch); ++m) {
    if (!contains(static_cast<Method>(m))) continue;
    if (!out.empty()) out += ", ";
    out += method_name(static_cast<Method>(m));
  }
  return out;
}

// ---------------------------------------------------------------------------
// Predicates

namespace detail {
namespace {

const std::string_view* find_header(std::span<const HeaderField> headers,
                                    std::string_view name) noexcept {
  for (const HeaderField& h : headers) {
    if (ascii_iequals(h.name, name)) return &h.value;
  }
  return nullptr;
}

// The value of the first `name=` in a raw query string; a bare `name`
// yields an empty value.
std::optional<std::string_view> find_query(std::string_view query, std::string_view name) noexcept {
  while (!query.empty()) {
    const std::size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    const std::size_t eq = pair.find('=');
    if (pair.substr(0, eq) == name) {
      return eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

}  // namespace

// A POSIX extended regular expression anchored to the whole value. The C
// library's engine is used rather than std::regex because libstdc++'s
// matcher recurses once per input character, so a long header value could
// overflow the stack; glibc's does not, and it bounds its own memory.
class PosixRegex {
 public:
  static Result<std::unique_ptr<PosixRegex>> compile(const std::string& pattern) {
    // The pattern must be an expression on its own: wrapped unchecked, "a)|(b"
    // would become "^(a)|(b)$", anchored at one end only.
    if (auto alone = compile_raw(pattern); !alone) return std::move(alone).error();
    return compile_raw("^(" + pattern + ")$");
  }
  ~PosixRegex() {
    if (compiled_) regfree(&re_);
  }
  PosixRegex(const PosixRegex&) = delete;
  PosixRegex& operator=(const PosixRegex&) = delete;

  bool matches(std::string_view value) const noexcept {
    // REG_STARTEND bounds the subject by offsets, so the view needs no NUL.
    regmatch_t bounds{0, static_cast<regoff_t>(value.size())};
    return regexec(&re_, value.data(), 1, &bounds, REG_STARTEND) == 0;
  }

 private:
  PosixRegex() = default;

  static Result<std::unique_ptr<PosixRegex>> compile_raw(const std::string& expression) {
    auto re = std::unique_ptr<PosixRegex>(new PosixRegex);
    const int rc = regcomp(&re->re_, expression.c_str(), REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
      char why[128];
      regerror(rc, &re->re_, why, sizeof why);
      return make_error(ErrorKind::invalid_argument, why);
    }
    re->compiled_ = true;
    return re;
  }

  regex_t re_{};
  bool compiled_ = false;
};

struct CompiledPredicate {
  Predicate spec;
  std::unique_ptr<PosixRegex> regex;

  bool holds(const MatchInput& in) const {
    switch (spec.kind) {
      case Predicate::Kind::header_present:
        return find_header(in.headers, spec.name) != nullptr;
      case Predicate::Kind::header_equals: {
        const auto* v = find_header(in.headers, spec.name);
        return v != nullptr && *v == spec.value;
      }
      case Predicate::Kind::header_prefix: {
        const auto* v = find_header(in.headers, spec.name);
        return v != nullptr && v->starts_with(spec.value);
      }
      case Predicate::Kind::header_regex: {
        const auto* v = find_header(in.headers, spec.name);
        return v != nullptr && regex->matches(*v);
      }
      case Predicate::Kind::query_present:
        return find_query(in.query, spec.name).has_value();
      case Predicate::Kind::query_equals: {
        const auto v = find_query(in.query, spec.name);
        return v.has_value() && *v == spec.value;
      }
    }
    return false;
  }
};

struct CompiledPredicates {
  std::vector<CompiledPredicate> list;

  bool hold(const MatchInput& in) const noexcept {
    for (const auto& p : list) {
      if (!p.holds(in)) return false;
    }
    return true;
  }
};

namespace {

// A header field name is a token (RFC 9110 §5.1, §5.6.2).
bool is_token(std::string_view name) noexcept {
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
    if (!ok) return false;
  }
  return true;
}

bool is_query_predicate(Predicate::Kind kind) noexcept {
  return kind == Predicate::Kind::query_equals || kind == Predicate::Kind::query_present;
}

// Refuses a predicate that no request could meet, which would otherwise
// hide its route without a word: a header name no request can carry, or a
// query name or value that the '&' and '=' of the query string would cut.
Status check_predicate(const Predicate& p, const std::string& where) {
  if (p.name.empty()) return make_error(ErrorKind::invalid_argument, where + ": empty name");
  if (!is_query_predicate(p.kind) && !is_token(p.name)) {
    return make_error(ErrorKind::invalid_argument,
                      where + ": '" + p.name + "' is not a header name (RFC 9110 token)");
  }
  if (is_query_predicate(p.kind) && p.name.find_first_of("&=") != std::string::npos) {
    return make_error(ErrorKind::invalid_argument,
                      where + ": query name '" + p.name + "' holds '&' or '='");
  }
  if (p.kind == Predicate::Kind::query_equals && p.value.find('&') != std::string::npos) {
    return make_error(ErrorKind::invalid_argument,
                      where + ": query value '" + p.value + "' holds '&'");
  }
  return {};
}

Result<std::unique_ptr<CompiledPredicates>> compile_predicates(const RouteSpec& spec) {
  auto out = std::make_unique<CompiledPredicates>();
  for (std::size_t i = 0; i < spec.predicates.size(); ++i) {
    const Predicate& p = spec.predicates[i];
    const std::string where = "route '" + spec.name + "': predicates[" + std::to_string(i) + "]";
    if (auto s = check_predicate(p, where); !s) return std::move(s).error();
    CompiledPredicate c{p, nullptr};
    if (p.kind == Predicate::Kind::header_regex) {
      auto re = PosixRegex::compile(p.value);
      if (!re) {
        return make_error(ErrorKind::invalid_argument, where + ": bad regular expression '" +
                                                           p.value + "': " + re.error().message);
      }
      c.regex = std::move(*re);
    }
    out->list.push_back(std::move(c));
  }
  return out;
}

// The predicates of two routes are the same when they hold the same
// conditions, in any order.
bool same_predicates(const std::vector<Predicate>& a, const std::vector<Predicate>& b) {
  if (a.size() != b.size()) return false;
  auto key = [](const Predicate& p) {
    std::string name = p.name;
    if (!is_query_predicate(p.kind)) {
      for (char& c : name)
        c = ascii_lower(c);
    }
    return std::to_string(static_cast<int>(p.kind)) + '\0' + name + '\0' + p.value;
  };
  std::vector<std::string> ka, kb;
  for (const auto& p : a)
    ka.push_back(key(p));
  for (const auto& p : b)
    kb.push_back(key(p));
  std::sort(ka.begin(), ka.end());
  std::sort(kb.begin(), kb.end());
  return ka == kb;
}

std::string methods_label(MethodSet methods) {
  return methods == MethodSet::any() ? "*" : methods.to_string();
}

}  // namespace
}  // namespace detail

// ---------------------------------------------------------------------------
// Route

Route::Route(RouteId id, RouteSpec spec, std::unique_ptr<detail::CompiledPredicates> predicates)
    : id_(id), spec_(std::move(spec)), predicates_(std::move(predicates)) {
  std::uint64_t sum = 0;
  for (const auto& t : spec_.targets) {
    sum += t.weight;
    cumulative_weights_.push_back(sum);
  }
}

Route::~Route() = default;

std::optional<std::size_t> Route::pick_target(std::uint64_t value) const noexcept {
  if (cumulative_weights_.empty()) return std::nullopt;
  const std::uint64_t x = value % cumulative_weights_.back();
  const auto it = std::upper_bound(cumulative_weights_.begin(), cumulative_weights_.end(), x);
  return static_cast<std::size_t>(it - cumulative_weights_.begin());
}

// ---------------------------------------------------------------------------
// The trie

namespace detail {

inline constexpr std::uint32_t kNone = 0xffffffffu;

// A route ending at a node. The method set and the predicate flag are copied
// here so that the common case is decided without touching the Route.
struct Entry {
  const Route* route;
  MethodSet methods;
  bool has_predicates;
  // The route ends in a catch-all and this entry stands for its base path
  // (`/api/orders` for `/api/orders/**`); it captures an empty remainder.
  bool catchall_base;
  const std::string* base_capture;
};

struct Node {
  // Fields read on every lookup come first, so that a visit usually touches
  // one or two cache lines: the kind, the child links, and the short strings
  // whose bytes sit inside the node (small-string storage).
  enum class Kind : std::uint8_t { text, param, catchall };
  Kind kind = Kind::text;
  std::uint32_t param = kNone;
  std::uint32_t catchall = kNone;
  std::string prefix;                    // text nodes: the bytes this node matches
  std::string first_bytes;               // first byte of each text child
  std::vector<std::uint32_t> children;   // text children, parallel to first_bytes
  std::vector<Entry> entries;            // routes ending here, in the order they are tried
  const std::string* capture = nullptr;  // param/catchall nodes: the capture's name
  const Route* capture_owner = nullptr;  // the route that named the capture first
};

// True when tokens[i] is the text before a trailing catch-all and has a base
// path of its own: `/api/orders/` before `**`, or the `/` between `{id}` and
// `**` (the base is `/users/{id}`); not the bare `/` of a root `/**`.
bool is_catchall_base(const std::vector<PatternToken>& tokens, std::size_t i) {
  return i + 1 < tokens.size() && tokens[i + 1].kind == PatternToken::Kind::catchall &&
         (i > 0 || tokens[i].text.size() > 1);
}

std::string_view base_text(const PatternToken& t) {
  return std::string_view(t.text).substr(0, t.text.size() - 1);
}

// Hash and equality that accept string_view, so that looking a request's
// host up does not build a std::string.
struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept {
    return std::hash<std::string_view>{}(s);
  }
};
using HostTable = std::unordered_map<std::string, std::uint32_t, StringHash, std::equal_to<>>;

class RouterImpl {
 public:
  Result<RouteId> add(RouteSpec spec);
  void reserve(std::size_t routes);
  void match(const MatchInput& in, Match& m) const noexcept;
  const Route& route(RouteId id) const { return *routes_.at(id); }
  std::size_t size() const noexcept { return routes_.size(); }

 private:
  struct Walk {
    const MatchInput& in;
    Match& match;
    std::optional<Method> method;
    bool method_mismatch = false;
  };

  std::uint32_t new_node(Node::Kind kind, std::string prefix = {}) {
    nodes_.push_back(Node{});
    nodes_.back().kind = kind;
    nodes_.back().prefix = std::move(prefix);
    return static_cast<std::uint32_t>(nodes_.size() - 1);
  }
  std::uint32_t tree_for(const HostPattern& host);
  const std::uint32_t* find_tree(const HostPattern& host) const;
  std::uint32_t insert_text(std::uint32_t parent, std::string_view text);
  std::uint32_t find_text(std::uint32_t parent, std::string_view text) const;
  Status check_conflicts(std::uint32_t root, const std::vector<PatternToken>& tokens,
                         const Route& candidate) const;
  Status check_terminal(std::uint32_t node, bool catchall_base, const Route& candidate) const;
  void insert(std::uint32_t root, const std::vector<PatternToken>& tokens, const Route& route);
  void add_entry(std::uint32_t node, const Route& route, bool catchall_base,
                 const std::string* base_capture);
  const std::string* intern(const std::string& name);

  bool visit(std::uint32_t n, std::size_t pos, Walk& w) const;
  bool try_entries(const Node& node, Walk& w) const;
  void match_tree(std::uint32_t root, Walk& w) const {
    if (root != kNone) visit(root, 0, w);
  }

  std::vector<Node> nodes_;
  std::vector<std::unique_ptr<Route>> routes_;
  // Capture names, each stored once; a node-based set never moves its
  // elements, so Param::name views stay valid as the table grows.
  std::unordered_set<std::string> names_;
  std::uint32_t any_host_ = kNone;
  HostTable exact_hosts_;
  HostTable wildcard_hosts_;  // key: ".example.com"
};

const std::string* RouterImpl::intern(const std::string& name) {
  return &*names_.insert(name).first;
}

const std::uint32_t* RouterImpl::find_tree(const HostPattern& host) const {
  switch (host.kind) {
    case HostPattern::Kind::any:
      return any_host_ == kNone ? nullptr : &any_host_;
    case HostPattern::Kind::exact: {
      auto it = exact_hosts_.find(host.text);
      return it == exact_hosts_.end() ? nullptr : &it->second;
    }
    case HostPattern::Kind::wildcard: {
      auto it = wildcard_hosts_.find(host.text);
      return it == wildcard_hosts_.end() ? nullptr : &it->second;
    }
  }
  return nullptr;
}

std::uint32_t RouterImpl::tree_for(const HostPattern& host) {
  if (const std::uint32_t* t = find_tree(host)) return *t;
  const std::uint32_t root = new_node(Node::Kind::text);
  switch (host.kind) {
    case HostPattern::Kind::any:
      any_host_ = root;
      break;
    case HostPattern::Kind::exact:
      exact_hosts_.emplace(host.text, root);
      break;
    case HostPattern::Kind::wildcard:
      wildcard_hosts_.emplace(host.text, root);
      break;
  }
  return root;
}

// Follows `text` down from `parent` through text nodes, splitting a node
// where the text diverges from its prefix, and returns the node that ends
// exactly at the end of `text`.
std::uint32_t RouterImpl::insert_text(std::uint32_t parent, std::string_view text) {
  while (!text.empty()) {
    const std::size_t slot = nodes_[parent].first_bytes.find(text[0]);
    if (slot == std::string::npos) {
      const std::uint32_t child = new_node(Node::Kind::text, std::string(text));
      nodes_[parent].first_bytes.push_back(text[0]);
      nodes_[parent].children.push_back(child);
      return child;
    }
    std::uint32_t child = nodes_[parent].children[slot];
    const std::string& prefix = nodes_[child].prefix;
    const std::size_t common =
        std::mismatch(prefix.begin(), prefix.end(), text.begin(), text.end()).first -
        prefix.begin();
    if (common < prefix.size()) {
      // Split: a new node takes the shared part and adopts the old child.
      const std::uint32_t mid = new_node(Node::Kind::text, prefix.substr(0, common));
      nodes_[child].prefix.erase(0, common);
      nodes_[mid].first_bytes.push_back(nodes_[child].prefix[0]);
      nodes_[mid].children.push_back(child);
      nodes_[parent].children[slot] = mid;
      child = mid;
    }
    parent = child;
    text.remove_prefix(common);
  }
  return parent;
}

// Read-only twin of insert_text: the node where `text` ends, or kNone when
// the trie does not hold it yet.
std::uint32_t RouterImpl::find_text(std::uint32_t parent, std::string_view text) const {
  while (!text.empty()) {
    const std::size_t slot = nodes_[parent].first_bytes.find(text[0]);
    if (slot == std::string::npos) return kNone;
    const std::uint32_t child = nodes_[parent].children[slot];
    const std::string& prefix = nodes_[child].prefix;
    if (!text.starts_with(prefix)) return kNone;
    parent = child;
    text.remove_prefix(prefix.size());
  }
  return parent;
}

Status RouterImpl::check_terminal(std::uint32_t node, bool catchall_base,
                                  const Route& candidate) const {
  for (const Entry& e : nodes_[node].entries) {
    if (e.catchall_base != catchall_base) continue;
    if (!e.route->spec().methods.intersects(candidate.spec().methods)) continue;
    if (!same_predicates(e.route->spec().predicates, candidate.spec().predicates)) continue;
    const MethodSet both = e.route->spec().methods & candidate.spec().methods;
    return make_error(ErrorKind::conflict,
                      "route '" + candidate.name() + "' conflicts with route '" + e.route->name() +
                          "': same host, path and predicates, and both accept " +
                          methods_label(both));
  }
  return {};
}

// Walks the trie the way insert() would, without changing it, and reports
// the first clash: a capture named differently at the same position, or an
// equivalent route already ending where this one would.
Status RouterImpl::check_conflicts(std::uint32_t root, const std::vector<PatternToken>& tokens,
                                   const Route& candidate) const {
  std::uint32_t node = root;
  for (std::size_t i = 0; i < tokens.size() && node != kNone; ++i) {
    const PatternToken& t = tokens[i];
    if (t.kind == PatternToken::Kind::text) {
      if (is_catchall_base(tokens, i)) {
        const std::uint32_t base = find_text(node, base_text(t));
        if (base == kNone) return {};
        if (auto s = check_terminal(base, true, candidate); !s) return s;
        node = find_text(base, "/");
      } else {
        node = find_text(node, t.text);
      }
      continue;
    }
    const bool is_param = t.kind == PatternToken::Kind::param;
    const std::uint32_t next = is_param ? nodes_[node].param : nodes_[node].catchall;
    if (next != kNone && *nodes_[next].capture != t.text) {
      const char* open = is_param ? "{" : "{*";
      return make_error(ErrorKind::conflict,
                        "route '" + candidate.name() + "' names a capture " + open + t.text +
                            "} where route '" + nodes_[next].capture_owner->name() + "' names it " +
                            open + *nodes_[next].capture + "}");
    }
    node = next;
  }
  if (node == kNone) return {};
  return check_terminal(node, false, candidate);
}

void RouterImpl::add_entry(std::uint32_t node, const Route& route, bool catchall_base,
                           const std::string* base_capture) {
  Entry e{&route, route.spec().methods, !route.spec().predicates.empty(), catchall_base,
          base_capture};
  // Exact entries before catch-all bases, more predicates before fewer, and
  // otherwise first added first.
  auto rank = [](const Entry& x) {
    return std::make_pair(x.catchall_base ? 1 : 0,
                          -static_cast<long>(x.route->spec().predicates.size()));
  };
  auto& entries = nodes_[node].entries;
  const auto at =
      std::upper_bound(entries.begin(), entries.end(), e,
                       [&](const Entry& a, const Entry& b) { return rank(a) < rank(b); });
  entries.insert(at, e);
}

void RouterImpl::insert(std::uint32_t root, const std::vector<PatternToken>& tokens,
                        const Route& route) {
  std::uint32_t node = root;
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    const PatternToken& t = tokens[i];
    if (t.kind == PatternToken::Kind::text) {
      if (is_catchall_base(tokens, i)) {
        // `/api/orders/**` also answers `/api/orders`: the base ends one byte
        // short of the text, on the node before its final '/'.
        const std::uint32_t base = insert_text(node, base_text(t));
        const std::uint32_t with_slash = insert_text(base, "/");
        add_entry(base, route, true, intern(tokens[i + 1].text));
        node = with_slash;
      } else {
        node = insert_text(node, t.text);
      }
      continue;
    }
    const bool is_param = t.kind == PatternToken::Kind::param;
    std::uint32_t child = is_param ? nodes_[node].param : nodes_[node].catchall;
    if (child == kNone) {
      child = new_node(is_param ? Node::Kind::param : Node::Kind::catchall);
      nodes_[child].capture = intern(t.text);
      nodes_[child].capture_owner = &route;
      (is_param ? nodes_[node].param : nodes_[node].catchall) = child;
    }
    node = child;
  }
  add_entry(node, route, false, nullptr);
}

// A route adds up to about three nodes (its own text, the split that
// makes room for it, a capture), and a node is large: growing the array
// one doubling at a time moves every node again and touches fresh memory,
// which was most of the cost of adding thousands of routes.
void RouterImpl::reserve(std::size_t routes) {
  routes_.reserve(routes_.size() + routes);
  nodes_.reserve(nodes_.size() + 3 * routes + 1);
}

Result<RouteId> RouterImpl::add(RouteSpec spec) {
  if (spec.name.empty()) {
    spec.name = methods_label(spec.methods) + " " + spec.host + spec.path;
  }
  auto tokens = parse_path_pattern(spec.path);
  if (!tokens) {
    auto e = std::move(tokens).error();
    e.message = "route '" + spec.name + "': " + e.message;
    return e;
  }
  auto host = parse_host_pattern(spec.host);
  if (!host) {
    auto e = std::move(host).error();
    e.message = "route '" + spec.name + "': " + e.message;
    return e;
  }
  if (spec.methods.empty()) {
    return make_error(ErrorKind::invalid_argument, "route '" + spec.name + "': no methods");
  }
  if (!spec.targets.empty()) {
    std::uint64_t sum = 0;
    for (const auto& t : spec.targets)
      sum += t.weight;
    if (sum == 0) {
      return make_error(ErrorKind::invalid_argument,
                        "route '" + spec.name + "': every target weight is 0");
    }
  }
  auto predicates = compile_predicates(spec);
  if (!predicates) return std::move(predicates).error();
  if (routes_.size() >= kNone - 1) {
    return make_error(ErrorKind::capacity, "router: too many routes");
  }

  const auto id = static_cast<RouteId>(routes_.size());
  auto route = std::make_unique<Route>(id, std::move(spec), std::move(*predicates));
  if (const std::uint32_t* root = find_tree(*host)) {
    if (auto s = check_conflicts(*root, *tokens, *route); !s) return std::move(s).error();
  }
  insert(tree_for(*host), *tokens, *route);
  routes_.push_back(std::move(route));
  return id;
}

// ---------------------------------------------------------------------------
// Matching

// Prefixes are short and fan-outs small: inline loops beat calls into libc's
// memcmp and memchr, which are tuned for long inputs.
inline bool has_prefix_at(std::string_view path, std::size_t pos, const std::string& prefix) {
  const std::size_t n = prefix.size();
  if (path.size() - pos < n) return false;
  const char* a = path.data() + pos;
  const char* b = prefix.data();
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    std::uint64_t x, y;
    std::memcpy(&x, a + i, 8);
    std::memcpy(&y, b + i, 8);
    if (x != y) return false;
  }
  for (; i < n; ++i) {
    if (a[i] != b[i]) return false;
  }
  return true;
}

inline std::size_t find_byte(const std::string& bytes, char c) {
  if (bytes.size() > 8) {  // a wide fan-out (the root, say): libc's vector search wins
    const void* hit = std::memchr(bytes.data(), c, bytes.size());
    return hit == nullptr ? std::string::npos
                          : static_cast<std::size_t>(static_cast<const char*>(hit) - bytes.data());
  }
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    if (bytes[i] == c) return i;
  }
  return std::string::npos;
}

bool RouterImpl::try_entries(const Node& node, Walk& w) const {
  for (const Entry& e : node.entries) {
    const bool method_ok = w.method ? e.methods.contains(*w.method) : e.methods.admits_extensions();
    if (method_ok) {
      if (e.has_predicates && !e.route->predicates_->hold(w.in)) continue;
      if (e.catchall_base) {
        w.match.slots_.params[w.match.count_++] = {*e.base_capture,
                                                   w.in.path.substr(w.in.path.size())};
      }
      w.match.route = e.route;
      return true;
    }
    if (!e.has_predicates || e.route->predicates_->hold(w.in)) {
      w.method_mismatch = true;
      w.match.allowed = w.match.allowed | e.methods;
    }
  }
  return false;
}

// Tries the node `n`, whose text starts at path[pos], and everything below
// it. Children are tried text first, then the capture, then the catch-all:
// the order that makes the more specific route win.
bool RouterImpl::visit(std::uint32_t n, std::size_t pos, Walk& w) const {
  const Node& node = nodes_[n];
  const std::string_view path = w.in.path;
  const std::size_t saved = w.match.count_;
  switch (node.kind) {
    case Node::Kind::text:
      if (!has_prefix_at(path, pos, node.prefix)) return false;
      pos += node.prefix.size();
      break;
    case Node::Kind::param: {
      std::size_t end = pos;
      while (end < path.size() && path[end] != '/')
        ++end;
      if (end == pos) return false;
      w.match.slots_.params[w.match.count_++] = {*node.capture, path.substr(pos, end - pos)};
      pos = end;
      break;
    }
    case Node::Kind::catchall:
      w.match.slots_.params[w.match.count_++] = {*node.capture, path.substr(pos)};
      pos = path.size();
      break;
  }

  if (pos == path.size()) {
    if (try_entries(node, w)) return true;
  } else {
    const std::size_t slot = find_byte(node.first_bytes, path[pos]);
    if (slot != std::string::npos && visit(node.children[slot], pos, w)) return true;
    if (node.param != kNone && visit(node.param, pos, w)) return true;
  }
  if (node.catchall != kNone && visit(node.catchall, pos, w)) return true;
  w.match.count_ = saved;
  return false;
}

void RouterImpl::match(const MatchInput& in, Match& m) const noexcept {
  Walk w{in, m, parse_method(in.method)};
  if (!exact_hosts_.empty() || !wildcard_hosts_.empty()) {
    char buf[256];
    const int len = canonical_request_host(in.host, buf, sizeof buf);
    if (len > 0) {
      const std::string_view host(buf, static_cast<std::size_t>(len));
      if (!exact_hosts_.empty()) {
        auto it = exact_hosts_.find(host);
        if (it != exact_hosts_.end()) match_tree(it->second, w);
      }
      for (std::size_t dot = host.find('.');
           m.route == nullptr && !wildcard_hosts_.empty() && dot != std::string_view::npos;
           dot = host.find('.', dot + 1)) {
        auto it = wildcard_hosts_.find(host.substr(dot));
        if (it != wildcard_hosts_.end()) match_tree(it->second, w);
      }
    }
  }
  if (m.route == nullptr) match_tree(any_host_, w);
  if (m.route != nullptr) {
    m.status = MatchStatus::matched;
    m.allowed = MethodSet();
  } else if (w.method_mismatch) {
    m.status = MatchStatus::method_not_allowed;
  }
}

}  // namespace detail

// ---------------------------------------------------------------------------
// Router

Router::Router() : impl_(std::make_unique<detail::RouterImpl>()) {}
Router::~Router() = default;
Router::Router(Router&&) noexcept = default;
Router& Router::operator=(Router&&) noexcept = default;

Result<RouteId> Router::add(RouteSpec spec) {
  return impl_->add(std::move(spec));
}

void Router::reserve(std::size_t routes) {
  impl_->reserve(routes);
}

Match Router::match(const MatchInput& input) const noexcept {
  Match m;
  impl_->match(input, m);
  return m;
}

const Route& Router::route(RouteId id) const {
  return impl_->route(id);
}
std::size_t Router::size() const noexcept {
  return impl_->size();
}

}  // namespace portico
