// fallback: the proxy's own 503 for an unreachable service replaced by the
// last good response or a static one.
#include "portico/filters/fallback.hpp"

#include <array>
#include <charconv>
#include <cstring>
#include <list>
#include <unordered_map>
#include <vector>

#include "../../common/ascii.hpp"
#include "../../http/fields.hpp"
#include "portico/filters/request_state.hpp"

namespace portico::filters {

namespace {

using proxy::FilterStatus;
using proxy::RequestContext;

constexpr std::size_t kMaxCachedBody = std::size_t{8} << 20;
constexpr std::size_t kMaxEntries = 100000;

struct CacheEntry {
  std::string key;
  std::string content_type;
  std::string body;
  TimePoint stored;
};

// One worker's responses, least recently stored evicted first. Its thread
// only.
class WorkerCache {
 public:
  const CacheEntry* find(std::string_view key) const {
    const auto it = index_.find(key);
    return it == index_.end() ? nullptr : &*it->second;
  }

  void store(std::string_view key, std::string_view content_type, std::string_view body,
             TimePoint now, std::size_t capacity) {
    auto it = index_.find(key);
    if (it == index_.end()) {
      if (lru_.size() >= capacity) {
        index_.erase(lru_.back().key);
        lru_.pop_back();
      }
      lru_.push_front(CacheEntry{std::string(key), {}, {}, now});
      index_.emplace(lru_.front().key, lru_.begin());
      it = index_.find(key);
    } else {
      lru_.splice(lru_.begin(), lru_, it->second);
    }
    CacheEntry& e = *it->second;
    // assign() reuses the entry's buffers: refreshing a hot entry does not
    // allocate.
    e.content_type.assign(content_type);
    e.body.assign(body);
    e.stored = now;
  }

 private:
  std::list<CacheEntry> lru_;
  // Views of the keys held by the list's entries.
  std::unordered_map<std::string_view, std::list<CacheEntry>::iterator> index_;
};

struct alignas(64) WorkerSlot {
  WorkerCache cache;
};

// What on_request_headers learnt, for the response phases.
struct FallbackState {
  std::string_view key;  // empty: not a cacheable request
  bool storing = false;  // the body was buffered to be cached
};

bool has_token(std::string_view list, std::string_view token) {
  return detail::list_has_token(list, token);
}

bool valid_field_value(std::string_view v) {
  for (char c : v) {
    const auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\t') || u == 0x7f) return false;
  }
  return true;
}

class FallbackFilter final : public proxy::Filter {
 public:
  explicit FallbackFilter(FallbackOptions options)
      : options_(std::move(options)),
        caches_(options_.cache ? options_.workers : 0),
        static_type_(options_.static_response ? options_.static_response->content_type : "") {}

  std::string_view name() const noexcept override { return "fallback"; }

  FilterStatus on_request_headers(RequestContext& ctx) override {
    if (cache_of(ctx) == nullptr || ctx.request().method != "GET") return FilterStatus::next;
    const RequestState* state = find_request_state(ctx);
    const std::string_view consumer = state != nullptr ? state->consumer : std::string_view();
    // Whose response this is cannot be told: it may be private.
    if (consumer.empty() &&
        (!ctx.request().header("authorization").empty() || !ctx.request().header("cookie").empty()))
      return FilterStatus::next;
    auto* s = new (ctx.allocate(sizeof(FallbackState), alignof(FallbackState))) FallbackState{};
    s->key = key_of(ctx, consumer);
    ctx.set_state(s);
    return FilterStatus::next;
  }

  FilterStatus on_response_headers(RequestContext& ctx) override {
    auto* s = static_cast<FallbackState*>(ctx.state());
    if (replaces(ctx.unavailability())) {
      if (s != nullptr && serve_cached(ctx, s->key)) return FilterStatus::next;
      if (options_.static_response) serve_static(ctx);
      return FilterStatus::next;
    }
    if (s != nullptr && cacheable_response(ctx)) {
      ctx.buffer_response_body();
      s->storing = true;
    }
    return FilterStatus::next;
  }

  FilterStatus on_response_body(RequestContext& ctx, std::string_view body) override {
    const auto* s = static_cast<const FallbackState*>(ctx.state());
    WorkerCache* cache = cache_of(ctx);
    if (s == nullptr || !s->storing || cache == nullptr || ctx.response_status() != 200 ||
        body.size() > options_.cache_max_body_bytes)
      return FilterStatus::next;
    const auto type = ctx.response_header("content-type");
    cache->store(s->key, type.value_or(std::string_view()), body, ctx.start_time(),
                 options_.cache_entries);
    return FilterStatus::next;
  }

