// The JWT verifier's parts beyond the committed vectors: the strict
// base64url and JSON readers, claim getters, key-set loading rules, the
// holder's last-good-set behaviour, option checks and the token cache.
#include <doctest/doctest.h>

#include <atomic>
#include <thread>

#include "../../lib/jwt/base64url.hpp"
#include "../../lib/jwt/json.hpp"
#include "../../lib/tls/crypto.hpp"
#include "../support/alloc_counter.hpp"
#include "portico/jwt.hpp"

using namespace portico;
using namespace portico::jwt;
using portico::detail::base64url_decode;
using portico::detail::base64url_encode;
using portico::detail::JsonDoc;
using portico::detail::JsonType;

namespace {

const std::string kSecret = "0123456789abcdef0123456789abcdef";  // 32 bytes
constexpr double kNow = 1735689600;

WallTime at(double seconds) {
  return WallTime(
      std::chrono::duration_cast<WallTime::duration>(std::chrono::duration<double>(seconds)));
}

std::string b64(std::string_view s) {
  std::string out;
  base64url_encode(s, out);
  return out;
}

// An HS256/384/512 token over exactly these header and payload texts.
std::string sign_hmac(std::string_view header, std::string_view payload,
                      const std::string& secret = kSecret,
                      detail::HashAlg hash = detail::HashAlg::sha256) {
  std::string input = b64(header) + "." + b64(payload);
  detail::HmacKey key(hash, detail::as_bytes(secret));
  detail::Digest mac = key.mac(detail::as_bytes(input));
  return input + "." + b64({reinterpret_cast<const char*>(mac.bytes), mac.size});
}

std::string claims_json(double exp = kNow + 3600, const std::string& extra = "") {
  return R"({"iss":"https://idp.example.com","sub":"user-1","aud":"portico","exp":)" +
         std::to_string(static_cast<long long>(exp)) + extra + "}";
}

std::string hs256(const std::string& payload, const std::string& kid = "k1") {
  return sign_hmac(R"({"alg":"HS256","typ":"JWT","kid":")" + kid + R"("})", payload);
}

std::shared_ptr<KeySetHolder> secret_holder(const std::string& kid = "k1") {
  KeySet set;
  REQUIRE(set.add_hmac_secret(kSecret, {kid, {}}));
  return std::make_shared<KeySetHolder>(std::move(set));
}

VerifierOptions default_options() {
  VerifierOptions o;
  o.issuers = {"https://idp.example.com"};
  o.audiences = {"portico"};
  o.required_claims = {"sub"};
  return o;
}

std::shared_ptr<const Verifier> make_verifier(std::shared_ptr<const KeySetHolder> holder,
                                              VerifierOptions o = default_options()) {
  auto v = Verifier::create(std::move(holder), std::move(o));
  REQUIRE(v);
  return std::make_shared<const Verifier>(std::move(*v));
}

}  // namespace

// ------------------------------------------------------------- base64url

TEST_CASE("base64url: decodes canonical unpadded text only") {
  std::string out;
  CHECK(base64url_decode("", out));
  CHECK(out.empty());
  CHECK(base64url_decode("Zm9vYmFy", out));
  CHECK(out == "foobar");
  CHECK(base64url_decode("Zm9vYg", out));
  CHECK(out == "foob");
  CHECK(base64url_decode("Zm9vYmE", out));
  CHECK(out == "fooba");
  CHECK(base64url_decode("-_-_", out));
  CHECK(out == "\xfb\xff\xbf");
  for (const char* bad : {"Zm9vYg==", "Zm9vYmE=", "Zm9v+mFy", "Zm9v/mFy", "Zm9v YmFy", "Zm9vYmFy\n",
                          " Zm9vYmFy", "Z", "Zm9vY", "Zm9vYh", "Zm9vYmF", "Zm9v\x80"}) {
    CAPTURE(bad);
    CHECK_FALSE(base64url_decode(bad, out));
  }
}

