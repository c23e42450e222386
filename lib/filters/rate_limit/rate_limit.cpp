// rate-limit: every window of the request's plan (or the defaults), then
// its daily quota; the headers of the tightest window on the response.
#include "portico/filters/rate_limit.hpp"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstring>
#include <mutex>

#include "../error_response.hpp"
#include "portico/filters/request_state.hpp"
#include "portico/limiter.hpp"

namespace portico::filters {

namespace {

using proxy::FilterStatus;
using proxy::RequestContext;
using std::chrono::seconds;

constexpr std::int64_t kMaxWindowLimit = 1'000'000'000;
constexpr Duration kMinPeriod = seconds(1);
constexpr Duration kMaxPeriod = std::chrono::hours(24 * 366);
constexpr std::int64_t kMaxKeys = std::int64_t{1} << 24;
constexpr std::size_t kMaxPlans = 1024;
constexpr std::uint64_t kMaxDailyQuota = 0xffffffffULL;

// The parts of the response fields that only depend on the window, written
// once when its table is created, so that a response formats nothing but
// its two numbers (remaining and reset).
struct WindowText {
  std::string name;              // in the RateLimit fields: "minute", "90s", "daily"
  std::string limit;             // X-RateLimit-Limit
  std::string rate_limit_start;  // RateLimit up to the remaining count: "minute";r=
};

WindowText window_text(std::string name, std::int64_t limit) {
  std::string start = '"' + name + "\";r=";
  return WindowText{std::move(name), std::to_string(limit), std::move(start)};
}

struct Window {
  WindowText text;
  Duration period;
  std::int64_t limit;
  ConcurrentKeyedLimiter limiter;
};

struct Quota {
  WindowText text;
  ConcurrentFixedWindowQuota table;
};

// The limits one request is checked against: its plan's, or the defaults.
// A plan without windows uses the default windows, one without a quota the
// default quota (same tables, since the keys are the same).
struct LimitSet {
  std::vector<Window> own_windows;
  std::unique_ptr<Quota> own_quota;
  std::vector<Window>* windows = nullptr;  // shortest period first
  Quota* quota = nullptr;                  // null: none
  std::string policy;                      // the RateLimit-Policy value
};

struct PlanSlot {
  std::string name;
  std::unique_ptr<LimitSet> set;  // null: the plan is unknown; use the defaults
};

std::string window_name(Duration period) {
  if (period == seconds(1)) return "second";
  if (period == std::chrono::minutes(1)) return "minute";
  if (period == std::chrono::hours(1)) return "hour";
  if (period == std::chrono::hours(24)) return "day";
  return std::to_string(std::chrono::duration_cast<seconds>(period).count()) + "s";
}

// Whole seconds, rounded up (the header fields' unit).
std::int64_t ceil_seconds(Duration d) {
  if (d <= Duration::zero()) return 0;
  return std::chrono::ceil<seconds>(d).count();
}

Status check_limits(const std::vector<PlanLimit>& limits, std::string_view field) {
  for (std::size_t i = 0; i < limits.size(); ++i) {
    const PlanLimit& l = limits[i];
    const std::string at = std::string(field) + "[" + std::to_string(i) + "]";
    if (l.period < kMinPeriod || l.period > kMaxPeriod || l.period % seconds(1) != Duration::zero())
      return make_error(ErrorKind::invalid_argument,
                        at + ".period: expected whole seconds from 1 s to 366 days");
    if (l.limit < 1 || l.limit > static_cast<std::uint64_t>(kMaxWindowLimit))
      return make_error(ErrorKind::invalid_argument,
                        at + ".limit: expected 1 to 1000000000, found " + std::to_string(l.limit));
    for (std::size_t j = 0; j < i; ++j) {
      if (limits[j].period == l.period)
        return make_error(ErrorKind::invalid_argument,
                          at + ".period: two windows with the same period");
    }
  }
  return {};
}

Result<std::vector<Window>> make_windows(std::vector<PlanLimit> limits, std::int64_t max_keys) {
  std::sort(limits.begin(), limits.end(),
            [](const PlanLimit& a, const PlanLimit& b) { return a.period < b.period; });
  std::vector<Window> out;
  out.reserve(limits.size());
  for (const PlanLimit& l : limits) {
    const auto limit = static_cast<std::int64_t>(l.limit);
    // `limit` at once, then one every period / limit.
    KeyedLimiterConfig config{GcraConfig{limit, l.period, limit - 1}, max_keys, 0};
    auto limiter = ConcurrentKeyedLimiter::create(config);
    if (!limiter) return std::move(limiter).error();
    out.push_back(
        Window{window_text(window_name(l.period), limit), l.period, limit, std::move(*limiter)});
  }
  return out;
}

// One table shared by every worker, lock-free like the windows' tables.
Result<std::unique_ptr<Quota>> make_quota(std::uint64_t daily, std::int64_t max_keys) {
  if (daily == 0) return std::unique_ptr<Quota>();
  const auto limit = static_cast<std::int64_t>(daily);
  auto table = ConcurrentFixedWindowQuota::create(
      FixedWindowQuotaConfig{limit, QuotaWindow::day, max_keys, 0});
  if (!table) return std::move(table).error();
  return std::make_unique<Quota>(Quota{window_text("daily", limit), std::move(*table)});
}

std::string policy_of(const LimitSet& set) {
  std::string out;
  for (const Window& w : *set.windows) {
    if (!out.empty()) out += ", ";
    out += '"' + w.text.name + "\";q=" + std::to_string(w.limit) +
           ";w=" + std::to_string(std::chrono::duration_cast<seconds>(w.period).count());
  }
  if (set.quota != nullptr) {
    if (!out.empty()) out += ", ";
    out += '"' + set.quota->text.name + "\";q=" + set.quota->text.limit + ";w=86400";
  }
  return out;
}

// What the response fields report: the tightest window of the request.
struct Reported {
  const LimitSet* set = nullptr;
  const WindowText* window = nullptr;  // null: none reported
  std::int64_t remaining = 0;
  Duration reset_after{0};
};

// The window with the fewest requests left; of two, the one that takes
// longer to refill. (A decision's limit is its window's, in the text.)
void consider(Reported& r, const WindowText& window, const Decision& d) {
  if (r.window == nullptr || d.remaining < r.remaining ||
      (d.remaining == r.remaining && d.reset_after > r.reset_after)) {
    r.window = &window;
    r.remaining = d.remaining;
    r.reset_after = d.reset_after;
  }
}

// Appends `value` in decimal to [*at, end), or nothing if it does not fit.
// Returns the text written.
std::string_view append_decimal(char*& at, char* end, std::int64_t value) {
  const auto [stop, ec] = std::to_chars(at, end, value);
  if (ec != std::errc()) return {};
  const std::string_view written(at, static_cast<std::size_t>(stop - at));
  at = stop;
  return written;
}

// Appends `text` to [*at, end), cut short if it does not fit.
void append(char*& at, char* end, std::string_view text) {
  const std::size_t n = std::min(text.size(), static_cast<std::size_t>(end - at));
  if (n > 0) std::memcpy(at, text.data(), n);
  at += n;
}

// A request's key as a prefix ("c:", "h:", "i:" or none) and a value.
struct Key {
  std::string_view prefix;
  std::string_view value;
  // Writes prefix + value at `out` (room for both) and returns it.
  std::string_view join(char* out) const {
    std::memcpy(out, prefix.data(), prefix.size());
    if (!value.empty()) std::memcpy(out + prefix.size(), value.data(), value.size());
    return {out, prefix.size() + value.size()};
  }
};

class RateLimitFilter final : public proxy::Filter {
 public:
  RateLimitFilter(RateLimitOptions options, std::vector<Window> windows,
                  std::unique_ptr<Quota> quota)
      : options_(std::move(options)), plans_(std::make_unique<PlanSlot[]>(options_.max_plans)) {
    defaults_.own_windows = std::move(windows);
    defaults_.windows = &defaults_.own_windows;
    defaults_.own_quota = std::move(quota);
    defaults_.quota = defaults_.own_quota.get();
    defaults_.policy = policy_of(defaults_);
  }

