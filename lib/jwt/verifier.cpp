// Verifier: the JWS layer (structure, algorithm, key choice, signature) and
// the JWT layer (claim types, required claims, time, issuer, audience), in
// the order documented in jwt.hpp.
#include <algorithm>
#include <string>

#include "../common/describe.hpp"
#include "base64url.hpp"
#include "json.hpp"
#include "key.hpp"

namespace portico::jwt {

using detail::JsonDoc;
using detail::JsonNode;
using detail::JsonType;
using detail::JwtKey;

namespace {

constexpr std::string_view kAlgorithmNames[kAlgorithmCount] = {
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512",
    "PS256", "PS384", "PS512", "ES256", "ES384", "ES512",
};

constexpr std::string_view kReasonNames[kReasonCount] = {
    "malformed",     "unsupported_alg", "alg_not_allowed", "unknown_kid",
    "bad_signature", "expired",         "not_yet_valid",   "bad_issuer",
    "bad_audience",  "missing_claim",   "too_large",
};

Verification fail(Reason reason, std::string message) {
  return Verification::failure(reason, std::move(message));
}

// A NumericDate for a message: whole seconds as an integer, anything else
// (fractions, values far outside the int64 range) in %g form.
std::string describe_seconds(double t) {
  if (t >= -0x1p62 && t <= 0x1p62 && t == static_cast<double>(static_cast<std::int64_t>(t))) {
    return std::to_string(static_cast<std::int64_t>(t));
  }
  return detail::describe(t);
}

// Buffers for the parts of a token that do not outlive verification, kept
// per thread so that a steady stream of tokens reuses their capacity.
struct Scratch {
  std::string header;
  std::string signature;
  std::string signing_input;
  JsonDoc header_doc;
};

Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

bool is_string_or_string_array(const JsonDoc& doc, const JsonNode& n) {
  if (n.type == JsonType::string) return true;
  if (n.type != JsonType::array) return false;
  for (const JsonNode* e = doc.first_child(n); e != &doc.at(n.next); e = &doc.at(e->next)) {
    if (e->type != JsonType::string) return false;
  }
  return true;
}

bool contains_string(const JsonDoc& doc, const JsonNode& n, std::string_view value) {
  if (n.type == JsonType::string) return doc.string(n) == value;
  if (n.type != JsonType::array) return false;
  for (const JsonNode* e = doc.first_child(n); e != &doc.at(n.next); e = &doc.at(e->next)) {
    if (e->type == JsonType::string && doc.string(*e) == value) return true;
  }
  return false;
}

}  // namespace

std::string_view algorithm_name(Algorithm alg) noexcept {
  auto i = static_cast<std::size_t>(alg);
  return i < kAlgorithmCount ? kAlgorithmNames[i] : "unknown";
}

std::optional<Algorithm> parse_algorithm(std::string_view name) noexcept {
  for (std::size_t i = 0; i < kAlgorithmCount; ++i) {
    if (kAlgorithmNames[i] == name) return static_cast<Algorithm>(i);
  }
  return std::nullopt;
}

std::string_view reason_name(Reason reason) noexcept {
  auto i = static_cast<std::size_t>(reason);
  return i < kReasonCount ? kReasonNames[i] : "unknown";
}

// ---------------------------------------------------------------- claims

Claims::Claims() : doc_(std::make_unique<JsonDoc>()) {}
Claims::~Claims() = default;

Claims::Claims(Claims&& other) noexcept
    : payload_(std::move(other.payload_)), doc_(std::move(other.doc_)) {
  // A short payload lives inside the string object itself, so the document's
  // view must follow the move.
  if (doc_) doc_->rebind(payload_);
}

Claims& Claims::operator=(Claims&& other) noexcept {
  payload_ = std::move(other.payload_);
  doc_ = std::move(other.doc_);
  if (doc_) doc_->rebind(payload_);
  return *this;
}

const JsonNode* Claims::find(std::string_view path) const noexcept {
  return doc_ && !doc_->empty() ? doc_->find(path) : nullptr;
}

ClaimType Claims::type(std::string_view path) const noexcept {
  const JsonNode* n = find(path);
  return n == nullptr ? ClaimType::absent : static_cast<ClaimType>(static_cast<int>(n->type) + 1);
}

std::optional<std::string_view> Claims::string(std::string_view path) const noexcept {
  const JsonNode* n = find(path);
  if (n == nullptr || n->type != JsonType::string) return std::nullopt;
  return doc_->string(*n);
}

std::optional<double> Claims::number(std::string_view path) const noexcept {
  const JsonNode* n = find(path);
  if (n == nullptr || n->type != JsonType::number) return std::nullopt;
  return n->number;
}

std::optional<std::int64_t> Claims::integer(std::string_view path) const noexcept {
  auto v = number(path);
  // The range test also rejects NaN; 2^63 itself does not fit.
  if (!v || !(*v >= -0x1p63 && *v < 0x1p63)) return std::nullopt;
  const auto i = static_cast<std::int64_t>(*v);
  if (static_cast<double>(i) != *v) return std::nullopt;
  return i;
}

std::optional<bool> Claims::boolean(std::string_view path) const noexcept {
  const JsonNode* n = find(path);
  if (n == nullptr || n->type != JsonType::boolean) return std::nullopt;
  return n->boolean;
}

std::optional<std::vector<std::string_view>> Claims::strings(std::string_view path) const {
  const JsonNode* n = find(path);
  if (n == nullptr || !is_string_or_string_array(*doc_, *n)) return std::nullopt;
  std::vector<std::string_view> out;
  if (n->type == JsonType::string) {
    out.push_back(doc_->string(*n));
    return out;
  }
  out.reserve(n->count);
  for (const JsonNode* e = doc_->first_child(*n); e != &doc_->at(n->next); e = &doc_->at(e->next)) {
    out.push_back(doc_->string(*e));
  }
  return out;
}

bool Claims::contains(std::string_view path, std::string_view value) const noexcept {
  const JsonNode* n = find(path);
  return n != nullptr && contains_string(*doc_, *n, value);
}

std::string_view Claims::json(std::string_view path) const noexcept {
  const JsonNode* n = find(path);
  return n == nullptr ? std::string_view{} : doc_->raw(*n);
}

std::string_view Claims::json() const noexcept {
  return payload_;
}

// ----------------------------------------------------------- verification

Verification Verification::success(std::shared_ptr<const VerifiedToken> token, bool cached) {
  Verification v;
  v.token_ = std::move(token);
  v.cached_ = cached;
  return v;
}

Verification Verification::failure(Reason reason, std::string message, bool cached) {
  Verification v;
  v.reason_ = reason;
  v.message_ = std::move(message);
  v.cached_ = cached;
  return v;
}

// --------------------------------------------------------------- verifier

struct Verifier::Jws {
  Algorithm alg = Algorithm::hs256;
  std::string payload;
  std::string kid;  // of the key that verified the signature
};

Verifier::Verifier(std::shared_ptr<const KeySetHolder> keys, VerifierOptions options)
    : keys_(std::move(keys)), options_(std::move(options)) {}

Result<Verifier> Verifier::create(std::shared_ptr<const KeySetHolder> keys,
                                  VerifierOptions options) {
  if (keys == nullptr) return make_error(ErrorKind::invalid_argument, "key set holder is null");
  if (options.algorithms.empty()) {
    return make_error(ErrorKind::invalid_argument, "algorithms: the allow-list is empty");
  }
  for (const auto* list : {&options.issuers, &options.audiences, &options.required_claims}) {
    if (std::any_of(list->begin(), list->end(), [](const std::string& s) { return s.empty(); })) {
      const char* name = list == &options.issuers     ? "issuers"
                         : list == &options.audiences ? "audiences"
                                                      : "required_claims";
      return make_error(ErrorKind::invalid_argument, std::string(name) + ": empty string");
    }
  }
  if (options.leeway.count() < 0 || options.leeway > std::chrono::hours(24)) {
    return make_error(ErrorKind::invalid_argument, "leeway: must be between 0 and 86400 s, got " +
                                                       std::to_string(options.leeway.count()) +
                                                       " s");
  }
  if (options.max_token_bytes < 16 || options.max_token_bytes > (1u << 20)) {
    return make_error(ErrorKind::invalid_argument,
                      "max_token_bytes: must be between 16 and 1048576, got " +
                          std::to_string(options.max_token_bytes));
  }
  if (options.max_keys_tried == 0) {
    return make_error(ErrorKind::invalid_argument, "max_keys_tried: must be at least 1");
  }
  return Verifier(std::move(keys), std::move(options));
}

std::optional<Verification> Verifier::verify_jws(std::string_view token, std::string_view detached,
                                                 Jws& out) const {
  if (token.size() > options_.max_token_bytes) {
    return fail(Reason::too_large, "token is " + std::to_string(token.size()) +
                                       " bytes; the limit is " +
                                       std::to_string(options_.max_token_bytes));
  }
  const std::size_t dot1 = token.find('.');
  const std::size_t dot2 = dot1 == token.npos ? token.npos : token.find('.', dot1 + 1);
  if (dot2 == token.npos || token.find('.', dot2 + 1) != token.npos) {
    const auto parts = std::count(token.begin(), token.end(), '.') + 1;
    if (parts == 5) {
      return fail(Reason::malformed,
                  "token has 5 parts: an encrypted JWE, which is not supported (a JWS has 3)");
    }
    return fail(Reason::malformed,
                "token has " + std::to_string(parts) + " part(s); a compact JWS has 3");
  }
  const std::string_view header_b64 = token.substr(0, dot1);
  std::string_view payload_b64 = token.substr(dot1 + 1, dot2 - dot1 - 1);
  const std::string_view signature_b64 = token.substr(dot2 + 1);
  if (!detached.empty()) {
    if (!payload_b64.empty()) {
      return fail(Reason::malformed, "a detached-payload token must have an empty payload part");
    }
    payload_b64 = detached;
  }

  Scratch& s = scratch();
  if (!detail::base64url_decode(header_b64, s.header)) {
    return fail(Reason::malformed, "header is not unpadded base64url");
  }
  if (!detail::base64url_decode(payload_b64, out.payload)) {
    return fail(Reason::malformed, "payload is not unpadded base64url");
  }
  if (!detail::base64url_decode(signature_b64, s.signature)) {
    return fail(Reason::malformed, "signature is not unpadded base64url");
  }

  std::string error;
  JsonDoc& header = s.header_doc;
  if (!header.parse(s.header, error)) return fail(Reason::malformed, "header: " + error);
  if (header.root().type != JsonType::object) {
    return fail(Reason::malformed, "header is not a JSON object");
  }
  const JsonNode* alg_node = header.member(header.root(), "alg");
  if (alg_node == nullptr || alg_node->type != JsonType::string) {
    return fail(Reason::malformed, "header has no string \"alg\"");
  }
  if (header.member(header.root(), "crit") != nullptr) {
    return fail(Reason::malformed, "header has \"crit\"; no critical extension is understood");
  }
  if (header.member(header.root(), "enc") != nullptr) {
    return fail(Reason::malformed, "header has \"enc\": an encrypted JWE, which is not supported");
  }
  const JsonNode* kid_node = header.member(header.root(), "kid");
  if (kid_node != nullptr && kid_node->type != JsonType::string) {
    return fail(Reason::malformed, "header \"kid\" is not a string");
  }
  const std::string_view alg_text = header.string(*alg_node);
  const auto alg = parse_algorithm(alg_text);
  if (!alg)
    return fail(Reason::unsupported_alg,
                "algorithm " + detail::describe_untrusted(alg_text) + " is not supported");
  if (!options_.algorithms.contains(*alg)) {
    return fail(Reason::alg_not_allowed,
                "algorithm " + std::string(algorithm_name(*alg)) + " is not allowed here");
  }
  out.alg = *alg;

  std::string_view signing_input = token.substr(0, dot2);
  if (!detached.empty()) {
    s.signing_input.assign(header_b64);
    s.signing_input += '.';
    s.signing_input += detached;
    signing_input = s.signing_input;
  }
  const auto message = detail::as_bytes(signing_input);
  const auto signature = detail::as_bytes(s.signature);
  const detail::HashAlg hash = detail::hash_of(*alg);
  const KeyType family = detail::family_of(*alg);
  std::optional<detail::Digest> digest;  // for RSA and EC, computed once

  const std::shared_ptr<const KeySet> set = keys_->current();
  const std::string_view kid = kid_node ? header.string(*kid_node) : std::string_view{};
  std::size_t tried = 0;
  for (const auto& key : set->impl_->keys) {
    if (!key->fits(*alg) || (kid_node != nullptr && key->kid != kid)) continue;
    if (tried == options_.max_keys_tried) break;
    ++tried;
    bool good;
    if (family == KeyType::oct) {
      good = key->hmac[static_cast<unsigned>(hash)]->verify(message, signature);
    } else {
      if (!digest) digest = detail::hash(hash, message);
      good = family == KeyType::ec      ? key->public_key->verify_ecdsa(*digest, signature)
             : *alg <= Algorithm::rs512 ? key->public_key->verify_pkcs1(hash, *digest, signature)
                                        : key->public_key->verify_pss(hash, *digest, signature);
    }
    if (good) {
      out.kid = key->kid;
      return std::nullopt;
    }
  }
  if (tried == 0) {
    return fail(Reason::unknown_kid, kid_node
                                         ? "no " + std::string(algorithm_name(*alg)) +
                                               " key has kid " + detail::describe_untrusted(kid)
                                         : "no key fits " + std::string(algorithm_name(*alg)));
  }
  return fail(Reason::bad_signature,
              kid_node ? "signature does not verify with key " + detail::describe_untrusted(kid)
                       : "signature does not verify with any of " + std::to_string(tried) +
                             " candidate key(s)");
}

Verification Verifier::verify_signature(std::string_view token, std::string* payload,
                                        std::string_view detached_payload) const {
  Jws jws;
  if (auto failed = verify_jws(token, detached_payload, jws)) return std::move(*failed);
  if (payload != nullptr) *payload = std::move(jws.payload);
  auto token_info = std::make_shared<VerifiedToken>();
  token_info->algorithm = jws.alg;
  token_info->kid = std::move(jws.kid);
  return Verification::success(std::move(token_info));
}

std::optional<Reason> Verifier::check_time(const VerifiedToken& token,
                                           WallTime now) const noexcept {
  const double t = detail::numeric_date(now);
  const auto leeway = static_cast<double>(options_.leeway.count());
  // RFC 7519 4.1.4: not accepted on or after exp.
  if (token.expires_at && t >= *token.expires_at + leeway) return Reason::expired;
  if (token.not_before && t < *token.not_before - leeway) return Reason::not_yet_valid;
  return std::nullopt;
}

Verification Verifier::check_claims(Jws& jws, WallTime now) const {
  auto token = std::make_shared<VerifiedToken>();
  token->algorithm = jws.alg;
  token->kid = std::move(jws.kid);
  Claims& claims = token->claims;
  claims.payload_ = std::move(jws.payload);
  std::string error;
  if (!claims.doc_->parse(claims.payload_, error)) {
    return fail(Reason::malformed, "payload is not JSON: " + error);
  }
  const JsonDoc& doc = *claims.doc_;
  if (doc.root().type != JsonType::object) {
    return fail(Reason::malformed, "payload is not a JSON object");
  }
  const JsonNode* exp = doc.member(doc.root(), "exp");
  const JsonNode* nbf = doc.member(doc.root(), "nbf");
  const JsonNode* iat = doc.member(doc.root(), "iat");
  const JsonNode* iss = doc.member(doc.root(), "iss");
  const JsonNode* sub = doc.member(doc.root(), "sub");
  const JsonNode* aud = doc.member(doc.root(), "aud");
  for (auto [node, name] : {std::pair{exp, "exp"}, {nbf, "nbf"}, {iat, "iat"}}) {
    if (node != nullptr && node->type != JsonType::number) {
      return fail(Reason::malformed, std::string("claim \"") + name + "\" is not a NumericDate");
    }
  }
  for (auto [node, name] : {std::pair{iss, "iss"}, {sub, "sub"}}) {
    if (node != nullptr && node->type != JsonType::string) {
      return fail(Reason::malformed, std::string("claim \"") + name + "\" is not a string");
    }
  }
  if (aud != nullptr && !is_string_or_string_array(doc, *aud)) {
    return fail(Reason::malformed, "claim \"aud\" is neither a string nor an array of strings");
  }

  for (const std::string& name : options_.required_claims) {
    if (doc.member(doc.root(), name) == nullptr) {
      return fail(Reason::missing_claim,
                  "required claim " + detail::describe_untrusted(name) + " is missing");
    }
  }
  if (!options_.issuers.empty() && iss == nullptr) {
    return fail(Reason::missing_claim, "claim \"iss\" is missing");
  }
  if (!options_.audiences.empty() && aud == nullptr) {
    return fail(Reason::missing_claim, "claim \"aud\" is missing");
  }

  if (exp != nullptr) token->expires_at = exp->number;
  if (nbf != nullptr) token->not_before = nbf->number;
  if (auto late = check_time(*token, now)) {
    const std::string leeway = " (leeway " + std::to_string(options_.leeway.count()) + " s)";
    return *late == Reason::expired
               ? fail(Reason::expired, "token expired at " + describe_seconds(exp->number) + leeway)
               : fail(Reason::not_yet_valid,
                      "token is not valid before " + describe_seconds(nbf->number) + leeway);
  }

  if (!options_.issuers.empty()) {
    const std::string_view value = doc.string(*iss);
    if (std::find(options_.issuers.begin(), options_.issuers.end(), value) ==
        options_.issuers.end()) {
      return fail(Reason::bad_issuer,
                  "issuer " + detail::describe_untrusted(value) + " is not accepted");
    }
  }
  if (!options_.audiences.empty()) {
    const bool match =
        std::any_of(options_.audiences.begin(), options_.audiences.end(),
                    [&](const std::string& a) { return contains_string(doc, *aud, a); });
    if (!match) return fail(Reason::bad_audience, "no audience of the token is accepted");
  }
  return Verification::success(std::move(token));
}

Verification Verifier::verify(std::string_view token, WallTime now) const {
  Jws jws;
  if (auto failed = verify_jws(token, {}, jws)) return std::move(*failed);
  return check_claims(jws, now);
}

}  // namespace portico::jwt