TEST_CASE("base64url: every byte string round-trips") {
  std::string bytes;
  for (int n = 0; n < 300; ++n) {
    std::string text = b64(bytes), back;
    REQUIRE(base64url_decode(text, back));
    CHECK(back == bytes);
    CHECK(text.find('=') == std::string::npos);
    bytes += static_cast<char>(n * 37 + 11);
  }
}

// ------------------------------------------------------------------ JSON

TEST_CASE("JSON reader: accepts RFC 8259 documents and reads values") {
  JsonDoc doc;
  std::string error;
  const std::string text =
      " {\"a\" : [1, -2.5e3, true, false, null, \"x\\u00e9\\ud83d\\ude00\\n\"],\r\n"
      "  \"b\": {\"c\": {}} , \"\xc3\xa9\": \"\\/\"} ";
  REQUIRE_MESSAGE(doc.parse(text, error), error);
  const auto* a = doc.member(doc.root(), "a");
  REQUIRE(a);
  CHECK(a->type == JsonType::array);
  CHECK(a->count == 6);
  CHECK(doc.element(*a, 1).number == -2500);
  CHECK(doc.element(*a, 2).boolean);
  CHECK(doc.element(*a, 4).type == JsonType::null);
  CHECK(doc.string(doc.element(*a, 5)) == "x\xc3\xa9\xf0\x9f\x98\x80\n");
  CHECK(doc.raw(*doc.member(doc.root(), "b")) == "{\"c\": {}}");
  CHECK(doc.find("b.c") != nullptr);
  CHECK(doc.find("b.d") == nullptr);
  CHECK(doc.string(*doc.member(doc.root(), "\xc3\xa9")) == "/");
}

TEST_CASE("JSON reader: refuses what a security-sensitive reader must") {
  const char* bad[] = {
      "",
      "{",
      "{\"a\":1,}",
      "[1,]",
      "{\"a\":1}x",
      "{\"a\":1,\"a\":2}",          // duplicate member
      "{\"a\":{\"b\":1,\"b\":1}}",  // duplicate, nested
      "{'a':1}",
      "{\"a\":01}",
      "{\"a\":1.}",
      "{\"a\":.5}",
      "{\"a\":-}",
      "{\"a\":1e}",
      "{\"a\":1e999}",  // overflows a double
      "{\"a\":tru}",
      "{\"a\":\"\x01\"}",              // control character
      "{\"a\":\"\\x\"}",               // unknown escape
      "{\"a\":\"\\ud800\"}",           // unpaired high surrogate
      "{\"a\":\"\\udc00\"}",           // lone low surrogate
      "{\"a\":\"\\ud800\\u0041\"}",    // high surrogate + non-surrogate
      "{\"a\":\"\xc0\xaf\"}",          // overlong
      "{\"a\":\"\xed\xa0\x80\"}",      // UTF-8 surrogate
      "{\"a\":\"\xf4\x90\x80\x80\"}",  // above U+10FFFF
      "{\"a\":\"\xe2\x82\"}",          // truncated sequence
      "{\"a\":\"abc",
  };
  for (const char* text : bad) {
    CAPTURE(text);
    JsonDoc doc;
    std::string error;
    CHECK_FALSE(doc.parse(text, error));
    CHECK(error.find("at byte") != std::string::npos);
  }
}

TEST_CASE("JSON reader: nesting is bounded, not recursive without limit") {
  JsonDoc doc;
  std::string error;
  std::string ok = std::string(JsonDoc::kMaxDepth, '[') + std::string(JsonDoc::kMaxDepth, ']');
  CHECK(doc.parse(ok, error));
  std::string deep = std::string(100000, '[') + std::string(100000, ']');
  CHECK_FALSE(doc.parse(deep, error));
  CHECK(error.find("nested too deeply") != std::string::npos);
}

