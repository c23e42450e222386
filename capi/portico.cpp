// The one bridge between portico.h and the C++ core (an hourglass).
//
// Every entry point catches everything and returns a status: no exception
// and no C++ type crosses the boundary. Each does, in order: check the
// handle (a tag per object type, cleared on free, catches most uses after
// free and handles of the wrong type), check every pointer and length, check
// that text is UTF-8, then call the core and translate its Error into a
// status and the thread's last-error message.
#include "portico.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "../lib/config/gateway_config_parts.hpp"
#include "../lib/config/json_reader.hpp"
#include "../lib/filters/registry.hpp"
#include "portico/balancer.hpp"
#include "portico/breaker.hpp"
#include "portico/filter.hpp"
#include "portico/filters/request_state.hpp"
#include "portico/gateway.hpp"
#include "portico/jwt.hpp"
#include "portico/limiter.hpp"
#include "portico/path.hpp"
#include "portico/proxy.hpp"
#include "portico/router.hpp"

namespace {

using portico::Duration;
using portico::TimePoint;

// ------------------------------------------------------------ errors

thread_local std::string t_last_error;

portico_status fail(portico_status status, std::string message) {
  t_last_error = std::move(message);
  return status;
}

portico_status from_kind(portico::ErrorKind kind) {
  switch (kind) {
    case portico::ErrorKind::invalid_argument:
      return PORTICO_ERR_INVALID_ARGUMENT;
    case portico::ErrorKind::conflict:
      return PORTICO_ERR_CONFLICT;
    case portico::ErrorKind::malformed:
      return PORTICO_ERR_MALFORMED;
    case portico::ErrorKind::capacity:
      return PORTICO_ERR_CAPACITY;
    case portico::ErrorKind::not_found:
      return PORTICO_ERR_NOT_FOUND;
  }
  return PORTICO_ERR_INTERNAL;
}

portico_status fail(const portico::Error& error) {
  return fail(from_kind(error.kind), error.message);
}

// Runs `body`, turning any exception into a status: the one place where the
// C ABI meets C++ exceptions (allocation failures, mostly).
template <class Body>
portico_status guarded(const char* function, Body&& body) noexcept {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    return fail(PORTICO_ERR_NO_MEMORY, std::string(function) + ": out of memory");
  } catch (const std::exception& e) {
    return fail(PORTICO_ERR_INTERNAL, std::string(function) + ": " + e.what());
  } catch (...) {
    return fail(PORTICO_ERR_INTERNAL, std::string(function) + ": unknown exception");
  }
}

// ------------------------------------------------------------ handles

// Each handle type starts with its own tag; free overwrites it, so a
// second free or a use after free finds kDead (while the memory is not
// reused) and a handle of another type finds the wrong tag.
enum class Tag : std::uint32_t {
  dead = 0xdeadf4ee,
  router = 0x50720001,
  match = 0x50720002,
  jwt_verifier = 0x50720003,
  jwt_cache = 0x50720004,
  jwt_result = 0x50720005,
  limiter = 0x50720006,
  breaker = 0x50720007,
  balancer = 0x50720008,
  gateway_options = 0x50720009,
  gateway = 0x5072000a,
  request_live = 0x5072000b,
};

// glibc's allocator writes its own two words at the start of a freed block:
// the tag comes after them so that free's mark survives.
struct HandleHead {
  std::uint64_t words[2] = {0, 0};
};

// The checks below run on every call: their passing path is inlined into
// each entry point, and only a failure (which builds a message) calls out,
// to a cold function that stays out of the way.
[[gnu::cold, gnu::noinline]] portico_status bad_handle(bool null, Tag found, const char* function) {
  if (null) return fail(PORTICO_ERR_INVALID_HANDLE, std::string(function) + ": NULL handle");
  if (found == Tag::dead)
    return fail(PORTICO_ERR_INVALID_HANDLE, std::string(function) + ": handle used after free");
  return fail(PORTICO_ERR_INVALID_HANDLE,
              std::string(function) + ": not a handle of this type (freed or corrupted?)");
}

template <class Handle>
inline portico_status check_handle(const Handle* h, Tag tag, const char* function) {
  if (h != nullptr && h->tag == tag) [[likely]]
    return PORTICO_OK;
  return bad_handle(h == nullptr, h == nullptr ? Tag::dead : h->tag, function);
}

// Frees a handle made by `new`, clearing its tag first. A second free is
// caught (while the memory is not reused) and reported to standard error:
// free functions have no status to return.
template <class Handle>
void free_handle(Handle* h, Tag tag, const char* function) noexcept {
  if (h == nullptr) return;
  if (h->tag != tag) {
    std::fprintf(stderr, "portico: %s: %s; ignored\n", function,
                 h->tag == Tag::dead ? "double free" : "not a handle of this type");
    return;
  }
  h->tag = Tag::dead;
  delete h;
}

[[gnu::cold, gnu::noinline]] portico_status null_output(const char* function) {
  return fail(PORTICO_ERR_INVALID_ARGUMENT, std::string(function) + ": NULL output pointer");
}

template <class Out>
inline portico_status check_out(Out* out, const char* function) {
  if (out != nullptr) [[likely]]
    return PORTICO_OK;
  return null_output(function);
}

// ------------------------------------------------------------ strings

// No real buffer is this long: a length above it is a bug (a negative
// number cast to size_t, an uninitialised variable).
constexpr std::size_t kMaxLength = std::size_t{1} << 40;

[[gnu::cold, gnu::noinline]] portico_status bad_bytes(const char* s, std::size_t len,
                                                      const char* what) {
  if (s == nullptr)
    return fail(PORTICO_ERR_INVALID_ARGUMENT,
                std::string(what) + " is NULL with length " + std::to_string(len));
  return fail(PORTICO_ERR_INVALID_ARGUMENT,
              std::string(what) + ": length " + std::to_string(len) + " is not plausible");
}

inline portico_status check_bytes(const char* s, std::size_t len, const char* what,
                                  std::string_view& out) {
  if ((s != nullptr || len == 0) && len <= kMaxLength) [[likely]] {
    out = s == nullptr ? std::string_view() : std::string_view(s, len);
    return PORTICO_OK;
  }
  return bad_bytes(s, len, what);
}

