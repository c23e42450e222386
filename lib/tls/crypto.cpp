#include "crypto.hpp"

#include <mbedtls/bignum.h>
#include <mbedtls/ecdsa.h>
#include <mbedtls/ecp.h>
#include <mbedtls/md.h>
#include <mbedtls/pk.h>
#include <mbedtls/rsa.h>
#include <mbedtls/sha512.h>

#include <cstring>
#include <variant>
#include <vector>

#include "sha256.hpp"

namespace portico::detail {
namespace {

mbedtls_md_type_t md_type(HashAlg h) noexcept {
  switch (h) {
    case HashAlg::sha256:
      return MBEDTLS_MD_SHA256;
    case HashAlg::sha384:
      return MBEDTLS_MD_SHA384;
    case HashAlg::sha512:
      return MBEDTLS_MD_SHA512;
  }
  return MBEDTLS_MD_NONE;
}

// One streaming hash context: SHA-256 by the local implementation (which
// uses the CPU's SHA extensions where present), SHA-384/512 by mbedTLS.
// Both are plain data, so copying one is cloning it.
struct HashContext {
  HashAlg alg;
  std::variant<Sha256, mbedtls_sha512_context> state;

  explicit HashContext(HashAlg a) noexcept : alg(a) {
    if (alg != HashAlg::sha256) {
      auto& ctx = state.emplace<mbedtls_sha512_context>();
      mbedtls_sha512_init(&ctx);
      mbedtls_sha512_starts_ret(&ctx, alg == HashAlg::sha384 ? 1 : 0);
    }
  }

  static constexpr std::size_t block_size(HashAlg a) noexcept {
    return a == HashAlg::sha256 ? 64 : 128;
  }

  void update(Bytes data) noexcept {
    if (auto* s256 = std::get_if<Sha256>(&state)) {
      s256->update(data.data(), data.size());
    } else {
      mbedtls_sha512_update_ret(std::get_if<mbedtls_sha512_context>(&state), data.data(),
                                data.size());
    }
  }
  Digest finish() noexcept {
    Digest d{};
    d.size = hash_size(alg);
    if (auto* s256 = std::get_if<Sha256>(&state)) {
      s256->finish(d.bytes);
    } else {
      mbedtls_sha512_finish_ret(std::get_if<mbedtls_sha512_context>(&state), d.bytes);
    }
    return d;
  }
};

}  // namespace

Digest hash(HashAlg alg, Bytes data) noexcept {
  HashContext ctx(alg);
  ctx.update(data);
  return ctx.finish();
}

bool constant_time_equal(Bytes a, Bytes b) noexcept {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  // Keep the compiler from turning the loop into an early-exit compare.
  asm volatile("" : "+r"(diff));
  return diff == 0;
}

// ------------------------------------------------------------------- HMAC

struct HmacKey::State {
  HashContext inner;  // after absorbing K xor ipad
  HashContext outer;  // after absorbing K xor opad
  explicit State(HashAlg a) : inner(a), outer(a) {}
};

HmacKey::HmacKey(HashAlg alg, Bytes secret) : alg_(alg), state_(std::make_unique<State>(alg)) {
  // RFC 2104: a key longer than the block is replaced by its hash.
  const std::size_t block = HashContext::block_size(alg);
  unsigned char key[128] = {};
  if (secret.size() > block) {
    Digest d = hash(alg, secret);
    std::memcpy(key, d.bytes, d.size);
  } else if (!secret.empty()) {
    std::memcpy(key, secret.data(), secret.size());
  }
  unsigned char pad[128];
  for (std::size_t i = 0; i < block; ++i)
    pad[i] = key[i] ^ 0x36;
  state_->inner.update({pad, block});
  for (std::size_t i = 0; i < block; ++i)
    pad[i] = key[i] ^ 0x5c;
  state_->outer.update({pad, block});
  std::memset(key, 0, sizeof key);
  std::memset(pad, 0, sizeof pad);
}

HmacKey::~HmacKey() = default;

Digest HmacKey::mac(Bytes message) const noexcept {
  HashContext inner(state_->inner);
  inner.update(message);
  Digest inner_digest = inner.finish();
  HashContext outer(state_->outer);
  outer.update(inner_digest.view());
  return outer.finish();
}

bool HmacKey::verify(Bytes message, Bytes tag) const noexcept {
  Digest expected = mac(message);
  return constant_time_equal(expected.view(), tag);
}

// -------------------------------------------------------------------- RSA

namespace {

class RsaKey final : public PublicKey {
 public:
  RsaKey() { mbedtls_rsa_init(&ctx_, MBEDTLS_RSA_PKCS_V15, 0); }
  ~RsaKey() override { mbedtls_rsa_free(&ctx_); }
  RsaKey(const RsaKey&) = delete;
  RsaKey& operator=(const RsaKey&) = delete;

