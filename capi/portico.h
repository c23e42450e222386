/*
 * portico.h: the C ABI of Portico, the embeddable API gateway.
 *
 * A plain C11 header over the C++ core, for programs in C and for bindings
 * (Python ctypes, Go cgo, Rust extern "C"). One bridge file implements it;
 * no C++ type and no exception crosses this boundary.
 *
 * Conventions (docs/capi.md has the full contract):
 *
 *  - Objects are opaque handles. portico_<object>_new(&out, ...) returns a
 *    portico_status and, on PORTICO_OK, stores a handle the caller owns;
 *    on any other status *out is set to NULL. portico_<object>_free(p)
 *    releases it and accepts NULL. A handle used after it was freed is
 *    reported as PORTICO_ERR_INVALID_HANDLE where that can be detected (each
 *    handle carries a tag that free clears) - never rely on it: it is a
 *    diagnostic, not a guarantee.
 *  - Strings in are pointer + length (const char* s, size_t len); they need
 *    no terminating NUL and are copied when kept. A NULL pointer is allowed
 *    only with len 0. Text (names, paths, JSON, header names) must be UTF-8;
 *    a NUL byte inside text is refused (usually a length that lies). Keys,
 *    tokens, header values and bodies are bytes.
 *  - Strings out are borrowed (const char** s, size_t* len) views that stay
 *    valid as the function documents, or, for `char** out`, a NUL-terminated
 *    copy the caller frees with portico_string_free().
 *  - Every function returns a portico_status (or a documented plain value
 *    for the few that cannot fail). On an error, portico_last_error() holds
 *    a message for the calling thread.
 *  - Times: durations are int64_t nanoseconds. "now" arguments of the
 *    primitives are readings of a monotonic clock in nanoseconds
 *    (portico_now_ns()), or PORTICO_NOW to let the library read it, so that
 *    tests can drive the primitives in simulated time.
 *
 * Threading: every function may be called from any thread. Each object
 * states whether one handle may be used from several threads at once
 * ("thread-safe") or by one thread at a time ("not thread-safe": the caller
 * serialises). Freeing a handle must not race with any other use of it.
 * Callbacks run on the gateway's worker threads (see portico_filter_fn).
 */
#ifndef PORTICO_H
#define PORTICO_H

#include <stddef.h>
#include <stdint.h>

/* Marks the functions of the ABI: the only symbols the shared library
 * exports besides the C++ API's (it is built with hidden visibility). */
#ifndef PORTICO_API
#if defined(_WIN32)
#define PORTICO_API
#else
#define PORTICO_API __attribute__((visibility("default")))
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------- version */

#define PORTICO_VERSION_MAJOR 0
#define PORTICO_VERSION_MINOR 1
#define PORTICO_VERSION_PATCH 0
#define PORTICO_VERSION_STRING "0.1.0"
/* (major << 16) | (minor << 8) | patch: compare with portico_version(). */
#define PORTICO_VERSION \
  ((PORTICO_VERSION_MAJOR << 16) | (PORTICO_VERSION_MINOR << 8) | PORTICO_VERSION_PATCH)

/* The version of the library actually loaded, encoded as PORTICO_VERSION. A
 * program built against this header works with a library of the same major
 * version and a minor version at least PORTICO_VERSION_MINOR. */
PORTICO_API uint32_t portico_version(void);
/* "0.1.0"; static storage. */
PORTICO_API const char* portico_version_string(void);

/* -------------------------------------------------------------- status */

/* Every function's outcome. Values are stable across releases. */
typedef int32_t portico_status;
enum {
  PORTICO_OK = 0,
  PORTICO_ERR_INVALID_ARGUMENT = 1, /* NULL where a value is needed, out of range */
  PORTICO_ERR_INVALID_HANDLE = 2,   /* NULL, freed, or another object's handle */
  PORTICO_ERR_INVALID_UTF8 = 3,     /* text that is not UTF-8 (or holds a NUL) */
  PORTICO_ERR_INVALID_JSON = 4,     /* a document that is not JSON */
  PORTICO_ERR_INVALID_CONFIG = 5,   /* JSON, but not a valid configuration */
  PORTICO_ERR_MALFORMED = 6,        /* text that does not follow its grammar */
  PORTICO_ERR_CONFLICT = 7,         /* clashes with something already present */
  PORTICO_ERR_CAPACITY = 8,         /* a fixed bound would be exceeded */
  PORTICO_ERR_NOT_FOUND = 9,        /* the named item does not exist */
  PORTICO_ERR_IO = 10,              /* a file or socket operation failed */
  PORTICO_ERR_STATE = 11,           /* not allowed now (already started, stopped...) */
  PORTICO_ERR_NO_MEMORY = 12,
  PORTICO_ERR_INTERNAL = 13 /* a bug: please report it with the message */
};