  std::string_view name() const noexcept override { return "rate-limit"; }

  FilterStatus on_request_headers(RequestContext& ctx) override {
    const RequestState* state = find_request_state(ctx);
    LimitSet& set = state != nullptr && !state->plan.empty() ? for_plan(state->plan) : defaults_;
    // One arena block holds the response fields' state and the key's text.
    const Key parts = key_of(ctx, state);
    const std::size_t key_size = parts.prefix.size() + parts.value.size();
    auto* block = static_cast<char*>(ctx.allocate(sizeof(Reported) + key_size, alignof(Reported)));
    auto* reported = new (block) Reported{};
    const std::string_view key =
        parts.prefix.empty() ? parts.value : parts.join(block + sizeof(Reported));
    reported->set = &set;
    ctx.set_state(reported);
    const TimePoint now = ctx.start_time();
    for (Window& w : *set.windows) {
      const Decision d = w.limiter.check(key, now);
      if (!d.allowed) return refuse(ctx, *reported, w.text, d);
      consider(*reported, w.text, d);
    }
    if (set.quota != nullptr) {
      const Decision d = set.quota->table.check(key, std::chrono::system_clock::now());
      if (!d.allowed) return refuse(ctx, *reported, set.quota->text, d);
      consider(*reported, set.quota->text, d);
    }
    return FilterStatus::next;
  }