  bool load(Bytes n, Bytes e, std::string& error) {
    if (mbedtls_rsa_import_raw(&ctx_, n.data(), n.size(), nullptr, 0, nullptr, 0, nullptr, 0,
                               e.data(), e.size()) != 0 ||
        mbedtls_rsa_complete(&ctx_) != 0) {
      error = "RSA modulus or exponent cannot be loaded";
      return false;
    }
    return validate(error);
  }

  bool load(const mbedtls_rsa_context& src, std::string& error) {
    if (mbedtls_rsa_copy(&ctx_, &src) != 0) {
      error = "RSA key cannot be copied";
      return false;
    }
    return validate(error);
  }

  Type type() const noexcept override { return Type::rsa; }
  std::size_t bits() const noexcept override { return mbedtls_mpi_bitlen(&ctx_.N); }

  bool verify_pkcs1(HashAlg h, const Digest& digest, Bytes sig) const noexcept override {
    if (sig.size() != mbedtls_rsa_get_len(&ctx_)) return false;
    return mbedtls_rsa_rsassa_pkcs1_v15_verify(mutable_ctx(), nullptr, nullptr, MBEDTLS_RSA_PUBLIC,
                                               md_type(h), static_cast<unsigned>(digest.size),
                                               digest.bytes, sig.data()) == 0;
  }

  bool verify_pss(HashAlg h, const Digest& digest, Bytes sig) const noexcept override {
    if (sig.size() != mbedtls_rsa_get_len(&ctx_)) return false;
    return mbedtls_rsa_rsassa_pss_verify_ext(mutable_ctx(), nullptr, nullptr, MBEDTLS_RSA_PUBLIC,
                                             md_type(h), static_cast<unsigned>(digest.size),
                                             digest.bytes, md_type(h),
                                             static_cast<int>(digest.size), sig.data()) == 0;
  }

 private:
  bool validate(std::string& error) {
    if (mbedtls_rsa_check_pubkey(&ctx_) != 0) {
      error = "RSA public key fails validation";
      return false;
    }
    if (bits() < min_rsa_bits || bits() > max_rsa_bits) {
      error = "RSA modulus has " + std::to_string(bits()) + " bits; 2048 to 8192 are accepted";
      return false;
    }
    // A verification costs in proportion to the exponent's length: a huge
    // one would make every check against this key a denial of service.
    if (mbedtls_mpi_bitlen(&ctx_.E) > max_rsa_exponent_bits) {
      error = "RSA public exponent is longer than 32 bits";
      return false;
    }
    warm_up();
    return true;
  }

  // mbedTLS computes R^2 mod N on the first public operation and caches it
  // in the context; doing one here means verifications only read it.
  void warm_up() {
    unsigned char in[1024] = {}, out[1024];  // up to 8192-bit moduli
    const std::size_t len = mbedtls_rsa_get_len(&ctx_);
    if (len == 0 || len > sizeof in) return;
    in[len - 1] = 2;
    (void)mbedtls_rsa_public(&ctx_, in, out);
  }

  // The verify functions take a non-const context because of the lazily
  // cached values above and the mutex; neither changes the key.
  mbedtls_rsa_context* mutable_ctx() const noexcept {
    return const_cast<mbedtls_rsa_context*>(&ctx_);
  }

