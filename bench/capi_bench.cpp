// The C ABI's cost per call: the same operation through the C++ API and
// through capi/portico.h, side by side in one run, for router match, limiter
// check and JWT verify with a cache hit. The difference is what the bridge
// adds (handle and argument checks, the catch-all, copying results into C
// structs); it should be a few nanoseconds, small against the operation.
// Exits non-zero if the two paths disagree or a C call fails.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include "bench.hpp"
#include "portico.h"
#include "portico/jwt.hpp"
#include "portico/limiter.hpp"
#include "portico/path.hpp"
#include "portico/router.hpp"

namespace {

namespace bench = portico::bench;
namespace jwt = portico::jwt;

constexpr std::string_view kSecret = "0123456789abcdef0123456789abcdef";
// HS256 with kSecret, kid "k1": sub alice, exp 2100-01-01.
constexpr std::string_view kToken =
    "eyJhbGciOiJIUzI1NiIsImtpZCI6ImsxIiwidHlwIjoiSldUIn0."
    "eyJzdWIiOiJhbGljZSIsImlzcyI6Imh0dHBzOi8vaXNzdWVyLmV4YW1wbGUiLCJleHAiOjQxMDI0NDQ4MDAs"
    "InJvbGUiOiJhZG1pbiJ9.fEpvC1Em4hR-Os7AeEpQmz0_XRnbnQBebeoqCvyPxfc";
// The routes and the request the router figures use: a parameter route
// among literal siblings, matched with a path that needs normalising.
constexpr const char* kRoutes[] = {"/users",          "/users/{id}",           "/users/{id}/orders",
                                   "/orders/{order}", "/orders/{order}/items", "/health"};
constexpr std::string_view kPath = "/users/42/orders";

bool g_failed = false;

void expect(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "capi_bench: %s (%s)\n", what, portico_last_error());
    g_failed = true;
  }
}

void report(const char* name, const bench::Sample& cpp, const bench::Sample& c) {
  std::printf(
      "capi %-32s C++ %8.1f ns   C ABI %8.1f ns   overhead %+7.1f ns (%5.2fx)   "
      "allocs/call %.2f / %.2f\n",
      name, cpp.ns_per_op, c.ns_per_op, c.ns_per_op - cpp.ns_per_op, c.ns_per_op / cpp.ns_per_op,
      cpp.allocs_per_op, c.allocs_per_op);
}

void bench_router(std::size_t runs, std::size_t iterations) {
  portico::Router router;
  portico_router* crouter = nullptr;
  portico_match* cmatch = nullptr;
  expect(portico_router_new(&crouter) == PORTICO_OK, "router_new");
  expect(portico_match_new(&cmatch) == PORTICO_OK, "match_new");
  for (const char* path : kRoutes) {
    portico::RouteSpec spec;
    spec.path = path;
    expect(static_cast<bool>(router.add(spec)), "Router::add");
    std::uint32_t id = 0;
    expect(portico_router_add(crouter, "", 0, "GET", 3, "", 0, path, std::strlen(path), &id) ==
               PORTICO_OK,
           "router_add");
  }
  // The C++ caller does what the bridge does: normalise, then match.
  char buffer[256];
  const bench::Sample cpp = bench::measure(runs, iterations, [&](std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      auto len = portico::normalize_path(kPath, buffer);
      portico::MatchInput in;
      in.method = "GET";
      in.path = std::string_view(buffer, len ? *len : 0);
      bench::do_not_optimize(router.match(in));
    }
  });
  const bench::Sample c = bench::measure(runs, iterations, [&](std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      portico_router_match(crouter, cmatch, "GET", 3, "", 0, kPath.data(), kPath.size());
      bench::do_not_optimize(cmatch);
    }
  });
  std::int32_t found = 0;
  expect(portico_match_result(cmatch, &found) == PORTICO_OK && found == PORTICO_MATCH_FOUND,
         "the C match found the route");
  report("router match (6 routes)", cpp, c);
  portico_match_free(cmatch);
  portico_router_free(crouter);
}

