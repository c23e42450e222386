// Fuzz target for the JWKS parser: the input is a key set document, given to
// KeySet::from_jwks and to KeySetHolder::replace_from_jwks, and the set it
// yields is then asked to verify a few fixed tokens.
//
// Asserted (a violation aborts, and libFuzzer keeps the input):
//  - when the strict JSON reader accepts the input, from_jwks agrees: it
//    fails exactly when the document is not an object with a "keys" array,
//    and otherwise loads or skips every entry (size() + skipped().size() is
//    the array's length); a refusal is `malformed` with a message;
//  - every loaded key is readable and sane: RSA of 2048 bits or more, EC on
//    P-256/384/521, an HMAC secret of 32 bytes or more, and an "alg" binding
//    of the key's own family; skipped entries are in order, in range, and
//    say why;
//  - replace_from_jwks succeeds exactly when from_jwks gives a non-empty set;
//    a success installs a set of that size under a new id, a failure says
//    why and leaves current() and current_id() as they were;
//  - a token verified against the new set names a key of the set of the
//    token algorithm's family (and curve, and length), bound to no other
//    algorithm: no RSA or EC key ever checks an HMAC.
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "../../lib/jwt/json.hpp"
#include "portico/jwt.hpp"

namespace {

using namespace portico::jwt;
using portico::ErrorKind;
using portico::Result;
using portico::detail::JsonDoc;
using portico::detail::JsonType;

[[noreturn]] void fail(const char* what, std::string_view input, std::string_view detail = {}) {
  std::fprintf(stderr, "jwks_fuzz: %s\n  %.*s\n  JWKS: '%.*s'\n", what,
               static_cast<int>(detail.size()), detail.data(), static_cast<int>(input.size()),
               input.data());
  std::abort();
}

// Tokens from tests/jwt/vectors.json, signed by hs-32, rsa-1, ec-p256 and
// (with no kid) hs-64 of its "default" set, which corpus/jwks holds.
constexpr std::string_view kTokens[] = {
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6ImhzLTMyIn0."
    "eyJpc3MiOiJodHRwczovL2lkcC5leGFtcGxlLmNvbSIsInN1YiI6InVzZXItMTIzIiwiYXVkIjoicG9ydGljbyIsImlhdC"
    "I6MTczNTY4OTU0MCwibmJmIjoxNzM1Njg5NTQwLCJleHAiOjE3MzU2OTMyMDAsImp0aSI6Imp0aS0wMDAxIn0."
    "6qLcXn5b7G02jJ8HaOw4FvOknltpAcohfu71H1VCghc",
    "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6InJzYS0xIn0."
    "eyJpc3MiOiJodHRwczovL2lkcC5leGFtcGxlLmNvbSIsInN1YiI6InVzZXItMTIzIiwiYXVkIjoicG9ydGljbyIsImlhdC"
    "I6MTczNTY4OTU0MCwibmJmIjoxNzM1Njg5NTQwLCJleHAiOjE3MzU2OTMyMDAsImp0aSI6Imp0aS0wMDAxIn0."
    "h7JCve-jy81Iu0GBUtcT54zEeTWfSbhOntXkG_YbDx2TZ_lSak4UPv-p92mIhDo82MGTU21xitdmdzkrngNpElFXM-"
    "LNzWu4hOgCdc8muYuesIzDTQ9H_rCgkUxlKpYfWtc837A7ElPm4nkbMgQlO7BI0_Rpd6SenqzIoHoPPm667pDq7lQoxIZW"
    "ynmdlXZ7mP25ikRt-IdjNcz5qTNeZ4OnhpoUUNtWxQm3xsoneKZiyDRX3XKh9x4QIwuJaAQlyV-"
    "Fj6txvMNqNa_09gw9OXL_4dPr-Go1oXWu_9rNE7D652S4C3-kS9sVpGHu8ZgFlLg89-byP91cUAq3fFRo0w",
    "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6ImVjLXAyNTYifQ."
    "eyJpc3MiOiJodHRwczovL2lkcC5leGFtcGxlLmNvbSIsInN1YiI6InVzZXItMTIzIiwiYXVkIjoicG9ydGljbyIsImlhdC"
    "I6MTczNTY4OTU0MCwibmJmIjoxNzM1Njg5NTQwLCJleHAiOjE3MzU2OTMyMDAsImp0aSI6Imp0aS0wMDAxIn0."
    "jj8d2pk52BRKi5GtOrXEscnO0Vxlogq0qib2B9RbbwrYAFZLOWsrWM5Ey_Ug_YdBm8w3wyAOP8siEM47myMMwg",
    "eyJhbGciOiJIUzUxMiIsInR5cCI6IkpXVCJ9."
    "eyJpc3MiOiJodHRwczovL2lkcC5leGFtcGxlLmNvbSIsInN1YiI6InVzZXItMTIzIiwiYXVkIjoicG9ydGljbyIsImlhdC"
    "I6MTczNTY4OTU0MCwibmJmIjoxNzM1Njg5NTQwLCJleHAiOjE3MzU2OTMyMDAsImp0aSI6Imp0aS0wMDAxIn0."
    "2u4rnPm1qyiMDXCuEknEM9BLwk7x0SMo_JKzO1PXzT0LZULBUKs2K_fVS3fQQ3WYVVE0MQLCgCN3H4OciI5Yvw",
};

constexpr std::size_t kMaxJwksKeys = 256;  // from_jwks skips entries past this

KeyType family_of(Algorithm a) {
  return a <= Algorithm::hs512 ? KeyType::oct : a <= Algorithm::ps512 ? KeyType::rsa : KeyType::ec;
}

std::size_t hash_bits(Algorithm a) {
  return 256 + 128 * (static_cast<std::size_t>(a) % 3);
}

std::size_t curve_bits(Algorithm a) {
  return a == Algorithm::es256 ? 256 : a == Algorithm::es384 ? 384 : 521;
}

// Whether `key` may check `alg` under the rules of jwt.hpp.
bool may_verify(const KeyInfo& key, Algorithm alg) {
  if (key.type != family_of(alg) || (key.algorithm && *key.algorithm != alg)) return false;
  if (key.type == KeyType::oct) return key.bits >= hash_bits(alg);
  if (key.type == KeyType::ec) return key.bits == curve_bits(alg);
  return key.bits >= 2048;
}

// The number of entries of the "keys" array, when the strict reader accepts
// the input; -1 when it accepts a document without one; nullopt when it
// refuses the input.
std::optional<long> strict_entry_count(std::string_view input) {
  JsonDoc doc;
  std::string error;
  if (!doc.parse(input, error)) return std::nullopt;
  const auto* keys = doc.member(doc.root(), "keys");
  if (keys == nullptr || keys->type != JsonType::array) return -1;
  return keys->count;
}

void check_key(const KeyInfo& key, std::string_view input) {
  // Read the kid through its view, so that a dangling one shows.
  const std::string kid(key.kid);
  switch (key.type) {
    case KeyType::rsa:
      if (key.bits < 2048) fail("an RSA key under 2048 bits was loaded", input, kid);
      break;
    case KeyType::ec:
      if (key.bits != 256 && key.bits != 384 && key.bits != 521) {
        fail("an EC key of an unknown curve was loaded", input, kid);
      }
      break;
    case KeyType::oct:
      if (key.bits < 256 || key.bits % 8 != 0) fail("a short HMAC secret was loaded", input, kid);
      break;
    default:
      fail("a key of no known type", input, kid);
  }
  if (key.algorithm && !may_verify(key, *key.algorithm)) {
    fail("a key is bound to an algorithm it cannot check", input, kid);
  }
}

void check_set(const KeySet& set, std::optional<long> entries, std::string_view input) {
  if (set.size() > kMaxJwksKeys) fail("more keys than the limit", input);
  for (std::size_t i = 0; i < set.size(); ++i)
    check_key(set.key(i), input);
  const auto skipped = set.skipped();
  for (std::size_t i = 0; i < skipped.size(); ++i) {
    if (skipped[i].reason.empty()) fail("a key was skipped without a reason", input);
    if (i > 0 && skipped[i].index <= skipped[i - 1].index) fail("skipped keys out of order", input);
    if (entries && *entries >= 0 && skipped[i].index >= static_cast<std::size_t>(*entries)) {
      fail("a skipped index past the end of \"keys\"", input, skipped[i].reason);
    }
  }
  if (entries && *entries >= 0 &&
      set.size() + skipped.size() != static_cast<std::size_t>(*entries)) {
    fail("entries neither loaded nor skipped", input,
         std::to_string(set.size()) + " loaded + " + std::to_string(skipped.size()) +
             " skipped != " + std::to_string(*entries));
  }
  if (set.id() == 0) fail("a key set with id 0", input);
}

KeySet initial_set() {
  KeySet set;
  if (!set.add_hmac_secret(std::string(32, 's'), {"initial", std::nullopt})) {
    fail("the initial secret is refused", {});
  }
  return set;
}

void check_tokens(const std::shared_ptr<const KeySetHolder>& holder, std::string_view input) {
  auto verifier = Verifier::create(holder, {});
  if (!verifier) fail("default verifier options are refused", input, verifier.error().message);
  const auto set = holder->current();
  for (std::string_view token : kTokens) {
    const Verification v = verifier->verify_signature(token, nullptr);
    if (!v.ok()) {
      if (v.message().empty()) fail("a failure without a message", input);
      continue;
    }
    bool found = false;
    for (std::size_t i = 0; i < set->size() && !found; ++i) {
      const KeyInfo key = set->key(i);
      found = key.kid == v.token().kid && may_verify(key, v.token().algorithm);
    }
    if (!found) fail("verified by no key that may check its algorithm", input, token);
  }
}

void check_holder(const Result<KeySet>& set, std::string_view input) {
  auto holder = std::make_shared<KeySetHolder>(initial_set());
  const auto before = holder->current();
  const std::uint64_t before_id = holder->current_id();
  const auto status = holder->replace_from_jwks(input);
  const bool usable = set.ok() && !set->empty();
  if (status.ok() != usable) {
    fail(status.ok() ? "replace_from_jwks installed a set with no usable key"
                     : "replace_from_jwks refused a set with usable keys",
         input, status.ok() ? "" : status.error().message);
  }
  if (!status.ok()) {
    if (status.error().message.empty()) fail("replace_from_jwks failed without a message", input);
    if (holder->current() != before || holder->current_id() != before_id) {
      fail("a failed replace changed the current set", input);
    }
    return;
  }
  const auto after = holder->current();
  if (after == before || holder->current_id() == before_id || holder->current_id() != after->id()) {
    fail("a replace did not install a new set under its id", input);
  }
  if (after->size() != set->size()) fail("the installed set differs from from_jwks's", input);
  check_tokens(holder, input);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const auto set = KeySet::from_jwks(input);
  const auto entries = strict_entry_count(input);
  if (entries && set.ok() != (*entries >= 0)) {
    fail(set.ok() ? "from_jwks accepted a document without a \"keys\" array"
                  : "from_jwks refused a JWKS the strict JSON reader accepts",
         input, set.ok() ? "" : set.error().message);
  }
  if (set.ok()) {
    check_set(*set, entries, input);
  } else if (set.error().kind != ErrorKind::malformed || set.error().message.empty()) {
    fail("from_jwks failed with another kind or no message", input, set.error().message);
  }
  check_holder(set, input);
  return 0;
}