  mbedtls_rsa_context ctx_;
};

// ---------------------------------------------------------------------- EC

mbedtls_ecp_group_id group_id(EcCurve c) noexcept {
  switch (c) {
    case EcCurve::p256:
      return MBEDTLS_ECP_DP_SECP256R1;
    case EcCurve::p384:
      return MBEDTLS_ECP_DP_SECP384R1;
    case EcCurve::p521:
      return MBEDTLS_ECP_DP_SECP521R1;
  }
  return MBEDTLS_ECP_DP_NONE;
}

// mbedTLS stores the comb table for the generator in the group on first use,
// so a group is per thread: loaded once, then read by every verification on
// that thread without locks.
struct ThreadGroups {
  mbedtls_ecp_group groups[3];
  bool loaded[3] = {false, false, false};
  ThreadGroups() {
    for (auto& g : groups)
      mbedtls_ecp_group_init(&g);
  }
  ~ThreadGroups() {
    for (auto& g : groups)
      mbedtls_ecp_group_free(&g);
  }
  mbedtls_ecp_group* get(EcCurve c) noexcept {
    auto i = static_cast<std::size_t>(c);
    if (!loaded[i]) {
      if (mbedtls_ecp_group_load(&groups[i], group_id(c)) != 0) return nullptr;
      loaded[i] = true;
    }
    return &groups[i];
  }
};

mbedtls_ecp_group* thread_group(EcCurve c) noexcept {
  thread_local ThreadGroups groups;
  return groups.get(c);
}

// mbedTLS values with their init/free pairs tied to scope.
struct Mpi {
  mbedtls_mpi v;
  Mpi() noexcept { mbedtls_mpi_init(&v); }
  ~Mpi() { mbedtls_mpi_free(&v); }
  Mpi(const Mpi&) = delete;
  Mpi& operator=(const Mpi&) = delete;
};

struct Point {
  mbedtls_ecp_point v;
  Point() noexcept { mbedtls_ecp_point_init(&v); }
  ~Point() { mbedtls_ecp_point_free(&v); }
  Point(const Point&) = delete;
  Point& operator=(const Point&) = delete;
};

// ECDSA verification (SEC 1 section 4.1.4) as u1*G + u2*Q, where both
// multiplications use mbedTLS's fixed-point comb tables: G's table lives in
// the per-thread group, and Q's in a group of the key's own whose
// "generator" is Q, built once when the key is loaded. mbedtls_ecdsa_verify
// multiplies Q without a table on every call; the table halves the cost.
class EcKey final : public PublicKey {
 public:
  explicit EcKey(EcCurve curve) : curve_(curve) {
    mbedtls_ecp_point_init(&q_);
    mbedtls_ecp_group_init(&q_group_);
  }
  ~EcKey() override {
    mbedtls_ecp_point_free(&q_);
    // A group loaded from mbedTLS's built-in curves does not own its base
    // point (group_free leaves it alone), so the Q put there is freed here.
    if (q_in_group_) mbedtls_ecp_point_free(&q_group_.G);
    mbedtls_ecp_group_free(&q_group_);
  }
  EcKey(const EcKey&) = delete;
  EcKey& operator=(const EcKey&) = delete;

  bool load(Bytes x, Bytes y, std::string& error) {
    const std::size_t size = ec_coordinate_size(curve_);
    if (x.size() != size || y.size() != size) {
      error = "EC coordinates must be " + std::to_string(size) + " bytes each for this curve";
      return false;
    }
    mbedtls_ecp_group* grp = thread_group(curve_);
    unsigned char point[1 + 2 * 66];
    point[0] = 0x04;  // uncompressed
    std::memcpy(point + 1, x.data(), size);
    std::memcpy(point + 1 + size, y.data(), size);
    if (grp == nullptr || mbedtls_ecp_point_read_binary(grp, &q_, point, 1 + 2 * size) != 0 ||
        mbedtls_ecp_check_pubkey(grp, &q_) != 0) {
      error = "EC point is not on the curve";
      return false;
    }
    build_q_table();
    return true;
  }