/* "PORTICO_OK", "PORTICO_ERR_INVALID_ARGUMENT", ...; "PORTICO_ERR_UNKNOWN"
 * for a value outside the list. Static storage; never NULL. */
PORTICO_API const char* portico_status_name(portico_status status);

/* The message of the most recent failed call on the calling thread
 * ("routes[3].paths[0]: pattern has an unclosed '{'"); "" when none failed
 * yet. Never NULL. Valid until the next failing call on this thread. */
PORTICO_API const char* portico_last_error(void);

/* Frees a string returned through a `char** out` parameter. NULL is fine. */
PORTICO_API void portico_string_free(char* s);

/* ---------------------------------------------------------------- time */

/* Tells a primitive to read the monotonic clock itself. */
#define PORTICO_NOW INT64_MIN

/* The monotonic clock the primitives use, in nanoseconds. */
PORTICO_API int64_t portico_now_ns(void);

/* ============================================================== router */

/* The route table (docs/router.md): method, host and path pattern
 * ("/users/{id}", "/static/{*rest}") to a route id and captured parameters.
 * Thread-safety: add while no other thread uses the router; after the last
 * add, portico_router_match may run on any number of threads at once (each
 * with its own portico_match). */
typedef struct portico_router portico_router;

/* The outcome of one lookup, reusable across lookups (no allocation per
 * match). Not thread-safe. */
typedef struct portico_match portico_match;

enum {
  PORTICO_MATCH_FOUND = 0,
  PORTICO_MATCH_NOT_FOUND = 1,         /* 404 */
  PORTICO_MATCH_METHOD_NOT_ALLOWED = 2 /* 405 */
};

PORTICO_API portico_status portico_router_new(portico_router** out);
PORTICO_API void portico_router_free(portico_router* router);

/* Adds a route; *out_id counts up from 0 in insertion order.
 * `methods`: comma-separated ("GET,POST"), empty for any method.
 * `host`: "", "*", "api.example.com" or "*.example.com".
 * `name`: for error messages; empty to derive one from the pattern.
 * Errors: PORTICO_ERR_MALFORMED (pattern), PORTICO_ERR_INVALID_ARGUMENT
 * (unknown method), PORTICO_ERR_CONFLICT (same place as another route). */
PORTICO_API portico_status portico_router_add(portico_router* router, const char* name,
                                              size_t name_len, const char* methods,
                                              size_t methods_len, const char* host, size_t host_len,
                                              const char* path, size_t path_len, uint32_t* out_id);

/* The number of routes. */
PORTICO_API portico_status portico_router_size(const portico_router* router, size_t* out);

PORTICO_API portico_status portico_match_new(portico_match** out);
PORTICO_API void portico_match_free(portico_match* match);

/* Looks a request up. `path` is the request path without its query (it is
 * normalised first: "/a/./b" finds "/a/b"). The match copies what it keeps:
 * the arguments may be released on return. A path that fits nothing is not
 * an error (PORTICO_MATCH_NOT_FOUND). The match refers to the router: do not
 * read it after the router is freed. */
PORTICO_API portico_status portico_router_match(const portico_router* router, portico_match* match,
                                                const char* method, size_t method_len,
                                                const char* host, size_t host_len, const char* path,
                                                size_t path_len);

/* PORTICO_MATCH_FOUND, _NOT_FOUND or _METHOD_NOT_ALLOWED. */
PORTICO_API portico_status portico_match_result(const portico_match* match, int32_t* out);
/* The matched route's id; PORTICO_ERR_NOT_FOUND unless the result is FOUND. */
PORTICO_API portico_status portico_match_route(const portico_match* match, uint32_t* out_id);
PORTICO_API portico_status portico_match_param_count(const portico_match* match, size_t* out);
/* Parameter `index` (0 .. count-1): views valid until the next lookup with
 * this match or its free. The unnamed catch-all (slash, two stars) is named "*". */
