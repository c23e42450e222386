/* Each primitive through the C ABI on its own: router, JWT verifier and
 * cache, rate limiter, circuit breaker, balancer; and the basics (version,
 * status names, last error). */
#include <stdint.h>
#include <stdlib.h>

#include "check.h"

#define SECRET "0123456789abcdef0123456789abcdef"
/* HS256 with SECRET, kid "k1": sub alice, iss https://issuer.example, role
 * admin, exp 2100-01-01. */
#define GOOD_TOKEN                                                                       \
  "eyJhbGciOiJIUzI1NiIsImtpZCI6ImsxIiwidHlwIjoiSldUIn0."                                 \
  "eyJzdWIiOiJhbGljZSIsImlzcyI6Imh0dHBzOi8vaXNzdWVyLmV4YW1wbGUiLCJleHAiOjQxMDI0NDQ4MDAs" \
  "InJvbGUiOiJhZG1pbiJ9.fEpvC1Em4hR-Os7AeEpQmz0_XRnbnQBebeoqCvyPxfc"
/* The same key, sub bob, exp 2001-09-09. */
#define EXPIRED_TOKEN                                                                        \
  "eyJhbGciOiJIUzI1NiIsImtpZCI6ImsxIiwidHlwIjoiSldUIn0.eyJzdWIiOiJib2IiLCJleHAiOjEwMDAwMDAw" \
  "MDB9.2vc2qsq4L7Ga3-gCEqtcLeIgGcrvMMg7j0_N5UwQdsw"

static const int64_t kSecond = 1000000000;

static void test_basics(void) {
  CHECK(portico_version() == PORTICO_VERSION);
  CHECK(strcmp(portico_version_string(), PORTICO_VERSION_STRING) == 0);
  CHECK(strcmp(portico_status_name(PORTICO_OK), "PORTICO_OK") == 0);
  CHECK(strcmp(portico_status_name(PORTICO_ERR_INVALID_JSON), "PORTICO_ERR_INVALID_JSON") == 0);
  CHECK(strcmp(portico_status_name(12345), "PORTICO_ERR_UNKNOWN") == 0);
  CHECK(portico_last_error() != NULL);
  CHECK(portico_now_ns() > 0);
}