  Type type() const noexcept override { return Type::ec; }
  std::size_t bits() const noexcept override {
    return curve_ == EcCurve::p521 ? 521 : 8 * ec_coordinate_size(curve_);
  }
  EcCurve curve() const noexcept override { return curve_; }

  bool verify_ecdsa(const Digest& digest, Bytes sig) const noexcept override {
    const std::size_t size = ec_coordinate_size(curve_);
    if (sig.size() != 2 * size) return false;
    mbedtls_ecp_group* grp = thread_group(curve_);
    if (grp == nullptr) return false;
    Mpi r, s;
    if (mbedtls_mpi_read_binary(&r.v, sig.data(), size) != 0 ||
        mbedtls_mpi_read_binary(&s.v, sig.data() + size, size) != 0) {
      return false;
    }
    if (!q_table_)
      return mbedtls_ecdsa_verify(grp, digest.bytes, digest.size, &q_, &r.v, &s.v) == 0;
    return verify_with_tables(*grp, digest, r.v, s.v);
  }

 private:
  void build_q_table() {
    // One multiplication by 1 makes mbedTLS compute and keep Q's comb table
    // in q_group_; verifications then only read it, from any thread.
    Mpi one;
    Point out;
    if (mbedtls_ecp_group_load(&q_group_, group_id(curve_)) != 0) return;
    // The loaded base point's numbers are read-only static data: replace
    // the point rather than copy into it.
    mbedtls_ecp_point_init(&q_group_.G);
    q_in_group_ = true;
    q_table_ = mbedtls_ecp_copy(&q_group_.G, &q_) == 0 && mbedtls_mpi_lset(&one.v, 1) == 0 &&
               mbedtls_ecp_mul(&q_group_, &out.v, &one.v, &q_group_.G, nullptr, nullptr) == 0 &&
               q_group_.T != nullptr;
  }

  bool verify_with_tables(mbedtls_ecp_group& grp, const Digest& digest, const mbedtls_mpi& r,
                          const mbedtls_mpi& s) const noexcept {
    const mbedtls_mpi& n = grp.N;
    // 1 <= r, s < n
    if (mbedtls_mpi_cmp_int(&r, 1) < 0 || mbedtls_mpi_cmp_mpi(&r, &n) >= 0 ||
        mbedtls_mpi_cmp_int(&s, 1) < 0 || mbedtls_mpi_cmp_mpi(&s, &n) >= 0) {
      return false;
    }
    Mpi e, s_inv, u1, u2, one, v;
    Point r1, r2, sum;
    // e: the leftmost bits of the hash, as many as n has.
    const std::size_t n_bytes = (grp.nbits + 7) / 8;
    const std::size_t used = digest.size < n_bytes ? digest.size : n_bytes;
    if (mbedtls_mpi_read_binary(&e.v, digest.bytes, used) != 0 ||
        (used * 8 > grp.nbits && mbedtls_mpi_shift_r(&e.v, used * 8 - grp.nbits) != 0) ||
        mbedtls_mpi_mod_mpi(&e.v, &e.v, &n) != 0 || mbedtls_mpi_inv_mod(&s_inv.v, &s, &n) != 0 ||
        mbedtls_mpi_mul_mpi(&u1.v, &e.v, &s_inv.v) != 0 ||
        mbedtls_mpi_mod_mpi(&u1.v, &u1.v, &n) != 0 ||
        mbedtls_mpi_mul_mpi(&u2.v, &r, &s_inv.v) != 0 ||
        mbedtls_mpi_mod_mpi(&u2.v, &u2.v, &n) != 0 || mbedtls_mpi_lset(&one.v, 1) != 0) {
      return false;
    }
    // mbedtls_ecp_mul refuses a zero scalar; u1 = 0 needs a hash that is a
    // multiple of n, so let the library's own routine judge that case.
    if (mbedtls_mpi_cmp_int(&u1.v, 0) == 0) {
      return mbedtls_ecdsa_verify(&grp, digest.bytes, digest.size, &q_, &r, &s) == 0;
    }
    // q_group_ is only read here: its table was built at load time.
    auto* q_group = const_cast<mbedtls_ecp_group*>(&q_group_);
    if (mbedtls_ecp_mul(&grp, &r1.v, &u1.v, &grp.G, nullptr, nullptr) != 0 ||
        mbedtls_ecp_mul(q_group, &r2.v, &u2.v, &q_group->G, nullptr, nullptr) != 0 ||
        mbedtls_ecp_muladd(&grp, &sum.v, &one.v, &r1.v, &one.v, &r2.v) != 0 ||
        mbedtls_ecp_is_zero(&sum.v) != 0) {
      return false;
    }
    // Valid when x(R) mod n == r.
    return mbedtls_mpi_mod_mpi(&v.v, &sum.v.X, &n) == 0 && mbedtls_mpi_cmp_mpi(&v.v, &r) == 0;
  }