TEST_CASE("JSON reader: many members, duplicates found among them") {
  std::string text = "{";
  for (int i = 0; i < 2000; ++i)
    text += "\"m" + std::to_string(i) + "\":" + std::to_string(i) + ",";
  JsonDoc doc;
  std::string error;
  CHECK(doc.parse(text + "\"last\":0}", error));
  CHECK(doc.find("m1999")->number == 1999);
  CHECK_FALSE(doc.parse(text + "\"m1000\":0}", error));
  CHECK(error.find("duplicate") != std::string::npos);
}

// ---------------------------------------------------------------- claims

TEST_CASE("claims: typed getters, nested paths and URI-named claims") {
  auto verifier = make_verifier(secret_holder());
  const std::string payload = claims_json(
      kNow + 3600,
      R"(,"realm_access":{"roles":["admin","ops"]},"scope":"read write","n":42,"f":1.5,)"
      R"("big":1e300,"ok":true,"https://example.com/tenant":"acme","mixed":["a",1],)"
      R"("esc":"caf\u00e9")");
  Verification v = verifier->verify(hs256(payload), at(kNow));
  REQUIRE_MESSAGE(v.ok(), v.message());
  const Claims& c = v.claims();
  CHECK(c.string("sub") == "user-1");
  CHECK(c.string("esc") == "caf\xc3\xa9");
  CHECK(c.string("n") == std::nullopt);  // wrong type
  CHECK(c.integer("n") == 42);
  CHECK(c.integer("f") == std::nullopt);
  CHECK(c.number("f") == 1.5);
  CHECK(c.integer("big") == std::nullopt);
  CHECK(c.boolean("ok") == true);
  CHECK(c.string("https://example.com/tenant") == "acme");
  auto roles = c.strings("realm_access.roles");
  REQUIRE(roles);
  CHECK(*roles == std::vector<std::string_view>{"admin", "ops"});
  CHECK(c.contains("realm_access.roles", "ops"));
  CHECK_FALSE(c.contains("realm_access.roles", "root"));
  CHECK(c.strings("aud") == std::vector<std::string_view>{"portico"});
  CHECK(c.strings("mixed") == std::nullopt);
  CHECK(c.type("realm_access") == ClaimType::object);
  CHECK(c.type("realm_access.roles") == ClaimType::array);
  CHECK(c.type("nope") == ClaimType::absent);
  CHECK(c.json("realm_access") == R"({"roles":["admin","ops"]})");
  CHECK(c.json() == payload);
  CHECK(v.token().expires_at == kNow + 3600);
  CHECK(v.token().kid == "k1");
  CHECK(v.token().algorithm == Algorithm::hs256);
}

TEST_CASE("claims: a short payload survives being moved (small-string storage)") {
  KeySet set;
  REQUIRE(set.add_hmac_secret(kSecret));
  auto verifier = make_verifier(std::make_shared<KeySetHolder>(std::move(set)), {});
  Verification v = verifier->verify(sign_hmac(R"({"alg":"HS256"})", R"({"a":"b"})"), at(kNow));
  REQUIRE_MESSAGE(v.ok(), v.message());
  Claims moved = std::move(const_cast<VerifiedToken&>(v.token()).claims);
  CHECK(moved.string("a") == "b");
  CHECK(moved.json("a") == "\"b\"");
}

TEST_CASE("claims: NumericDates far outside the int64 range are judged, not converted") {
  auto verifier = make_verifier(secret_holder());
  const std::string base = R"({"iss":"https://idp.example.com","sub":"u","aud":"portico",)";
  Verification past = verifier->verify(hs256(base + R"("exp":-1e300})"), at(kNow));
  CHECK(past.reason() == Reason::expired);
  CHECK(past.message().find("-1e+300") != std::string::npos);
  Verification future = verifier->verify(hs256(base + R"("exp":1e300,"nbf":1.7e99})"), at(kNow));
  CHECK(future.reason() == Reason::not_yet_valid);
  CHECK(verifier->verify(hs256(base + R"("exp":1e300})"), at(kNow)).ok());
}