static void test_router(void) {
  portico_router* r = NULL;
  portico_match* m = NULL;
  uint32_t id = 99;
  int32_t result = -1;
  const char *name, *value;
  size_t name_len, value_len, count = 0;

  CHECK_OK(portico_router_new(&r));
  CHECK_OK(portico_match_new(&m));
  CHECK_OK(portico_router_add(r, S("user"), S("GET"), S(""), S("/users/{id}"), &id));
  CHECK(id == 0);
  CHECK_OK(portico_router_add(r, S("files"), S("GET, PUT"), S(""), S("/files/{*rest}"), &id));
  CHECK(id == 1);
  CHECK_OK(portico_router_add(r, S(""), S(""), S("api.example.com"), S("/"), &id));
  CHECK(id == 2);
  CHECK_OK(portico_router_size(r, &count));
  CHECK(count == 3);

  /* A conflicting route and a malformed pattern say why. */
  CHECK_STATUS(PORTICO_ERR_CONFLICT,
               portico_router_add(r, S("again"), S("GET"), S(""), S("/users/{id}"), &id));
  CHECK_ERROR_SAYS("user");
  CHECK_STATUS(PORTICO_ERR_MALFORMED,
               portico_router_add(r, S("bad"), S(""), S(""), S("/a/{open"), &id));
  CHECK_STATUS(PORTICO_ERR_INVALID_ARGUMENT,
               portico_router_add(r, S("m"), S("GET,FETCH"), S(""), S("/m"), &id));
  CHECK_ERROR_SAYS("FETCH");

  CHECK_OK(portico_router_match(r, m, S("GET"), S("x"), S("/users/42")));
  CHECK_OK(portico_match_result(m, &result));
  CHECK(result == PORTICO_MATCH_FOUND);
  CHECK_OK(portico_match_route(m, &id));
  CHECK(id == 0);
  CHECK_OK(portico_match_param_count(m, &count));
  CHECK(count == 1);
  CHECK_OK(portico_match_param(m, 0, &name, &name_len, &value, &value_len));
  CHECK(view_is(name, name_len, "id"));
  CHECK(view_is(value, value_len, "42"));
  CHECK_STATUS(PORTICO_ERR_NOT_FOUND,
               portico_match_param(m, 1, &name, &name_len, &value, &value_len));

  /* The path is normalised and copied: the caller's buffer may go. */
  {
    char* path = malloc(32);
    strcpy(path, "/files/./a/b%2Ec");
    CHECK_OK(portico_router_match(r, m, S("PUT"), S(""), path, strlen(path)));
    memset(path, 'x', 16);
    free(path);
  }
  CHECK_OK(portico_match_route(m, &id));
  CHECK(id == 1);
  CHECK_OK(portico_match_param_by_name(m, S("rest"), &value, &value_len));
  CHECK(view_is(value, value_len, "a/b.c"));

  CHECK_OK(portico_router_match(r, m, S("DELETE"), S(""), S("/users/1")));
  CHECK_OK(portico_match_result(m, &result));
  CHECK(result == PORTICO_MATCH_METHOD_NOT_ALLOWED);
  CHECK_STATUS(PORTICO_ERR_NOT_FOUND, portico_match_route(m, &id));

  CHECK_OK(portico_router_match(r, m, S("GET"), S("other.example.com"), S("/")));
  CHECK_OK(portico_match_result(m, &result));
  CHECK(result == PORTICO_MATCH_NOT_FOUND);
  CHECK_OK(portico_router_match(r, m, S("GET"), S("API.example.com:8080"), S("/")));
  CHECK_OK(portico_match_route(m, &id));
  CHECK(id == 2);

  /* A path that is not a path is an error, not a miss. */
  CHECK_STATUS(PORTICO_ERR_MALFORMED, portico_router_match(r, m, S("GET"), S(""), S("no-slash")));
  /* Paths are text here as in portico_router_add. */
  CHECK_STATUS(PORTICO_ERR_INVALID_UTF8,
               portico_router_match(r, m, S("GET"), S(""), S("/users/\xff")));
  CHECK_STATUS(PORTICO_ERR_INVALID_UTF8,
               portico_router_match(r, m, S("GET"), S(""), "/users/4\0002", 10));
  CHECK_ERROR_SAYS("NUL byte at offset 8");
  /* Text, but not a path: a byte the normaliser refuses. */
  CHECK_STATUS(PORTICO_ERR_MALFORMED,
               portico_router_match(r, m, S("GET"), S(""), S("/caf\xc3\xa9")));

  portico_match_free(m);
  portico_router_free(r);
}