PORTICO_API portico_status portico_match_param(const portico_match* match, size_t index,
                                               const char** name, size_t* name_len,
                                               const char** value, size_t* value_len);
/* The value of the parameter `name`; PORTICO_ERR_NOT_FOUND when absent. */
PORTICO_API portico_status portico_match_param_by_name(const portico_match* match, const char* name,
                                                       size_t name_len, const char** value,
                                                       size_t* value_len);

/* ========================================================= JWT verifier */

/* Verifies compact JWS tokens (docs/jwt.md) against a key set and a policy.
 * Thread-safe: verify from any number of threads at once. */
typedef struct portico_jwt_verifier portico_jwt_verifier;

/* A cache of verified tokens in front of a verifier: a repeated token skips
 * the signature check. Not thread-safe: one per thread. */
typedef struct portico_jwt_cache portico_jwt_cache;

/* The outcome of one verification, reusable. Not thread-safe. */
typedef struct portico_jwt_result portico_jwt_result;

/* Why a token was refused; PORTICO_JWT_VALID when it was not. Stable. */
enum {
  PORTICO_JWT_VALID = 0,
  PORTICO_JWT_MALFORMED = 1,
  PORTICO_JWT_UNSUPPORTED_ALG = 2,
  PORTICO_JWT_ALG_NOT_ALLOWED = 3,
  PORTICO_JWT_UNKNOWN_KID = 4,
  PORTICO_JWT_BAD_SIGNATURE = 5,
  PORTICO_JWT_EXPIRED = 6,
  PORTICO_JWT_NOT_YET_VALID = 7,
  PORTICO_JWT_BAD_ISSUER = 8,
  PORTICO_JWT_BAD_AUDIENCE = 9,
  PORTICO_JWT_MISSING_CLAIM = 10,
  PORTICO_JWT_TOO_LARGE = 11
};

/* "valid", "malformed", "expired", ...; "unknown" otherwise. Static. */
PORTICO_API const char* portico_jwt_reason_name(int32_t reason);

/* What kind of key portico_jwt_verifier_new_key is given. */
enum {
  PORTICO_JWT_KEY_PEM = 0,  /* an RSA or EC public key in PEM */
  PORTICO_JWT_KEY_HMAC = 1, /* a raw HMAC secret, at least 32 bytes */
  PORTICO_JWT_KEY_JWK = 2   /* one JWK object (JSON) */
};

/* `options_json` (may be empty: the defaults) is an object with optional
 * members: "algorithms" (["RS256", ...]), "issuers", "audiences",
 * "required_claims" (arrays of strings), "leeway" (seconds, default 30),
 * "max_token_bytes" (default 8192). Unknown members are errors.
 *
 * From a JWKS document ({"keys": [...]}): keys that cannot be used are left
 * out; PORTICO_ERR_INVALID_ARGUMENT when none is left. */
PORTICO_API portico_status portico_jwt_verifier_new_jwks(portico_jwt_verifier** out,
                                                         const char* jwks, size_t jwks_len,
                                                         const char* options_json,
                                                         size_t options_len);
/* From one key of `key_kind`; `kid` may be empty. */
PORTICO_API portico_status portico_jwt_verifier_new_key(portico_jwt_verifier** out,
                                                        int32_t key_kind, const char* key,
                                                        size_t key_len, const char* kid,
                                                        size_t kid_len, const char* options_json,
                                                        size_t options_len);
PORTICO_API void portico_jwt_verifier_free(portico_jwt_verifier* verifier);

/* `capacity` verified tokens are kept (0: 4096). The cache holds a
 * reference to the verifier: either may be freed first. */
PORTICO_API portico_status portico_jwt_cache_new(portico_jwt_cache** out,
                                                 const portico_jwt_verifier* verifier,
                                                 size_t capacity);
PORTICO_API void portico_jwt_cache_free(portico_jwt_cache* cache);

PORTICO_API portico_status portico_jwt_result_new(portico_jwt_result** out);
PORTICO_API void portico_jwt_result_free(portico_jwt_result* result);

/* Verifies `token` at `now_unix_seconds` (wall clock; 0 reads the clock)
 * into `result`. Returns PORTICO_OK whenever the verification ran, whether
 * the token was accepted or refused: read the result. */