TEST_CASE("claims: NumericDate may be fractional; iat must be a number") {
  auto verifier = make_verifier(secret_holder());
  auto token =
      hs256(R"({"iss":"https://idp.example.com","sub":"u","aud":"portico","exp":1735689600.5})");
  VerifierOptions o = default_options();
  o.leeway = std::chrono::seconds(0);
  auto strict = make_verifier(secret_holder(), o);
  CHECK(strict->verify(token, at(kNow)).ok());
  CHECK(strict->verify(token, at(kNow + 0.5)).reason() == Reason::expired);
  auto iat = hs256(claims_json(kNow + 60, R"(,"iat":"yesterday")"));
  CHECK(verifier->verify(iat, at(kNow)).reason() == Reason::malformed);
}

// ------------------------------------------------------------------ keys

TEST_CASE("key set: unusable JWKs are skipped with a reason, the rest load") {
  const std::string secret_b64 = b64(kSecret);
  const std::string jwks = R"({"keys":[
    {"kty":"oct","kid":"good","k":")" +
                           secret_b64 + R"("},
    {"kty":"oct","kid":"enc","use":"enc","k":")" +
                           secret_b64 + R"("},
    {"kty":"oct","kid":"ops","key_ops":["sign"],"k":")" +
                           secret_b64 + R"("},
    {"kty":"oct","kid":"short","k":"c2hvcnQ"},
    {"kty":"oct","kid":"padded","k":")" +
                           secret_b64 + R"(="},
    {"kty":"OKP","kid":"ed","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
    {"kty":"EC","kid":"curve","crv":"secp256k1","x":"AA","y":"AA"},
    {"kty":"EC","kid":"short-x","crv":"P-256","x":"AQ","y":"AQ"},
    {"kty":"EC","kid":"off-curve","crv":"P-256",
     "x":"Nta5HCasndJucOLh3plXPX14vW1KysCX4XawKPlzQIU","y":"GhQ5VDH7-KySXkfCxYXQwbqWZeKi32dPLkXLTgnhDLg"},
    {"kty":"RSA","kid":"weak","n":")" +
                           b64(std::string(128, '\xc5')) + R"(","e":"AQAB"},
    {"kty":"RSA","kid":"no-e","n":"AQAB"},
    {"kty":"oct","kid":"alg-mismatch","alg":"RS256","k":")" +
                           secret_b64 + R"("},
    {"kty":"oct","kid":"alg-unknown","alg":"HS1024","k":")" +
                           secret_b64 + R"("},
    {"kid":"no-kty"},
    "not an object",
    {"kty":"oct","kid":7,"k":")" +
                           secret_b64 + R"("}
  ]})";
  auto set = KeySet::from_jwks(jwks);
  REQUIRE(set);
  REQUIRE(set->size() == 1);
  CHECK(set->key(0).kid == "good");
  CHECK(set->key(0).type == KeyType::oct);
  CHECK(set->key(0).bits == 256);
  const auto skipped = set->skipped();
  REQUIRE(skipped.size() == 15);
  auto reason_of = [&](std::size_t index) {
    for (const auto& s : skipped)
      if (s.index == index) return s.reason;
    return std::string("(not skipped)");
  };
  CHECK(reason_of(1).find("\"use\"") != std::string::npos);
  CHECK(reason_of(2).find("key_ops") != std::string::npos);
  CHECK(reason_of(3).find("at least 32") != std::string::npos);
  CHECK(reason_of(4).find("base64url") != std::string::npos);
  CHECK(reason_of(5).find("OKP") != std::string::npos);
  CHECK(reason_of(6).find("secp256k1") != std::string::npos);
  CHECK(reason_of(7).find("32 bytes") != std::string::npos);
  CHECK(reason_of(8).find("not on the curve") != std::string::npos);
  CHECK(reason_of(9).find("2048") != std::string::npos);
  CHECK(reason_of(10).find("\"e\"") != std::string::npos);
  CHECK(reason_of(11).find("does not fit") != std::string::npos);
  CHECK(reason_of(12).find("HS1024") != std::string::npos);
  CHECK(reason_of(13).find("kty") != std::string::npos);
  CHECK(reason_of(14).find("object") != std::string::npos);
  CHECK(reason_of(15).find("kid") != std::string::npos);
  CHECK(skipped[0].kid == "enc");
}

