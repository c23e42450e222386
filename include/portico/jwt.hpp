// JSON Web Token verification (RFC 7515, 7518, 7519) with JWKS key sets
// (RFC 7517) and a cache of verified tokens.
//
// The pieces, each usable on its own and none doing I/O:
//   KeySet        the keys a verifier trusts: from a JWKS document, PEM public
//                 keys or raw HMAC secrets. Immutable once shared.
//   KeySetHolder  the current KeySet, replaceable atomically while other
//                 threads verify (a JWKS refresh swaps it; a failed refresh
//                 keeps the last good set).
//   Verifier      checks a compact JWS and its claims against a KeySetHolder
//                 and a policy (allowed algorithms, issuers, audiences,
//                 required claims, leeway, size limit).
//   TokenCache    remembers verified (and, briefly, rejected) tokens so a
//                 repeated token skips the signature check.
//
// Checks, in order; the first failure is the result (docs/jwt.md):
//   size > max_token_bytes                        too_large
//   not 3 strict-base64url segments, header not
//   a JSON object with a string "alg", "crit"     malformed
//   alg not one of the 12 implemented, or none    unsupported_alg
//   alg outside the verifier's allow-list         alg_not_allowed
//   no key fits (family, use, alg, kid)           unknown_kid
//   signature does not verify                     bad_signature
//   payload not a JSON object, claim of wrong type malformed
//   required claim absent                         missing_claim
//   now >= exp + leeway                           expired
//   now < nbf - leeway                            not_yet_valid
//   iss not configured                            bad_issuer
//   no aud value configured                       bad_audience
//
// Keys are bound to their family: HS* uses only "oct" keys, RS*/PS* only RSA
// keys (2048 bits or more), ES256/384/512 only EC keys on P-256/384/521. An
// RSA or EC key is never an HMAC secret, which stops the RS256->HS256
// confusion attack by construction.
//
// Time: verify() takes the wall-clock `now` and never reads a clock.
//
// Threading: KeySet and Verifier are immutable after construction and safe
// to share between threads; KeySetHolder may be read and replaced from any
// thread. TokenCache is not synchronised: give each event loop its own.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "portico/export.hpp"
#include "portico/result.hpp"

namespace portico::detail {
class JsonDoc;
struct JsonNode;
struct JwtKey;
struct TokenCacheTable;
}  // namespace portico::detail

namespace portico::jwt {

using WallTime = std::chrono::system_clock::time_point;

// ---------------------------------------------------------------- algorithms

enum class Algorithm : std::uint8_t {
  hs256,
  hs384,
  hs512,
  rs256,
  rs384,
  rs512,
  ps256,
  ps384,
  ps512,
  es256,
  es384,
  es512,
};
inline constexpr std::size_t kAlgorithmCount = 12;

// "HS256" ... "ES512".
PORTICO_API std::string_view algorithm_name(Algorithm alg) noexcept;
// The algorithm named exactly (case-sensitive) `name`; "none" is never one.
PORTICO_API std::optional<Algorithm> parse_algorithm(std::string_view name) noexcept;

// A set of algorithms, as a verifier's allow-list.
class AlgorithmSet {
 public:
  constexpr AlgorithmSet() noexcept = default;
  constexpr AlgorithmSet(std::initializer_list<Algorithm> algs) noexcept {
    for (Algorithm a : algs)
      insert(a);
  }
  static constexpr AlgorithmSet all() noexcept {
    AlgorithmSet s;
    s.bits_ = (1u << kAlgorithmCount) - 1;
    return s;
  }
  constexpr void insert(Algorithm a) noexcept { bits_ |= 1u << static_cast<unsigned>(a); }
  constexpr bool contains(Algorithm a) const noexcept {
    return (bits_ >> static_cast<unsigned>(a)) & 1u;
  }
  constexpr bool empty() const noexcept { return bits_ == 0; }
  constexpr bool operator==(const AlgorithmSet&) const noexcept = default;