static void test_jwt(void) {
  portico_jwt_verifier* v = NULL;
  portico_jwt_cache* cache = NULL;
  portico_jwt_result* res = NULL;
  int32_t reason = -1, cached = -1;
  const char* text;
  size_t len;

  CHECK_OK(portico_jwt_verifier_new_key(&v, PORTICO_JWT_KEY_HMAC, S(SECRET), S("k1"),
                                        S("{\"algorithms\": [\"HS256\"], "
                                          "\"issuers\": [\"https://issuer.example\"]}")));
  CHECK_OK(portico_jwt_result_new(&res));

  CHECK_STATUS(PORTICO_ERR_STATE, portico_jwt_result_reason(res, &reason));
  CHECK_OK(portico_jwt_verify(v, S(GOOD_TOKEN), 0, res));
  CHECK_OK(portico_jwt_result_reason(res, &reason));
  CHECK(reason == PORTICO_JWT_VALID);
  CHECK_OK(portico_jwt_result_claims(res, &text, &len));
  CHECK(len > 0 && memchr(text, '{', len) == text);
  CHECK_OK(portico_jwt_result_claim_string(res, S("role"), &text, &len));
  CHECK(view_is(text, len, "admin"));
  CHECK_STATUS(PORTICO_ERR_NOT_FOUND, portico_jwt_result_claim_string(res, S("nope"), &text, &len));

  /* With issuers configured, "iss" is required: bob's token has none. */
  CHECK_OK(portico_jwt_verify(v, S(EXPIRED_TOKEN), 999999000, res));
  CHECK_OK(portico_jwt_result_reason(res, &reason));
  CHECK(reason == PORTICO_JWT_MISSING_CLAIM);
  CHECK_OK(portico_jwt_result_message(res, &text, &len));
  CHECK(len > 0 && memchr(text, 'i', len) != NULL);
  CHECK_STATUS(PORTICO_ERR_STATE, portico_jwt_result_claims(res, &text, &len));
  {
    /* Without: valid before its exp, expired after. */
    portico_jwt_verifier* any_issuer = NULL;
    CHECK_OK(portico_jwt_verifier_new_key(&any_issuer, PORTICO_JWT_KEY_HMAC, S(SECRET), S("k1"),
                                          NULL, 0));
    CHECK_OK(portico_jwt_verify(any_issuer, S(EXPIRED_TOKEN), 999999000, res));
    CHECK_OK(portico_jwt_result_reason(res, &reason));
    CHECK(reason == PORTICO_JWT_VALID);
    CHECK_OK(portico_jwt_verify(any_issuer, S(EXPIRED_TOKEN), 0, res));
    CHECK_OK(portico_jwt_result_reason(res, &reason));
    CHECK(reason == PORTICO_JWT_EXPIRED);
    CHECK(strcmp(portico_jwt_reason_name(reason), "expired") == 0);
    portico_jwt_verifier_free(any_issuer);
  }

  CHECK_OK(portico_jwt_verify(v, S("not.a.token"), 0, res));
  CHECK_OK(portico_jwt_result_reason(res, &reason));
  CHECK(reason == PORTICO_JWT_MALFORMED);

  /* Through a cache: the second time without a signature check. */
  CHECK_OK(portico_jwt_cache_new(&cache, v, 0));
  portico_jwt_verifier_free(v); /* the cache keeps what it needs */
  CHECK_OK(portico_jwt_cache_verify(cache, S(GOOD_TOKEN), 0, res));
  CHECK_OK(portico_jwt_result_from_cache(res, &cached));
  CHECK(cached == 0);
  CHECK_OK(portico_jwt_cache_verify(cache, S(GOOD_TOKEN), 0, res));
  CHECK_OK(portico_jwt_result_from_cache(res, &cached));
  CHECK(cached == 1);
  CHECK_OK(portico_jwt_result_reason(res, &reason));
  CHECK(reason == PORTICO_JWT_VALID);
  portico_jwt_cache_free(cache);

  /* A JWKS with the same secret ("k" is base64url of SECRET). */
  CHECK_OK(portico_jwt_verifier_new_jwks(
      &v,
      S("{\"keys\": [{\"kty\": \"oct\", \"kid\": \"k1\", \"alg\": \"HS256\", "
        "\"k\": \"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY\"}]}"),
      S("")));
  CHECK_OK(portico_jwt_verify(v, S(GOOD_TOKEN), 0, res));
  CHECK_OK(portico_jwt_result_reason(res, &reason));
  CHECK(reason == PORTICO_JWT_VALID);
  portico_jwt_verifier_free(v);

  /* Bad keys and options are refused with the reason. */
  v = (portico_jwt_verifier*)&reason; /* *out is reset on failure */
  CHECK_STATUS(PORTICO_ERR_INVALID_ARGUMENT,
               portico_jwt_verifier_new_key(&v, PORTICO_JWT_KEY_HMAC, S("short"), S(""), S("")));
  CHECK(v == NULL);
  CHECK_STATUS(PORTICO_ERR_INVALID_CONFIG,
               portico_jwt_verifier_new_key(&v, PORTICO_JWT_KEY_HMAC, S(SECRET), S(""),
                                            S("{\"algorithms\": [\"none\"]}")));
  CHECK_ERROR_SAYS("algorithms");
  CHECK_STATUS(PORTICO_ERR_INVALID_ARGUMENT,
               portico_jwt_verifier_new_jwks(&v, S("{\"keys\": [{\"kty\": \"oct\"}]}"), S("")));
  CHECK_ERROR_SAYS("keys[0]");
  CHECK_STATUS(PORTICO_ERR_INVALID_ARGUMENT,
               portico_jwt_verifier_new_key(&v, 7, S(SECRET), S(""), S("")));
  portico_jwt_result_free(res);
}

