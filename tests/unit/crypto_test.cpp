// The hashing under the JWT verifier: the local SHA-256 (portable and SHA-NI
// block functions) against published vectors and against mbedTLS on every
// length that exercises block boundaries, and HMAC against RFC 4231.
#include <doctest/doctest.h>
#include <mbedtls/ecdsa.h>
#include <mbedtls/sha256.h>

#include <random>
#include <string>

#include "../../lib/tls/crypto.hpp"
#include "../../lib/tls/sha256.hpp"

using namespace portico::detail;

namespace {

std::string hex(const unsigned char* p, std::size_t n) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < n; ++i) {
    out += digits[p[i] >> 4];
    out += digits[p[i] & 15];
  }
  return out;
}

std::string sha256_hex(Sha256Compress compress, const std::string& data, std::size_t chunk) {
  Sha256 h(compress);
  for (std::size_t i = 0; i < data.size(); i += chunk) {
    const std::size_t n = std::min(chunk, data.size() - i);
    h.update(reinterpret_cast<const unsigned char*>(data.data() + i), n);
  }
  unsigned char out[32];
  h.finish(out);
  return hex(out, 32);
}

std::string mbedtls_sha256_hex(const std::string& data) {
  unsigned char out[32];
  mbedtls_sha256_ret(reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, 0);
  return hex(out, 32);
}

std::vector<Sha256Compress> block_functions() {
  std::vector<Sha256Compress> fns{&sha256_compress_portable};
  if (auto hw = sha256_compress_hardware()) fns.push_back(hw);
  return fns;
}

}  // namespace