PORTICO_API portico_status portico_jwt_verify(const portico_jwt_verifier* verifier,
                                              const char* token, size_t token_len,
                                              int64_t now_unix_seconds, portico_jwt_result* result);
/* The same through a cache. */
PORTICO_API portico_status portico_jwt_cache_verify(portico_jwt_cache* cache, const char* token,
                                                    size_t token_len, int64_t now_unix_seconds,
                                                    portico_jwt_result* result);

/* PORTICO_JWT_VALID or the reason of the refusal. */
PORTICO_API portico_status portico_jwt_result_reason(const portico_jwt_result* result,
                                                     int32_t* out_reason);
/* Why it was refused, safe to log (never the token); "" when valid. The
 * views below stay valid until the next verify into this result or its
 * free. */
PORTICO_API portico_status portico_jwt_result_message(const portico_jwt_result* result,
                                                      const char** message, size_t* len);
/* The verified payload as JSON text; PORTICO_ERR_STATE when not valid. */
PORTICO_API portico_status portico_jwt_result_claims(const portico_jwt_result* result,
                                                     const char** json, size_t* len);
/* One string claim ("sub", or a dotted path "realm_access.role");
 * PORTICO_ERR_NOT_FOUND when absent or not a string. */
PORTICO_API portico_status portico_jwt_result_claim_string(const portico_jwt_result* result,
                                                           const char* path, size_t path_len,
                                                           const char** value, size_t* value_len);
/* 1 when the answer came from a cache without a signature check. */
PORTICO_API portico_status portico_jwt_result_from_cache(const portico_jwt_result* result,
                                                         int32_t* out);

/* ========================================================= rate limiter */

/* GCRA per key (docs/limiter.md): `rate` requests per `period_ns` plus
 * `burst` beyond it, for up to `max_keys` keys tracked at once.
 * Thread-safe: check from any number of threads at once. */
typedef struct portico_limiter portico_limiter;

typedef struct portico_limit_decision {
  int32_t allowed;           /* 1: conforms and was counted */
  int32_t cost_out_of_range; /* 1: cost 0 or above limit: can never pass */
  int64_t limit;             /* burst + 1 */
  int64_t remaining;         /* cost-1 requests that would still pass now */
  int64_t retry_after_ns;    /* 0 when allowed */
  int64_t reset_after_ns;    /* until the key has its full allowance back */
} portico_limit_decision;

PORTICO_API portico_status portico_limiter_new(portico_limiter** out, int64_t rate,
                                               int64_t period_ns, int64_t burst, int64_t max_keys);
PORTICO_API void portico_limiter_free(portico_limiter* limiter);
/* Decides and counts a request of `cost` for `key` (bytes) at `now_ns`
 * (portico_now_ns() timeline, or PORTICO_NOW). */
PORTICO_API portico_status portico_limiter_check(portico_limiter* limiter, const char* key,
                                                 size_t key_len, uint32_t cost, int64_t now_ns,
                                                 portico_limit_decision* out);

/* ====================================================== circuit breaker */

/* Stops sending requests to a failing upstream, then probes it
 * (docs/breaker.md). Not thread-safe: one thread at a time. */
typedef struct portico_breaker portico_breaker;

enum { PORTICO_BREAKER_CLOSED = 0, PORTICO_BREAKER_OPEN = 1, PORTICO_BREAKER_HALF_OPEN = 2 };

enum {
  PORTICO_BREAKER_ADMITTED = 0,
  PORTICO_BREAKER_REJECTED_OPEN = 1,
  PORTICO_BREAKER_REJECTED_HALF_OPEN_FULL = 2,
  PORTICO_BREAKER_REJECTED_MAX_IN_FLIGHT = 3,
  PORTICO_BREAKER_REJECTED_MAX_PENDING = 4
};

/* A request's ticket: keep it by value and hand it back exactly once to
 * portico_breaker_success, _failure or _cancel. Opaque contents. */
typedef struct portico_breaker_permit {
  uint64_t opaque[2];
  int32_t admission; /* PORTICO_BREAKER_ADMITTED or why not */
  int32_t reserved;
} portico_breaker_permit;

/* `config_json` (may be empty: the defaults) is an object with optional
 * members as in a service's "breaker" object (docs/config.md):
 * "consecutive_failures", "failure_ratio", "window", "min_requests",
 * "open_duration", "open_duration_multiplier", "max_open_duration",
 * "backoff_reset_after", "half_open_max_probes",
 * "half_open_successes_to_close", "max_in_flight", "max_pending"; durations
 * are strings such as "10s" or "250ms". */
