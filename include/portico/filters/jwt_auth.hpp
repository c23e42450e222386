// jwt-auth: bearer tokens (JWS compact, RFC 7519) verified at the gateway.
//
// The token is read from `Authorization: Bearer <token>`, and optionally
// from a query parameter or a cookie. A request with more than one token
// (two Authorization headers, a header and a parameter...) is refused, so
// the gateway and the upstream cannot disagree on which one counts. The
// token is checked by jwt::Verifier (signature, algorithm allow-list,
// issuer, audience, exp/nbf with leeway, required claims, size) through a
// jwt::TokenCache per worker, so a repeated token skips the signature.
//
// Keys come from an inline JWKS document, PEM public keys, a file (JWKS or
// PEM) read once, or a JWKS URL. A URL is fetched by the gateway itself
// over HTTP or HTTPS on the control loop (a loop on a thread of the
// gateway's own),
// at start and then every `jwks_refresh_interval`; a fetch that fails (the
// server is down, answers garbage, hangs past `jwks_timeout`) keeps the
// last good set. A token whose `kid` no key has triggers one refetch (at
// most one per `jwks_refetch_interval`, so a flood of made-up kids cannot
// turn into a flood of fetches): key rotation at the identity provider
// costs the first requests with the new key a short wait instead of a wave
// of 401s: the request pauses (on its own loop, RequestContext::loop()) until
// that fetch ends, then is verified again. An https:// URL is fetched over
// TLS 1.2 (mbedTLS, driven by the same loop: no thread, no blocking call);
// the server's certificate must chain to the system's CA bundle, or to
// `jwks_ca_file` when given, and name the URL's host. A failed handshake
// (an untrusted or misnamed certificate, a server that does not speak TLS
// or hangs) is a failed fetch like any other: the last good set stays.
//
// On success:
//  - client-sent copies of every header this filter sets are removed first
//    (always, whatever the outcome), then the mapped claims are set
//    (`sub` -> X-User-Id, `roles` -> X-User-Roles by default; an array is
//    joined with ","; numbers, booleans and objects as their JSON text);
//  - the token is removed from the request unless `forward_token`;
//  - with `consumers`, (iss, sub) is resolved to a consumer, recorded in
//    RequestState and told to the upstream in the identity headers
//    (X-Consumer-ID, X-Consumer-Plan), as key-auth does;
//  - RequestState::claims points at the verified claims until on_log.
//
// Refusals (JSON error body, RFC 6750 challenges):
//   no token                          401  Bearer realm="portico"
//   two tokens, two Authorization     401  error="invalid_request"
//   invalid token (any jwt::Reason),  401  error="invalid_token",
//   unknown consumer when required          error_description="..."
//   missing scope or role             403  error="insufficient_scope"
// The description names the reason ("the token has expired"), never the
// token.
//
// Threading: the filter may be shared by every worker; each worker index
// (RequestContext::worker_index() < `workers`) has its own token cache, and
// an index beyond it verifies without a cache. A filter with a JWKS URL
// must be created on the control loop's thread (or before that loop runs),
// and its fetcher's handles are closed on that loop after the filter is
// destroyed: destroy it while the control loop still runs (its handles do
// not keep the loop alive, so they are leaked, not waited for, if the loop
// has stopped).
#pragma once

#include <uv.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "portico/clock.hpp"
#include "portico/export.hpp"
#include "portico/filter.hpp"
#include "portico/filters/consumers.hpp"
#include "portico/jwt.hpp"
#include "portico/result.hpp"

namespace portico::filters {

// A PEM public key (RSA or EC), optionally bound to a kid and algorithm.
struct JwtPemKey {
  std::string pem;
  std::string kid;
  std::optional<jwt::Algorithm> algorithm;
};

// A claim sent upstream in a header. `claim` is a path as Claims reads it
// ("sub", "realm_access.roles", a URI-named claim).
struct JwtClaimHeader {
  std::string claim;
  std::string header;
};

struct JwtAuthOptions {
  // --- keys: at least one source. jwks_url cannot be combined with the
  // others; at most one JWKS document among `jwks` and `keys_file`.
  std::string jwks;                 // a JWKS document ({"keys": [...]})
  std::vector<JwtPemKey> pem_keys;  // PEM public keys
  std::string keys_file;            // a file holding a JWKS document or PEM keys
  std::string jwks_url;             // "http[s]://host[:port]/path"
  // PEM CA certificates an https:// jwks_url's server must chain to; empty:
  // the system bundle (/etc/ssl/certs/ca-certificates.crt). Read when the
  // filter is made.
  std::string jwks_ca_file;
  Duration jwks_refresh_interval = std::chrono::minutes(10);
  // After a failed fetch, the next one (if sooner than the refresh).
  Duration jwks_retry_interval = std::chrono::seconds(30);
  // At most one fetch for unknown kids per interval, measured from the
  // start of the previous fetch of any kind.
  Duration jwks_refetch_interval = std::chrono::seconds(10);
  Duration jwks_timeout = std::chrono::seconds(5);  // the whole fetch
  std::size_t jwks_max_bytes = 512 * 1024;          // the decoded body
  // The loop that fetches (required with jwks_url unless validate_only).
  uv_loop_t* control_loop = nullptr;
  // Check everything and build a filter that starts nothing (and refuses
  // every request with a URL key source): for validating a configuration.
  bool validate_only = false;
  unsigned workers = 1;  // token caches, one per worker index

  // --- verification (issuers, audiences, leeway, required claims,
  // algorithms, size) and the per-worker cache
  jwt::VerifierOptions verifier;
  jwt::TokenCacheOptions cache;

  // --- where the token is read
  bool from_header = true;  // Authorization: Bearer
  std::string query_param;  // e.g. "access_token"; empty: not read
  std::string cookie;       // a cookie name; empty: not read
  bool forward_token = false;

  // --- what the upstream learns
  std::vector<JwtClaimHeader> claims_to_headers = {{"sub", "X-User-Id"}, {"roles", "X-User-Roles"}};

  // --- authorization (403 when not met)
  std::vector<std::string> required_scopes;  // all of them
  std::string scopes_claim = "scope";        // space-separated string or array
  std::vector<std::string> required_roles;   // any of them (all: require_all_roles)
  std::string roles_claim = "roles";         // string or array
  bool require_all_roles = false;

  // --- consumers: (iss, sub) resolved through Consumers::find_by_jwt
  std::shared_ptr<const Consumers> consumers;  // null: not resolved
  bool consumer_required = false;              // 401 when no consumer matches
  std::string consumer_id_header = "X-Consumer-ID";
  std::string consumer_plan_header = "X-Consumer-Plan";
  std::string anonymous_header = "X-Anonymous-Consumer";

  std::string realm = "portico";
};

// Fails naming the field: no key source, or one that does not load (a
// malformed JWKS, a JWKS without a usable key, a bad PEM, an unreadable
// file), jwks_url combined with other sources or not http(s)://,
// jwks_ca_file unreadable, without certificates or without an https://
// jwks_url, no
// control_loop for a URL, durations out of range, bad verifier options
// (jwt::Verifier::create), names that are not header tokens, an empty claim
// path, consumer_required without consumers, workers 0.
PORTICO_API Result<std::shared_ptr<proxy::Filter>> make_jwt_auth(JwtAuthOptions options);

}  // namespace portico::filters