 private:
  std::uint32_t bits_ = 0;
};

// ------------------------------------------------------------------- reasons

// Why a token was refused. Stable: policies map these to responses and
// metrics label by reason_name().
enum class Reason : std::uint8_t {
  malformed,
  unsupported_alg,
  alg_not_allowed,
  unknown_kid,
  bad_signature,
  expired,
  not_yet_valid,
  bad_issuer,
  bad_audience,
  missing_claim,
  too_large,
};
inline constexpr std::size_t kReasonCount = 11;

// "malformed", "unsupported_alg", ...
PORTICO_API std::string_view reason_name(Reason reason) noexcept;

// ---------------------------------------------------------------------- keys

enum class KeyType : std::uint8_t { rsa, ec, oct };

// Optional binding for a key given outside a JWKS (PEM or raw secret).
struct KeyOptions {
  std::string kid;                     // empty: the key has no kid
  std::optional<Algorithm> algorithm;  // set: the key verifies only this alg
};

// A key of a JWKS that was not loaded, and why.
struct SkippedKey {
  std::size_t index;  // position in the JWKS "keys" array
  std::string kid;    // its "kid", if it had a string one
  std::string reason;
};

struct KeyInfo {
  std::string_view kid;
  KeyType type;
  std::optional<Algorithm> algorithm;
  std::size_t bits;  // RSA modulus, EC curve size, or HMAC secret length * 8
};

class PORTICO_API KeySet {
 public:
  KeySet();
  ~KeySet();
  KeySet(KeySet&&) noexcept;
  KeySet& operator=(KeySet&&) noexcept;

  // Parses a JWKS document ({"keys": [...]}). Fails only when the document
  // is not JSON or has no "keys" array; each key that cannot be used (bad
  // fields, unsupported kty or curve, "use" other than "sig", "key_ops"
  // without "verify", weak RSA modulus, point off the curve, short or
  // missing secret) is left out and listed in skipped().
  static Result<KeySet> from_jwks(std::string_view json);

  // Adds one JWK object (same rules as from_jwks, but a bad key is an error).
  Status add_jwk(std::string_view json);
  // Adds an RSA or EC public key in PEM ("PUBLIC KEY" or "RSA PUBLIC KEY").
  Status add_pem(std::string_view pem, KeyOptions options = {});
  // Adds an HMAC secret (raw bytes). At least 32 bytes; a secret is a
  // candidate for HSn only if it has at least n/8 bytes (RFC 7518 3.2).
  Status add_hmac_secret(std::string_view secret, KeyOptions options = {});

  std::size_t size() const noexcept;
  bool empty() const noexcept { return size() == 0; }
  KeyInfo key(std::size_t index) const noexcept;
  std::span<const SkippedKey> skipped() const noexcept;

  // Changes whenever the set changes; a cache entry remembers the id of the
  // set that verified it and is not used with any other.
  std::uint64_t id() const noexcept;

 private:
  friend class Verifier;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Holds the KeySet in force. Readers take a reference-counted snapshot, so a
// replacement never disturbs a verification in progress. current() takes no
// lock and never waits for replace(); replace() waits (briefly) for the
// readers still copying the set it retires, and replacements are serialised.
class PORTICO_API KeySetHolder {
 public:
  explicit KeySetHolder(KeySet initial = {});
  ~KeySetHolder();
  KeySetHolder(const KeySetHolder&) = delete;
  KeySetHolder& operator=(const KeySetHolder&) = delete;

  std::shared_ptr<const KeySet> current() const noexcept;
  std::uint64_t current_id() const noexcept { return current_id_.load(std::memory_order_acquire); }

  void replace(KeySet next);
  // Replaces the set with the one in `json`, unless the document is not a
  // JWKS or yields no usable key: then the current set stays and the error
  // says why ("the identity provider is down, validation still works").
  Status replace_from_jwks(std::string_view json);