TEST_CASE("key set: RSA keys too costly to verify with are refused") {
  const std::string n2048 = b64(std::string(256, '\xc5'));
  KeySet set;
  auto big_e = set.add_jwk(R"({"kty":"RSA","n":")" + n2048 + R"(","e":")" +
                           b64(std::string("\x01\x00\x00\x00\x01", 5)) + "\"}");
  REQUIRE_FALSE(big_e);
  CHECK(big_e.error().message.find("exponent") != std::string::npos);
  CHECK_FALSE(
      set.add_jwk(R"({"kty":"RSA","n":")" + b64(std::string(1100, '\xc5')) + R"(","e":"AQAB"})"));
  CHECK(set.add_jwk(R"({"kty":"RSA","n":")" + n2048 + R"(","e":"AQAB"})"));
}

TEST_CASE("key set: documents that are not a JWKS are errors") {
  for (const char* bad : {"", "[]", "{}", R"({"keys":{}})", "{\"keys\":[1e999]}", "{\"keys\":[",
                          R"({"keys":[]} trailing)", R"({"keys":[],"keys":[]})"}) {
    CAPTURE(bad);
    auto set = KeySet::from_jwks(bad);
    CHECK_FALSE(set);
  }
  auto many = std::string(R"({"keys":[)");
  for (int i = 0; i < 300; ++i)
    many += std::string(i ? "," : "") + R"({"kty":"oct","k":")" + b64(kSecret) + "\"}";
  auto set = KeySet::from_jwks(many + "]}");
  REQUIRE(set);
  CHECK(set->size() == 256);
  CHECK(set->skipped().size() == 44);
}

TEST_CASE("key set: PEM and raw secrets with their checks") {
  KeySet set;
  CHECK_FALSE(set.add_hmac_secret("too short"));
  CHECK_FALSE(set.add_hmac_secret(kSecret, {"x", Algorithm::rs256}));
  CHECK_FALSE(set.add_hmac_secret(kSecret, {"x", Algorithm::hs384}));  // 32 < 48 bytes
  auto pem = set.add_pem("-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n");
  REQUIRE_FALSE(pem);
  CHECK(pem.error().message.find("PEM") != std::string::npos);
  CHECK_FALSE(set.add_pem(""));
  CHECK_FALSE(set.add_jwk("{"));
  auto jwk = set.add_jwk(R"({"kty":"oct","kid":"weak","k":"c2hvcnQ"})");
  REQUIRE_FALSE(jwk);
  CHECK(jwk.error().message.find("'weak'") != std::string::npos);
  CHECK(set.empty());
  const auto id = set.id();
  REQUIRE(set.add_hmac_secret(kSecret));
  CHECK(set.id() != id);
}

TEST_CASE("key binding: a secret too short for the hash is not a candidate") {
  // A 32-byte secret may verify HS256 but never HS512 (RFC 7518 3.2).
  auto verifier = make_verifier(secret_holder(), {});
  auto hs512 = sign_hmac(R"({"alg":"HS512"})", "{}", kSecret, detail::HashAlg::sha512);
  Verification v = verifier->verify(hs512, at(kNow));
  CHECK(v.reason() == Reason::unknown_kid);
  CHECK(v.message().find(kSecret) == std::string::npos);
}