TEST_CASE("SHA-256: FIPS 180-4 examples, with each block function") {
  const bool hardware = sha256_compress_hardware() != nullptr;
  MESSAGE((hardware ? "SHA-NI present: testing both block functions"
                    : "no SHA-NI: testing the portable block function"));
  for (auto fn : block_functions()) {
    CHECK(sha256_hex(fn, "abc", 64) ==
          "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK(sha256_hex(fn, "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 64) ==
          "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    CHECK(sha256_hex(fn, "", 64) ==
          "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  }
}

TEST_CASE("SHA-256: agrees with mbedTLS at every length up to 5 blocks, in any chunking") {
  std::mt19937_64 rng(7);
  std::string data;
  for (std::size_t len = 0; len <= 320; ++len) {
    const std::string want = mbedtls_sha256_hex(data);
    for (auto fn : block_functions()) {
      for (std::size_t chunk :
           {std::size_t{1}, std::size_t{7}, std::size_t{64}, std::size_t{1000}}) {
        CAPTURE(len);
        CAPTURE(chunk);
        REQUIRE(sha256_hex(fn, data, chunk) == want);
      }
    }
    data += static_cast<char>(rng());
  }
}

TEST_CASE("HMAC: RFC 4231 test case 2 and a key longer than the block") {
  const std::string msg = "what do ya want for nothing?";
  struct Row {
    HashAlg alg;
    const char* mac;
  };
  for (Row row :
       {Row{HashAlg::sha256, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
        Row{HashAlg::sha384,
            "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e6"
            "9e2c78b3239ecfab21649"},
        Row{HashAlg::sha512,
            "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05"
            "a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"}}) {
    HmacKey key(row.alg, as_bytes("Jefe"));
    Digest d = key.mac(as_bytes(msg));
    CHECK(hex(d.bytes, d.size) == row.mac);
    CHECK(key.verify(as_bytes(msg), d.view()));
    d.bytes[0] ^= 1;
    CHECK_FALSE(key.verify(as_bytes(msg), d.view()));
    CHECK_FALSE(key.verify(as_bytes(msg), {d.bytes, d.size - 1}));
  }
  HmacKey long_key(HashAlg::sha256, as_bytes(std::string(200, 'k')));
  Digest d = long_key.mac(as_bytes("msg"));
  CHECK(hex(d.bytes, d.size) == "e2adadca233bc31c6e6126c865132c3e945f9dedd44797a1e5acc3c037bc21fc");
}

TEST_CASE("constant-time compare: equal, different, different lengths") {
  CHECK(constant_time_equal(as_bytes("abc"), as_bytes("abc")));
  CHECK_FALSE(constant_time_equal(as_bytes("abc"), as_bytes("abd")));
  CHECK_FALSE(constant_time_equal(as_bytes("abc"), as_bytes("ab")));
  CHECK(constant_time_equal(as_bytes(""), as_bytes("")));
}

namespace {

// A deterministic generator for test keys and signature nonces.
int test_random(void* state, unsigned char* out, std::size_t len) {
  auto& rng = *static_cast<std::mt19937_64*>(state);
  for (std::size_t i = 0; i < len; ++i)
    out[i] = static_cast<unsigned char>(rng());
  return 0;
}

std::vector<unsigned char> to_bytes(const mbedtls_mpi& x, std::size_t size) {
  std::vector<unsigned char> out(size);
  REQUIRE(mbedtls_mpi_write_binary(&x, out.data(), size) == 0);
  return out;
}

}  // namespace

TEST_CASE("ECDSA: the table-driven verification agrees with mbedtls_ecdsa_verify") {
  std::mt19937_64 rng(11);
  struct Curve {
    EcCurve curve;
    mbedtls_ecp_group_id id;
    HashAlg hash;
  };
  for (Curve c : {Curve{EcCurve::p256, MBEDTLS_ECP_DP_SECP256R1, HashAlg::sha256},
                  Curve{EcCurve::p384, MBEDTLS_ECP_DP_SECP384R1, HashAlg::sha384},
                  Curve{EcCurve::p521, MBEDTLS_ECP_DP_SECP521R1, HashAlg::sha512}}) {
    const std::size_t size = ec_coordinate_size(c.curve);
    mbedtls_ecp_keypair kp;
    mbedtls_ecp_keypair_init(&kp);
    REQUIRE(mbedtls_ecp_gen_key(c.id, &kp, test_random, &rng) == 0);
    std::string error;
    auto x = to_bytes(kp.Q.X, size), y = to_bytes(kp.Q.Y, size);
    auto key = PublicKey::ec(c.curve, {x.data(), x.size()}, {y.data(), y.size()}, error);
    REQUIRE_MESSAGE(key, error);

    for (int round = 0; round < 8; ++round) {
      CAPTURE(round);
      Digest digest = hash(c.hash, as_bytes(std::to_string(round)));
      mbedtls_mpi r, s;
      mbedtls_mpi_init(&r);
      mbedtls_mpi_init(&s);
      REQUIRE(mbedtls_ecdsa_sign(&kp.grp, &r, &s, &kp.d, digest.bytes, digest.size, test_random,
                                 &rng) == 0);
      // Variants: the valid signature, then r or s off by one, out of range,
      // or a different message. Both verifiers must give the same answer.
      for (int variant = 0; variant < 7; ++variant) {
        CAPTURE(variant);
        mbedtls_mpi rv, sv;
        mbedtls_mpi_init(&rv);
        mbedtls_mpi_init(&sv);
        mbedtls_mpi_copy(&rv, &r);
        mbedtls_mpi_copy(&sv, &s);
        Digest d = digest;
        if (variant == 1) mbedtls_mpi_add_int(&rv, &rv, 1);
        if (variant == 2) mbedtls_mpi_add_int(&sv, &sv, 1);
        if (variant == 3) mbedtls_mpi_lset(&rv, 0);
        if (variant == 4) mbedtls_mpi_copy(&sv, &kp.grp.N);
        if (variant == 5) d.bytes[0] ^= 0x80;
        if (variant == 6) mbedtls_mpi_sub_mpi(&sv, &kp.grp.N, &sv);  // (r, n-s) is also valid
        std::vector<unsigned char> sig = to_bytes(rv, size);
        auto sb = to_bytes(sv, size);
        sig.insert(sig.end(), sb.begin(), sb.end());
        const bool reference = mbedtls_ecdsa_verify(&kp.grp, d.bytes, d.size, &kp.Q, &rv, &sv) == 0;
        CHECK(key->verify_ecdsa(d, {sig.data(), sig.size()}) == reference);
        if (variant == 0 || variant == 6) CHECK(reference);
        mbedtls_mpi_free(&rv);
        mbedtls_mpi_free(&sv);
      }
      mbedtls_mpi_free(&r);
      mbedtls_mpi_free(&s);
    }
    mbedtls_ecp_keypair_free(&kp);
  }
}