 private:
  WorkerCache* cache_of(const RequestContext& ctx) {
    const unsigned i = ctx.worker_index();
    return i < caches_.size() ? &caches_[i].cache : nullptr;
  }

  bool replaces(proxy::Unavailability why) const noexcept {
    using proxy::Unavailability;
    if (why == Unavailability::breakers_open) return options_.on_breaker_open;
    return options_.on_no_healthy_endpoint &&
           (why == Unavailability::no_healthy_endpoint || why == Unavailability::no_endpoint);
  }

  // route "\n" consumer "\n" path "?" query, in the arena.
  static std::string_view key_of(RequestContext& ctx, std::string_view consumer) {
    const std::string_view parts[] = {ctx.route_name(), "\n", consumer,   "\n",
                                      ctx.path(),       "?",  ctx.query()};
    std::size_t size = 0;
    for (auto p : parts)
      size += p.size();
    auto* out = static_cast<char*>(ctx.allocate(size, 1));
    std::size_t n = 0;
    for (auto p : parts) {
      if (!p.empty()) std::memcpy(out + n, p.data(), p.size());
      n += p.size();
    }
    return {out, n};
  }

  // A 200 that may be shown to anyone asking as this consumer, small and
  // sized in advance.
  bool cacheable_response(const RequestContext& ctx) const {
    if (ctx.response_status() != 200) return false;
    if (ctx.response_header("set-cookie")) return false;
    if (const auto cc = ctx.response_header("cache-control");
        cc && (has_token(*cc, "no-store") || has_token(*cc, "private")))
      return false;
    if (const auto enc = ctx.response_header("content-encoding");
        enc && !detail::ascii_iequals(detail::trim_ows(*enc), "identity"))
      return false;
    const auto length = ctx.response_header("content-length");
    if (!length) return false;
    const auto size = detail::parse_content_length(*length);
    return size && *size <= options_.cache_max_body_bytes;
  }

  bool serve_cached(RequestContext& ctx, std::string_view key) {
    WorkerCache* cache = cache_of(ctx);
    if (cache == nullptr || key.empty()) return false;
    const CacheEntry* e = cache->find(key);
    if (e == nullptr) return false;
    const Duration age = ctx.start_time() - e->stored;
    if (age > options_.cache_max_age) return false;
    char age_text[24];
    const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(age).count();
    const auto [end, ec] = std::to_chars(age_text, age_text + sizeof age_text, seconds);
    std::array<http::Header, 3> headers;
    std::size_t n = 0;
    if (!e->content_type.empty()) headers[n++] = {"Content-Type", e->content_type};
    headers[n++] = {"X-Portico-Fallback", "cache"};
    headers[n++] = {"Age", std::string_view(age_text, ec == std::errc() ? end - age_text : 0)};
    ctx.respond(200, e->body, std::span<const http::Header>(headers.data(), n));
    return true;
  }

  void serve_static(RequestContext& ctx) {
    const FallbackResponse& r = *options_.static_response;
    const http::Header headers[] = {{"Content-Type", static_type_},
                                    {"X-Portico-Fallback", "static"}};
    ctx.respond(r.status, r.body, headers);
  }

  const FallbackOptions options_;
  std::vector<WorkerSlot> caches_;
  const std::string static_type_;
};

}  // namespace

Result<std::shared_ptr<proxy::Filter>> make_fallback(FallbackOptions options) {
  auto fail = [](std::string message) {
    return Result<std::shared_ptr<proxy::Filter>>(
        make_error(ErrorKind::invalid_argument, std::move(message)));
  };
  if (!options.static_response && !options.cache)
    return fail("static_response: a static response or the cache (or both) is required");
  if (options.static_response) {
    const FallbackResponse& r = *options.static_response;
    if (r.status < 200 || r.status > 599)
      return fail("static_response.status: expected 200 to 599, found " + std::to_string(r.status));
    if (r.content_type.empty() || !valid_field_value(r.content_type))
      return fail(
          "static_response.content_type: expected a media type such as \"application/json\"");
  }
  if (options.cache_max_body_bytes < 1 || options.cache_max_body_bytes > kMaxCachedBody)
    return fail("cache_max_body_bytes: expected 1 to 8388608, found " +
                std::to_string(options.cache_max_body_bytes));
  if (options.cache_entries < 1 || options.cache_entries > kMaxEntries)
    return fail("cache_entries: expected 1 to 100000, found " +
                std::to_string(options.cache_entries));
  if (options.cache_max_age <= Duration::zero())
    return fail("cache_max_age: expected a positive duration");
  if (options.workers < 1) return fail("workers: expected at least 1");
  return std::shared_ptr<proxy::Filter>(std::make_shared<FallbackFilter>(std::move(options)));
}

}  // namespace portico::filters