TEST_CASE("key choice: the number of keys tried for a token without kid is bounded") {
  KeySet set;
  for (int i = 0; i < 6; ++i) {
    std::string other = kSecret;
    other[0] = static_cast<char>('A' + i);
    REQUIRE(set.add_hmac_secret(other));
  }
  REQUIRE(set.add_hmac_secret(kSecret));  // the right key is the 7th
  auto holder = std::make_shared<KeySetHolder>(std::move(set));
  auto token = sign_hmac(R"({"alg":"HS256"})", "{}");
  VerifierOptions o;
  o.max_keys_tried = 4;
  Verification v = make_verifier(holder, o)->verify(token, at(kNow));
  CHECK(v.reason() == Reason::bad_signature);
  CHECK(v.message().find("4 candidate") != std::string::npos);
  o.max_keys_tried = 7;
  CHECK(make_verifier(holder, o)->verify(token, at(kNow)).ok());
}

// ---------------------------------------------------------------- holder

TEST_CASE("holder: a bad JWKS refresh keeps the last good set") {
  auto holder = secret_holder("k1");
  auto verifier = make_verifier(holder);
  const std::string token = hs256(claims_json());
  REQUIRE(verifier->verify(token, at(kNow)).ok());
  const auto id = holder->current_id();

  CHECK_FALSE(holder->replace_from_jwks("<html>502 Bad Gateway</html>"));
  auto empty = holder->replace_from_jwks(R"({"keys":[{"kty":"oct","k":"c2hvcnQ"}]})");
  REQUIRE_FALSE(empty);
  CHECK(empty.error().message.find("keeping the current set") != std::string::npos);
  CHECK(holder->current_id() == id);
  CHECK(verifier->verify(token, at(kNow)).ok());

  // A good document replaces the set: the old kid is gone.
  std::string other = kSecret;
  other[0] = 'X';
  REQUIRE(holder->replace_from_jwks(R"({"keys":[{"kty":"oct","kid":"k2","k":")" + b64(other) +
                                    "\"}]}"));
  CHECK(holder->current_id() != id);
  CHECK(verifier->verify(token, at(kNow)).reason() == Reason::unknown_kid);
}

TEST_CASE("holder: verifications run while another thread swaps the set") {
  auto holder = secret_holder("k1");
  auto verifier = make_verifier(holder);
  const std::string token = hs256(claims_json());
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::thread reader([&] {
    while (!stop.load()) {
      if (!verifier->verify(token, at(kNow)).ok()) failures.fetch_add(1);
    }
  });
  // Every replacement holds the same key, so every verification must pass.
  for (int i = 0; i < 2000; ++i) {
    KeySet set;
    REQUIRE(set.add_hmac_secret(kSecret, {"k1", {}}));
    holder->replace(std::move(set));
  }
  stop.store(true);
  reader.join();
  CHECK(failures.load() == 0);
}

TEST_CASE("holder: readers see whole sets, never an older one after a newer one") {
  auto holder = secret_holder("k1");
  std::atomic<bool> stop{false};
  std::atomic<int> broken{0}, reads{0};
  auto read = [&] {
    std::uint64_t last = 0;
    while (!stop.load()) {
      const std::shared_ptr<const KeySet> set = holder->current();
      if (set == nullptr || set->size() != 1 || set->id() < last) broken.fetch_add(1);
      last = set == nullptr ? last : set->id();
      reads.fetch_add(1);
    }
  };
  std::thread r1(read), r2(read);
  // Sets made in order have increasing ids. The writer goes on until the
  // readers have read a while too (bounded in time).
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  int i = 0;
  for (; i < 3000 || (reads.load() < 3000 && std::chrono::steady_clock::now() < give_up); ++i) {
    KeySet set;
    REQUIRE(set.add_hmac_secret(kSecret, {"k" + std::to_string(i), {}}));
    holder->replace(std::move(set));
  }
  stop.store(true);
  r1.join();
  r2.join();
  CHECK(broken.load() == 0);
  CHECK(reads.load() > 0);
  CHECK(holder->current()->key(0).kid == "k" + std::to_string(i - 1));
}

// --------------------------------------------------------------- options