// The offset of the first byte that does not continue valid UTF-8, or npos.
std::size_t invalid_utf8_at(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  std::size_t i = 0;
  while (i < n) {
    const unsigned c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t extra;
    unsigned min;
    if (c >= 0xc2 && c <= 0xdf) {
      extra = 1;
      min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
      extra = 2;
      min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
      extra = 3;
      min = 0x10000;
    } else {
      return i;
    }
    if (n - i <= extra) return i;
    unsigned cp = c & (0x3f >> extra);
    for (std::size_t k = 1; k <= extra; ++k) {
      if ((p[i + k] & 0xc0) != 0x80) return i;
      cp = (cp << 6) | (p[i + k] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += extra + 1;
  }
  return std::string_view::npos;
}

portico_status check_text(const char* s, std::size_t len, const char* what, std::string_view& out) {
  if (portico_status st = check_bytes(s, len, what, out)) return st;
  if (const std::size_t nul = out.find('\0'); nul != std::string_view::npos)
    return fail(PORTICO_ERR_INVALID_UTF8, std::string(what) + " holds a NUL byte at offset " +
                                              std::to_string(nul) + " (is the length right?)");
  if (const std::size_t bad = invalid_utf8_at(out); bad != std::string_view::npos)
    return fail(PORTICO_ERR_INVALID_UTF8,
                std::string(what) + " is not UTF-8 (byte " + std::to_string(bad) + ")");
  return PORTICO_OK;
}

void set_view(std::string_view v, const char** s, std::size_t* len) {
  *s = v.data() != nullptr ? v.data() : "";
  *len = v.size();
}

portico_status check_view_out(const char** s, std::size_t* len, const char* function) {
  if (s == nullptr || len == nullptr)
    return fail(PORTICO_ERR_INVALID_ARGUMENT, std::string(function) + ": NULL output pointer");
  return PORTICO_OK;
}

// A JSON document: text first, then its syntax, with the parser's message.
portico_status parse_json(std::string_view text, const char* what, picojson::value& out) {
  auto doc = portico::detail::parse_json_document(text);
  if (!doc) return fail(PORTICO_ERR_INVALID_JSON, std::string(what) + ": " + doc.error().message);
  out = std::move(*doc);
  return PORTICO_OK;
}

portico_status config_problems(const portico::detail::ConfigProblems& problems) {
  std::string text = problems.to_string();
  while (!text.empty() && text.back() == '\n')
    text.pop_back();
  return fail(PORTICO_ERR_INVALID_CONFIG, std::move(text));
}

TimePoint steady_at(std::int64_t now_ns) {
  if (now_ns == PORTICO_NOW) return std::chrono::steady_clock::now();
  return TimePoint(Duration(now_ns));
}

// An HTTP token (RFC 9110 5.6.2): what a header name must be.
bool is_token(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    const bool ok = (u >= '0' && u <= '9') || (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') ||
                    std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
    if (!ok || c == '\0') return false;
  }
  return true;
}

bool is_field_value(std::string_view s) {
  return s.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

}  // namespace

// ================================================================ handles

struct portico_router {
  HandleHead head_words;
  Tag tag = Tag::router;
  portico::Router router;
};

struct portico_match {
  HandleHead head_words;
  Tag tag = Tag::match;
  const portico_router* router = nullptr;
  portico::Match match;
  std::string path;  // the normalised path the captured values point into
  bool done = false;
};

struct portico_jwt_verifier {
  HandleHead head_words;
  Tag tag = Tag::jwt_verifier;
  std::shared_ptr<const portico::jwt::Verifier> verifier;
};

struct portico_jwt_cache {
  HandleHead head_words;
  Tag tag = Tag::jwt_cache;
  std::unique_ptr<portico::jwt::TokenCache> cache;
};

struct portico_jwt_result {
  HandleHead head_words;
  Tag tag = Tag::jwt_result;
  std::optional<portico::jwt::Verification> verification;
};

struct portico_limiter {
  HandleHead head_words;
  Tag tag = Tag::limiter;
  std::optional<portico::ConcurrentKeyedLimiter> limiter;
};

struct portico_breaker {
  HandleHead head_words;
  Tag tag = Tag::breaker;
  std::optional<portico::CircuitBreaker> breaker;
};

struct portico_balancer {
  HandleHead head_words;
  Tag tag = Tag::balancer;
  std::optional<portico::Balancer> balancer;
};

// ================================================================ basics

extern "C" {

uint32_t portico_version(void) {
  return PORTICO_VERSION;
}

const char* portico_version_string(void) {
  return PORTICO_VERSION_STRING;
}

const char* portico_status_name(portico_status status) {
  switch (status) {
    case PORTICO_OK:
      return "PORTICO_OK";
    case PORTICO_ERR_INVALID_ARGUMENT:
      return "PORTICO_ERR_INVALID_ARGUMENT";
    case PORTICO_ERR_INVALID_HANDLE:
      return "PORTICO_ERR_INVALID_HANDLE";
    case PORTICO_ERR_INVALID_UTF8:
      return "PORTICO_ERR_INVALID_UTF8";
    case PORTICO_ERR_INVALID_JSON:
      return "PORTICO_ERR_INVALID_JSON";
    case PORTICO_ERR_INVALID_CONFIG:
      return "PORTICO_ERR_INVALID_CONFIG";
    case PORTICO_ERR_MALFORMED:
      return "PORTICO_ERR_MALFORMED";
    case PORTICO_ERR_CONFLICT:
      return "PORTICO_ERR_CONFLICT";
    case PORTICO_ERR_CAPACITY:
      return "PORTICO_ERR_CAPACITY";
    case PORTICO_ERR_NOT_FOUND:
      return "PORTICO_ERR_NOT_FOUND";
    case PORTICO_ERR_IO:
      return "PORTICO_ERR_IO";
    case PORTICO_ERR_STATE:
      return "PORTICO_ERR_STATE";
    case PORTICO_ERR_NO_MEMORY:
      return "PORTICO_ERR_NO_MEMORY";
    case PORTICO_ERR_INTERNAL:
      return "PORTICO_ERR_INTERNAL";
    default:
      return "PORTICO_ERR_UNKNOWN";
  }
}

const char* portico_last_error(void) {
  return t_last_error.c_str();
}

void portico_string_free(char* s) {
  std::free(s);
}

int64_t portico_now_ns(void) {
  return std::chrono::duration_cast<Duration>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // extern "C"

namespace {

// A malloc'd NUL-terminated copy for a `char** out`.
portico_status copy_out(std::string_view text, char** out, std::size_t* out_len) {
  char* copy = static_cast<char*>(std::malloc(text.size() + 1));
  if (copy == nullptr) return fail(PORTICO_ERR_NO_MEMORY, "out of memory");
  std::memcpy(copy, text.data(), text.size());
  copy[text.size()] = '\0';
  *out = copy;
  if (out_len != nullptr) *out_len = text.size();
  return PORTICO_OK;
}

// Creates a handle for a `**out` parameter: NULL on every failure.
template <class Handle, class Build>
portico_status make_handle(Handle** out, const char* function, Build&& build) {
  if (out == nullptr)
    return fail(PORTICO_ERR_INVALID_ARGUMENT, std::string(function) + ": NULL output pointer");
  *out = nullptr;
  return guarded(function, [&]() -> portico_status {
    auto h = std::make_unique<Handle>();
    if (portico_status st = build(*h)) return st;
    *out = h.release();
    return PORTICO_OK;
  });
}

}  // namespace

// ================================================================ router

extern "C" {

portico_status portico_router_new(portico_router** out) {
  return make_handle(out, "portico_router_new",
                     [](portico_router&) -> portico_status { return PORTICO_OK; });
}

void portico_router_free(portico_router* router) {
  free_handle(router, Tag::router, "portico_router_free");
}

portico_status portico_router_add(portico_router* router, const char* name, size_t name_len,
                                  const char* methods, size_t methods_len, const char* host,
                                  size_t host_len, const char* path, size_t path_len,
                                  uint32_t* out_id) {
  constexpr const char* fn = "portico_router_add";
  return guarded(fn, [&]() -> portico_status {
    if (portico_status st = check_handle(router, Tag::router, fn)) return st;
    std::string_view n, m, h, p;
    if (portico_status st = check_text(name, name_len, "name", n)) return st;
    if (portico_status st = check_text(methods, methods_len, "methods", m)) return st;
    if (portico_status st = check_text(host, host_len, "host", h)) return st;
    if (portico_status st = check_text(path, path_len, "path", p)) return st;
    portico::RouteSpec spec;
    spec.name = n;
    spec.host = h;
    spec.path = p;
    if (!m.empty()) {
      spec.methods = portico::MethodSet();
      while (!m.empty()) {
        const std::size_t comma = m.find(',');
        std::string_view one = m.substr(0, comma);
        while (!one.empty() && one.front() == ' ')
          one.remove_prefix(1);
        while (!one.empty() && one.back() == ' ')
          one.remove_suffix(1);
        auto method = portico::parse_method(one);
        if (!method)
          return fail(PORTICO_ERR_INVALID_ARGUMENT,
                      "methods: '" + std::string(one) + "' is not a method (GET, POST, ...)");
        spec.methods.add(*method);
        m = comma == std::string_view::npos ? std::string_view() : m.substr(comma + 1);
      }
    }
    auto id = router->router.add(std::move(spec));
    if (!id) return fail(id.error());
    if (out_id != nullptr) *out_id = *id;
    return PORTICO_OK;
  });
}

portico_status portico_router_size(const portico_router* router, size_t* out) {
  if (portico_status st = check_handle(router, Tag::router, "portico_router_size")) return st;
  if (portico_status st = check_out(out, "portico_router_size")) return st;
  *out = router->router.size();
  return PORTICO_OK;
}

portico_status portico_match_new(portico_match** out) {
  return make_handle(out, "portico_match_new", [](portico_match& m) -> portico_status {
    m.path.reserve(256);
    return PORTICO_OK;
  });
}

void portico_match_free(portico_match* match) {
  free_handle(match, Tag::match, "portico_match_free");
}

portico_status portico_router_match(const portico_router* router, portico_match* match,
                                    const char* method, size_t method_len, const char* host,
                                    size_t host_len, const char* path, size_t path_len) {
  constexpr const char* fn = "portico_router_match";
  return guarded(fn, [&]() -> portico_status {
    if (portico_status st = check_handle(router, Tag::router, fn)) return st;
    if (portico_status st = check_handle(match, Tag::match, fn)) return st;
    std::string_view m, h, p;
    if (portico_status st = check_bytes(method, method_len, "method", m)) return st;
    if (portico_status st = check_bytes(host, host_len, "host", h)) return st;
    if (portico_status st = check_bytes(path, path_len, "path", p)) return st;
    match->done = false;
    // Normalising never lengthens a path: the match's buffer is resized
    // only when a longer path than ever before comes (no allocation in the
    // steady state).
    if (match->path.size() < p.size()) match->path.resize(p.size());
    auto n = portico::normalize_path(p, std::span<char>(match->path.data(), match->path.size()));
    if (!n) {
      // Paths are text, as in portico_router_add: bytes that are not UTF-8
      // get the same status there and here. A path normalize_path accepts
      // is printable ASCII, so the text check (two more passes over the
      // path) runs only here, to name the error.
      if (portico_status st = check_text(path, path_len, "path", p)) return st;
      return fail(n.error());
    }
    portico::MatchInput in;
    in.method = m;
    in.host = h;
    in.path = std::string_view(match->path.data(), *n);
    match->match = router->router.match(in);
    match->router = router;
    match->done = true;
    return PORTICO_OK;
  });
}

portico_status portico_match_result(const portico_match* match, int32_t* out) {
  if (portico_status st = check_handle(match, Tag::match, "portico_match_result")) return st;
  if (portico_status st = check_out(out, "portico_match_result")) return st;
  if (!match->done) return fail(PORTICO_ERR_STATE, "portico_match_result: no lookup yet");
  switch (match->match.status) {
    case portico::MatchStatus::matched:
      *out = PORTICO_MATCH_FOUND;
      break;
    case portico::MatchStatus::not_found:
      *out = PORTICO_MATCH_NOT_FOUND;
      break;
    case portico::MatchStatus::method_not_allowed:
      *out = PORTICO_MATCH_METHOD_NOT_ALLOWED;
      break;
  }
  return PORTICO_OK;
}

portico_status portico_match_route(const portico_match* match, uint32_t* out_id) {
  if (portico_status st = check_handle(match, Tag::match, "portico_match_route")) return st;
  if (portico_status st = check_out(out_id, "portico_match_route")) return st;
  if (!match->done || match->match.status != portico::MatchStatus::matched)
    return fail(PORTICO_ERR_NOT_FOUND, "portico_match_route: the lookup found no route");
  *out_id = match->match.route->id();
  return PORTICO_OK;
}

portico_status portico_match_param_count(const portico_match* match, size_t* out) {
  if (portico_status st = check_handle(match, Tag::match, "portico_match_param_count")) return st;
  if (portico_status st = check_out(out, "portico_match_param_count")) return st;
  *out = match->done ? match->match.params().size() : 0;
  return PORTICO_OK;
}

portico_status portico_match_param(const portico_match* match, size_t index, const char** name,
                                   size_t* name_len, const char** value, size_t* value_len) {
  constexpr const char* fn = "portico_match_param";
  if (portico_status st = check_handle(match, Tag::match, fn)) return st;
  if (portico_status st = check_view_out(name, name_len, fn)) return st;
  if (portico_status st = check_view_out(value, value_len, fn)) return st;
  const auto params = match->done ? match->match.params() : std::span<const portico::Param>();
  if (index >= params.size())
    return fail(PORTICO_ERR_NOT_FOUND, "portico_match_param: index " + std::to_string(index) +
                                           " of " + std::to_string(params.size()));
  set_view(params[index].name, name, name_len);
  set_view(params[index].value, value, value_len);
  return PORTICO_OK;
}

portico_status portico_match_param_by_name(const portico_match* match, const char* name,
                                           size_t name_len, const char** value, size_t* value_len) {
  constexpr const char* fn = "portico_match_param_by_name";
  if (portico_status st = check_handle(match, Tag::match, fn)) return st;
  if (portico_status st = check_view_out(value, value_len, fn)) return st;
  std::string_view n;
  if (portico_status st = check_bytes(name, name_len, "name", n)) return st;
  auto v = match->done ? match->match.param(n) : std::nullopt;
  if (!v) return fail(PORTICO_ERR_NOT_FOUND, "no parameter '" + std::string(n) + "'");
  set_view(*v, value, value_len);
  return PORTICO_OK;
}

}  // extern "C"

// ================================================================ JWT

namespace {

portico_status read_verifier_options(std::string_view text, portico::jwt::VerifierOptions& out) {
  if (text.empty()) return PORTICO_OK;
  picojson::value doc;
  if (portico_status st = parse_json(text, "options", doc)) return st;
  portico::detail::ConfigProblems problems;
  portico::detail::JsonObject o(doc, "options", problems);
  if (o.valid()) {
    if (o.has("algorithms")) {
      out.algorithms = portico::jwt::AlgorithmSet();
      for (const std::string& name : o.strings("algorithms")) {
        auto alg = portico::jwt::parse_algorithm(name);
        if (!alg)
          o.problem("algorithms", "'" + name + "' is not an algorithm (HS256 ... ES512)");
        else
          out.algorithms.insert(*alg);
      }
    }
    out.issuers = o.strings("issuers");
    out.audiences = o.strings("audiences");
    out.required_claims = o.strings("required_claims");
    out.leeway = std::chrono::seconds(o.integer("leeway", 30, 0, 86400));
    out.max_token_bytes = static_cast<std::size_t>(o.integer("max_token_bytes", 8192, 16, 1 << 20));
    o.finish();
  }
  if (!problems.empty()) return config_problems(problems);
  return PORTICO_OK;
}

portico_status make_verifier(portico_jwt_verifier& h, portico::jwt::KeySet keys,
                             std::string_view options_text) {
  if (keys.empty()) return fail(PORTICO_ERR_INVALID_ARGUMENT, "no usable key");
  portico::jwt::VerifierOptions options;
  if (portico_status st = read_verifier_options(options_text, options)) return st;
  auto holder = std::make_shared<portico::jwt::KeySetHolder>(std::move(keys));
  auto v = portico::jwt::Verifier::create(std::move(holder), std::move(options));
  if (!v) return fail(v.error());
  h.verifier = std::make_shared<const portico::jwt::Verifier>(std::move(*v));
  return PORTICO_OK;
}

portico::jwt::WallTime wall_at(std::int64_t unix_seconds) {
  if (unix_seconds == 0) return std::chrono::system_clock::now();
  return portico::jwt::WallTime(std::chrono::seconds(unix_seconds));
}

}  // namespace

extern "C" {

const char* portico_jwt_reason_name(int32_t reason) {
  if (reason == PORTICO_JWT_VALID) return "valid";
  if (reason < 1 || reason > static_cast<int32_t>(portico::jwt::kReasonCount)) return "unknown";
  // reason_name returns views of string literals.
  return portico::jwt::reason_name(static_cast<portico::jwt::Reason>(reason - 1)).data();
}

portico_status portico_jwt_verifier_new_jwks(portico_jwt_verifier** out, const char* jwks,
                                             size_t jwks_len, const char* options_json,
                                             size_t options_len) {
  return make_handle(
      out, "portico_jwt_verifier_new_jwks", [&](portico_jwt_verifier& h) -> portico_status {
        std::string_view doc, options;
        if (portico_status st = check_text(jwks, jwks_len, "jwks", doc)) return st;
        if (portico_status st = check_text(options_json, options_len, "options", options))
          return st;
        picojson::value parsed;
        if (portico_status st = parse_json(doc, "jwks", parsed)) return st;
        auto keys = portico::jwt::KeySet::from_jwks(doc);
        if (!keys) return fail(keys.error());
        if (keys->empty()) {
          std::string why = "jwks: no usable key";
          for (const auto& skipped : keys->skipped())
            why += "; keys[" + std::to_string(skipped.index) + "]: " + skipped.reason;
          return fail(PORTICO_ERR_INVALID_ARGUMENT, why);
        }
        return make_verifier(h, std::move(*keys), options);
      });
}

portico_status portico_jwt_verifier_new_key(portico_jwt_verifier** out, int32_t key_kind,
                                            const char* key, size_t key_len, const char* kid,
                                            size_t kid_len, const char* options_json,
                                            size_t options_len) {
  return make_handle(
      out, "portico_jwt_verifier_new_key", [&](portico_jwt_verifier& h) -> portico_status {
        std::string_view k, id, options;
        if (portico_status st = check_bytes(key, key_len, "key", k)) return st;
        if (portico_status st = check_text(kid, kid_len, "kid", id)) return st;
        if (portico_status st = check_text(options_json, options_len, "options", options))
          return st;
        portico::jwt::KeySet keys;
        portico::jwt::KeyOptions ko;
        ko.kid = id;
        portico::Status added;
        switch (key_kind) {
          case PORTICO_JWT_KEY_PEM:
            added = keys.add_pem(k, ko);
            break;
          case PORTICO_JWT_KEY_HMAC:
            added = keys.add_hmac_secret(k, ko);
            break;
          case PORTICO_JWT_KEY_JWK: {
            if (portico_status st = check_text(key, key_len, "key", k)) return st;
            picojson::value parsed;
            if (portico_status st = parse_json(k, "key", parsed)) return st;
            added = keys.add_jwk(k);
            break;
          }
          default:
            return fail(PORTICO_ERR_INVALID_ARGUMENT,
                        "key_kind " + std::to_string(key_kind) +
                            " is not PORTICO_JWT_KEY_PEM, _HMAC or _JWK");
        }
        if (!added) return fail(added.error());
        return make_verifier(h, std::move(keys), options);
      });
}

void portico_jwt_verifier_free(portico_jwt_verifier* verifier) {
  free_handle(verifier, Tag::jwt_verifier, "portico_jwt_verifier_free");
}

portico_status portico_jwt_cache_new(portico_jwt_cache** out, const portico_jwt_verifier* verifier,
                                     size_t capacity) {
  return make_handle(out, "portico_jwt_cache_new", [&](portico_jwt_cache& h) -> portico_status {
    if (portico_status st = check_handle(verifier, Tag::jwt_verifier, "portico_jwt_cache_new"))
      return st;
    if (capacity > (std::size_t{1} << 24))
      return fail(PORTICO_ERR_INVALID_ARGUMENT,
                  "capacity " + std::to_string(capacity) + " is above 16777216");
    portico::jwt::TokenCacheOptions o;
    if (capacity != 0) o.capacity = capacity;
    h.cache = std::make_unique<portico::jwt::TokenCache>(verifier->verifier, o);
    return PORTICO_OK;
  });
}

void portico_jwt_cache_free(portico_jwt_cache* cache) {
  free_handle(cache, Tag::jwt_cache, "portico_jwt_cache_free");
}

portico_status portico_jwt_result_new(portico_jwt_result** out) {
  return make_handle(out, "portico_jwt_result_new",
                     [](portico_jwt_result&) -> portico_status { return PORTICO_OK; });
}

void portico_jwt_result_free(portico_jwt_result* result) {
  free_handle(result, Tag::jwt_result, "portico_jwt_result_free");
}

portico_status portico_jwt_verify(const portico_jwt_verifier* verifier, const char* token,
                                  size_t token_len, int64_t now_unix_seconds,
                                  portico_jwt_result* result) {
  constexpr const char* fn = "portico_jwt_verify";
  return guarded(fn, [&]() -> portico_status {
    if (portico_status st = check_handle(verifier, Tag::jwt_verifier, fn)) return st;
    if (portico_status st = check_handle(result, Tag::jwt_result, fn)) return st;
    std::string_view t;
    if (portico_status st = check_bytes(token, token_len, "token", t)) return st;
    result->verification = verifier->verifier->verify(t, wall_at(now_unix_seconds));
    return PORTICO_OK;
  });
}

portico_status portico_jwt_cache_verify(portico_jwt_cache* cache, const char* token,
                                        size_t token_len, int64_t now_unix_seconds,
                                        portico_jwt_result* result) {
  constexpr const char* fn = "portico_jwt_cache_verify";
  return guarded(fn, [&]() -> portico_status {
    if (portico_status st = check_handle(cache, Tag::jwt_cache, fn)) return st;
    if (portico_status st = check_handle(result, Tag::jwt_result, fn)) return st;
    std::string_view t;
    if (portico_status st = check_bytes(token, token_len, "token", t)) return st;
    result->verification = cache->cache->verify(t, wall_at(now_unix_seconds));
    return PORTICO_OK;
  });
}

}  // extern "C"

namespace {

portico_status verified(const portico_jwt_result* result, const char* fn) {
  if (portico_status st = check_handle(result, Tag::jwt_result, fn)) return st;
  if (!result->verification) return fail(PORTICO_ERR_STATE, std::string(fn) + ": no verify yet");
  return PORTICO_OK;
}

}  // namespace

extern "C" {

portico_status portico_jwt_result_reason(const portico_jwt_result* result, int32_t* out_reason) {
  if (portico_status st = verified(result, "portico_jwt_result_reason")) return st;
  if (portico_status st = check_out(out_reason, "portico_jwt_result_reason")) return st;
  const auto& v = *result->verification;
  *out_reason = v.ok() ? PORTICO_JWT_VALID : static_cast<int32_t>(v.reason()) + 1;
  return PORTICO_OK;
}

portico_status portico_jwt_result_message(const portico_jwt_result* result, const char** message,
                                          size_t* len) {
  constexpr const char* fn = "portico_jwt_result_message";
  if (portico_status st = verified(result, fn)) return st;
  if (portico_status st = check_view_out(message, len, fn)) return st;
  const auto& v = *result->verification;
  set_view(v.ok() ? std::string_view() : std::string_view(v.message()), message, len);
  return PORTICO_OK;
}

portico_status portico_jwt_result_claims(const portico_jwt_result* result, const char** json,
                                         size_t* len) {
  constexpr const char* fn = "portico_jwt_result_claims";
  if (portico_status st = verified(result, fn)) return st;
  if (portico_status st = check_view_out(json, len, fn)) return st;
  if (!result->verification->ok()) return fail(PORTICO_ERR_STATE, "the token was not valid");
  set_view(result->verification->claims().json(), json, len);
  return PORTICO_OK;
}

portico_status portico_jwt_result_claim_string(const portico_jwt_result* result, const char* path,
                                               size_t path_len, const char** value,
                                               size_t* value_len) {
  constexpr const char* fn = "portico_jwt_result_claim_string";
  if (portico_status st = verified(result, fn)) return st;
  if (portico_status st = check_view_out(value, value_len, fn)) return st;
  std::string_view p;
  if (portico_status st = check_text(path, path_len, "path", p)) return st;
  if (!result->verification->ok()) return fail(PORTICO_ERR_STATE, "the token was not valid");
  auto s = result->verification->claims().string(p);
  if (!s) return fail(PORTICO_ERR_NOT_FOUND, "no string claim '" + std::string(p) + "'");
  set_view(*s, value, value_len);
  return PORTICO_OK;
}

portico_status portico_jwt_result_from_cache(const portico_jwt_result* result, int32_t* out) {
  if (portico_status st = verified(result, "portico_jwt_result_from_cache")) return st;
  if (portico_status st = check_out(out, "portico_jwt_result_from_cache")) return st;
  *out = result->verification->from_cache() ? 1 : 0;
  return PORTICO_OK;
}

// ================================================================ limiter

portico_status portico_limiter_new(portico_limiter** out, int64_t rate, int64_t period_ns,
                                   int64_t burst, int64_t max_keys) {
  return make_handle(out, "portico_limiter_new", [&](portico_limiter& h) -> portico_status {
    portico::KeyedLimiterConfig c;
    c.rate.rate = rate;
    c.rate.period = Duration(period_ns);
    c.rate.burst = burst;
    c.max_keys = max_keys;
    auto l = portico::ConcurrentKeyedLimiter::create(c);
    if (!l) return fail(l.error());
    h.limiter.emplace(std::move(*l));
    return PORTICO_OK;
  });
}

void portico_limiter_free(portico_limiter* limiter) {
  free_handle(limiter, Tag::limiter, "portico_limiter_free");
}

portico_status portico_limiter_check(portico_limiter* limiter, const char* key, size_t key_len,
                                     uint32_t cost, int64_t now_ns, portico_limit_decision* out) {
  constexpr const char* fn = "portico_limiter_check";
  if (portico_status st = check_handle(limiter, Tag::limiter, fn)) return st;
  if (portico_status st = check_out(out, fn)) return st;
  std::string_view k;
  if (portico_status st = check_bytes(key, key_len, "key", k)) return st;
  const portico::Decision d = limiter->limiter->check(k, steady_at(now_ns), cost);
  out->allowed = d.allowed ? 1 : 0;
  out->cost_out_of_range = d.cost_out_of_range ? 1 : 0;
  out->limit = d.limit;
  out->remaining = d.remaining;
  out->retry_after_ns = d.retry_after.count();
  out->reset_after_ns = d.reset_after.count();
  return PORTICO_OK;
}

// ================================================================ breaker

portico_status portico_breaker_new(portico_breaker** out, const char* config_json,
                                   size_t config_len) {
  return make_handle(out, "portico_breaker_new", [&](portico_breaker& h) -> portico_status {
    std::string_view text;
    if (portico_status st = check_text(config_json, config_len, "config", text)) return st;
    portico::BreakerConfig c;
    if (!text.empty()) {
      picojson::value doc;
      if (portico_status st = parse_json(text, "config", doc)) return st;
      portico::detail::ConfigProblems problems;
      portico::detail::JsonObject o(doc, "config", problems);
      if (o.valid()) c = portico::detail::read_breaker_config(o);
      if (!problems.empty()) return config_problems(problems);
    }
    auto b = portico::CircuitBreaker::create(c);
    if (!b) return fail(b.error());
    h.breaker.emplace(std::move(*b));
    return PORTICO_OK;
  });
}

void portico_breaker_free(portico_breaker* breaker) {
  free_handle(breaker, Tag::breaker, "portico_breaker_free");
}

}  // extern "C"

namespace {

static_assert(std::is_trivially_copyable_v<portico::BreakerPermit>);
static_assert(sizeof(portico::BreakerPermit) <= sizeof(portico_breaker_permit::opaque));

portico_status permit_of(const portico_breaker_permit* in, portico::BreakerPermit& out,
                         const char* fn) {
  if (in == nullptr) return fail(PORTICO_ERR_INVALID_ARGUMENT, std::string(fn) + ": NULL permit");
  std::memcpy(static_cast<void*>(&out), in->opaque, sizeof out);
  if (static_cast<int32_t>(out.admission()) != in->admission)
    return fail(PORTICO_ERR_INVALID_ARGUMENT,
                std::string(fn) + ": not a permit from portico_breaker_acquire");
  return PORTICO_OK;
}

}  // namespace

extern "C" {

portico_status portico_breaker_acquire(portico_breaker* breaker, int64_t now_ns,
                                       portico_breaker_permit* out) {
  constexpr const char* fn = "portico_breaker_acquire";
  if (portico_status st = check_handle(breaker, Tag::breaker, fn)) return st;
  if (portico_status st = check_out(out, fn)) return st;
  const portico::BreakerPermit p = breaker->breaker->try_acquire(steady_at(now_ns));
  std::memset(out, 0, sizeof *out);
  std::memcpy(out->opaque, static_cast<const void*>(&p), sizeof p);
  out->admission = static_cast<int32_t>(p.admission());
  return PORTICO_OK;
}

portico_status portico_breaker_success(portico_breaker* breaker,
                                       const portico_breaker_permit* permit, int64_t now_ns) {
  constexpr const char* fn = "portico_breaker_success";
  if (portico_status st = check_handle(breaker, Tag::breaker, fn)) return st;
  portico::BreakerPermit p;
  if (portico_status st = permit_of(permit, p, fn)) return st;
  breaker->breaker->on_success(p, steady_at(now_ns));
  return PORTICO_OK;
}

portico_status portico_breaker_failure(portico_breaker* breaker,
                                       const portico_breaker_permit* permit, int64_t now_ns) {
  constexpr const char* fn = "portico_breaker_failure";
  if (portico_status st = check_handle(breaker, Tag::breaker, fn)) return st;
  portico::BreakerPermit p;
  if (portico_status st = permit_of(permit, p, fn)) return st;
  breaker->breaker->on_failure(p, steady_at(now_ns));
  return PORTICO_OK;
}

portico_status portico_breaker_cancel(portico_breaker* breaker,
                                      const portico_breaker_permit* permit) {
  constexpr const char* fn = "portico_breaker_cancel";
  if (portico_status st = check_handle(breaker, Tag::breaker, fn)) return st;
  portico::BreakerPermit p;
  if (portico_status st = permit_of(permit, p, fn)) return st;
  breaker->breaker->on_cancel(p);
  return PORTICO_OK;
}

portico_status portico_breaker_state(portico_breaker* breaker, int64_t now_ns, int32_t* out_state) {
  constexpr const char* fn = "portico_breaker_state";
  if (portico_status st = check_handle(breaker, Tag::breaker, fn)) return st;
  if (portico_status st = check_out(out_state, fn)) return st;
  *out_state = static_cast<int32_t>(breaker->breaker->state(steady_at(now_ns)));
  return PORTICO_OK;
}

portico_status portico_breaker_retry_after(const portico_breaker* breaker, int64_t now_ns,
                                           int64_t* out_ns) {
  constexpr const char* fn = "portico_breaker_retry_after";
  if (portico_status st = check_handle(breaker, Tag::breaker, fn)) return st;
  if (portico_status st = check_out(out_ns, fn)) return st;
  *out_ns = breaker->breaker->retry_after(steady_at(now_ns)).count();
  return PORTICO_OK;
}

const char* portico_breaker_state_name(int32_t state) {
  if (state < 0 || state > PORTICO_BREAKER_HALF_OPEN) return "unknown";
  return portico::breaker_state_name(static_cast<portico::BreakerState>(state));
}

// ================================================================ balancer

portico_status portico_balancer_new(portico_balancer** out, const char* config_json,
                                    size_t config_len) {
  return make_handle(out, "portico_balancer_new", [&](portico_balancer& h) -> portico_status {
    std::string_view text;
    if (portico_status st = check_text(config_json, config_len, "config", text)) return st;
    picojson::value doc;
    if (portico_status st = parse_json(text, "config", doc)) return st;
    portico::detail::ConfigProblems problems;
    portico::detail::JsonObject o(doc, "config", problems);
    portico::BalancerConfig c;
    if (o.valid()) {
      const std::string policy = o.choice("policy",
                                          {"round_robin", "weighted_round_robin", "least_request",
                                           "power_of_two_choices", "peak_ewma", "maglev"},
                                          "round_robin");
      for (auto p :
           {portico::BalancerPolicy::round_robin, portico::BalancerPolicy::weighted_round_robin,
            portico::BalancerPolicy::least_request, portico::BalancerPolicy::power_of_two_choices,
            portico::BalancerPolicy::peak_ewma, portico::BalancerPolicy::maglev})
        if (policy == portico::balancer_policy_name(p)) c.policy = p;
      for (portico::detail::JsonObject& e : o.objects("endpoints", true)) {
        portico::EndpointSpec spec;
        spec.id = e.string("id", {}, true);
        spec.weight =
            static_cast<std::uint32_t>(e.integer("weight", 1, 1, portico::kMaxEndpointWeight));
        e.finish();
        c.endpoints.push_back(std::move(spec));
      }
      c.seed = static_cast<std::uint64_t>(o.integer("seed", 0, 0, INT64_MAX));
      c.panic_threshold = o.number("panic_threshold", c.panic_threshold, 0, 1);
      o.finish();
    }
    if (!problems.empty()) return config_problems(problems);
    auto b = portico::Balancer::create(c);
    if (!b) return fail(b.error());
    h.balancer.emplace(std::move(*b));
    return PORTICO_OK;
  });
}

void portico_balancer_free(portico_balancer* balancer) {
  free_handle(balancer, Tag::balancer, "portico_balancer_free");
}

}  // extern "C"

namespace {

portico::EndpointRef ref_of(portico_endpoint e) {
  return portico::EndpointRef{e.slot, e.generation};
}

portico_status stale(const char* fn) {
  return fail(PORTICO_ERR_NOT_FOUND, std::string(fn) + ": the endpoint was removed");
}

}  // namespace

extern "C" {

portico_status portico_balancer_pick(portico_balancer* balancer, uint64_t hash, int64_t now_ns,
                                     portico_endpoint* out) {
  constexpr const char* fn = "portico_balancer_pick";
  if (portico_status st = check_handle(balancer, Tag::balancer, fn)) return st;
  if (portico_status st = check_out(out, fn)) return st;
  portico::PickContext ctx;
  ctx.hash = hash;
  ctx.now = steady_at(now_ns);
  const portico::Pick p = balancer->balancer->pick(ctx);
  if (!p) return fail(PORTICO_ERR_NOT_FOUND, "no endpoint is available");
  out->slot = p.endpoint.slot;
  out->generation = p.endpoint.generation;
  return PORTICO_OK;
}

portico_status portico_balancer_endpoint_id(const portico_balancer* balancer,
                                            portico_endpoint endpoint, const char** id,
                                            size_t* id_len) {
  constexpr const char* fn = "portico_balancer_endpoint_id";
  if (portico_status st = check_handle(balancer, Tag::balancer, fn)) return st;
  if (portico_status st = check_view_out(id, id_len, fn)) return st;
  auto stats = balancer->balancer->stats(ref_of(endpoint));
  if (!stats) return stale(fn);
  set_view(stats->id, id, id_len);
  return PORTICO_OK;
}

portico_status portico_balancer_find(const portico_balancer* balancer, const char* id,
                                     size_t id_len, portico_endpoint* out) {
  constexpr const char* fn = "portico_balancer_find";
  if (portico_status st = check_handle(balancer, Tag::balancer, fn)) return st;
  if (portico_status st = check_out(out, fn)) return st;
  std::string_view i;
  if (portico_status st = check_bytes(id, id_len, "id", i)) return st;
  auto ref = balancer->balancer->find(i);
  if (!ref) return fail(PORTICO_ERR_NOT_FOUND, "no endpoint '" + std::string(i) + "'");
  out->slot = ref->slot;
  out->generation = ref->generation;
  return PORTICO_OK;
}

portico_status portico_balancer_start(portico_balancer* balancer, portico_endpoint endpoint) {
  constexpr const char* fn = "portico_balancer_start";
  if (portico_status st = check_handle(balancer, Tag::balancer, fn)) return st;
  return balancer->balancer->on_request_start(ref_of(endpoint)) ? PORTICO_OK : stale(fn);
}

portico_status portico_balancer_end(portico_balancer* balancer, portico_endpoint endpoint,
                                    int64_t latency_ns, int32_t outcome, int64_t now_ns) {
  constexpr const char* fn = "portico_balancer_end";
  if (portico_status st = check_handle(balancer, Tag::balancer, fn)) return st;
  if (outcome < PORTICO_OUTCOME_SUCCESS || outcome > PORTICO_OUTCOME_CANCELLED)
    return fail(PORTICO_ERR_INVALID_ARGUMENT,
                "outcome " + std::to_string(outcome) + " is not a PORTICO_OUTCOME_*");
  if (latency_ns < 0)
    return fail(PORTICO_ERR_INVALID_ARGUMENT, "latency_ns " + std::to_string(latency_ns) + " < 0");
  const bool known = balancer->balancer->on_request_end(
      ref_of(endpoint), Duration(latency_ns), static_cast<portico::RequestOutcome>(outcome),
      steady_at(now_ns));
  return known ? PORTICO_OK : stale(fn);
}

portico_status portico_balancer_set_healthy(portico_balancer* balancer, portico_endpoint endpoint,
                                            int32_t healthy) {
  constexpr const char* fn = "portico_balancer_set_healthy";
  if (portico_status st = check_handle(balancer, Tag::balancer, fn)) return st;
  return balancer->balancer->set_healthy(ref_of(endpoint), healthy != 0) ? PORTICO_OK : stale(fn);
}

portico_status portico_balancer_add(portico_balancer* balancer, const char* id, size_t id_len,
                                    uint32_t weight, portico_endpoint* out) {
  constexpr const char* fn = "portico_balancer_add";
  return guarded(fn, [&]() -> portico_status {
    if (portico_status st = check_handle(balancer, Tag::balancer, fn)) return st;
    std::string_view i;
    if (portico_status st = check_text(id, id_len, "id", i)) return st;
    auto ref = balancer->balancer->add_endpoint(portico::EndpointSpec{std::string(i), weight});
    if (!ref) return fail(ref.error());
    if (out != nullptr) {
      out->slot = ref->slot;
      out->generation = ref->generation;
    }
    return PORTICO_OK;
  });
}

portico_status portico_balancer_remove(portico_balancer* balancer, const char* id, size_t id_len) {
  constexpr const char* fn = "portico_balancer_remove";
  return guarded(fn, [&]() -> portico_status {
    if (portico_status st = check_handle(balancer, Tag::balancer, fn)) return st;
    std::string_view i;
    if (portico_status st = check_bytes(id, id_len, "id", i)) return st;
    auto removed = balancer->balancer->remove_endpoint(i);
    if (!removed) return fail(removed.error());
    return PORTICO_OK;
  });
}

uint64_t portico_hash_key(const char* key, size_t key_len) {
  if (key == nullptr || key_len > kMaxLength) return portico::hash_affinity_key({});
  return portico::hash_affinity_key(std::string_view(key, key_len));
}

}  // extern "C"

// ================================================================ requests

namespace {

enum class Phase : std::uint8_t { request, response, handler };

// Where a misbehaving callback is reported (shared by the options and every
// filter and handler built from them).
struct ErrorSink {
  portico_error_fn fn = nullptr;
  void* user = nullptr;

  void report(const std::string& message) const noexcept {
    if (fn != nullptr) {
      fn(message.c_str(), message.size(), user);
    } else {
      std::fprintf(stderr, "portico: %s\n", message.c_str());
    }
  }
};

}  // namespace

// The request a callback sees: one per thread, live only during a callback
// (its tag says so), so a pointer kept past the callback is detected.
struct portico_request {
  HandleHead head_words;
  Tag tag = Tag::dead;
  Phase phase = Phase::request;
  portico::proxy::RequestContext* ctx = nullptr;     // filters
  std::string_view plugin_config;                    // filters
  const portico::http::RequestHead* head = nullptr;  // handlers
  std::string_view body;                             // handlers
  portico::proxy::Reply* reply = nullptr;            // handlers
  bool responded = false;
};

namespace {

thread_local portico_request t_request;
// Set while a callback runs on this thread: gateway calls that would wait
// for this very thread are refused.
thread_local bool t_in_callback = false;

// Makes the thread's request live for one callback, and dead again after.
class LiveRequest {
 public:
  LiveRequest() noexcept : saved_(t_request), saved_in_(t_in_callback) {
    t_request = portico_request{};
    t_request.tag = Tag::request_live;
    t_in_callback = true;
  }
  ~LiveRequest() {
    t_request = saved_;
    t_in_callback = saved_in_;
  }
  portico_request& request() noexcept { return t_request; }

 private:
  portico_request saved_;
  bool saved_in_;
};

portico_status check_request(const portico_request* r, const char* fn) {
  if (r == nullptr) return fail(PORTICO_ERR_INVALID_HANDLE, std::string(fn) + ": NULL request");
  if (r->tag != Tag::request_live)
    return fail(PORTICO_ERR_INVALID_HANDLE,
                std::string(fn) + ": the request is used after its callback returned");
  return PORTICO_OK;
}

portico_status need_filter(const portico_request* r, const char* fn) {
  if (r->ctx == nullptr)
    return fail(PORTICO_ERR_STATE, std::string(fn) + ": not available in a handler");
  return PORTICO_OK;
}

portico_status need_phase(const portico_request* r, Phase phase, const char* fn) {
  if (r->phase != phase)
    return fail(PORTICO_ERR_STATE, std::string(fn) + ": only in the " +
                                       (phase == Phase::request ? "request" : "response") +
                                       " phase of a filter");
  return PORTICO_OK;
}

// Splits a handler's path-and-query.
std::pair<std::string_view, std::string_view> split_target(std::string_view target) {
  const std::size_t q = target.find('?');
  if (q == std::string_view::npos) return {target, {}};
  return {target.substr(0, q), target.substr(q + 1)};
}

// A C filter: one per plugin entry that names it.
class CFilter final : public portico::proxy::Filter {
 public:
  CFilter(std::string name, portico_filter_fn on_request, portico_filter_fn on_response, void* user,
          std::string config, std::shared_ptr<const ErrorSink> errors)
      : name_(std::move(name)),
        on_request_(on_request),
        on_response_(on_response),
        user_(user),
        config_(std::move(config)),
        errors_(std::move(errors)) {}

  std::string_view name() const noexcept override { return name_; }

  portico::proxy::FilterStatus on_request_headers(portico::proxy::RequestContext& ctx) override {
    if (on_request_ == nullptr) return portico::proxy::FilterStatus::next;
    LiveRequest live;
    portico_request& r = live.request();
    r.phase = Phase::request;
    r.ctx = &ctx;
    r.plugin_config = config_;
    const int32_t ret = call(on_request_, r);
    if (ret == PORTICO_FILTER_CONTINUE && !r.responded) return portico::proxy::FilterStatus::next;
    if (ret == PORTICO_FILTER_RESPOND && r.responded) return portico::proxy::FilterStatus::respond;
    std::string why =
        ret == PORTICO_FILTER_CONTINUE
            ? "called portico_request_respond but returned PORTICO_FILTER_CONTINUE"
        : ret == PORTICO_FILTER_RESPOND
            ? "returned PORTICO_FILTER_RESPOND without calling portico_request_respond"
            : "returned " + std::to_string(ret) +
                  ", which is neither PORTICO_FILTER_CONTINUE nor PORTICO_FILTER_RESPOND";
    errors_->report("filter '" + name_ + "' (request phase) " + why + "; answered 500");
    ctx.respond(500, "internal error in filter '" + name_ + "'\n");
    return portico::proxy::FilterStatus::respond;
  }

  portico::proxy::FilterStatus on_response_headers(portico::proxy::RequestContext& ctx) override {
    if (on_response_ == nullptr) return portico::proxy::FilterStatus::next;
    LiveRequest live;
    portico_request& r = live.request();
    r.phase = Phase::response;
    r.ctx = &ctx;
    r.plugin_config = config_;
    const int32_t ret = call(on_response_, r);
    if (ret != PORTICO_FILTER_CONTINUE) {
      errors_->report("filter '" + name_ + "' (response phase) returned " + std::to_string(ret) +
                      " instead of PORTICO_FILTER_CONTINUE; status set to 500");
      ctx.set_response_status(500);
    }
    return portico::proxy::FilterStatus::next;
  }

 private:
  // A C callback cannot throw, but a C++ one behind the ABI could.
  int32_t call(portico_filter_fn fn, portico_request& r) noexcept {
    try {
      return fn(&r, user_);
    } catch (...) {
      return INT32_MIN;
    }
  }

  std::string name_;
  portico_filter_fn on_request_;
  portico_filter_fn on_response_;
  void* user_;
  std::string config_;
  std::shared_ptr<const ErrorSink> errors_;
};

}  // namespace

extern "C" {

portico_status portico_request_method(const portico_request* request, const char** value,
                                      size_t* len) {
  constexpr const char* fn = "portico_request_method";
  if (portico_status st = check_request(request, fn)) return st;
  if (portico_status st = check_view_out(value, len, fn)) return st;
  set_view(request->ctx ? request->ctx->request().method : request->head->method, value, len);
  return PORTICO_OK;
}

portico_status portico_request_path(const portico_request* request, const char** value,
                                    size_t* len) {
  constexpr const char* fn = "portico_request_path";
  if (portico_status st = check_request(request, fn)) return st;
  if (portico_status st = check_view_out(value, len, fn)) return st;
  set_view(request->ctx ? request->ctx->path() : split_target(request->head->path).first, value,
           len);
  return PORTICO_OK;
}

portico_status portico_request_query(const portico_request* request, const char** value,
                                     size_t* len) {
  constexpr const char* fn = "portico_request_query";
  if (portico_status st = check_request(request, fn)) return st;
  if (portico_status st = check_view_out(value, len, fn)) return st;
  set_view(request->ctx ? request->ctx->query() : split_target(request->head->path).second, value,
           len);
  return PORTICO_OK;
}

portico_status portico_request_header(const portico_request* request, const char* name,
                                      size_t name_len, const char** value, size_t* value_len) {
  constexpr const char* fn = "portico_request_header";
  return guarded(fn, [&]() -> portico_status {
    if (portico_status st = check_request(request, fn)) return st;
    if (portico_status st = check_view_out(value, value_len, fn)) return st;
    std::string_view n;
    if (portico_status st = check_bytes(name, name_len, "name", n)) return st;
    std::optional<std::string_view> v;
    if (request->ctx != nullptr) {
      v = request->ctx->request_header(n);
    } else {
      for (const auto& h : request->head->headers)
        if (portico::http::header_name_equals(h.name, n)) {
          v = h.value;
          break;
        }
    }
    if (!v) return fail(PORTICO_ERR_NOT_FOUND, "no header '" + std::string(n) + "'");
    set_view(*v, value, value_len);
    return PORTICO_OK;
  });
}

portico_status portico_request_header_count(const portico_request* request, size_t* out) {
  constexpr const char* fn = "portico_request_header_count";
  if (portico_status st = check_request(request, fn)) return st;
  if (portico_status st = check_out(out, fn)) return st;
  *out = (request->ctx ? request->ctx->request().headers : request->head->headers).size();
  return PORTICO_OK;
}

portico_status portico_request_header_at(const portico_request* request, size_t index,
                                         const char** name, size_t* name_len, const char** value,
                                         size_t* value_len) {
  constexpr const char* fn = "portico_request_header_at";
  if (portico_status st = check_request(request, fn)) return st;
  if (portico_status st = check_view_out(name, name_len, fn)) return st;
  if (portico_status st = check_view_out(value, value_len, fn)) return st;
  const auto headers = request->ctx ? request->ctx->request().headers : request->head->headers;
  if (index >= headers.size())
    return fail(PORTICO_ERR_NOT_FOUND, std::string(fn) + ": index " + std::to_string(index) +
                                           " of " + std::to_string(headers.size()));
  set_view(headers[index].name, name, name_len);
  set_view(headers[index].value, value, value_len);
  return PORTICO_OK;
}

portico_status portico_request_client_address(const portico_request* request, const char** value,
                                              size_t* len) {
  constexpr const char* fn = "portico_request_client_address";
  if (portico_status st = check_request(request, fn)) return st;
  if (portico_status st = check_view_out(value, len, fn)) return st;
  set_view(request->ctx ? request->ctx->client_address() : std::string_view(), value, len);
  return PORTICO_OK;
}

portico_status portico_request_param(const portico_request* request, const char* name,
                                     size_t name_len, const char** value, size_t* value_len) {
  constexpr const char* fn = "portico_request_param";
  return guarded(fn, [&]() -> portico_status {
    if (portico_status st = check_request(request, fn)) return st;
    if (portico_status st = check_view_out(value, value_len, fn)) return st;
    std::string_view n;
    if (portico_status st = check_bytes(name, name_len, "name", n)) return st;
    // Filters read the match through their context, handlers through the
    // reply they answer on.
    auto v = request->ctx     ? request->ctx->param(n)
             : request->reply ? request->reply->param(n)
                              : std::nullopt;
    if (!v) return fail(PORTICO_ERR_NOT_FOUND, "no parameter '" + std::string(n) + "'");
    set_view(*v, value, value_len);
    return PORTICO_OK;
  });
}

portico_status portico_request_claims(const portico_request* request, const char** json,
                                      size_t* len) {
  constexpr const char* fn = "portico_request_claims";
  if (portico_status st = check_request(request, fn)) return st;
  if (portico_status st = check_view_out(json, len, fn)) return st;
  const portico::filters::RequestState* state =
      request->ctx ? portico::filters::find_request_state(*request->ctx) : nullptr;
  if (state == nullptr || state->claims == nullptr)
    return fail(PORTICO_ERR_NOT_FOUND, "no JWT was verified for this request");
  set_view(state->claims->json(), json, len);
  return PORTICO_OK;
}

portico_status portico_request_consumer(const portico_request* request, const char** value,
                                        size_t* len) {
  constexpr const char* fn = "portico_request_consumer";
  if (portico_status st = check_request(request, fn)) return st;
  if (portico_status st = check_view_out(value, len, fn)) return st;
  const portico::filters::RequestState* state =
      request->ctx ? portico::filters::find_request_state(*request->ctx) : nullptr;
  if (state == nullptr || state->consumer.empty())
    return fail(PORTICO_ERR_NOT_FOUND, "no consumer was identified for this request");
  set_view(state->consumer, value, len);
  return PORTICO_OK;
}

portico_status portico_request_plugin_config(const portico_request* request, const char** json,
                                             size_t* len) {
  constexpr const char* fn = "portico_request_plugin_config";
  if (portico_status st = check_request(request, fn)) return st;
  if (portico_status st = check_view_out(json, len, fn)) return st;
  if (portico_status st = need_filter(request, fn)) return st;
  set_view(request->plugin_config, json, len);
  return PORTICO_OK;
}

portico_status portico_request_body(const portico_request* request, const char** value,
                                    size_t* len) {
  constexpr const char* fn = "portico_request_body";
  if (portico_status st = check_request(request, fn)) return st;
  if (portico_status st = check_view_out(value, len, fn)) return st;
  if (request->phase != Phase::handler)
    return fail(PORTICO_ERR_STATE, "portico_request_body: handlers only");
  set_view(request->body, value, len);
  return PORTICO_OK;
}

}  // extern "C"

namespace {

// The checks every header edit shares.
portico_status header_args(const char* name, std::size_t name_len, const char* value,
                           std::size_t value_len, std::string_view& n, std::string_view& v) {
  if (portico_status st = check_bytes(name, name_len, "header name", n)) return st;
  if (portico_status st = check_bytes(value, value_len, "header value", v)) return st;
  if (!is_token(n))
    return fail(PORTICO_ERR_INVALID_ARGUMENT,
                "header name '" + std::string(n) + "' is not an HTTP token");
  if (!is_field_value(v))
    return fail(PORTICO_ERR_INVALID_ARGUMENT,
                "the value of header '" + std::string(n) + "' holds CR, LF or NUL");
  return PORTICO_OK;
}

constexpr std::string_view kNotSettable[] = {
    "connection", "keep-alive", "proxy-connection", "transfer-encoding",
    "te",         "trailer",    "upgrade",          "content-length",
    "host"};

portico_status settable(std::string_view name) {
  for (std::string_view h : kNotSettable)
    if (portico::http::header_name_equals(h, name))
      return fail(PORTICO_ERR_INVALID_ARGUMENT,
                  "header '" + std::string(name) + "' is managed by the proxy and cannot be set");
  return PORTICO_OK;
}

}  // namespace

extern "C" {

portico_status portico_request_set_header(portico_request* request, const char* name,
                                          size_t name_len, const char* value, size_t value_len) {
  constexpr const char* fn = "portico_request_set_header";
  return guarded(fn, [&]() -> portico_status {
    if (portico_status st = check_request(request, fn)) return st;
    if (portico_status st = need_filter(request, fn)) return st;
    if (portico_status st = need_phase(request, Phase::request, fn)) return st;
    std::string_view n, v;
    if (portico_status st = header_args(name, name_len, value, value_len, n, v)) return st;
    if (portico_status st = settable(n)) return st;
    request->ctx->set_request_header(n, v);
    return PORTICO_OK;
  });
}

portico_status portico_request_remove_header(portico_request* request, const char* name,
                                             size_t name_len) {
  constexpr const char* fn = "portico_request_remove_header";
  return guarded(fn, [&]() -> portico_status {
    if (portico_status st = check_request(request, fn)) return st;
    if (portico_status st = need_filter(request, fn)) return st;
    if (portico_status st = need_phase(request, Phase::request, fn)) return st;
    std::string_view n, v;
    if (portico_status st = header_args(name, name_len, "", 0, n, v)) return st;
    if (portico_status st = settable(n)) return st;
    request->ctx->remove_request_header(n);
    return PORTICO_OK;
  });
}

portico_status portico_request_set_path(portico_request* request, const char* path_and_query,
                                        size_t len) {
  constexpr const char* fn = "portico_request_set_path";
  return guarded(fn, [&]() -> portico_status {
    if (portico_status st = check_request(request, fn)) return st;
    if (portico_status st = need_filter(request, fn)) return st;
    if (portico_status st = need_phase(request, Phase::request, fn)) return st;
    std::string_view p;
    if (portico_status st = check_text(path_and_query, len, "path", p)) return st;
    if (p.empty() || p.front() != '/')
      return fail(PORTICO_ERR_INVALID_ARGUMENT, "path '" + std::string(p) + "' must start with /");
    for (char c : p)
      if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f)
        return fail(PORTICO_ERR_INVALID_ARGUMENT,
                    "path holds a space or control byte: percent-encode it");
    request->ctx->set_upstream_path(p);
    return PORTICO_OK;
  });
}

portico_status portico_request_response_status(const portico_request* request, int32_t* out) {
  constexpr const char* fn = "portico_request_response_status";
  if (portico_status st = check_request(request, fn)) return st;
  if (portico_status st = check_out(out, fn)) return st;
  if (portico_status st = need_filter(request, fn)) return st;
  if (portico_status st = need_phase(request, Phase::response, fn)) return st;
  *out = request->ctx->response_status();
  return PORTICO_OK;
}

portico_status portico_request_set_response_status(portico_request* request, int32_t status) {
  constexpr const char* fn = "portico_request_set_response_status";
  return guarded(fn, [&]() -> portico_status {
    if (portico_status st = check_request(request, fn)) return st;
    if (portico_status st = need_filter(request, fn)) return st;
    if (portico_status st = need_phase(request, Phase::response, fn)) return st;
    // The core ignores a status outside this range; here it is an error the
    // caller sees (1xx is never a final status).
    if (status < 200 || status > 599)
      return fail(PORTICO_ERR_INVALID_ARGUMENT,
                  std::string(fn) + ": status " + std::to_string(status) + " is outside 200..599");
    request->ctx->set_response_status(status);
    return PORTICO_OK;
  });
}

portico_status portico_request_response_header(const portico_request* request, const char* name,
                                               size_t name_len, const char** value,
                                               size_t* value_len) {
  constexpr const char* fn = "portico_request_response_header";
  return guarded(fn, [&]() -> portico_status {
    if (portico_status st = check_request(request, fn)) return st;
    if (portico_status st = check_view_out(value, value_len, fn)) return st;
    if (portico_status st = need_filter(request, fn)) return st;
    if (portico_status st = need_phase(request, Phase::response, fn)) return st;
    std::string_view n;
    if (portico_status st = check_bytes(name, name_len, "name", n)) return st;
    auto v = request->ctx->response_header(n);
    if (!v) return fail(PORTICO_ERR_NOT_FOUND, "no response header '" + std::string(n) + "'");
    set_view(*v, value, value_len);
    return PORTICO_OK;
  });
}

portico_status portico_request_set_response_header(portico_request* request, const char* name,
                                                   size_t name_len, const char* value,
                                                   size_t value_len) {
  constexpr const char* fn = "portico_request_set_response_header";
  return guarded(fn, [&]() -> portico_status {
    if (portico_status st = check_request(request, fn)) return st;
    if (portico_status st = need_filter(request, fn)) return st;
    if (portico_status st = need_phase(request, Phase::response, fn)) return st;
    std::string_view n, v;
    if (portico_status st = header_args(name, name_len, value, value_len, n, v)) return st;
    if (portico_status st = settable(n)) return st;
    request->ctx->set_response_header(n, v);
    return PORTICO_OK;
  });
}

portico_status portico_request_remove_response_header(portico_request* request, const char* name,
                                                      size_t name_len) {
  constexpr const char* fn = "portico_request_remove_response_header";
  return guarded(fn, [&]() -> portico_status {
    if (portico_status st = check_request(request, fn)) return st;
    if (portico_status st = need_filter(request, fn)) return st;
    if (portico_status st = need_phase(request, Phase::response, fn)) return st;
    std::string_view n, v;
    if (portico_status st = header_args(name, name_len, "", 0, n, v)) return st;
    if (portico_status st = settable(n)) return st;
    request->ctx->remove_response_header(n);
    return PORTICO_OK;
  });
}

portico_status portico_request_respond(portico_request* request, int32_t status,
                                       const portico_header* headers, size_t header_count,
                                       const char* body, size_t body_len) {
  constexpr const char* fn = "portico_request_respond";
  return guarded(fn, [&]() -> portico_status {
    if (portico_status st = check_request(request, fn)) return st;
    if (request->phase == Phase::response)
      return fail(PORTICO_ERR_STATE, "portico_request_respond: not in the response phase");
    if (request->responded)
      return fail(PORTICO_ERR_STATE, "portico_request_respond: already called");
    const int32_t min_status = request->phase == Phase::handler ? 200 : 100;
    if (status < min_status || status > 599)
      return fail(PORTICO_ERR_INVALID_ARGUMENT, "status " + std::to_string(status) +
                                                    " is outside " + std::to_string(min_status) +
                                                    "..599");
    if (headers == nullptr && header_count != 0)
      return fail(PORTICO_ERR_INVALID_ARGUMENT,
                  "headers is NULL with a count of " + std::to_string(header_count));
    constexpr std::size_t kMaxHeaders = 64;
    if (header_count > kMaxHeaders)
      return fail(PORTICO_ERR_CAPACITY, "at most 64 headers in a local answer");
    portico::http::Header converted[kMaxHeaders];
    for (std::size_t i = 0; i < header_count; ++i) {
      std::string_view n, v;
      if (portico_status st = header_args(headers[i].name, headers[i].name_len, headers[i].value,
                                          headers[i].value_len, n, v))
        return st;
      if (portico_status st = settable(n)) return st;
      converted[i] = portico::http::Header{n, v};
    }
    std::string_view b;
    if (portico_status st = check_bytes(body, body_len, "body", b)) return st;
    const std::span<const portico::http::Header> span(converted, header_count);
    if (request->ctx != nullptr) {
      request->ctx->respond(status, b, span);
    } else {
      request->reply->send(status, span, b);
    }
    request->responded = true;
    return PORTICO_OK;
  });
}

}  // extern "C"

// ================================================================ gateway

namespace {

struct FilterSpec {
  std::string name;
  int32_t priority;
  portico_filter_fn on_request;
  portico_filter_fn on_response;
  void* user;
};

struct HandlerSpec {
  std::string name;
  portico_handler_fn fn;
  void* user;
};

}  // namespace

struct portico_gateway_options {
  HandleHead head_words;
  Tag tag = Tag::gateway_options;
  std::vector<FilterSpec> filters;
  std::vector<HandlerSpec> handlers;
  std::vector<std::optional<std::uint16_t>> ports;
  std::optional<std::uint16_t> admin_port;
  ErrorSink errors;
};

struct portico_gateway {
  HandleHead head_words;
  Tag tag = Tag::gateway;
  std::string document;
  portico::gateway::GatewayOptions options;
  std::unique_ptr<portico::gateway::Gateway> gateway;  // once started
  std::mutex mutex;
  std::condition_variable changed;
  bool stopped = false;
  std::thread stopper;  // the stop portico_gateway_request_stop asked for
};

namespace {

// Serves one request with a C handler.
void run_handler(const HandlerSpec& spec, const ErrorSink& errors,
                 const portico::http::RequestHead& head, std::string_view body,
                 portico::proxy::Reply& reply) {
  LiveRequest live;
  portico_request& r = live.request();
  r.phase = Phase::handler;
  r.head = &head;
  r.body = body;
  r.reply = &reply;
  int32_t ret;
  try {
    ret = spec.fn(&r, spec.user);
  } catch (...) {
    ret = INT32_MIN;
  }
  if (ret == PORTICO_OK && r.responded) return;
  errors.report("handler '" + spec.name + "' " +
                (ret != PORTICO_OK
                     ? "returned " + std::to_string(ret) + " instead of PORTICO_OK"
                     : std::string("returned without calling portico_request_respond")) +
                (r.responded ? "" : "; answered 500"));
  if (!r.responded) reply.send(500, {}, "internal error in handler '" + spec.name + "'\n");
}

// The C++ gateway options of C ones (NULL: none).
portico::gateway::GatewayOptions gateway_options_of(const portico_gateway_options* o) {
  portico::gateway::GatewayOptions out;
  if (o == nullptr) return out;
  auto errors = std::make_shared<const ErrorSink>(o->errors);
  for (const FilterSpec& f : o->filters) {
    portico::gateway::CustomPlugin p;
    p.name = f.name;
    p.priority = f.priority;
    p.build =
        [f, errors](
            std::string_view config) -> portico::Result<std::shared_ptr<portico::proxy::Filter>> {
      return std::shared_ptr<portico::proxy::Filter>(std::make_shared<CFilter>(
          f.name, f.on_request, f.on_response, f.user, std::string(config), errors));
    };
    out.plugins.push_back(std::move(p));
  }
  for (const HandlerSpec& h : o->handlers) {
    portico::gateway::NamedHandler n;
    n.name = h.name;
    n.handler = [h, errors](const portico::http::RequestHead& head, std::string_view body,
                            portico::proxy::Reply& reply) {
      run_handler(h, *errors, head, body, reply);
    };
    out.handlers.push_back(std::move(n));
  }
  for (const auto& port : o->ports)
    out.port_overrides.push_back(port.value_or(0));
  out.admin_port = o->admin_port;
  return out;
}

// Validates a document: its text, its JSON, then the configuration.
portico_status check_document(std::string_view text,
                              const portico::gateway::GatewayOptions& options) {
  picojson::value doc;
  if (portico_status st = parse_json(text, "config", doc)) return st;
  const std::vector<std::string> problems = portico::gateway::check_config(text, options);
  if (problems.empty()) return PORTICO_OK;
  std::string message;
  for (const std::string& p : problems) {
    if (!message.empty()) message += '\n';
    message += p;
  }
  return fail(PORTICO_ERR_INVALID_CONFIG, std::move(message));
}

portico_status not_in_callback(const char* fn) {
  if (t_in_callback)
    return fail(
        PORTICO_ERR_STATE,
        std::string(fn) + ": not from a gateway callback (use portico_gateway_request_stop)");
  return PORTICO_OK;
}

}  // namespace

extern "C" {

portico_status portico_gateway_options_new(portico_gateway_options** out) {
  return make_handle(out, "portico_gateway_options_new",
                     [](portico_gateway_options&) -> portico_status { return PORTICO_OK; });
}

void portico_gateway_options_free(portico_gateway_options* options) {
  free_handle(options, Tag::gateway_options, "portico_gateway_options_free");
}

}  // extern "C"

namespace {

portico_status check_new_name(const portico_gateway_options* o, const char* name,
                              std::size_t name_len, std::string_view& n) {
  if (portico_status st = check_text(name, name_len, "name", n)) return st;
  if (n.empty()) return fail(PORTICO_ERR_INVALID_ARGUMENT, "name is empty");
  for (const FilterSpec& f : o->filters)
    if (f.name == n)
      return fail(PORTICO_ERR_CONFLICT, "a filter named '" + std::string(n) + "' exists");
  for (const HandlerSpec& h : o->handlers)
    if (h.name == n)
      return fail(PORTICO_ERR_CONFLICT, "a handler named '" + std::string(n) + "' exists");
  return PORTICO_OK;
}

}  // namespace

extern "C" {

portico_status portico_gateway_options_add_filter(portico_gateway_options* options,
                                                  const char* name, size_t name_len,
                                                  int32_t priority, portico_filter_fn on_request,
                                                  portico_filter_fn on_response, void* user) {
  constexpr const char* fn = "portico_gateway_options_add_filter";
  return guarded(fn, [&]() -> portico_status {
    if (portico_status st = check_handle(options, Tag::gateway_options, fn)) return st;
    std::string_view n;
    if (portico_status st = check_new_name(options, name, name_len, n)) return st;
    if (portico::detail::find_plugin(n) != nullptr)
      return fail(PORTICO_ERR_CONFLICT, "'" + std::string(n) + "' is a built-in policy");
    if (on_request == nullptr && on_response == nullptr)
      return fail(PORTICO_ERR_INVALID_ARGUMENT, "on_request and on_response are both NULL");
    options->filters.push_back({std::string(n), priority, on_request, on_response, user});
    return PORTICO_OK;
  });
}

portico_status portico_gateway_options_add_handler(portico_gateway_options* options,
                                                   const char* name, size_t name_len,
                                                   portico_handler_fn handler, void* user) {
  constexpr const char* fn = "portico_gateway_options_add_handler";
  return guarded(fn, [&]() -> portico_status {
    if (portico_status st = check_handle(options, Tag::gateway_options, fn)) return st;
    std::string_view n;
    if (portico_status st = check_new_name(options, name, name_len, n)) return st;
    if (handler == nullptr) return fail(PORTICO_ERR_INVALID_ARGUMENT, "handler is NULL");
    options->handlers.push_back({std::string(n), handler, user});
    return PORTICO_OK;
  });
}

portico_status portico_gateway_options_set_port(portico_gateway_options* options, size_t index,
                                                uint16_t port) {
  constexpr const char* fn = "portico_gateway_options_set_port";
  return guarded(fn, [&]() -> portico_status {
    if (portico_status st = check_handle(options, Tag::gateway_options, fn)) return st;
    if (index > 1024) return fail(PORTICO_ERR_INVALID_ARGUMENT, "listener index above 1024");
    if (options->ports.size() <= index) options->ports.resize(index + 1);
    options->ports[index] = port;
    return PORTICO_OK;
  });
}

portico_status portico_gateway_options_set_admin_port(portico_gateway_options* options,
                                                      uint16_t port) {
  constexpr const char* fn = "portico_gateway_options_set_admin_port";
  if (portico_status st = check_handle(options, Tag::gateway_options, fn)) return st;
  options->admin_port = port;
  return PORTICO_OK;
}

portico_status portico_gateway_options_set_error_callback(portico_gateway_options* options,
                                                          portico_error_fn callback, void* user) {
  constexpr const char* fn = "portico_gateway_options_set_error_callback";
  if (portico_status st = check_handle(options, Tag::gateway_options, fn)) return st;
  options->errors = ErrorSink{callback, user};
  return PORTICO_OK;
}

portico_status portico_gateway_check(const char* config_json, size_t config_len,
                                     const portico_gateway_options* options) {
  constexpr const char* fn = "portico_gateway_check";
  return guarded(fn, [&]() -> portico_status {
    if (options != nullptr)
      if (portico_status st = check_handle(options, Tag::gateway_options, fn)) return st;
    std::string_view text;
    if (portico_status st = check_text(config_json, config_len, "config", text)) return st;
    return check_document(text, gateway_options_of(options));
  });
}

portico_status portico_gateway_new(portico_gateway** out, const char* config_json,
                                   size_t config_len, const portico_gateway_options* options) {
  return make_handle(out, "portico_gateway_new", [&](portico_gateway& g) -> portico_status {
    if (options != nullptr)
      if (portico_status st = check_handle(options, Tag::gateway_options, "portico_gateway_new"))
        return st;
    std::string_view text;
    if (portico_status st = check_text(config_json, config_len, "config", text)) return st;
    g.options = gateway_options_of(options);
    if (portico_status st = check_document(text, g.options)) return st;
    g.document = text;
    return PORTICO_OK;
  });
}

portico_status portico_gateway_new_from_file(portico_gateway** out, const char* path,
                                             size_t path_len,
                                             const portico_gateway_options* options) {
  return make_handle(
      out, "portico_gateway_new_from_file", [&](portico_gateway& g) -> portico_status {
        if (options != nullptr)
          if (portico_status st =
                  check_handle(options, Tag::gateway_options, "portico_gateway_new_from_file"))
            return st;
        std::string_view p;
        if (portico_status st = check_text(path, path_len, "path", p)) return st;
        std::ifstream in{std::string(p), std::ios::binary};
        if (!in) return fail(PORTICO_ERR_IO, std::string(p) + ": cannot be opened");
        std::ostringstream text;
        text << in.rdbuf();
        g.document = text.str();
        std::string_view checked;
        if (portico_status st = check_text(g.document.data(), g.document.size(), p.data(), checked))
          return st;
        g.options = gateway_options_of(options);
        g.options.config_path = p;
        return check_document(g.document, g.options);
      });
}

}  // extern "C"

namespace {

// Stops a started gateway once; the caller holds no lock.
void stop_once(portico_gateway* g, Duration drain) {
  std::unique_lock<std::mutex> lock(g->mutex);
  if (g->stopper.joinable()) {
    // A requested stop is under way (or done): wait for it.
    std::thread stopper = std::move(g->stopper);
    lock.unlock();
    stopper.join();
    return;
  }
  if (g->stopped || !g->gateway) {
    g->stopped = true;
    g->changed.notify_all();
    return;
  }
  lock.unlock();
  g->gateway->stop(drain);
  lock.lock();
  g->stopped = true;
  g->changed.notify_all();
}

}  // namespace

extern "C" {

void portico_gateway_free(portico_gateway* gateway) {
  if (gateway == nullptr || gateway->tag != Tag::gateway) {
    free_handle(gateway, Tag::gateway, "portico_gateway_free");
    return;
  }
  if (t_in_callback) {
    std::fprintf(stderr, "portico: portico_gateway_free from a gateway callback; ignored\n");
    return;
  }
  try {
    stop_once(gateway, Duration::zero());
  } catch (...) {
  }
  free_handle(gateway, Tag::gateway, "portico_gateway_free");
}

portico_status portico_gateway_start(portico_gateway* gateway) {
  constexpr const char* fn = "portico_gateway_start";
  return guarded(fn, [&]() -> portico_status {
    if (portico_status st = check_handle(gateway, Tag::gateway, fn)) return st;
    if (portico_status st = not_in_callback(fn)) return st;
    std::lock_guard<std::mutex> lock(gateway->mutex);
    if (gateway->gateway || gateway->stopped)
      return fail(PORTICO_ERR_STATE, "the gateway was started already");
    auto started = portico::gateway::Gateway::start(gateway->document, gateway->options);
    if (!started) return fail(PORTICO_ERR_IO, started.error().message);
    gateway->gateway = std::move(*started);
    return PORTICO_OK;
  });
}

portico_status portico_gateway_run(portico_gateway* gateway) {
  constexpr const char* fn = "portico_gateway_run";
  return guarded(fn, [&]() -> portico_status {
    if (portico_status st = check_handle(gateway, Tag::gateway, fn)) return st;
    if (portico_status st = not_in_callback(fn)) return st;
    {
      std::lock_guard<std::mutex> lock(gateway->mutex);
      if (gateway->stopped) return fail(PORTICO_ERR_STATE, "the gateway was stopped");
    }
    if (!gateway->gateway)
      if (portico_status st = portico_gateway_start(gateway)) return st;
    std::unique_lock<std::mutex> lock(gateway->mutex);
    gateway->changed.wait(lock, [&] { return gateway->stopped; });
    std::thread stopper = std::move(gateway->stopper);
    lock.unlock();
    if (stopper.joinable()) stopper.join();
    return PORTICO_OK;
  });
}

portico_status portico_gateway_reload(portico_gateway* gateway, const char* config_json,
                                      size_t config_len) {
  constexpr const char* fn = "portico_gateway_reload";
  return guarded(fn, [&]() -> portico_status {
    if (portico_status st = check_handle(gateway, Tag::gateway, fn)) return st;
    if (portico_status st = not_in_callback(fn)) return st;
    std::string_view text;
    if (portico_status st = check_text(config_json, config_len, "config", text)) return st;
    picojson::value doc;
    if (portico_status st = parse_json(text, "config", doc)) return st;
    std::lock_guard<std::mutex> lock(gateway->mutex);
    if (!gateway->gateway || gateway->stopped)
      return fail(PORTICO_ERR_STATE, "the gateway is not running");
    auto r = gateway->gateway->reload(text);
    if (!r) return fail(PORTICO_ERR_INVALID_CONFIG, r.error().message);
    gateway->document = text;
    return PORTICO_OK;
  });
}

portico_status portico_gateway_reload_file(portico_gateway* gateway) {
  constexpr const char* fn = "portico_gateway_reload_file";
  return guarded(fn, [&]() -> portico_status {
    if (portico_status st = check_handle(gateway, Tag::gateway, fn)) return st;
    if (gateway->options.config_path.empty())
      return fail(PORTICO_ERR_STATE, "the gateway was not made from a file");
    std::ifstream in(gateway->options.config_path, std::ios::binary);
    if (!in) return fail(PORTICO_ERR_IO, gateway->options.config_path + ": cannot be opened");
    std::ostringstream text;
    text << in.rdbuf();
    const std::string document = text.str();
    return portico_gateway_reload(gateway, document.data(), document.size());
  });
}

portico_status portico_gateway_stop(portico_gateway* gateway, int64_t drain_ns) {
  constexpr const char* fn = "portico_gateway_stop";
  return guarded(fn, [&]() -> portico_status {
    if (portico_status st = check_handle(gateway, Tag::gateway, fn)) return st;
    if (portico_status st = not_in_callback(fn)) return st;
    if (drain_ns < 0)
      return fail(PORTICO_ERR_INVALID_ARGUMENT, "drain_ns " + std::to_string(drain_ns) + " < 0");
    stop_once(gateway, Duration(drain_ns));
    return PORTICO_OK;
  });
}

portico_status portico_gateway_request_stop(portico_gateway* gateway) {
  constexpr const char* fn = "portico_gateway_request_stop";
  return guarded(fn, [&]() -> portico_status {
    if (portico_status st = check_handle(gateway, Tag::gateway, fn)) return st;
    std::lock_guard<std::mutex> lock(gateway->mutex);
    if (gateway->stopped || gateway->stopper.joinable()) return PORTICO_OK;
    if (!gateway->gateway) {
      gateway->stopped = true;
      gateway->changed.notify_all();
      return PORTICO_OK;
    }
    // Stopping joins the workers, one of which may be the caller: a thread
    // of its own does it.
    gateway->stopper = std::thread([gateway] {
      gateway->gateway->stop(gateway->gateway->drain_timeout());
      std::lock_guard<std::mutex> done(gateway->mutex);
      gateway->stopped = true;
      gateway->changed.notify_all();
    });
    return PORTICO_OK;
  });
}

portico_status portico_gateway_metrics(portico_gateway* gateway, char** out, size_t* out_len) {
  constexpr const char* fn = "portico_gateway_metrics";
  return guarded(fn, [&]() -> portico_status {
    if (portico_status st = check_handle(gateway, Tag::gateway, fn)) return st;
    if (portico_status st = check_out(out, fn)) return st;
    *out = nullptr;
    if (portico_status st = not_in_callback(fn)) return st;
    std::lock_guard<std::mutex> lock(gateway->mutex);
    if (!gateway->gateway || gateway->stopped)
      return fail(PORTICO_ERR_STATE, "the gateway is not running");
    return copy_out(gateway->gateway->metrics_text(), out, out_len);
  });
}

portico_status portico_gateway_port(const portico_gateway* gateway, size_t index, uint16_t* out) {
  constexpr const char* fn = "portico_gateway_port";
  if (portico_status st = check_handle(gateway, Tag::gateway, fn)) return st;
  if (portico_status st = check_out(out, fn)) return st;
  if (!gateway->gateway) return fail(PORTICO_ERR_STATE, "the gateway is not started");
  const std::uint16_t port = gateway->gateway->port(index);
  if (port == 0) return fail(PORTICO_ERR_NOT_FOUND, "no listener " + std::to_string(index));
  *out = port;
  return PORTICO_OK;
}

portico_status portico_gateway_admin_port(const portico_gateway* gateway, uint16_t* out) {
  constexpr const char* fn = "portico_gateway_admin_port";
  if (portico_status st = check_handle(gateway, Tag::gateway, fn)) return st;
  if (portico_status st = check_out(out, fn)) return st;
  if (!gateway->gateway) return fail(PORTICO_ERR_STATE, "the gateway is not started");
  *out = gateway->gateway->admin_port();
  return PORTICO_OK;
}

portico_status portico_gateway_generation(const portico_gateway* gateway, uint64_t* out) {
  constexpr const char* fn = "portico_gateway_generation";
  if (portico_status st = check_handle(gateway, Tag::gateway, fn)) return st;
  if (portico_status st = check_out(out, fn)) return st;
  if (!gateway->gateway) return fail(PORTICO_ERR_STATE, "the gateway is not started");
  *out = gateway->gateway->generation();
  return PORTICO_OK;
}

}  // extern "C"