PORTICO_API portico_status portico_breaker_new(portico_breaker** out, const char* config_json,
                                               size_t config_len);
PORTICO_API void portico_breaker_free(portico_breaker* breaker);
PORTICO_API portico_status portico_breaker_acquire(portico_breaker* breaker, int64_t now_ns,
                                                   portico_breaker_permit* out);
PORTICO_API portico_status portico_breaker_success(portico_breaker* breaker,
                                                   const portico_breaker_permit* permit,
                                                   int64_t now_ns);
PORTICO_API portico_status portico_breaker_failure(portico_breaker* breaker,
                                                   const portico_breaker_permit* permit,
                                                   int64_t now_ns);
PORTICO_API portico_status portico_breaker_cancel(portico_breaker* breaker,
                                                  const portico_breaker_permit* permit);
/* PORTICO_BREAKER_CLOSED, _OPEN or _HALF_OPEN at `now_ns`. */
PORTICO_API portico_status portico_breaker_state(portico_breaker* breaker, int64_t now_ns,
                                                 int32_t* out_state);
/* Time left in the open period; 0 unless open. */
PORTICO_API portico_status portico_breaker_retry_after(const portico_breaker* breaker,
                                                       int64_t now_ns, int64_t* out_ns);
/* "closed", "open", "half_open"; "unknown" otherwise. Static. */
PORTICO_API const char* portico_breaker_state_name(int32_t state);

/* ============================================================= balancer */

/* Chooses an endpoint of a pool per request (docs/balancer.md). Not
 * thread-safe: one thread at a time. */
typedef struct portico_balancer portico_balancer;

/* Names one endpoint; stale once the endpoint is removed. */
typedef struct portico_endpoint {
  uint32_t slot;
  uint32_t generation;
} portico_endpoint;

enum { PORTICO_OUTCOME_SUCCESS = 0, PORTICO_OUTCOME_FAILURE = 1, PORTICO_OUTCOME_CANCELLED = 2 };

/* `config_json`: {"policy": "round_robin" | "weighted_round_robin" |
 * "least_request" | "power_of_two_choices" | "peak_ewma" | "maglev",
 * "endpoints": [{"id": "10.0.0.1:80", "weight": 1}, ...], "seed": 0,
 * "panic_threshold": 0.5}; only "endpoints" is required. */
PORTICO_API portico_status portico_balancer_new(portico_balancer** out, const char* config_json,
                                                size_t config_len);
PORTICO_API void portico_balancer_free(portico_balancer* balancer);
/* Chooses an endpoint; `hash` is maglev's affinity key (see
 * portico_hash_key), ignored by the other policies. PORTICO_ERR_NOT_FOUND
 * when none is available (panic mode off). */
PORTICO_API portico_status portico_balancer_pick(portico_balancer* balancer, uint64_t hash,
                                                 int64_t now_ns, portico_endpoint* out);
/* The endpoint's id: a view valid until it is removed or the balancer is
 * freed. PORTICO_ERR_NOT_FOUND for a stale endpoint. */
PORTICO_API portico_status portico_balancer_endpoint_id(const portico_balancer* balancer,
                                                        portico_endpoint endpoint, const char** id,
                                                        size_t* id_len);
PORTICO_API portico_status portico_balancer_find(const portico_balancer* balancer, const char* id,
                                                 size_t id_len, portico_endpoint* out);
/* Request accounting (least_request, power_of_two_choices, peak_ewma) and
 * outlier detection: start once per request sent, end once per start. */
PORTICO_API portico_status portico_balancer_start(portico_balancer* balancer,
                                                  portico_endpoint endpoint);
PORTICO_API portico_status portico_balancer_end(portico_balancer* balancer,
                                                portico_endpoint endpoint, int64_t latency_ns,
                                                int32_t outcome, int64_t now_ns);
PORTICO_API portico_status portico_balancer_set_healthy(portico_balancer* balancer,
                                                        portico_endpoint endpoint, int32_t healthy);
PORTICO_API portico_status portico_balancer_add(portico_balancer* balancer, const char* id,
                                                size_t id_len, uint32_t weight,
                                                portico_endpoint* out);