TEST_CASE("verifier options are checked") {
  auto holder = secret_holder();
  auto expect_error = [&](VerifierOptions o, const char* field) {
    auto v = Verifier::create(holder, std::move(o));
    REQUIRE_FALSE(v);
    CHECK_MESSAGE(v.error().message.find(field) == 0, v.error().message);
  };
  VerifierOptions o;
  o.algorithms = {};
  expect_error(o, "algorithms");
  o = {};
  o.issuers = {""};
  expect_error(o, "issuers");
  o = {};
  o.audiences = {"a", ""};
  expect_error(o, "audiences");
  o = {};
  o.leeway = std::chrono::seconds(-1);
  expect_error(o, "leeway");
  o = {};
  o.max_token_bytes = 0;
  expect_error(o, "max_token_bytes");
  o = {};
  o.max_keys_tried = 0;
  expect_error(o, "max_keys_tried");
  CHECK_FALSE(Verifier::create(nullptr, {}));
}

TEST_CASE("a token over the size limit is refused before it is decoded") {
  VerifierOptions o = default_options();
  o.max_token_bytes = 64;
  auto verifier = make_verifier(secret_holder(), o);
  // Not even base64url: only the size is looked at.
  Verification v = verifier->verify(std::string(65, '!'), at(kNow));
  CHECK(v.reason() == Reason::too_large);
  CHECK(v.message() == "token is 65 bytes; the limit is 64");
}

TEST_CASE("a header with enc or crit, or a kid of the wrong type, is malformed") {
  auto verifier = make_verifier(secret_holder());
  const std::string payload = claims_json();
  for (const char* header :
       {R"({"alg":"HS256","enc":"A128GCM"})", R"({"alg":"HS256","crit":["exp"],"exp":1})",
        R"({"alg":"HS256","kid":7})", R"({"alg":"HS256","alg":"none"})"}) {
    CAPTURE(header);
    CHECK(verifier->verify(sign_hmac(header, payload), at(kNow)).reason() == Reason::malformed);
  }
}

// ----------------------------------------------------------------- cache

TEST_CASE("cache: a repeated token hits, without allocating") {
  auto verifier = make_verifier(secret_holder());
  TokenCache cache(verifier);
  const std::string token = hs256(claims_json());
  Verification first = cache.verify(token, at(kNow));
  REQUIRE(first.ok());
  CHECK_FALSE(first.from_cache());

  const auto before = test::allocation_count();
  for (int i = 0; i < 100; ++i) {
    Verification again = cache.verify(token, at(kNow + i));
    REQUIRE(again.ok());
    REQUIRE(again.from_cache());
  }
  CHECK(test::allocation_count() == before);
  CHECK(cache.stats().hits == 100);
  CHECK(cache.stats().misses == 1);

  Verification hit = cache.verify(token, at(kNow));
  CHECK(hit.claims().string("sub") == "user-1");
  CHECK(hit.shared_token() == first.shared_token());
}

TEST_CASE("cache: a token that differs by one byte never hits") {
  auto verifier = make_verifier(secret_holder());
  TokenCache cache(verifier);
  const std::string token = hs256(claims_json());
  REQUIRE(cache.verify(token, at(kNow)).ok());
  for (std::size_t i = 0; i < token.size(); i += 7) {
    std::string changed = token;
    changed[i] = changed[i] == 'A' ? 'B' : 'A';
    Verification v = cache.verify(changed, at(kNow));
    CHECK_FALSE(v.ok());
    CHECK_FALSE(v.from_cache());
  }
  CHECK(cache.verify(token + "A", at(kNow)).reason() == Reason::bad_signature);
  CHECK(cache.verify(token + "AA", at(kNow)).reason() == Reason::malformed);
}

