// rate-limit: GCRA limits over several windows at once, per consumer, client
// address, route, header value or globally, with limits and a daily quota
// taken from the consumer's plan.
//
// Each window is one ConcurrentKeyedLimiter (limiter.hpp) shared by every
// worker thread, so a limit holds for the whole gateway, not per worker: a
// window of `limit` requests per `period` lets a fresh key make `limit`
// requests at once, then one every period / limit (GCRA with burst =
// limit - 1). A request must pass every window, then the daily quota.
//
// Order of the checks: a check that allows a request also counts it, and
// the limiter has no "look without counting". Windows are therefore checked
// from the shortest period to the longest, and the daily quota last: a
// request refused by one window has been counted only by shorter windows,
// which refill soonest, and a refused request never uses up the longer
// windows or the day's quota. (Refused requests can only make limits
// stricter, never looser.)
//
// Keys (limit_by):
//   consumer  RequestState::consumer, set by key-auth or jwt-auth; an
//             anonymous request falls back to its client address, in a key
//             space of its own.
//   ip        RequestContext::client_address() (trusted proxies applied).
//   route     the route's name.
//   header    the value of `header`; a request without it falls back to its
//             client address.
//   global    one key for every request.
//
// Plans: when RequestState::plan names a plan that `plan_of` finds, the
// plan's limits replace `limits` (when it has any) and its daily_quota
// replaces `daily_quota` (when non-zero). The tables for a plan are created
// the first time a request of that plan arrives (at most max_plans plans;
// requests of further plans use the defaults).
//
// Every response the filter saw (allowed or refused) gets, unless `headers`
// is off: X-RateLimit-Limit, X-RateLimit-Remaining and X-RateLimit-Reset
// for the tightest window (the fewest requests remaining; on a refusal, the
// window that refused), and the IETF fields of
// draft-ietf-httpapi-ratelimit-headers: RateLimit-Policy listing every
// window ("minute";q=100;w=60) and RateLimit for the tightest one
// ("minute";r=42;t=17). A refusal is 429 with Retry-After and the JSON error
// body.
//
// Memory: each window's table, and the quota's, takes 32 bytes per key
// (max_keys), allocated once, for the defaults at creation and for a plan at
// its first request.
// Threading: the filter is shared by every worker. Every check is lock-free,
// the daily quota's too (a ConcurrentFixedWindowQuota: one compare-and-swap
// of the key's day and count, so no day admits more than the quota across
// workers). The only lock is taken by the first requests of a plan while its
// tables are allocated.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "portico/export.hpp"
#include "portico/filter.hpp"
#include "portico/filters/consumers.hpp"
#include "portico/metrics.hpp"
#include "portico/result.hpp"

namespace portico::filters {

enum class RateLimitKey : std::uint8_t { consumer, ip, route, header, global };

struct RateLimitOptions {
  RateLimitKey limit_by = RateLimitKey::consumer;
  // The header whose value is the key, for RateLimitKey::header.
  std::string header;
  // The default windows (PlanLimit: `limit` requests per `period`), all
  // applied. Each: period 1 s .. 366 days, limit 1 .. 10^9.
  std::vector<PlanLimit> limits;
  // Requests per calendar day (UTC) per key; 0: none.
  std::uint64_t daily_quota = 0;
  // The plan named `name`, or null; called once per plan (the limits are
  // copied). Empty: plans are ignored.
  std::function<const PlanConfig*(std::string_view name)> plan_of;
  // Keys tracked per window, 1 .. 2^24 (see limiter.hpp on eviction).
  std::int64_t max_keys = 65536;
  // Plans whose tables may be created, 1 .. 1024.
  std::size_t max_plans = 64;
  // Send the X-RateLimit-* and RateLimit fields.
  bool headers = true;
  // Counts refusals (metrics.hpp), on the refusing worker's shard; a null
  // handle counts nothing.
  metrics::Counter rejections;
};

// Fails with invalid_argument naming the field: no window and no quota, a
// window out of range, two windows with the same period, header empty with
// limit_by header, max_keys or max_plans out of range; with capacity when
// the tables cannot be allocated.
PORTICO_API Result<std::shared_ptr<proxy::Filter>> make_rate_limit(RateLimitOptions options);

}  // namespace portico::filters
