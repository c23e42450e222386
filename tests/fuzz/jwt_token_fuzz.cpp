// Fuzz target for the JWT verifier, its token cache and the readers under it.
// The input is one compact token. It goes through Verifier::verify,
// verify_signature and a TokenCache (twice); then again re-signed with the
// HS256 key of the fixed key set, so that mutated headers and payloads get
// past the signature check and reach the claim checks, which an unsigned
// mutation never would. An input with a newline is also read as "header
// JSON\npayload JSON" and made into a signed token, so that mutations can
// work on the JSON rather than on its base64url. The raw bytes also go to
// the JSON reader and to the base64url codec directly.
//
// Asserted (a violation aborts, and libFuzzer keeps the input):
//  - a failure has a reason in range and a message that is non-empty, short,
//    printable ASCII, and never holds the whole token once it is longer than
//    60 bytes (messages are logged; tokens are credentials);
//  - too_large exactly when the token is longer than max_token_bytes;
//  - a success had exactly two dots, was verified by the key of its family,
//    and carries claims that meet the policy (sub, iss, aud, exp, nbf);
//  - verify_signature fails exactly as verify does when the JWS layer fails,
//    and when it succeeds verify either succeeds or fails on the claims; its
//    payload is the decoded middle part;
//  - the cache answers as the verifier does, twice, and the second answer
//    comes from the cache exactly when the first was cacheable;
//  - JsonDoc: every node's `next` is past it and inside its parent, children
//    tile their parent's text in order, counts match, strings are valid
//    UTF-8, numbers finite, nesting within kMaxDepth, and each member of a
//    (small) object is what member() finds by its name;
//  - base64url: encode then decode gives the input back, and whatever decode
//    accepts re-encodes to exactly its input (one encoding per byte string).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "../../lib/jwt/base64url.hpp"
#include "../../lib/jwt/json.hpp"
#include "../../lib/tls/crypto.hpp"
#include "portico/jwt.hpp"

namespace {

using namespace portico::jwt;
using portico::detail::JsonDoc;
using portico::detail::JsonNode;
using portico::detail::JsonType;

[[noreturn]] void fail(const char* what, std::string_view input, std::string_view detail = {}) {
  std::fprintf(stderr, "jwt_token_fuzz: %s\n  %.*s\n  token: '%.*s'\n", what,
               static_cast<int>(detail.size()), detail.data(), static_cast<int>(input.size()),
               input.data());
  std::abort();
}

// The public keys of hs-32, rsa-1 and ec-p256 from the "default" set of
// tests/jwt/vectors.json, so that the seeds in corpus/jwt_token verify.
constexpr std::string_view kJwks = R"({"keys": [
{"kty": "oct", "kid": "hs-32", "use": "sig", "k": "bdS8GMhYZo3LY3F5Vwc8SdRrFLup3f35bKtkoYSyOog"},
{"kty": "RSA", "kid": "rsa-1", "use": "sig", "e": "AQAB", "n": "22q8GUms9sOJIyiQzYUVsirUfmPbrWhWUQIjppyth9DvoYXl9nHQ5Gq9eQMaeUGfM7YyVd0JQXIMaHCP1m00HWc15UgEzJFmf8HZKINrkrs62zlCZgSLvDL7CZoZs6jK-hQqvdg2BEfPtmwROraZNv-NpeQm0_DRZaaKk1DRoNQjXPJPCUtlVDioKvVEddl6n55T8QQcvMKZYJKRD6bfcfQBrUXlDyZ2ugw0rwrgj7b8qfQuCeyyl7G8ZmzW2HNdtFdmO7kRPrWooelAzBP8b96vwDHtm8Wy-dk70ggYaVjcz9wdeqTXONkZbhM1h4SoQKNjnJhD9gmCNHjHsYDkXQ"},
{"kty": "EC", "kid": "ec-p256", "use": "sig", "crv": "P-256", "x": "Nta5HCasndJucOLh3plXPX14vW1KysCX4XawKPlzQIU", "y": "GhQ5VDH7-KySXkfCxYXQwbqWYeKi32dPLkXLTgnhDLg"}
]})";
constexpr std::string_view kHmacSecret = "bdS8GMhYZo3LY3F5Vwc8SdRrFLup3f35bKtkoYSyOog";
constexpr std::string_view kIssuer = "https://idp.example.com";
constexpr std::string_view kAudience = "portico";
constexpr std::chrono::seconds kLeeway{30};
// The vectors' clock, so that their valid tokens are valid here.
const WallTime kNow{std::chrono::seconds(1735689600)};
// Small enough that a fuzzed token can be too large (libFuzzer's inputs stop
// at 4 KiB by default), large enough for an RS256 token.
constexpr std::size_t kMaxTokenBytes = 1024;
// Below the RSA tokens' size, so both the cached and the uncached path run.
constexpr std::size_t kCacheMaxTokenBytes = 512;