PORTICO_API portico_status portico_balancer_remove(portico_balancer* balancer, const char* id,
                                                   size_t id_len);
/* A stable 64-bit hash of an affinity key, for maglev. Cannot fail. */
PORTICO_API uint64_t portico_hash_key(const char* key, size_t key_len);

/* ============================================== filters and handlers */

/* One request as a filter or handler callback sees it. Valid only during
 * the callback that received it, and only on that thread: every function
 * called with it afterwards returns PORTICO_ERR_INVALID_HANDLE. Views
 * returned by its getters are valid until the callback returns; copy what
 * must be kept. Nothing here allocates per call unless it stores an edit. */
typedef struct portico_request portico_request;

/* What a filter callback returns. Any other value is a bug in the callback:
 * the request is answered 500 and the error is reported (see
 * portico_gateway_options_set_error_callback). */
enum {
  PORTICO_FILTER_CONTINUE = 0, /* go on with the next filter / the upstream */
  PORTICO_FILTER_RESPOND = 1   /* answer with what portico_request_respond set */
};

/* A filter phase. Called on a gateway worker thread, concurrently from
 * several workers for different requests: `user` must tolerate that. A
 * callback that blocks stalls every connection of its worker (other workers
 * go on): keep it short. It must not call the gateway functions
 * (portico_gateway_*) except portico_gateway_request_stop. */
typedef int32_t (*portico_filter_fn)(portico_request* request, void* user);

/* An in-process handler: serves a route as its upstream. Must call
 * portico_request_respond before returning PORTICO_OK; any other return
 * value, or no response, answers 500 and reports the error. Same thread
 * rules as a filter. */
typedef int32_t (*portico_handler_fn)(portico_request* request, void* user);

/* A header by pointer + length, for local answers. */
typedef struct portico_header {
  const char* name;
  size_t name_len;
  const char* value;
  size_t value_len;
} portico_header;

/* --- reading the request (request and response phases, handlers) */
PORTICO_API portico_status portico_request_method(const portico_request* request,
                                                  const char** value, size_t* len);
/* The normalised path without the query (the original, not a rewrite). */
PORTICO_API portico_status portico_request_path(const portico_request* request, const char** value,
                                                size_t* len);
/* The raw query without '?'; "" when none. */
PORTICO_API portico_status portico_request_query(const portico_request* request, const char** value,
                                                 size_t* len);
/* The first header of that name (case-insensitive), with the edits of
 * earlier filters applied; PORTICO_ERR_NOT_FOUND when absent. */
PORTICO_API portico_status portico_request_header(const portico_request* request, const char* name,
                                                  size_t name_len, const char** value,
                                                  size_t* value_len);
/* The headers as received (edits not applied), in arrival order. */
PORTICO_API portico_status portico_request_header_count(const portico_request* request,
                                                        size_t* out);
PORTICO_API portico_status portico_request_header_at(const portico_request* request, size_t index,
                                                     const char** name, size_t* name_len,
                                                     const char** value, size_t* value_len);
/* The client's address ("127.0.0.1"); "" in a handler. */
PORTICO_API portico_status portico_request_client_address(const portico_request* request,
                                                          const char** value, size_t* len);
/* A path parameter of the matched route ("{id}"), in filters and handlers
 * alike; PORTICO_ERR_NOT_FOUND when the route has none of that name. */
PORTICO_API portico_status portico_request_param(const portico_request* request, const char* name,
                                                 size_t name_len, const char** value,
                                                 size_t* value_len);
/* The claims of the JWT that the jwt-auth policy verified for this request,
 * as JSON; PORTICO_ERR_NOT_FOUND when none was (or in a handler). */
PORTICO_API portico_status portico_request_claims(const portico_request* request, const char** json,
                                                  size_t* len);
/* The consumer an authentication policy resolved; PORTICO_ERR_NOT_FOUND. */
PORTICO_API portico_status portico_request_consumer(const portico_request* request,
                                                    const char** value, size_t* len);
/* The "config" object of the plugin entry this filter instance was built
 * from, as JSON text ("{}" when the entry had none). Filters only. */
PORTICO_API portico_status portico_request_plugin_config(const portico_request* request,
                                                         const char** json, size_t* len);
/* The request body (handlers only; filters see no body). */
PORTICO_API portico_status portico_request_body(const portico_request* request, const char** value,
                                                size_t* len);