static void test_limiter(void) {
  portico_limiter* l = NULL;
  portico_limit_decision d;
  const int64_t t0 = 1000 * kSecond;
  int i;

  /* 10 per second, burst 2: three at once, then one every 100 ms. */
  CHECK_OK(portico_limiter_new(&l, 10, kSecond, 2, 1000));
  for (i = 0; i < 3; ++i) {
    CHECK_OK(portico_limiter_check(l, S("alice"), 1, t0, &d));
    CHECK(d.allowed == 1);
    CHECK(d.limit == 3);
    CHECK(d.remaining == 2 - i);
  }
  CHECK_OK(portico_limiter_check(l, S("alice"), 1, t0, &d));
  CHECK(d.allowed == 0);
  CHECK(d.retry_after_ns == 100000000);
  CHECK_OK(portico_limiter_check(l, S("bob"), 1, t0, &d));
  CHECK(d.allowed == 1); /* keys are separate */
  CHECK_OK(portico_limiter_check(l, S("alice"), 1, t0 + 100000000, &d));
  CHECK(d.allowed == 1);
  CHECK_OK(portico_limiter_check(l, S("alice"), 4, t0 + 100 * kSecond, &d));
  CHECK(d.allowed == 0 && d.cost_out_of_range == 1);
  CHECK_OK(portico_limiter_check(l, S("carol"), 1, PORTICO_NOW, &d));
  CHECK(d.allowed == 1);
  portico_limiter_free(l);

  CHECK_STATUS(PORTICO_ERR_INVALID_ARGUMENT, portico_limiter_new(&l, 0, kSecond, 0, 10));
  CHECK_ERROR_SAYS("rate");
  CHECK(l == NULL);
}

static void test_breaker(void) {
  portico_breaker* b = NULL;
  portico_breaker_permit p;
  int32_t state = -1;
  int64_t retry = -1;
  const int64_t t0 = 50 * kSecond;
  int i;

  CHECK_OK(portico_breaker_new(&b, S("{\"consecutive_failures\": 2, \"failure_ratio\": 0, "
                                     "\"open_duration\": \"5s\"}")));
  for (i = 0; i < 2; ++i) {
    CHECK_OK(portico_breaker_acquire(b, t0, &p));
    CHECK(p.admission == PORTICO_BREAKER_ADMITTED);
    CHECK_OK(portico_breaker_failure(b, &p, t0));
  }
  CHECK_OK(portico_breaker_state(b, t0, &state));
  CHECK(state == PORTICO_BREAKER_OPEN);
  CHECK(strcmp(portico_breaker_state_name(state), "open") == 0);
  CHECK_OK(portico_breaker_acquire(b, t0 + kSecond, &p));
  CHECK(p.admission == PORTICO_BREAKER_REJECTED_OPEN);
  CHECK_OK(portico_breaker_retry_after(b, t0 + kSecond, &retry));
  CHECK(retry == 4 * kSecond);
  /* After the open period a probe goes through and closes it. */
  CHECK_OK(portico_breaker_acquire(b, t0 + 6 * kSecond, &p));
  CHECK(p.admission == PORTICO_BREAKER_ADMITTED);
  CHECK_OK(portico_breaker_state(b, t0 + 6 * kSecond, &state));
  CHECK(state == PORTICO_BREAKER_HALF_OPEN);
  CHECK_OK(portico_breaker_success(b, &p, t0 + 6 * kSecond));
  CHECK_OK(portico_breaker_state(b, t0 + 6 * kSecond, &state));
  CHECK(state == PORTICO_BREAKER_CLOSED);
  CHECK_OK(portico_breaker_acquire(b, t0 + 7 * kSecond, &p));
  CHECK_OK(portico_breaker_cancel(b, &p));
  /* A forged permit is refused. */
  p.admission = 3;
  CHECK_STATUS(PORTICO_ERR_INVALID_ARGUMENT, portico_breaker_success(b, &p, t0));
  portico_breaker_free(b);

  CHECK_OK(portico_breaker_new(&b, S("")));
  portico_breaker_free(b);
  CHECK_STATUS(PORTICO_ERR_INVALID_CONFIG,
               portico_breaker_new(&b, S("{\"failure_ratio\": 2, \"windw\": \"1s\"}")));
  CHECK_ERROR_SAYS("config.failure_ratio");
  CHECK_ERROR_SAYS("windw");
}