struct Fixture {
  std::shared_ptr<const Verifier> verifier;
  std::unique_ptr<TokenCache> cache;
  std::unique_ptr<portico::detail::HmacKey> signer;  // HS256 with hs-32's secret
};

Fixture make_fixture() {
  auto set = KeySet::from_jwks(kJwks);
  if (!set || set->size() != 3 || !set->skipped().empty()) fail("the fixed JWKS does not load", {});
  auto holder = std::make_shared<KeySetHolder>(std::move(*set));
  VerifierOptions options;
  options.issuers = {std::string(kIssuer)};
  options.audiences = {std::string(kAudience)};
  options.required_claims = {"sub"};
  options.leeway = kLeeway;
  options.max_token_bytes = kMaxTokenBytes;
  auto verifier = Verifier::create(holder, options);
  if (!verifier) fail("the verifier options are refused", {}, verifier.error().message);
  Fixture f;
  f.verifier = std::make_shared<const Verifier>(std::move(*verifier));
  TokenCacheOptions cache_options;
  // Small tables, so that eviction runs too.
  cache_options.capacity = 64;
  cache_options.negative_capacity = 16;
  cache_options.max_token_bytes = kCacheMaxTokenBytes;
  f.cache = std::make_unique<TokenCache>(f.verifier, cache_options);
  std::string secret;
  if (!portico::detail::base64url_decode(kHmacSecret, secret)) fail("bad fixed secret", {});
  f.signer = std::make_unique<portico::detail::HmacKey>(portico::detail::HashAlg::sha256,
                                                        portico::detail::as_bytes(secret));
  return f;
}

Fixture& fixture() {
  static Fixture f = make_fixture();
  return f;
}

// ------------------------------------------------------------------ verifier

bool printable(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= 0x20 && c < 0x7f; });
}

// Reasons decided after the signature verified.
bool claim_stage(Reason r) {
  return r == Reason::malformed || r == Reason::missing_claim || r == Reason::expired ||
         r == Reason::not_yet_valid || r == Reason::bad_issuer || r == Reason::bad_audience;
}

void check_failure(const Verification& v, std::string_view token, const char* where) {
  if (static_cast<std::size_t>(v.reason()) >= kReasonCount)
    fail("reason out of range", token, where);
  const std::string& m = v.message();
  if (m.empty()) fail("failure without a message", token, where);
  if (m.size() > 256 || !printable(m)) fail("message not fit for a log line", token, m);
  if (token.size() > 60 && m.find(token) != std::string::npos) {
    fail("message holds the whole token", token, m);
  }
  if ((v.reason() == Reason::too_large) != (token.size() > kMaxTokenBytes)) {
    fail("too_large does not match the size limit", token, m);
  }
}

bool fits_family(Algorithm alg, std::string_view kid) {
  if (alg <= Algorithm::hs512) return kid == "hs-32";
  if (alg <= Algorithm::ps512) return kid == "rsa-1";
  return alg == Algorithm::es256 && kid == "ec-p256";
}

void check_jws_success(const Verification& v, std::string_view token, const char* where) {
  if (std::count(token.begin(), token.end(), '.') != 2)
    fail("accepted without 3 parts", token, where);
  if (token.size() > kMaxTokenBytes) fail("accepted a token over the limit", token, where);
  if (!fits_family(v.token().algorithm, v.token().kid)) {
    fail("verified by a key of another family", token, v.token().kid);
  }
}

void check_claims(const Verification& v, std::string_view token) {
  const Claims& c = v.claims();
  const double now = std::chrono::duration<double>(kNow.time_since_epoch()).count();
  const auto leeway = static_cast<double>(kLeeway.count());
  if (!c.string("sub")) fail("accepted without a string sub", token);
  if (c.string("iss") != kIssuer) fail("accepted another issuer", token);
  if (!c.contains("aud", kAudience)) fail("accepted another audience", token);
  if (c.type("exp") != ClaimType::absent) {
    const auto exp = c.number("exp");
    if (!exp || v.token().expires_at != exp) fail("exp is not the token's number", token);
    if (!(now < *exp + leeway)) fail("accepted an expired token", token);
  }
  if (c.type("nbf") != ClaimType::absent) {
    const auto nbf = c.number("nbf");
    if (!nbf || v.token().not_before != nbf) fail("nbf is not the token's number", token);
    if (now < *nbf - leeway) fail("accepted a token before its nbf", token);
  }
  JsonDoc doc;
  std::string error;
  if (!doc.parse(c.json(), error) || doc.root().type != JsonType::object) {
    fail("claims are not a JSON object", token, error);
  }
}

std::string decoded_middle(std::string_view token) {
  const std::size_t dot1 = token.find('.');
  const std::size_t dot2 = token.find('.', dot1 + 1);
  std::string out;
  portico::detail::base64url_decode(token.substr(dot1 + 1, dot2 - dot1 - 1), out);
  return out;
}