 private:
  struct Slots;  // why not std::atomic<std::shared_ptr>: lib/jwt/key_set.cpp
  std::unique_ptr<Slots> slots_;
  std::atomic<std::uint64_t> current_id_{0};
};

// -------------------------------------------------------------------- claims

enum class ClaimType : std::uint8_t { absent, null, boolean, number, string, array, object };

// The verified payload. A path is first looked up as one top-level member
// name (claim names are often URIs, full of dots), then as dot-separated
// member names: "realm_access.roles". Views stay valid while the Claims do.
class PORTICO_API Claims {
 public:
  Claims();
  ~Claims();
  Claims(Claims&&) noexcept;
  Claims& operator=(Claims&&) noexcept;

  ClaimType type(std::string_view path) const noexcept;
  bool has(std::string_view path) const noexcept { return type(path) != ClaimType::absent; }

  std::optional<std::string_view> string(std::string_view path) const noexcept;
  std::optional<double> number(std::string_view path) const noexcept;
  // A number with no fractional part that fits an int64.
  std::optional<std::int64_t> integer(std::string_view path) const noexcept;
  std::optional<bool> boolean(std::string_view path) const noexcept;
  // An array of strings, or a single string as a one-element list (the
  // shape of "aud"). Nullopt when absent or when any element is not a string.
  std::optional<std::vector<std::string_view>> strings(std::string_view path) const;
  // Whether the string or string array at `path` holds `value`; allocation-
  // free, for role and scope checks.
  bool contains(std::string_view path, std::string_view value) const noexcept;
  // The JSON text of the value at `path` as it appeared in the token, e.g. to
  // forward a nested object; empty when absent.
  std::string_view json(std::string_view path) const noexcept;
  // The whole payload as JSON text.
  std::string_view json() const noexcept;

 private:
  friend class Verifier;
  const detail::JsonNode* find(std::string_view path) const noexcept;
  std::string payload_;
  std::unique_ptr<detail::JsonDoc> doc_;
};

// A token that passed every check. Shared between the cache and callers.
struct VerifiedToken {
  Algorithm algorithm;
  std::string kid;                   // of the key that verified it (may be empty)
  std::optional<double> expires_at;  // "exp", seconds since the epoch
  std::optional<double> not_before;  // "nbf"
  Claims claims;
};

// The result of verify(): a verified token, or a reason and a message that
// is safe to log (it never contains the token, a signature or a secret).
class [[nodiscard]] Verification {
 public:
  PORTICO_API static Verification success(std::shared_ptr<const VerifiedToken> token,
                                          bool cached = false);
  PORTICO_API static Verification failure(Reason reason, std::string message, bool cached = false);

  bool ok() const noexcept { return token_ != nullptr; }
  explicit operator bool() const noexcept { return ok(); }
  // Meaningful when !ok().
  Reason reason() const noexcept { return reason_; }
  const std::string& message() const noexcept { return message_; }
  // Requires ok().
  const VerifiedToken& token() const noexcept { return *token_; }
  const Claims& claims() const noexcept { return token_->claims; }
  const std::shared_ptr<const VerifiedToken>& shared_token() const noexcept { return token_; }
  // True when the answer came from a TokenCache without a signature check.
  bool from_cache() const noexcept { return cached_; }