void bench_limiter(std::size_t runs, std::size_t iterations) {
  portico::KeyedLimiterConfig config;
  config.rate = {1'000'000, std::chrono::seconds(1), 10};
  config.max_keys = 1024;
  auto limiter = portico::ConcurrentKeyedLimiter::create(config);
  expect(static_cast<bool>(limiter), "ConcurrentKeyedLimiter::create");
  portico_limiter* climiter = nullptr;
  expect(portico_limiter_new(&climiter, 1'000'000, 1'000'000'000, 10, 1024) == PORTICO_OK,
         "limiter_new");
  if (!limiter || climiter == nullptr) return;
  // Simulated time, 700 ns a check, as limiter_bench: both branches run.
  std::int64_t now = std::int64_t{1} << 40;
  const bench::Sample cpp = bench::measure(runs, iterations, [&](std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      now += 700;
      bench::do_not_optimize(
          limiter->check("client-42", portico::TimePoint(portico::Duration(now)), 1));
    }
  });
  portico_limit_decision d{};
  const bench::Sample c = bench::measure(runs, iterations, [&](std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      now += 700;
      portico_limiter_check(climiter, "client-42", 9, 1, now, &d);
      bench::do_not_optimize(d);
    }
  });
  expect(d.limit == 11, "the C decision carries the limit (burst + 1)");
  report("limiter check (one key)", cpp, c);
  portico_limiter_free(climiter);
}

void bench_jwt(std::size_t runs, std::size_t iterations) {
  jwt::KeySet keys;
  jwt::KeyOptions key_options;
  key_options.kid = "k1";
  expect(static_cast<bool>(keys.add_hmac_secret(kSecret, key_options)), "add_hmac_secret");
  auto verifier = jwt::Verifier::create(std::make_shared<jwt::KeySetHolder>(std::move(keys)), {});
  expect(static_cast<bool>(verifier), "Verifier::create");
  if (!verifier) return;
  jwt::TokenCache cache(std::make_shared<const jwt::Verifier>(std::move(*verifier)));

  portico_jwt_verifier* cverifier = nullptr;
  portico_jwt_cache* ccache = nullptr;
  portico_jwt_result* cresult = nullptr;
  expect(portico_jwt_verifier_new_key(&cverifier, PORTICO_JWT_KEY_HMAC, kSecret.data(),
                                      kSecret.size(), "k1", 2, "", 0) == PORTICO_OK,
         "jwt_verifier_new_key");
  expect(portico_jwt_cache_new(&ccache, cverifier, 0) == PORTICO_OK, "jwt_cache_new");
  expect(portico_jwt_result_new(&cresult) == PORTICO_OK, "jwt_result_new");
  if (ccache == nullptr || cresult == nullptr) return;

  const auto now = std::chrono::system_clock::now();
  const std::int64_t now_s =
      std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  const bench::Sample cpp = bench::measure(runs, iterations, [&](std::size_t n) {
    for (std::size_t i = 0; i < n; ++i)
      bench::do_not_optimize(cache.verify(kToken, now));
  });
  const bench::Sample c = bench::measure(runs, iterations, [&](std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      portico_jwt_cache_verify(ccache, kToken.data(), kToken.size(), now_s, cresult);
      bench::do_not_optimize(cresult);
    }
  });
  std::int32_t reason = -1;
  std::int32_t cached = 0;
  expect(portico_jwt_result_reason(cresult, &reason) == PORTICO_OK && reason == PORTICO_JWT_VALID,
         "the C verify accepted the token");
  expect(portico_jwt_result_from_cache(cresult, &cached) == PORTICO_OK && cached == 1,
         "the C verify hit the cache");
  report("jwt verify (HS256, cache hit)", cpp, c);
  portico_jwt_result_free(cresult);
  portico_jwt_cache_free(ccache);
  portico_jwt_verifier_free(cverifier);
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = bench::quick_mode(argc, argv);
  const std::size_t runs = quick ? 3 : 9;
  const std::size_t iterations = quick ? 20'000 : 1'000'000;
  std::printf("capi_bench: median of %zu runs of %zu calls each\n", runs, iterations);
  bench_router(runs, iterations);
  bench_limiter(runs, iterations);
  bench_jwt(runs, iterations / 4);
  return g_failed ? 1 : 0;
}