static void test_balancer(void) {
  portico_balancer* b = NULL;
  portico_endpoint e, a_ep;
  const char* id;
  size_t len;
  int seen_a = 0, seen_b = 0, i;

  CHECK_OK(portico_balancer_new(&b, S("{\"policy\": \"round_robin\", \"endpoints\": "
                                      "[{\"id\": \"a:80\"}, {\"id\": \"b:80\", \"weight\": 2}]}")));
  for (i = 0; i < 4; ++i) {
    CHECK_OK(portico_balancer_pick(b, 0, PORTICO_NOW, &e));
    CHECK_OK(portico_balancer_endpoint_id(b, e, &id, &len));
    if (view_is(id, len, "a:80")) ++seen_a;
    if (view_is(id, len, "b:80")) ++seen_b;
    CHECK_OK(portico_balancer_start(b, e));
    CHECK_OK(portico_balancer_end(b, e, 1000000, PORTICO_OUTCOME_SUCCESS, PORTICO_NOW));
  }
  CHECK(seen_a == 2 && seen_b == 2);

  /* An unhealthy endpoint is skipped (panic threshold 0: no panic mode). */
  portico_balancer_free(b);
  CHECK_OK(portico_balancer_new(&b, S("{\"endpoints\": [{\"id\": \"a:80\"}, {\"id\": \"b:80\"}],"
                                      " \"panic_threshold\": 0}")));
  CHECK_OK(portico_balancer_find(b, S("a:80"), &a_ep));
  CHECK_OK(portico_balancer_set_healthy(b, a_ep, 0));
  for (i = 0; i < 3; ++i) {
    CHECK_OK(portico_balancer_pick(b, 0, PORTICO_NOW, &e));
    CHECK_OK(portico_balancer_endpoint_id(b, e, &id, &len));
    CHECK(view_is(id, len, "b:80"));
  }
  CHECK_OK(portico_balancer_add(b, S("c:80"), 1, &e));
  CHECK_STATUS(PORTICO_ERR_CONFLICT, portico_balancer_add(b, S("c:80"), 1, &e));
  CHECK_OK(portico_balancer_remove(b, S("a:80")));
  CHECK_STATUS(PORTICO_ERR_NOT_FOUND, portico_balancer_start(b, a_ep)); /* stale */
  CHECK_STATUS(PORTICO_ERR_NOT_FOUND, portico_balancer_remove(b, S("a:80")));
  CHECK_STATUS(PORTICO_ERR_INVALID_ARGUMENT, portico_balancer_end(b, e, 0, 42, PORTICO_NOW));
  portico_balancer_free(b);

  CHECK(portico_hash_key(S("user-1")) == portico_hash_key(S("user-1")));
  CHECK(portico_hash_key(S("user-1")) != portico_hash_key(S("user-2")));

  CHECK_STATUS(PORTICO_ERR_INVALID_CONFIG,
               portico_balancer_new(&b, S("{\"policy\": \"fastest\", \"endpoints\": []}")));
  CHECK_ERROR_SAYS("config.policy");
  CHECK_STATUS(PORTICO_ERR_INVALID_CONFIG, portico_balancer_new(&b, S("{}")));
  CHECK_ERROR_SAYS("endpoints");
}

int main(void) {
  test_basics();
  test_router();
  test_jwt();
  test_limiter();
  test_breaker();
  test_balancer();
  return check_report("capi primitives");
}