bool cacheable(const Verification& v, std::string_view token) {
  return token.size() <= kCacheMaxTokenBytes &&
         (v.ok() || (v.reason() != Reason::not_yet_valid && v.reason() != Reason::too_large));
}

bool same_answer(const Verification& a, const Verification& b) {
  if (a.ok() != b.ok()) return false;
  if (a.ok()) return a.claims().json() == b.claims().json() && a.token().kid == b.token().kid;
  return a.reason() == b.reason() && a.message() == b.message();
}

void check_token(Fixture& f, std::string_view token) {
  const Verification full = f.verifier->verify(token, kNow);
  std::string payload;
  const Verification jws = f.verifier->verify_signature(token, &payload);

  if (jws.ok()) {
    check_jws_success(jws, token, "verify_signature");
    if (payload != decoded_middle(token)) fail("verify_signature returned another payload", token);
    if (!full.ok() && !claim_stage(full.reason())) {
      fail("signature verified, yet verify failed before the claims", token, full.message());
    }
  } else {
    check_failure(jws, token, "verify_signature");
    if (full.ok() || full.reason() != jws.reason() || full.message() != jws.message()) {
      fail("verify and verify_signature disagree on the JWS layer", token, jws.message());
    }
  }
  if (full.ok()) {
    check_jws_success(full, token, "verify");
    if (full.token().kid != jws.token().kid || full.token().algorithm != jws.token().algorithm) {
      fail("verify and verify_signature name another key", token);
    }
    check_claims(full, token);
  } else {
    check_failure(full, token, "verify");
  }

  const Verification first = f.cache->verify(token, kNow);
  const Verification second = f.cache->verify(token, kNow);
  if (!same_answer(first, full)) fail("the cache answers otherwise than the verifier", token);
  if (!same_answer(second, first)) fail("the cache answers otherwise the second time", token);
  if (second.from_cache() != cacheable(full, token)) {
    fail(second.from_cache() ? "the cache kept an answer it must not keep"
                             : "the cache did not keep a cacheable answer",
         token, full.ok() ? "ok" : full.message());
  }
}

// Appends ".signature" (HS256 with hs-32) to the signing input `token`.
std::string signed_with_hs256(const Fixture& f, std::string token) {
  const auto mac = f.signer->mac(portico::detail::as_bytes(token));
  token += '.';
  portico::detail::base64url_encode(
      std::string_view(reinterpret_cast<const char*>(mac.bytes), mac.size), token);
  return token;
}

// The input's first two parts, signed.
std::string resigned(const Fixture& f, std::string_view input) {
  const std::size_t dot1 = input.find('.');
  const std::size_t dot2 = dot1 == input.npos ? input.npos : input.find('.', dot1 + 1);
  return signed_with_hs256(f, std::string(input.substr(0, dot2)));
}

// An input of the form "header JSON\npayload JSON", encoded and signed, so
// that mutations act on the JSON itself and not on its base64url.
std::optional<std::string> from_json_parts(const Fixture& f, std::string_view input) {
  const std::size_t newline = input.find('\n');
  if (newline == input.npos) return std::nullopt;
  std::string token;
  portico::detail::base64url_encode(input.substr(0, newline), token);
  token += '.';
  portico::detail::base64url_encode(input.substr(newline + 1), token);
  return signed_with_hs256(f, std::move(token));
}

// ----------------------------------------------------------------- JSON tape

bool valid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  for (std::size_t i = 0; i < s.size();) {
    const unsigned b = p[i];
    std::size_t len = b < 0x80 ? 1 : (b & 0xe0) == 0xc0 ? 2 : (b & 0xf0) == 0xe0 ? 3 : 4;
    if ((b & 0xc0) == 0x80 || b > 0xf4 || i + len > s.size()) return false;
    std::uint32_t cp = len == 1 ? b : b & (0x7f >> len);
    for (std::size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xc0) != 0x80) return false;
      cp = cp << 6 | (p[i + k] & 0x3f);
    }
    constexpr std::uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += len;
  }
  return true;
}

struct Tape {
  const JsonDoc& doc;
  std::string_view text;
};

void check_node(const Tape& t, std::uint32_t index, std::uint32_t end, std::size_t depth);

