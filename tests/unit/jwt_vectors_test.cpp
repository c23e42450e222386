// The committed JWT vectors: every generated case (tests/jwt/vectors.json)
// and the RFC 7515 / RFC 7520 examples (tests/jwt/rfc_vectors.json), byte for
// byte, through the public API.
#include <doctest/doctest.h>
#include <picojson.h>

#include <fstream>
#include <map>
#include <sstream>

#include "portico/jwt.hpp"

using namespace portico;
using namespace portico::jwt;

namespace {

picojson::value load_json(const std::string& name) {
  std::ifstream in(std::string(PORTICO_TEST_JWT_DIR) + "/" + name);
  REQUIRE_MESSAGE(in.good(), "cannot open ", name);
  std::stringstream text;
  text << in.rdbuf();
  picojson::value v;
  const std::string err = picojson::parse(v, text.str());
  REQUIRE_MESSAGE(err.empty(), name, ": ", err);
  return v;
}

const picojson::value& vectors() {
  static const picojson::value v = load_json("vectors.json");
  return v;
}

WallTime at(double seconds) {
  return WallTime(
      std::chrono::duration_cast<WallTime::duration>(std::chrono::duration<double>(seconds)));
}

std::vector<std::string> string_list(const picojson::value& v) {
  std::vector<std::string> out;
  for (const auto& e : v.get<picojson::array>())
    out.push_back(e.get<std::string>());
  return out;
}

VerifierOptions options_from(const picojson::object& config) {
  VerifierOptions o;
  o.algorithms = {};
  for (const auto& name : string_list(config.at("algorithms"))) {
    auto alg = parse_algorithm(name);
    REQUIRE(alg);
    o.algorithms.insert(*alg);
  }
  o.issuers = string_list(config.at("issuers"));
  o.audiences = string_list(config.at("audiences"));
  o.required_claims = string_list(config.at("required_claims"));
  o.leeway = std::chrono::seconds(static_cast<long>(config.at("leeway_s").get<double>()));
  o.max_token_bytes = static_cast<std::size_t>(config.at("max_token_bytes").get<double>());
  return o;
}

std::shared_ptr<const KeySetHolder> holder_for(const std::string& jwks_name) {
  static std::map<std::string, std::shared_ptr<const KeySetHolder>> cache;
  auto& slot = cache[jwks_name];
  if (!slot) {
    const auto& doc = vectors().get("jwks").get(jwks_name);
    REQUIRE_MESSAGE(doc.is<picojson::object>(), "no JWKS named ", jwks_name);
    auto set = KeySet::from_jwks(doc.serialize());
    REQUIRE(set);
    slot = std::make_shared<const KeySetHolder>(std::move(*set));
  }
  return slot;
}

// Every expected claim is readable with the matching typed getter.
void check_claims(const Claims& claims, const picojson::object& expected) {
  for (const auto& [name, value] : expected) {
    CAPTURE(name);
    if (value.is<std::string>()) {
      CHECK(claims.string(name) == value.get<std::string>());
    } else if (value.is<double>()) {
      CHECK(claims.number(name) == value.get<double>());
    } else if (value.is<bool>()) {
      CHECK(claims.boolean(name) == value.get<bool>());
    } else if (value.is<picojson::array>()) {
      auto got = claims.strings(name);
      REQUIRE(got);
      auto want = string_list(value);
      CHECK(std::vector<std::string>(got->begin(), got->end()) == want);
    } else {
      CHECK(claims.has(name));
    }
  }
}

}  // namespace

TEST_CASE("generated vectors: every case gives its expected result") {
  const auto& doc = vectors();
  const WallTime now = at(doc.get("now").get<double>());
  std::map<std::string, int> seen;
  for (const auto& c : doc.get("cases").get<picojson::array>()) {
    const std::string name = c.get("name").get<std::string>();
    const std::string expect = c.get("expect").get<std::string>();
    CAPTURE(name);
    auto verifier = Verifier::create(holder_for(c.get("keys").get<std::string>()),
                                     options_from(c.get("config").get<picojson::object>()));
    REQUIRE(verifier);
    const std::string token = c.get("token").get<std::string>();
    Verification v = verifier->verify(token, now);
    if (expect == "ok") {
      CHECK_MESSAGE(v.ok(), reason_name(v.reason()), ": ", v.message());
      if (v.ok()) check_claims(v.claims(), c.get("claims").get<picojson::object>());
    } else {
      REQUIRE_FALSE(v.ok());
      CHECK_MESSAGE(reason_name(v.reason()) == expect, v.message());
      CHECK_FALSE(v.message().empty());
      // A message is safe to log: it never repeats the token or its signature.
      if (!token.empty()) CHECK(v.message().find(token) == std::string::npos);
      const auto last_dot = token.rfind('.');
      if (last_dot != std::string::npos && token.size() - last_dot > 20) {
        CHECK(v.message().find(token.substr(last_dot + 1)) == std::string::npos);
      }
    }
    ++seen[expect];
  }
  // Every reason of the enumeration is exercised by at least one case.
  for (std::size_t r = 0; r < kReasonCount; ++r) {
    CHECK_MESSAGE(seen[std::string(reason_name(static_cast<Reason>(r)))] > 0,
                  reason_name(static_cast<Reason>(r)));
  }
  CHECK(seen["ok"] >= 12);
}

