// One verification key of a KeySet, and which algorithms it may check.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "../tls/crypto.hpp"
#include "portico/jwt.hpp"

namespace portico::detail {

// The hash each algorithm signs with.
constexpr HashAlg hash_of(jwt::Algorithm a) noexcept {
  switch (static_cast<unsigned>(a) % 3) {
    case 0:
      return HashAlg::sha256;
    case 1:
      return HashAlg::sha384;
    default:
      return HashAlg::sha512;
  }
}

constexpr jwt::KeyType family_of(jwt::Algorithm a) noexcept {
  return a <= jwt::Algorithm::hs512   ? jwt::KeyType::oct
         : a <= jwt::Algorithm::ps512 ? jwt::KeyType::rsa
                                      : jwt::KeyType::ec;
}

// The curve ES256/384/512 require (RFC 7518 section 3.4).
constexpr EcCurve curve_of(jwt::Algorithm a) noexcept {
  return a == jwt::Algorithm::es256   ? EcCurve::p256
         : a == jwt::Algorithm::es384 ? EcCurve::p384
                                      : EcCurve::p521;
}

struct JwtKey {
  std::string kid;
  jwt::KeyType type = jwt::KeyType::oct;
  std::optional<jwt::Algorithm> algorithm;  // the JWK's "alg", if any
  std::unique_ptr<PublicKey> public_key;    // RSA and EC
  // HMAC: one precomputed key per hash the secret is long enough for
  // (index: sha256, sha384, sha512); null where it is too short.
  std::unique_ptr<HmacKey> hmac[3];
  std::size_t secret_bytes = 0;

  // Whether this key may verify `alg`: same family (and curve), long enough,
  // and the key's own "alg" (if any) is `alg`.
  bool fits(jwt::Algorithm alg) const noexcept {
    if (family_of(alg) != type) return false;
    if (algorithm && *algorithm != alg) return false;
    if (type == jwt::KeyType::oct) return hmac[static_cast<unsigned>(hash_of(alg))] != nullptr;
    if (type == jwt::KeyType::ec) return public_key->curve() == curve_of(alg);
    return true;
  }

  std::size_t bits() const noexcept { return public_key ? public_key->bits() : secret_bytes * 8; }
};

// A wall-clock time as a JWT NumericDate: seconds since the epoch.
inline double numeric_date(jwt::WallTime t) noexcept {
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}

// Ids are never reused, so a cache entry can never match a later set.
std::uint64_t next_key_set_id() noexcept;

}  // namespace portico::detail

namespace portico::jwt {

struct KeySet::Impl {
  std::vector<std::unique_ptr<detail::JwtKey>> keys;
  std::vector<SkippedKey> skipped;
  std::uint64_t id = detail::next_key_set_id();

  void add(std::unique_ptr<detail::JwtKey> key) {
    keys.push_back(std::move(key));
    id = detail::next_key_set_id();
  }
};

}  // namespace portico::jwt