/* --- editing the request sent upstream (request phase only). Names and
 * values are copied. Hop-by-hop and framing headers cannot be set
 * (PORTICO_ERR_INVALID_ARGUMENT), nor values holding CR, LF or NUL. */
PORTICO_API portico_status portico_request_set_header(portico_request* request, const char* name,
                                                      size_t name_len, const char* value,
                                                      size_t value_len);
PORTICO_API portico_status portico_request_remove_header(portico_request* request, const char* name,
                                                         size_t name_len);
/* Replaces the path and query sent upstream ("/v2/items?id=3"). */
PORTICO_API portico_status portico_request_set_path(portico_request* request,
                                                    const char* path_and_query, size_t len);

/* --- the response (response phase only) */
PORTICO_API portico_status portico_request_response_status(const portico_request* request,
                                                           int32_t* out);
/* Replaces the status sent to the client (200..599, else
 * PORTICO_ERR_INVALID_ARGUMENT). A binding whose callback failed in the
 * response phase reports the failure itself, sets 500 here and returns
 * PORTICO_FILTER_CONTINUE, so the failure is reported once. */
PORTICO_API portico_status portico_request_set_response_status(portico_request* request,
                                                               int32_t status);
PORTICO_API portico_status portico_request_response_header(const portico_request* request,
                                                           const char* name, size_t name_len,
                                                           const char** value, size_t* value_len);
PORTICO_API portico_status portico_request_set_response_header(portico_request* request,
                                                               const char* name, size_t name_len,
                                                               const char* value, size_t value_len);
PORTICO_API portico_status portico_request_remove_response_header(portico_request* request,
                                                                  const char* name,
                                                                  size_t name_len);

/* --- answering: from a filter's request phase (then return
 * PORTICO_FILTER_RESPOND) or from a handler (then return PORTICO_OK).
 * Status 100..599 (a handler: 200..599); Content-Length is added; headers
 * and body are copied. Once per callback. */
PORTICO_API portico_status portico_request_respond(portico_request* request, int32_t status,
                                                   const portico_header* headers,
                                                   size_t header_count, const char* body,
                                                   size_t body_len);

/* ============================================================= gateway */

/* What a gateway is built with besides its configuration document: the
 * host's filters and handlers by name, and port overrides. Copied by
 * portico_gateway_new: may be freed right after. Not thread-safe. */
typedef struct portico_gateway_options portico_gateway_options;

/* A configured gateway (docs/gateway.md): listeners with worker threads, an
 * admin listener, hot reload. Thread-safe: every function may be called
 * from any thread but the gateway's own (its callbacks), except
 * portico_gateway_request_stop, which may be called from anywhere. */
typedef struct portico_gateway portico_gateway;

/* Called when a callback misbehaves (bad return value, no response from a
 * handler, a failed edit): `message` names the filter or handler and what
 * went wrong. On a worker thread; must not block. Without one, the message
 * goes to standard error. */
typedef void (*portico_error_fn)(const char* message, size_t len, void* user);

PORTICO_API portico_status portico_gateway_options_new(portico_gateway_options** out);
PORTICO_API void portico_gateway_options_free(portico_gateway_options* options);

/* Registers a filter as a plugin named `name`, usable in every "plugins"
 * list of the configuration like a built-in policy:
 *   {"name": "my-filter", "config": {...anything...}}
 * Each plugin entry makes one filter instance; its "config" is readable
 * from the callbacks (portico_request_plugin_config). `on_request` runs in
 * the request phase, `on_response` in the response phase (either may be
 * NULL, not both). `priority` orders it among the built-in policies (higher
 * runs earlier in the request phase; the built-ins use 300..1000).
 * `user` is passed back as is and must stay valid until every gateway built
 * with these options is freed. The name may not be a built-in's
 * (PORTICO_ERR_CONFLICT). */
PORTICO_API portico_status portico_gateway_options_add_filter(
    portico_gateway_options* options, const char* name, size_t name_len, int32_t priority,
    portico_filter_fn on_request, portico_filter_fn on_response, void* user);

/* Registers an in-process handler: a service of the configuration that
 * says {"name": "svc", "handler": "name"} instead of "urls"/"endpoints" is
 * served by `fn`, which sees the whole request body (up to the route's
 * max_body_bytes). `user` as for filters. */