  EcCurve curve_;
  mbedtls_ecp_point q_;
  mbedtls_ecp_group q_group_;  // the curve, with Q as its base point
  bool q_in_group_ = false;
  bool q_table_ = false;
};

bool curve_of(mbedtls_ecp_group_id id, EcCurve& out) noexcept {
  switch (id) {
    case MBEDTLS_ECP_DP_SECP256R1:
      out = EcCurve::p256;
      return true;
    case MBEDTLS_ECP_DP_SECP384R1:
      out = EcCurve::p384;
      return true;
    case MBEDTLS_ECP_DP_SECP521R1:
      out = EcCurve::p521;
      return true;
    default:
      return false;
  }
}

}  // namespace

std::unique_ptr<PublicKey> PublicKey::rsa(Bytes n, Bytes e, std::string& error) {
  auto key = std::make_unique<RsaKey>();
  if (!key->load(n, e, error)) return nullptr;
  return key;
}

std::unique_ptr<PublicKey> PublicKey::ec(EcCurve curve, Bytes x, Bytes y, std::string& error) {
  auto key = std::make_unique<EcKey>(curve);
  if (!key->load(x, y, error)) return nullptr;
  return key;
}

std::unique_ptr<PublicKey> PublicKey::from_pem(std::string_view pem, std::string& error) {
  // mbedTLS wants PEM text NUL-terminated, with the NUL counted.
  std::string text(pem);
  mbedtls_pk_context pk;
  mbedtls_pk_init(&pk);
  std::unique_ptr<PublicKey> result;
  if (mbedtls_pk_parse_public_key(&pk, reinterpret_cast<const unsigned char*>(text.c_str()),
                                  text.size() + 1) != 0) {
    error = "not a PEM public key (expected PUBLIC KEY or RSA PUBLIC KEY)";
  } else if (mbedtls_pk_get_type(&pk) == MBEDTLS_PK_RSA) {
    auto key = std::make_unique<RsaKey>();
    if (key->load(*mbedtls_pk_rsa(pk), error)) result = std::move(key);
  } else if (mbedtls_pk_get_type(&pk) == MBEDTLS_PK_ECKEY) {
    const mbedtls_ecp_keypair& kp = *mbedtls_pk_ec(pk);
    EcCurve curve;
    unsigned char point[1 + 2 * 66];
    std::size_t len = 0;
    if (!curve_of(kp.grp.id, curve)) {
      error = "EC key is not on P-256, P-384 or P-521";
    } else if (mbedtls_ecp_point_write_binary(&kp.grp, &kp.Q, MBEDTLS_ECP_PF_UNCOMPRESSED, &len,
                                              point, sizeof point) != 0) {
      error = "EC point cannot be encoded";
    } else {
      const std::size_t size = ec_coordinate_size(curve);
      result = ec(curve, {point + 1, size}, {point + 1 + size, size}, error);
    }
  } else {
    error = "PEM key is neither RSA nor EC";
  }
  mbedtls_pk_free(&pk);
  return result;
}

}  // namespace portico::detail