 private:
  std::shared_ptr<const VerifiedToken> token_;
  std::string message_;
  Reason reason_ = Reason::malformed;
  bool cached_ = false;
};

// ------------------------------------------------------------------ verifier

struct VerifierOptions {
  AlgorithmSet algorithms = AlgorithmSet::all();
  // Accepted "iss" values (exact match); empty: any issuer, "iss" optional.
  std::vector<std::string> issuers;
  // Accepted "aud" values; the token's aud (string or array) must hold one.
  // Empty: no audience check, "aud" optional.
  std::vector<std::string> audiences;
  // Claims that must be present (any type).
  std::vector<std::string> required_claims;
  // Allowed clock skew for exp and nbf.
  std::chrono::seconds leeway{30};
  // Longer tokens are refused before any decoding.
  std::size_t max_token_bytes = 8192;
  // A token without "kid" is tried against at most this many keys of its
  // family, so a large key set cannot multiply the cost of a bad token.
  std::size_t max_keys_tried = 4;
};

class PORTICO_API Verifier {
 public:
  // Checks the options (non-empty allow-list, no empty issuer/audience
  // strings, sane sizes).
  static Result<Verifier> create(std::shared_ptr<const KeySetHolder> keys, VerifierOptions options);

  Verification verify(std::string_view token, WallTime now) const;

  // Verifies only the JWS layer: structure, algorithm, key and signature,
  // with the payload returned as bytes (JSON or not) and no claim checks.
  // For callers that carry something other than JWT claims in a JWS; the
  // detached form (RFC 7515 appendix F) is verified by passing the payload's
  // base64url in `detached_payload` and a token with an empty middle part.
  Verification verify_signature(std::string_view token, std::string* payload,
                                std::string_view detached_payload = {}) const;

  const VerifierOptions& options() const noexcept { return options_; }
  const KeySetHolder& keys() const noexcept { return *keys_; }

  // Whether verify() would still accept a token it accepted before, judged
  // on the time claims alone (used by TokenCache on every hit).
  std::optional<Reason> check_time(const VerifiedToken& token, WallTime now) const noexcept;

 private:
  Verifier(std::shared_ptr<const KeySetHolder> keys, VerifierOptions options);
  struct Jws;
  // The failure, or nullopt when the signature verified (filling `out`).
  std::optional<Verification> verify_jws(std::string_view token, std::string_view detached,
                                         Jws& out) const;
  Verification check_claims(Jws& jws, WallTime now) const;

  std::shared_ptr<const KeySetHolder> keys_;
  VerifierOptions options_;
};

// --------------------------------------------------------------------- cache

struct TokenCacheOptions {
  // Verified tokens kept (rounded up to a multiple of 8). 0 disables.
  std::size_t capacity = 4096;
  // An entry is dropped this long after it was verified, or at the token's
  // exp + leeway, whichever is first.
  std::chrono::seconds ttl{300};
  // Rejected tokens kept, and for how long. Only reasons that time cannot
  // undo are cached (not not_yet_valid, never too_large). 0 disables.
  std::size_t negative_capacity = 1024;
  std::chrono::seconds negative_ttl{10};
  // Tokens longer than this are verified but not cached.
  std::size_t max_token_bytes = 4096;
};

struct TokenCacheStats {
  std::uint64_t hits = 0;
  std::uint64_t negative_hits = 0;
  std::uint64_t misses = 0;
  std::uint64_t evictions = 0;
};

// Entries are found by a seeded 64-bit hash of the whole token and then
// compared byte for byte, so only the identical token hits. A hit re-checks
// exp and nbf, and an entry verified under another key set than the one now
// in force is a miss. Memory: about (capacity + negative_capacity) *
// (token length + 64) bytes at most. Not thread-safe: one per event loop.
class PORTICO_API TokenCache {
 public:
  TokenCache(std::shared_ptr<const Verifier> verifier, TokenCacheOptions options = {});
  ~TokenCache();
  TokenCache(const TokenCache&) = delete;
  TokenCache& operator=(const TokenCache&) = delete;

  Verification verify(std::string_view token, WallTime now);

  const TokenCacheStats& stats() const noexcept { return stats_; }
  void clear() noexcept;

 private:
  std::shared_ptr<const Verifier> verifier_;
  TokenCacheOptions options_;
  std::unique_ptr<detail::TokenCacheTable> table_;
  TokenCacheStats stats_;
};

}  // namespace portico::jwt