  FilterStatus on_response_headers(RequestContext& ctx) override {
    const auto* r = static_cast<const Reported*>(ctx.state());
    if (!options_.headers || r == nullptr || r->window == nullptr) return FilterStatus::next;
    // RateLimit is "<window>";r=<remaining>;t=<reset>: the two numbers are
    // written once, into it, and X-RateLimit-Remaining and -Reset are views
    // of them. (The start is at most 14 bytes: "31622400s";r= for 366 days.)
    char field[96];
    char* at = field;
    char* const end = field + sizeof field;
    append(at, end, r->window->rate_limit_start);
    const std::string_view remaining = append_decimal(at, end, r->remaining);
    append(at, end, ";t=");
    const std::string_view reset = append_decimal(at, end, ceil_seconds(r->reset_after));
    ctx.set_response_header("X-RateLimit-Limit", r->window->limit);
    ctx.set_response_header("X-RateLimit-Remaining", remaining);
    ctx.set_response_header("X-RateLimit-Reset", reset);
    ctx.set_response_header("RateLimit-Policy", r->set->policy);
    ctx.set_response_header("RateLimit",
                            std::string_view(field, static_cast<std::size_t>(at - field)));
    return FilterStatus::next;
  }

 private:
  FilterStatus refuse(RequestContext& ctx, Reported& r, const WindowText& window,
                      const Decision& d) {
    r.window = &window;
    r.remaining = 0;
    r.reset_after = d.reset_after;
    char buf[24];
    char* at = buf;
    // At least a second: a client told "0" would retry at once.
    const std::int64_t wait = std::max<std::int64_t>(1, ceil_seconds(d.retry_after));
    const http::Header retry_after[] = {
        {"Retry-After", append_decimal(at, buf + sizeof buf, wait)}};
    options_.rejections.inc(ctx.worker_index());
    detail::respond_error(ctx, 429, "rate limit exceeded", retry_after);
    return FilterStatus::respond;
  }

  // The key: a value the request holds, under a prefix for the key spaces
  // of consumers and header values. An anonymous request of a consumer
  // limit and a request without the header of a header limit count against
  // their client address, in a key space apart ("i:") from the ids and
  // values.
  Key key_of(RequestContext& ctx, const RequestState* state) const {
    std::string_view prefix;
    std::string_view value;
    switch (options_.limit_by) {
      case RateLimitKey::consumer:
        if (state != nullptr && !state->consumer.empty()) {
          prefix = "c:";
          value = state->consumer;
        }
        break;
      case RateLimitKey::header: {
        const std::string_view v = ctx.request().header(options_.header);
        if (!v.empty()) {
          prefix = "h:";
          value = v;
        }
        break;
      }
      case RateLimitKey::ip:
        return {{}, ctx.client_address()};
      case RateLimitKey::route:
        return {{}, ctx.route_name()};
      case RateLimitKey::global:
        return {};
    }
    if (prefix.empty()) {
      prefix = "i:";
      value = ctx.client_address();
    }
    return {prefix, value};
  }

