// The signature primitives the JWT verifier needs, over mbedTLS.
//
// This folder is the only one that includes mbedTLS, so the verifier (and
// later the TLS transport) speak in these small types and never in mbedTLS
// contexts. Everything here verifies; nothing signs.
//
// Threading: every const member function may be called from several threads
// at once. RSA keys rely on mbedTLS's own per-key mutex (MBEDTLS_THREADING_C);
// EC keys keep one curve group per thread, because mbedTLS caches its
// precomputed multiples of the generator inside the group.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace portico::detail {

using Bytes = std::span<const unsigned char>;

inline Bytes as_bytes(std::string_view s) noexcept {
  return {reinterpret_cast<const unsigned char*>(s.data()), s.size()};
}

enum class HashAlg : std::uint8_t { sha256, sha384, sha512 };

constexpr std::size_t hash_size(HashAlg h) noexcept {
  return h == HashAlg::sha256 ? 32 : h == HashAlg::sha384 ? 48 : 64;
}

struct Digest {
  unsigned char bytes[64];
  std::size_t size;
  Bytes view() const noexcept { return {bytes, size}; }
};

Digest hash(HashAlg alg, Bytes data) noexcept;

// Compares two byte strings in time that depends only on their lengths.
bool constant_time_equal(Bytes a, Bytes b) noexcept;

// An HMAC key with the inner and outer pad blocks already absorbed, so a
// verification hashes only the message and one final block.
class HmacKey {
 public:
  HmacKey(HashAlg alg, Bytes secret);
  ~HmacKey();
  HmacKey(const HmacKey&) = delete;
  HmacKey& operator=(const HmacKey&) = delete;

  HashAlg alg() const noexcept { return alg_; }
  Digest mac(Bytes message) const noexcept;
  bool verify(Bytes message, Bytes tag) const noexcept;

 private:
  struct State;
  HashAlg alg_;
  std::unique_ptr<State> state_;
};

enum class EcCurve : std::uint8_t { p256, p384, p521 };

// Bytes in one coordinate (and in each of R and S of a JOSE signature).
constexpr std::size_t ec_coordinate_size(EcCurve c) noexcept {
  return c == EcCurve::p256 ? 32 : c == EcCurve::p384 ? 48 : 66;
}

// A public key for RSA or ECDSA signatures. Built from raw JWK numbers or a
// PEM document; the factory functions validate the key (RSA: the modulus is
// at least `min_rsa_bits` and passes mbedTLS's public-key check; EC: the
// point is on the curve) and report why not in `error`.
class PublicKey {
 public:
  enum class Type : std::uint8_t { rsa, ec };

  static std::unique_ptr<PublicKey> rsa(Bytes n, Bytes e, std::string& error);
  static std::unique_ptr<PublicKey> ec(EcCurve curve, Bytes x, Bytes y, std::string& error);
  // A "PUBLIC KEY" (SubjectPublicKeyInfo) or "RSA PUBLIC KEY" (PKCS#1) PEM.
  static std::unique_ptr<PublicKey> from_pem(std::string_view pem, std::string& error);

  virtual ~PublicKey() = default;
  virtual Type type() const noexcept = 0;
  // RSA: modulus size in bits. EC: the curve's size in bits.
  virtual std::size_t bits() const noexcept = 0;
  // Meaningful for EC keys only.
  virtual EcCurve curve() const noexcept { return EcCurve::p256; }

  // RSASSA-PKCS1-v1_5 (RS*) and RSASSA-PSS with MGF1 of the same hash and a
  // salt as long as the hash (PS*, RFC 7518 section 3.5).
  virtual bool verify_pkcs1(HashAlg, const Digest&, Bytes) const noexcept { return false; }
  virtual bool verify_pss(HashAlg, const Digest&, Bytes) const noexcept { return false; }
  // ECDSA with a JOSE signature: R and S, big-endian, each exactly
  // ec_coordinate_size() bytes (RFC 7518 section 3.4). DER is refused.
  virtual bool verify_ecdsa(const Digest&, Bytes) const noexcept { return false; }
};

// The RSA moduli accepted: at least 2048 bits (RFC 7518 section 3.3), at
// most 8192; public exponents of at most 32 bits (65537 in practice).
inline constexpr std::size_t min_rsa_bits = 2048;
inline constexpr std::size_t max_rsa_bits = 8192;
inline constexpr std::size_t max_rsa_exponent_bits = 32;

}  // namespace portico::detail