TEST_CASE("generated vectors: PEM keys verify the same tokens as their JWKs") {
  const auto& doc = vectors();
  const WallTime now = at(doc.get("now").get<double>());
  std::map<std::string, std::string> token_of;
  for (const auto& c : doc.get("cases").get<picojson::array>()) {
    token_of[c.get("name").get<std::string>()] = c.get("token").get<std::string>();
  }
  struct Row {
    const char* key;
    const char* valid_case;
  };
  for (Row row :
       {Row{"rsa-1", "valid_RS256"}, Row{"rsa-1", "valid_PS512"}, Row{"ec-p256", "valid_ES256"},
        Row{"ec-p384", "valid_ES384"}, Row{"ec-p521", "valid_ES512"}}) {
    CAPTURE(row.valid_case);
    KeySet set;
    REQUIRE(set.add_pem(doc.get("pem").get(row.key).get<std::string>(), {row.key, {}}));
    auto holder = std::make_shared<const KeySetHolder>(std::move(set));
    VerifierOptions o;
    o.issuers = {"https://idp.example.com"};
    o.audiences = {"portico"};
    auto verifier = Verifier::create(holder, o);
    REQUIRE(verifier);
    Verification v = verifier->verify(token_of.at(row.valid_case), now);
    CHECK_MESSAGE(v.ok(), v.message());
    CHECK(v.token().kid == row.key);
  }
}

TEST_CASE("RFC 7515 appendix A and RFC 7520 section 4 examples verify byte for byte") {
  const auto doc = load_json("rfc_vectors.json");
  int checked = 0;
  for (const auto& c : doc.get("cases").get<picojson::array>()) {
    const std::string name = c.get("name").get<std::string>();
    CAPTURE(name);
    KeySet set;
    REQUIRE(set.add_jwk(c.get("jwk").serialize()));
    auto holder = std::make_shared<const KeySetHolder>(std::move(set));
    VerifierOptions o;
    o.algorithms = {*parse_algorithm(c.get("alg").get<std::string>())};
    auto verifier = Verifier::create(holder, o);
    REQUIRE(verifier);
    const std::string token = c.get("token").get<std::string>();
    const bool detached = c.get("detached").get<bool>();
    const std::string payload_b64 = c.get("payload_b64url").get<std::string>();

    std::string payload;
    Verification v = verifier->verify_signature(token, &payload, detached ? payload_b64 : "");
    REQUIRE_MESSAGE(v.ok(), v.message());
    CHECK(algorithm_name(v.token().algorithm) == c.get("alg").get<std::string>());

    // The payload is exactly the bytes the example signed.
    std::string expected_b64 = detached ? payload_b64 : token.substr(token.find('.') + 1);
    expected_b64 = expected_b64.substr(0, expected_b64.find('.'));
    CHECK(expected_b64 == payload_b64);
    CHECK_FALSE(payload.empty());

    // Any single flipped signature character is refused.
    std::string tampered = token;
    char& last = tampered[tampered.size() - 2];
    last = last == 'A' ? 'B' : 'A';
    Verification bad = verifier->verify_signature(tampered, nullptr, detached ? payload_b64 : "");
    CHECK_FALSE(bad.ok());
    CHECK(bad.reason() == Reason::bad_signature);

    // A detached token without its payload is refused.
    if (detached) CHECK_FALSE(verifier->verify_signature(token, nullptr).ok());
    ++checked;
  }
  CHECK(checked == 9);
}

TEST_CASE("RFC 7515 A.1-A.3 as JWTs: claims with CRLF whitespace and a URI-named claim") {
  const auto doc = load_json("rfc_vectors.json");
  int checked = 0;
  for (const auto& c : doc.get("cases").get<picojson::array>()) {
    if (!c.get("payload_is_json").get<bool>()) continue;
    const std::string name = c.get("name").get<std::string>();
    CAPTURE(name);
    KeySet set;
    REQUIRE(set.add_jwk(c.get("jwk").serialize()));
    auto holder = std::make_shared<const KeySetHolder>(std::move(set));
    VerifierOptions o;
    o.issuers = {"joe"};
    o.leeway = std::chrono::seconds(0);
    auto verifier = Verifier::create(holder, o);
    REQUIRE(verifier);
    const std::string token = c.get("token").get<std::string>();
    // exp is 1300819380: valid one second before, expired at that instant.
    Verification v = verifier->verify(token, at(1300819379));
    REQUIRE_MESSAGE(v.ok(), v.message());
    CHECK(v.claims().string("iss") == "joe");
    CHECK(v.claims().integer("exp") == 1300819380);
    CHECK(v.claims().boolean("http://example.com/is_root") == true);
    Verification late = verifier->verify(token, at(1300819380));
    CHECK(late.reason() == Reason::expired);
    ++checked;
  }
  CHECK(checked == 3);
}