PORTICO_API portico_status portico_gateway_options_add_handler(portico_gateway_options* options,
                                                               const char* name, size_t name_len,
                                                               portico_handler_fn fn, void* user);

/* Replaces the port of listener `index` (0 picks an ephemeral port). */
PORTICO_API portico_status portico_gateway_options_set_port(portico_gateway_options* options,
                                                            size_t index, uint16_t port);
/* Replaces the admin listener's port (0: ephemeral). */
PORTICO_API portico_status portico_gateway_options_set_admin_port(portico_gateway_options* options,
                                                                  uint16_t port);
PORTICO_API portico_status portico_gateway_options_set_error_callback(
    portico_gateway_options* options, portico_error_fn fn, void* user);

/* Checks a document (with the filters and handlers of `options`, which may
 * be NULL) without binding anything. PORTICO_ERR_INVALID_JSON or
 * PORTICO_ERR_INVALID_CONFIG with every problem, one per line, in
 * portico_last_error(). */
PORTICO_API portico_status portico_gateway_check(const char* config_json, size_t config_len,
                                                 const portico_gateway_options* options);

/* Reads and validates the configuration; nothing is bound or started yet.
 * `options` may be NULL. Errors as portico_gateway_check. */
PORTICO_API portico_status portico_gateway_new(portico_gateway** out, const char* config_json,
                                               size_t config_len,
                                               const portico_gateway_options* options);
/* The same from a file, which portico_gateway_reload_file reads again. */
PORTICO_API portico_status portico_gateway_new_from_file(portico_gateway** out, const char* path,
                                                         size_t path_len,
                                                         const portico_gateway_options* options);
/* Stops (without drain) if still running, then frees. Not from a callback. */
PORTICO_API void portico_gateway_free(portico_gateway* gateway);

/* Builds every policy, binds every listener and serves on the gateway's own
 * threads; returns once it is serving. PORTICO_ERR_IO when a port cannot be
 * bound, PORTICO_ERR_INVALID_CONFIG when a policy refuses its config,
 * PORTICO_ERR_STATE when already started. */
PORTICO_API portico_status portico_gateway_start(portico_gateway* gateway);
/* Starts (unless started) and blocks the calling thread until the gateway
 * is stopped (portico_gateway_stop or portico_gateway_request_stop from
 * another thread, a callback or a signal-watching thread); then returns
 * PORTICO_OK. For programs whose main thread has nothing else to do. */
PORTICO_API portico_status portico_gateway_run(portico_gateway* gateway);
/* Swaps in a new document atomically; requests in flight finish on the
 * old one. An invalid document leaves the running one in place. */
PORTICO_API portico_status portico_gateway_reload(portico_gateway* gateway, const char* config_json,
                                                  size_t config_len);
/* Reloads the file given to portico_gateway_new_from_file. */
PORTICO_API portico_status portico_gateway_reload_file(portico_gateway* gateway);
/* Graceful stop: stops accepting, lets requests in flight finish for up to
 * `drain_ns`, closes everything and joins the threads. Idempotent. Not from
 * a callback (PORTICO_ERR_STATE): use portico_gateway_request_stop. */
PORTICO_API portico_status portico_gateway_stop(portico_gateway* gateway, int64_t drain_ns);
/* Asks for a stop (with the configured drain timeout) and returns at once;
 * portico_gateway_run then returns. Safe from any thread and callback. */
PORTICO_API portico_status portico_gateway_request_stop(portico_gateway* gateway);
/* The Prometheus text of GET /metrics; free with portico_string_free. */
PORTICO_API portico_status portico_gateway_metrics(portico_gateway* gateway, char** out,
                                                   size_t* out_len);
/* The bound port of listener `index` (after start); PORTICO_ERR_STATE
 * before start, PORTICO_ERR_NOT_FOUND for no such listener. */
PORTICO_API portico_status portico_gateway_port(const portico_gateway* gateway, size_t index,
                                                uint16_t* out);
/* The admin listener's port; 0 when it is disabled. */
PORTICO_API portico_status portico_gateway_admin_port(const portico_gateway* gateway,
                                                      uint16_t* out);
/* The configuration generation now serving (0 after start, +1 per reload). */
PORTICO_API portico_status portico_gateway_generation(const portico_gateway* gateway,
                                                      uint64_t* out);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* PORTICO_H */