  // The limits of a plan, created at its first request. Published slots
  // are never changed, so readers scan them without a lock. The lock is
  // taken only by a request of a plan not yet published, while its tables
  // are allocated (once per plan); with every slot taken, a further plan's
  // requests get the defaults without it.
  LimitSet& for_plan(std::string_view plan) {
    if (!options_.plan_of) return defaults_;
    std::size_t n = published_.load(std::memory_order_acquire);
    for (std::size_t i = 0; i < n; ++i) {
      if (plans_[i].name == plan) return plans_[i].set ? *plans_[i].set : defaults_;
    }
    if (n == options_.max_plans) return defaults_;
    std::lock_guard<std::mutex> lock(create_mu_);
    n = published_.load(std::memory_order_relaxed);
    for (std::size_t i = 0; i < n; ++i) {
      if (plans_[i].name == plan) return plans_[i].set ? *plans_[i].set : defaults_;
    }
    if (n == options_.max_plans) return defaults_;
    PlanSlot& slot = plans_[n];
    slot.name.assign(plan);
    slot.set = limits_of(options_.plan_of(plan));
    published_.store(n + 1, std::memory_order_release);
    return slot.set ? *slot.set : defaults_;
  }

  // Null when the plan changes nothing, is unknown, or its limits are
  // invalid or cannot be allocated: its requests then get the defaults.
  std::unique_ptr<LimitSet> limits_of(const PlanConfig* plan) {
    if (plan == nullptr || (plan->limits.empty() && plan->daily_quota == 0)) return nullptr;
    if (!check_limits(plan->limits, "limits") || plan->daily_quota > kMaxDailyQuota) return nullptr;
    auto set = std::make_unique<LimitSet>();
    if (plan->limits.empty()) {
      set->windows = defaults_.windows;
    } else {
      auto windows = make_windows(plan->limits, options_.max_keys);
      if (!windows) return nullptr;
      set->own_windows = std::move(*windows);
      set->windows = &set->own_windows;
    }
    if (plan->daily_quota == 0) {
      set->quota = defaults_.quota;
    } else {
      auto quota = make_quota(plan->daily_quota, options_.max_keys);
      if (!quota) return nullptr;
      set->own_quota = std::move(*quota);
      set->quota = set->own_quota.get();
    }
    set->policy = policy_of(*set);
    return set;
  }

  const RateLimitOptions options_;
  LimitSet defaults_;
  std::unique_ptr<PlanSlot[]> plans_;
  std::atomic<std::size_t> published_{0};
  std::mutex create_mu_;
};

}  // namespace

Result<std::shared_ptr<proxy::Filter>> make_rate_limit(RateLimitOptions options) {
  auto fail = [](std::string message) {
    return Result<std::shared_ptr<proxy::Filter>>(
        make_error(ErrorKind::invalid_argument, std::move(message)));
  };
  if (options.limit_by == RateLimitKey::header && options.header.empty())
    return fail("header: required when limit_by is \"header\"");
  if (options.max_keys < 1 || options.max_keys > kMaxKeys)
    return fail("max_keys: expected 1 to 16777216, found " + std::to_string(options.max_keys));
  if (options.max_plans < 1 || options.max_plans > kMaxPlans)
    return fail("max_plans: expected 1 to 1024, found " + std::to_string(options.max_plans));
  if (options.daily_quota > kMaxDailyQuota)
    return fail("daily_quota: expected at most 4294967295, found " +
                std::to_string(options.daily_quota));
  if (options.limits.empty() && options.daily_quota == 0 && !options.plan_of)
    return fail("limits: at least one window or a daily_quota is required");
  if (Status s = check_limits(options.limits, "limits"); !s) return std::move(s).error();

  auto windows = make_windows(options.limits, options.max_keys);
  if (!windows) return std::move(windows).error();
  auto quota = make_quota(options.daily_quota, options.max_keys);
  if (!quota) return std::move(quota).error();
  return std::shared_ptr<proxy::Filter>(std::make_shared<RateLimitFilter>(
      std::move(options), std::move(*windows), std::move(*quota)));
}

}  // namespace portico::filters