TEST_CASE("cache: exp is re-checked on every hit, and the TTL bounds an entry") {
  auto verifier = make_verifier(secret_holder());
  TokenCacheOptions options;
  options.ttl = std::chrono::seconds(60);
  TokenCache cache(verifier, options);
  const std::string token = hs256(claims_json(kNow + 100));
  REQUIRE(cache.verify(token, at(kNow)).ok());
  CHECK(cache.verify(token, at(kNow + 59)).from_cache());
  // Past the TTL the signature is checked again (a miss), still valid.
  Verification after_ttl = cache.verify(token, at(kNow + 61));
  CHECK(after_ttl.ok());
  CHECK_FALSE(after_ttl.from_cache());
  // Past exp + leeway (30 s) the cached token is refused.
  Verification expired = cache.verify(token, at(kNow + 130));
  CHECK(expired.reason() == Reason::expired);
}

TEST_CASE("cache: a new key set invalidates entries verified under the old one") {
  auto holder = secret_holder("k1");
  auto verifier = make_verifier(holder);
  TokenCache cache(verifier);
  const std::string token = hs256(claims_json());
  REQUIRE(cache.verify(token, at(kNow)).ok());
  REQUIRE(cache.verify(token, at(kNow)).from_cache());
  std::string other = kSecret;
  other[0] = 'X';
  KeySet rotated;
  REQUIRE(rotated.add_hmac_secret(other, {"k1", {}}));
  holder->replace(std::move(rotated));
  Verification v = cache.verify(token, at(kNow));
  CHECK_FALSE(v.from_cache());
  CHECK(v.reason() == Reason::bad_signature);
}

TEST_CASE("cache: rejections are cached briefly, except those time can undo") {
  auto verifier = make_verifier(secret_holder());
  TokenCacheOptions options;
  options.negative_ttl = std::chrono::seconds(5);
  TokenCache cache(verifier, options);
  std::string bad = hs256(claims_json());
  bad[bad.size() - 3] = bad[bad.size() - 3] == 'A' ? 'B' : 'A';
  CHECK(cache.verify(bad, at(kNow)).reason() == Reason::bad_signature);
  Verification again = cache.verify(bad, at(kNow + 1));
  CHECK(again.reason() == Reason::bad_signature);
  CHECK(again.from_cache());
  CHECK_FALSE(again.message().empty());
  CHECK(cache.stats().negative_hits == 1);
  CHECK_FALSE(cache.verify(bad, at(kNow + 6)).from_cache());

  // Not yet valid now, valid later: never cached as a rejection.
  const std::string early =
      hs256(claims_json(kNow + 3600, ",\"nbf\":" + std::to_string(kNow + 100)));
  CHECK(cache.verify(early, at(kNow)).reason() == Reason::not_yet_valid);
  CHECK_FALSE(cache.verify(early, at(kNow)).from_cache());
  CHECK(cache.verify(early, at(kNow + 100)).ok());
}

TEST_CASE("cache: bounded; the oldest entries make room") {
  auto verifier = make_verifier(secret_holder());
  TokenCacheOptions options;
  options.capacity = 16;
  TokenCache cache(verifier, options);
  std::vector<std::string> tokens;
  for (int i = 0; i < 200; ++i) {
    tokens.push_back(hs256(claims_json(kNow + 3600, ",\"jti\":\"" + std::to_string(i) + "\"")));
    REQUIRE(cache.verify(tokens.back(), at(kNow)).ok());
  }
  CHECK(cache.stats().evictions >= 184);
  int hits = 0;
  for (const auto& t : tokens)
    hits += cache.verify(t, at(kNow)).from_cache();
  CHECK(hits <= 16);
  cache.clear();
  CHECK_FALSE(cache.verify(tokens.back(), at(kNow)).from_cache());
}

TEST_CASE("cache: long tokens are verified but not kept") {
  auto verifier = make_verifier(secret_holder());
  TokenCacheOptions options;
  options.max_token_bytes = 100;
  TokenCache cache(verifier, options);
  const std::string token = hs256(claims_json());
  REQUIRE(token.size() > 100);
  CHECK(cache.verify(token, at(kNow)).ok());
  CHECK_FALSE(cache.verify(token, at(kNow)).from_cache());
}