// Walks the children of the container at `index`; objects alternate a name
// (a string node) and its value.
void check_children(const Tape& t, std::uint32_t index, std::size_t depth) {
  const JsonNode& n = t.doc.at(index);
  const bool object = n.type == JsonType::object;
  std::uint64_t cursor = n.raw_offset + 1;  // past the bracket
  std::uint32_t count = 0;
  for (std::uint32_t c = index + 1; c != n.next; ++count) {
    if (c > n.next) fail("a child's next jumps past its parent", t.text);
    if (object) {
      const JsonNode& name = t.doc.at(c);
      if (name.type != JsonType::string || c + 1 >= n.next) {
        fail("an object member does not start with a name", t.text);
      }
      check_node(t, c, n.next, depth + 1);
      if (name.raw_offset < cursor) fail("member name overlaps its predecessor", t.text);
      cursor = std::uint64_t{name.raw_offset} + name.raw_length;
      ++c;
      if (n.count <= 64 && t.doc.member(n, t.doc.string(name)) != &t.doc.at(c)) {
        fail("member() does not find a member by its own name", t.text);
      }
    }
    const JsonNode& child = t.doc.at(c);
    check_node(t, c, n.next, depth + 1);
    if (child.raw_offset < cursor) fail("children overlap or are out of order", t.text);
    cursor = std::uint64_t{child.raw_offset} + child.raw_length;
    c = child.next;
  }
  if (count != n.count) fail("count differs from the children on the tape", t.text);
  if (cursor > std::uint64_t{n.raw_offset} + n.raw_length - 1) {
    fail("children run past the closing bracket", t.text);
  }
}

void check_node(const Tape& t, std::uint32_t index, std::uint32_t end, std::size_t depth) {
  const JsonNode& n = t.doc.at(index);
  if (n.next <= index || n.next > end)
    fail("next is not past the node and inside its parent", t.text);
  if (std::uint64_t{n.raw_offset} + n.raw_length > t.text.size() || n.raw_length == 0) {
    fail("raw text out of the document", t.text);
  }
  const std::string_view raw = t.doc.raw(n);
  const bool leaf = n.type != JsonType::array && n.type != JsonType::object;
  if (leaf && n.next != index + 1) fail("a scalar has a subtree", t.text);
  switch (n.type) {
    case JsonType::null:
      if (raw != "null") fail("null's text is not null", t.text);
      break;
    case JsonType::boolean:
      if (raw != (n.boolean ? "true" : "false")) fail("boolean's text differs", t.text);
      break;
    case JsonType::number:
      if (!std::isfinite(n.number)) fail("a number is not finite", t.text);
      if (raw[0] != '-' && (raw[0] < '0' || raw[0] > '9')) fail("number's text", t.text);
      break;
    case JsonType::string: {
      const std::string_view s = t.doc.string(n);
      if (raw.size() < 2 || raw.front() != '"' || raw.back() != '"') fail("string's text", t.text);
      if (s.size() != n.str_length || s.size() > raw.size() - 2)
        fail("string outgrew its text", t.text);
      if (!valid_utf8(s)) fail("a string is not valid UTF-8", t.text);
      break;
    }
    case JsonType::array:
    case JsonType::object:
      if (depth >= JsonDoc::kMaxDepth) fail("nested deeper than kMaxDepth", t.text);
      if (raw.front() != (n.type == JsonType::array ? '[' : '{') ||
          raw.back() != (n.type == JsonType::array ? ']' : '}')) {
        fail("container's text is not bracketed", t.text);
      }
      check_children(t, index, depth);
      break;
  }
}

void check_json(std::string_view text) {
  JsonDoc doc;
  std::string error;
  if (!doc.parse(text, error)) {
    if (error.empty()) fail("JSON refused without a reason", text);
    return;
  }
  if (doc.empty()) fail("JSON accepted with no node", text);
  const std::uint32_t total = doc.root().next;
  if (total == 0) fail("root's next is 0", text);
  const Tape tape{doc, text};
  check_node(tape, 0, total, 0);
  constexpr std::string_view kSpace = " \t\n\r";
  const std::size_t first = text.find_first_not_of(kSpace);
  const std::size_t last = text.find_last_not_of(kSpace);
  if (doc.raw(doc.root()) != text.substr(first, last - first + 1)) {
    fail("the root's text is not the document less its whitespace", text);
  }
}

// ----------------------------------------------------------------- base64url

void check_base64url(std::string_view input) {
  std::string encoded;
  portico::detail::base64url_encode(input, encoded);
  const std::size_t n = input.size();
  if (encoded.size() != n / 3 * 4 + (n % 3 == 0 ? 0 : n % 3 + 1)) fail("encoded length", input);
  std::string decoded;
  if (!portico::detail::base64url_decode(encoded, decoded) || decoded != input) {
    fail("decode(encode(x)) != x", input, encoded);
  }
  if (portico::detail::base64url_decode(input, decoded)) {
    std::string again;
    portico::detail::base64url_encode(decoded, again);
    if (again != input) fail("decode accepted a non-canonical encoding", input, again);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  Fixture& f = fixture();
  check_token(f, input);
  check_token(f, resigned(f, input));
  if (const auto built = from_json_parts(f, input)) check_token(f, *built);
  check_json(input);
  check_base64url(input);
  return 0;
}
