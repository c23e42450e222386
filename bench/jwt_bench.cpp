// JWT verification cost per algorithm, with PyJWT (OpenSSL underneath)
// verifying the very same tokens in the same run as the peer.
//
// For HS256/384/512, RS256/384/512, PS256/384/512 and ES256/384/512: µs per
// Verifier::verify (no cache), ns per TokenCache hit, allocations per
// operation for both, and PyJWT's µs per jwt.decode with the same checks
// (signature, issuer, audience, required claims, leeway). Two baselines show
// what the verifier adds to the signature check itself: a bare mbedTLS
// RSA-2048 PKCS#1 v1.5 verify and a bare P-256 ECDSA verify, each hashing the
// same signing input. Then a realistic mix: 10,000 distinct HS256 and ES256
// tokens requested with Zipf(1.1) popularity through a 4,096-entry cache.
//
// Keys come from a fixed seed, so every run signs the same way. Tokens are
// valid from a minute before the start of the run to an hour after it;
// Portico's `now` is pinned at the start, and PyJWT, which reads the real
// clock, runs well inside that hour.
//
// Usage: jwt_bench [--quick] [--peer jwt_peer.py] [--python COMMAND]
// Exits non-zero if a token fails to verify or the peer fails; a missed
// target is reported, not fatal.
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecdsa.h>
#include <mbedtls/ecp.h>
#include <mbedtls/md.h>
#include <mbedtls/rsa.h>
#include <mbedtls/sha256.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "../lib/jwt/base64url.hpp"
#include "bench.hpp"
#include "portico/jwt.hpp"

namespace {

namespace bench = portico::bench;
using portico::jwt::Algorithm;
using portico::jwt::kAlgorithmCount;
using portico::jwt::KeySet;
using portico::jwt::KeySetHolder;
using portico::jwt::TokenCache;
using portico::jwt::TokenCacheOptions;
using portico::jwt::Verifier;
using portico::jwt::VerifierOptions;
using portico::jwt::WallTime;

constexpr std::string_view kIssuer = "https://auth.example.com/";
constexpr std::string_view kAudience = "api.example.com";
constexpr std::chrono::seconds kLeeway{30};
// Claims both verifiers insist on, besides iss and aud.
constexpr const char* kRequiredClaims[] = {"exp", "iat", "sub"};

constexpr std::size_t kMixTokens = 10'000;
constexpr std::size_t kMixCacheCapacity = 4096;
constexpr double kZipfExponent = 1.1;

bool g_failed = false;

void expect(bool ok, const std::string& what) {
  if (!ok) {
    std::fprintf(stderr, "jwt_bench: %s\n", what.c_str());
    g_failed = true;
  }
}

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "jwt_bench: %s\n", what.c_str());
  std::exit(1);
}

void check_mbedtls(int rc, const char* what) {
  if (rc == 0) return;
  char code[16];
  std::snprintf(code, sizeof code, "-0x%04x", static_cast<unsigned>(-rc));
  die(std::string(what) + " failed (mbedTLS error " + code + ")");
}

std::string base64url(std::string_view bytes) {
  std::string out;
  portico::detail::base64url_encode(bytes, out);
  return out;
}

std::string_view as_chars(const unsigned char* p, std::size_t n) {
  return {reinterpret_cast<const char*>(p), n};
}

const unsigned char* as_uchars(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

// ------------------------------------------------------------- algorithms

unsigned index_of(Algorithm a) {
  return static_cast<unsigned>(a);
}
bool is_hmac(Algorithm a) {
  return index_of(a) < 3;
}
bool is_pkcs1(Algorithm a) {
  return index_of(a) >= 3 && index_of(a) < 6;
}
bool is_ecdsa(Algorithm a) {
  return index_of(a) >= 9;
}
unsigned hash_index(Algorithm a) {
  return index_of(a) % 3;
}

mbedtls_md_type_t md_type(Algorithm a) {
  constexpr mbedtls_md_type_t types[3] = {MBEDTLS_MD_SHA256, MBEDTLS_MD_SHA384, MBEDTLS_MD_SHA512};
  return types[hash_index(a)];
}

const char* kid_of(Algorithm a) {
  constexpr const char* hmac[3] = {"hs256", "hs384", "hs512"};
  constexpr const char* ec[3] = {"ec-p256", "ec-p384", "ec-p521"};
  return is_hmac(a) ? hmac[hash_index(a)] : is_ecdsa(a) ? ec[hash_index(a)] : "rsa-2048";
}

std::string name_of(Algorithm a) {
  return std::string(portico::jwt::algorithm_name(a));
}

// ------------------------------------------------------------------- keys

// A CTR-DRBG fed from a fixed stream instead of system entropy, so that
// every run generates the same keys and the same signatures.
class Drbg {
 public:
  explicit Drbg(std::uint64_t seed) : state_(seed) {
    mbedtls_ctr_drbg_init(&ctx_);
    check_mbedtls(mbedtls_ctr_drbg_seed(&ctx_, &Drbg::entropy, &state_, nullptr, 0),
                  "ctr_drbg seed");
  }
  ~Drbg() { mbedtls_ctr_drbg_free(&ctx_); }
  Drbg(const Drbg&) = delete;
  Drbg& operator=(const Drbg&) = delete;

  static int random(void* self, unsigned char* out, std::size_t len) {
    return mbedtls_ctr_drbg_random(&static_cast<Drbg*>(self)->ctx_, out, len);
  }

 private:
  static int entropy(void* state, unsigned char* out, std::size_t len) {
    auto& x = *static_cast<std::uint64_t*>(state);
    for (std::size_t i = 0; i < len; ++i) {
      x += 0x9e3779b97f4a7c15ull;  // splitmix64
      std::uint64_t z = x;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
      out[i] = static_cast<unsigned char>(z ^ (z >> 31));
    }
    return 0;
  }

  std::uint64_t state_;
  mbedtls_ctr_drbg_context ctx_;
};

struct RsaPrivateKey {
  RsaPrivateKey() { mbedtls_rsa_init(&ctx, MBEDTLS_RSA_PKCS_V15, 0); }
  ~RsaPrivateKey() { mbedtls_rsa_free(&ctx); }
  RsaPrivateKey(const RsaPrivateKey&) = delete;
  RsaPrivateKey& operator=(const RsaPrivateKey&) = delete;
  mbedtls_rsa_context ctx;
};

struct EcPrivateKey {
  EcPrivateKey() { mbedtls_ecp_keypair_init(&pair); }
  ~EcPrivateKey() { mbedtls_ecp_keypair_free(&pair); }
  EcPrivateKey(const EcPrivateKey&) = delete;
  EcPrivateKey& operator=(const EcPrivateKey&) = delete;
  std::size_t coordinate_bytes() const { return (pair.grp.pbits + 7) / 8; }
  mbedtls_ecp_keypair pair;
};

struct Mpi {
  Mpi() { mbedtls_mpi_init(&v); }
  ~Mpi() { mbedtls_mpi_free(&v); }
  Mpi(const Mpi&) = delete;
  Mpi& operator=(const Mpi&) = delete;
  mbedtls_mpi v;
};

// Big-endian, left-padded with zeros to `size` bytes.
std::string mpi_bytes(const mbedtls_mpi& v, std::size_t size) {
  std::vector<unsigned char> out(size);
  check_mbedtls(mbedtls_mpi_write_binary(&v, out.data(), size), "mpi_write_binary");
  return std::string(as_chars(out.data(), size));
}

// One key per hash for HMAC (each as long as its hash, the least RFC 7518
// allows), one RSA key for RS* and PS*, one EC key per curve.
struct SigningKeys {
  std::string secrets[3];
  RsaPrivateKey rsa;
  EcPrivateKey ec[3];
};

void generate_keys(SigningKeys& keys, Drbg& drbg) {
  constexpr std::size_t secret_bytes[3] = {32, 48, 64};
  for (unsigned h = 0; h < 3; ++h) {
    std::vector<unsigned char> secret(secret_bytes[h]);
    check_mbedtls(Drbg::random(&drbg, secret.data(), secret.size()), "secret");
    keys.secrets[h].assign(as_chars(secret.data(), secret.size()));
  }
  check_mbedtls(mbedtls_rsa_gen_key(&keys.rsa.ctx, &Drbg::random, &drbg, 2048, 65537),
                "rsa_gen_key");
  constexpr mbedtls_ecp_group_id curves[3] = {MBEDTLS_ECP_DP_SECP256R1, MBEDTLS_ECP_DP_SECP384R1,
                                              MBEDTLS_ECP_DP_SECP521R1};
  for (unsigned c = 0; c < 3; ++c) {
    check_mbedtls(mbedtls_ecp_gen_key(curves[c], &keys.ec[c].pair, &Drbg::random, &drbg),
                  "ecp_gen_key");
  }
}

std::string public_jwks(const SigningKeys& keys) {
  std::string out = R"({"keys":[)";
  for (unsigned h = 0; h < 3; ++h) {
    const auto alg = static_cast<Algorithm>(h);
    out += R"({"kty":"oct","kid":")" + std::string(kid_of(alg)) + R"(","alg":")" + name_of(alg) +
           R"(","k":")" + base64url(keys.secrets[h]) + R"("},)";
  }
  Mpi n, e;
  check_mbedtls(mbedtls_rsa_export(&keys.rsa.ctx, &n.v, nullptr, nullptr, nullptr, &e.v),
                "rsa_export");
  out += R"({"kty":"RSA","kid":"rsa-2048","use":"sig","n":")" +
         base64url(mpi_bytes(n.v, mbedtls_mpi_size(&n.v))) + R"(","e":")" +
         base64url(mpi_bytes(e.v, mbedtls_mpi_size(&e.v))) + R"("})";
  constexpr const char* curve_names[3] = {"P-256", "P-384", "P-521"};
  for (unsigned c = 0; c < 3; ++c) {
    const EcPrivateKey& k = keys.ec[c];
    const auto alg = static_cast<Algorithm>(9 + c);
    out += R"(,{"kty":"EC","kid":")" + std::string(kid_of(alg)) + R"(","use":"sig","crv":")" +
           curve_names[c] + R"(","x":")" + base64url(mpi_bytes(k.pair.Q.X, k.coordinate_bytes())) +
           R"(","y":")" + base64url(mpi_bytes(k.pair.Q.Y, k.coordinate_bytes())) + R"("})";
  }
  return out + "]}";
}

// ----------------------------------------------------------------- tokens

struct Digest {
  unsigned char bytes[64];
  std::size_t size;
};

Digest digest_of(Algorithm alg, std::string_view input) {
  const mbedtls_md_info_t* md = mbedtls_md_info_from_type(md_type(alg));
  Digest d{{}, mbedtls_md_get_size(md)};
  check_mbedtls(mbedtls_md(md, as_uchars(input), input.size(), d.bytes), "md");
  return d;
}

std::string sign_ecdsa(Algorithm alg, const Digest& d, SigningKeys& keys, Drbg& drbg) {
  EcPrivateKey& k = keys.ec[hash_index(alg)];
  Mpi r, s;
  check_mbedtls(mbedtls_ecdsa_sign_det_ext(&k.pair.grp, &r.v, &s.v, &k.pair.d, d.bytes, d.size,
                                           md_type(alg), &Drbg::random, &drbg),
                "ecdsa_sign_det_ext");
  // JOSE wants R || S, each exactly the coordinate size (RFC 7518 3.4), not DER.
  return mpi_bytes(r.v, k.coordinate_bytes()) + mpi_bytes(s.v, k.coordinate_bytes());
}

std::string sign_rsa(Algorithm alg, const Digest& d, SigningKeys& keys, Drbg& drbg) {
  mbedtls_rsa_context* rsa = &keys.rsa.ctx;
  std::vector<unsigned char> sig(mbedtls_rsa_get_len(rsa));
  if (is_pkcs1(alg)) {
    mbedtls_rsa_set_padding(rsa, MBEDTLS_RSA_PKCS_V15, MBEDTLS_MD_NONE);
    check_mbedtls(mbedtls_rsa_rsassa_pkcs1_v15_sign(rsa, &Drbg::random, &drbg, MBEDTLS_RSA_PRIVATE,
                                                    md_type(alg), 0, d.bytes, sig.data()),
                  "rsa pkcs1 sign");
  } else {
    // RFC 7518 3.5: MGF1 with the same hash, salt as long as the hash.
    mbedtls_rsa_set_padding(rsa, MBEDTLS_RSA_PKCS_V21, md_type(alg));
    check_mbedtls(mbedtls_rsa_rsassa_pss_sign_ext(rsa, &Drbg::random, &drbg, md_type(alg), 0,
                                                  d.bytes, static_cast<int>(d.size), sig.data()),
                  "rsa pss sign");
  }
  return std::string(as_chars(sig.data(), sig.size()));
}

std::string sign(Algorithm alg, std::string_view input, SigningKeys& keys, Drbg& drbg) {
  if (is_hmac(alg)) {
    const std::string& secret = keys.secrets[hash_index(alg)];
    Digest mac{{}, 0};
    const mbedtls_md_info_t* md = mbedtls_md_info_from_type(md_type(alg));
    mac.size = mbedtls_md_get_size(md);
    check_mbedtls(mbedtls_md_hmac(md, as_uchars(secret), secret.size(), as_uchars(input),
                                  input.size(), mac.bytes),
                  "md_hmac");
    return std::string(as_chars(mac.bytes, mac.size));
  }
  const Digest d = digest_of(alg, input);
  return is_ecdsa(alg) ? sign_ecdsa(alg, d, keys, drbg) : sign_rsa(alg, d, keys, drbg);
}

// Claims of a typical access token from an identity provider.
std::string payload_json(std::int64_t now_s, std::size_t user) {
  char buf[512];
  std::snprintf(buf, sizeof buf,
                R"({"iss":"%.*s","sub":"user-%08zu","aud":["%.*s","billing"],)"
                R"("exp":%lld,"nbf":%lld,"iat":%lld,"jti":"4d3b7f2a-9c1e-4b8a-a6f0-%012zu",)"
                R"("roles":["reader","editor"],"scope":"openid profile email"})",
                static_cast<int>(kIssuer.size()), kIssuer.data(), user,
                static_cast<int>(kAudience.size()), kAudience.data(),
                static_cast<long long>(now_s + 3600), static_cast<long long>(now_s - 60),
                static_cast<long long>(now_s - 60), user);
  return buf;
}

struct Token {
  std::string text;
  std::size_t signing_input_bytes;
  std::string signature;  // raw bytes, for the bare baselines
};

Token make_token(Algorithm alg, std::string_view payload, SigningKeys& keys, Drbg& drbg) {
  const std::string header =
      R"({"alg":")" + name_of(alg) + R"(","typ":"JWT","kid":")" + kid_of(alg) + R"("})";
  Token t;
  t.text = base64url(header) + "." + base64url(payload);
  t.signing_input_bytes = t.text.size();
  t.signature = sign(alg, t.text, keys, drbg);
  t.text += "." + base64url(t.signature);
  return t;
}

// ----------------------------------------------------------------- timing

struct Timing {
  std::size_t runs;
  double seconds_per_run;
};

// Iterations that make one run of `op` last about `seconds`, judged from a
// trial long enough for the clock to resolve.
template <class Op>
std::size_t iterations_for(double seconds, Op& op) {
  for (std::size_t n = 1;; n *= 2) {
    const std::int64_t t0 = bench::now_ns();
    for (std::size_t i = 0; i < n; ++i)
      bench::do_not_optimize(op());
    const auto elapsed = static_cast<double>(bench::now_ns() - t0);
    if (elapsed >= 2e6 || n >= (1u << 24)) {
      return std::max<std::size_t>(
          1, static_cast<std::size_t>(static_cast<double>(n) * seconds * 1e9 / elapsed));
    }
  }
}

// Median ns per call of `op`, which returns whether the call gave the
// expected answer.
template <class Op>
bench::Sample time_op(const Timing& timing, const std::string& what, Op op) {
  const std::size_t n = iterations_for(timing.seconds_per_run, op);
  std::size_t wrong = 0;
  const bench::Sample s = bench::measure(timing.runs, n, [&](std::size_t k) {
    for (std::size_t i = 0; i < k; ++i)
      wrong += !op();
  });
  expect(wrong == 0, what + ": " + std::to_string(wrong) + " call(s) gave the wrong answer");
  return s;
}

// Two operations timed in alternating runs, and the median of their per-run
// ratio: on a shared machine the load drifts between runs, and a ratio taken
// within one pair of runs cancels most of that drift.
struct Paired {
  bench::Sample a;
  bench::Sample b;
  double a_over_b;
};

template <class OpA, class OpB>
Paired time_paired(const Timing& timing, const std::string& what, OpA a, OpB b) {
  const std::size_t n = iterations_for(timing.seconds_per_run, a);
  std::size_t wrong = 0;
  const auto loop = [&](auto& op) {
    return [&](std::size_t k) {
      for (std::size_t i = 0; i < k; ++i)
        wrong += !op();
    };
  };
  std::vector<double> a_ns, b_ns, ratios;
  bench::Sample sa{}, sb{};
  for (std::size_t r = 0; r < timing.runs; ++r) {
    sa = bench::measure(1, n, loop(a));
    sb = bench::measure(1, n, loop(b));
    a_ns.push_back(sa.ns_per_op);
    b_ns.push_back(sb.ns_per_op);
    ratios.push_back(sa.ns_per_op / sb.ns_per_op);
  }
  expect(wrong == 0, what + ": " + std::to_string(wrong) + " call(s) gave the wrong answer");
  sa.ns_per_op = bench::median(a_ns);
  sb.ns_per_op = bench::median(b_ns);
  return {sa, sb, bench::median(ratios)};
}

// --------------------------------------------------------------- portico

std::shared_ptr<const Verifier> make_verifier(std::string_view jwks) {
  auto set = KeySet::from_jwks(jwks);
  if (!set) die("JWKS: " + set.error().message);
  for (const auto& skipped : set->skipped()) {
    expect(false, "JWKS key " + skipped.kid + " skipped: " + skipped.reason);
  }
  auto holder = std::make_shared<KeySetHolder>(std::move(set).value());
  VerifierOptions options;
  options.issuers = {std::string(kIssuer)};
  options.audiences = {std::string(kAudience)};
  options.required_claims.assign(std::begin(kRequiredClaims), std::end(kRequiredClaims));
  options.leeway = kLeeway;
  auto verifier = Verifier::create(std::move(holder), std::move(options));
  if (!verifier) die("verifier: " + verifier.error().message);
  return std::make_shared<const Verifier>(std::move(verifier).value());
}

bool accepted(const portico::jwt::Verification& v, std::string_view sub) {
  return v.ok() && v.claims().string("sub") == sub;
}

// ------------------------------------------------------------- baselines

// The signature check alone, as a caller of mbedTLS would write it: hash
// the signing input, verify the raw signature with a public-only key.
class BareRsaVerify {
 public:
  explicit BareRsaVerify(const mbedtls_rsa_context& private_key) {
    mbedtls_rsa_init(&ctx_, MBEDTLS_RSA_PKCS_V15, 0);
    Mpi n, e;
    check_mbedtls(mbedtls_rsa_export(&private_key, &n.v, nullptr, nullptr, nullptr, &e.v),
                  "rsa_export");
    check_mbedtls(mbedtls_rsa_import(&ctx_, &n.v, nullptr, nullptr, nullptr, &e.v), "rsa_import");
    check_mbedtls(mbedtls_rsa_complete(&ctx_), "rsa_complete");
  }
  ~BareRsaVerify() { mbedtls_rsa_free(&ctx_); }
  BareRsaVerify(const BareRsaVerify&) = delete;
  BareRsaVerify& operator=(const BareRsaVerify&) = delete;

  bool operator()(std::string_view input, std::string_view sig) {
    unsigned char hash[32];
    mbedtls_sha256_ret(as_uchars(input), input.size(), hash, 0);
    return mbedtls_rsa_rsassa_pkcs1_v15_verify(&ctx_, nullptr, nullptr, MBEDTLS_RSA_PUBLIC,
                                               MBEDTLS_MD_SHA256, 32, hash, as_uchars(sig)) == 0;
  }

 private:
  mbedtls_rsa_context ctx_;
};

class BareP256Verify {
 public:
  explicit BareP256Verify(const mbedtls_ecp_keypair& private_key) {
    mbedtls_ecp_group_init(&grp_);
    mbedtls_ecp_point_init(&q_);
    check_mbedtls(mbedtls_ecp_group_load(&grp_, MBEDTLS_ECP_DP_SECP256R1), "ecp_group_load");
    check_mbedtls(mbedtls_ecp_copy(&q_, &private_key.Q), "ecp_copy");
  }
  ~BareP256Verify() {
    mbedtls_ecp_point_free(&q_);
    mbedtls_ecp_group_free(&grp_);
  }
  BareP256Verify(const BareP256Verify&) = delete;
  BareP256Verify& operator=(const BareP256Verify&) = delete;

  bool operator()(std::string_view input, std::string_view sig) {
    unsigned char hash[32];
    mbedtls_sha256_ret(as_uchars(input), input.size(), hash, 0);
    Mpi r, s;
    return mbedtls_mpi_read_binary(&r.v, as_uchars(sig), 32) == 0 &&
           mbedtls_mpi_read_binary(&s.v, as_uchars(sig) + 32, 32) == 0 &&
           mbedtls_ecdsa_verify(&grp_, hash, 32, &q_, &r.v, &s.v) == 0;
  }

 private:
  mbedtls_ecp_group grp_;
  mbedtls_ecp_point q_;
};

// ------------------------------------------------------------------- peer

struct PeerResult {
  std::string status;               // why it did not run, or empty
  std::string info;                 // versions the peer reports
  double us[kAlgorithmCount] = {};  // 0: no figure
};

std::string shell_quote(std::string_view s) {
  std::string out = "'";
  for (char c : s)
    out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string peer_input(std::string_view jwks, const std::vector<Token>& tokens,
                       const Timing& timing) {
  std::string out = R"({"jwks":)" + std::string(jwks) + R"(,"issuer":")" + std::string(kIssuer) +
                    R"(","audience":")" + std::string(kAudience) + R"(","leeway":)" +
                    std::to_string(kLeeway.count()) + R"(,"require":[)";
  for (const char* claim : kRequiredClaims) {
    out += std::string(claim == kRequiredClaims[0] ? "" : ",") + "\"" + claim + "\"";
  }
  out += R"(],"runs":)" + std::to_string(timing.runs) + R"(,"seconds_per_run":)" +
         std::to_string(timing.seconds_per_run) + R"(,"tokens":[)";
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    const auto alg = static_cast<Algorithm>(i);
    out += std::string(i == 0 ? "" : ",") + R"({"alg":")" + name_of(alg) + R"(","token":")" +
           tokens[i].text + "\"}";
  }
  return out + "]}";
}

// Writes the tokens where the peer can read them; returns the file's path.
std::string write_temp_file(std::string_view contents) {
  const char* dir = std::getenv("TMPDIR");
  std::string path = std::string(dir && *dir ? dir : "/tmp") + "/portico-jwt-bench-XXXXXX";
  const int fd = mkstemp(path.data());
  if (fd < 0) die("cannot create a temporary file in " + path);
  const bool written =
      write(fd, contents.data(), contents.size()) == static_cast<ssize_t>(contents.size());
  close(fd);
  if (!written) die("cannot write " + path);
  return path;
}

void parse_peer_line(std::string_view line, PeerResult& result) {
  if (line.substr(0, 5) == "info ") {
    result.info = std::string(line.substr(5));
    return;
  }
  const std::size_t space = line.find(' ');
  const auto alg = portico::jwt::parse_algorithm(line.substr(0, space));
  if (space == line.npos || !alg) {
    expect(false, "peer: unexpected line: " + std::string(line));
    return;
  }
  result.us[index_of(*alg)] = std::strtod(std::string(line.substr(space + 1)).c_str(), nullptr);
}

PeerResult run_peer(const std::string& python, const std::string& script, std::string_view jwks,
                    const std::vector<Token>& tokens, const Timing& timing) {
  PeerResult result;
  if (std::system((python + " -c 'import jwt' >/dev/null 2>&1").c_str()) != 0) {
    result.status = "skipped (python3-jwt not installed)";
    return result;
  }
  if (script.empty()) {
    result.status = "skipped (no --peer script given)";
    return result;
  }
  const std::string input = write_temp_file(peer_input(jwks, tokens, timing));
  FILE* out = popen((python + " " + shell_quote(script) + " " + shell_quote(input)).c_str(), "r");
  if (out == nullptr) die("cannot start the peer");
  char line[1024];
  while (std::fgets(line, sizeof line, out) != nullptr) {
    std::string_view text(line);
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r'))
      text.remove_suffix(1);
    parse_peer_line(text, result);
  }
  const int status = pclose(out);
  std::remove(input.c_str());
  if (status != 0) {
    result.status = WIFEXITED(status)
                        ? "FAILED (exit code " + std::to_string(WEXITSTATUS(status)) + ")"
                        : "FAILED (wait status " + std::to_string(status) + ")";
    expect(false, "the peer failed");
  }
  return result;
}

// -------------------------------------------------------------- per alg

struct Row {
  Algorithm alg;
  bench::Sample verify;  // Verifier::verify, ns
  bench::Sample hit;     // TokenCache::verify of a cached token, ns
};

Row bench_algorithm(Algorithm alg, const Token& token, const std::string& sub,
                    const std::shared_ptr<const Verifier>& verifier, WallTime now,
                    const Timing& timing) {
  Row row{alg, {}, {}};
  const std::string name = name_of(alg);
  row.verify = time_op(timing, name + " verify",
                       [&] { return accepted(verifier->verify(token.text, now), sub); });
  TokenCache cache(verifier);
  expect(accepted(cache.verify(token.text, now), sub), name + " first cache verify");
  row.hit = time_op(timing, name + " cache hit", [&] {
    const auto v = cache.verify(token.text, now);
    return v.ok() && v.from_cache();
  });
  return row;
}

// ------------------------------------------------------------------- mix

// Token ranks drawn with probability proportional to 1 / rank^s.
class ZipfDraws {
 public:
  ZipfDraws(std::size_t items, double s, std::uint64_t seed) : cdf_(items), rng_(seed) {
    double sum = 0;
    for (std::size_t k = 0; k < items; ++k)
      cdf_[k] = sum += 1.0 / std::pow(double(k + 1), s);
    for (double& c : cdf_)
      c /= sum;
  }
  std::vector<std::uint32_t> next(std::size_t count) {
    std::uniform_real_distribution<double> u(0.0, 1.0);
    std::vector<std::uint32_t> out(count);
    for (auto& o : out) {
      const auto it = std::lower_bound(cdf_.begin(), cdf_.end(), u(rng_));
      o = static_cast<std::uint32_t>(std::min<std::size_t>(it - cdf_.begin(), cdf_.size() - 1));
    }
    return out;
  }

 private:
  std::vector<double> cdf_;
  std::mt19937_64 rng_;
};

struct MixSizes {
  std::size_t tokens;
  std::size_t cache_capacity;
  std::size_t requests;           // per timed pass through the cache
  std::size_t uncached_requests;  // per timed pass without it
  std::size_t runs;
};

template <class Verify>
double us_per_request(const std::vector<std::uint32_t>& draws, std::size_t count,
                      const std::vector<std::string>& subs, std::size_t& wrong, Verify verify) {
  const std::int64_t t0 = bench::now_ns();
  for (std::size_t i = 0; i < count; ++i)
    wrong += !accepted(verify(draws[i]), subs[draws[i]]);
  return static_cast<double>(bench::now_ns() - t0) / 1e3 / static_cast<double>(count);
}

void bench_mix(Algorithm alg, SigningKeys& keys, Drbg& drbg, std::int64_t now_s, WallTime now,
               const std::shared_ptr<const Verifier>& verifier, const MixSizes& sizes) {
  std::vector<std::string> tokens, subs;
  for (std::size_t i = 0; i < sizes.tokens; ++i) {
    const std::size_t user = 100'000 + i;
    tokens.push_back(make_token(alg, payload_json(now_s, user), keys, drbg).text);
    char sub[32];
    std::snprintf(sub, sizeof sub, "user-%08zu", user);
    subs.emplace_back(sub);
  }
  ZipfDraws zipf(sizes.tokens, kZipfExponent, 42 + index_of(alg));
  std::size_t wrong = 0;

  std::vector<double> uncached;
  // Without the cache every request costs a full verify; a short pass of the
  // slow algorithms says as much as a long one.
  const std::size_t uncached_requests = is_hmac(alg) ? sizes.requests : sizes.uncached_requests;
  for (std::size_t r = 0; r < sizes.runs; ++r) {
    const auto draws = zipf.next(uncached_requests);
    uncached.push_back(us_per_request(draws, draws.size(), subs, wrong, [&](std::uint32_t i) {
      return verifier->verify(tokens[i], now);
    }));
  }

  TokenCacheOptions options;
  options.capacity = sizes.cache_capacity;
  TokenCache cache(verifier, options);
  const auto cached_verify = [&](std::uint32_t i) { return cache.verify(tokens[i], now); };
  // The first pass fills the cache: a gateway's cache is measured warm.
  const auto warm = zipf.next(sizes.requests);
  us_per_request(warm, warm.size(), subs, wrong, cached_verify);
  const auto before = cache.stats();
  std::vector<double> cached;
  for (std::size_t r = 0; r < sizes.runs; ++r) {
    const auto draws = zipf.next(sizes.requests);
    cached.push_back(us_per_request(draws, draws.size(), subs, wrong, cached_verify));
  }
  const auto& after = cache.stats();
  const auto hits = static_cast<double>(after.hits - before.hits);
  const auto misses = static_cast<double>(after.misses - before.misses);
  expect(wrong == 0, name_of(alg) + " mix: " + std::to_string(wrong) + " request(s) refused");

  const double no_cache_us = bench::median(uncached);
  const double cache_us = bench::median(cached);
  std::printf(
      "jwt mix %s  no cache %9.3f µs/request   cache %8.3f µs/request   hit ratio %5.1f%%"
      "   (%.1fx faster)\n",
      name_of(alg).c_str(), no_cache_us, cache_us, 100.0 * hits / (hits + misses),
      no_cache_us / cache_us);
}

// ------------------------------------------------------------------ report

// `text` padded with spaces to `width` characters (not bytes: "µ" is two).
std::string padded(std::string text, std::size_t width) {
  const auto chars = static_cast<std::size_t>(
      std::count_if(text.begin(), text.end(), [](char c) { return (c & 0xc0) != 0x80; }));
  if (chars < width) text.append(width - chars, ' ');
  return text;
}

std::string format(const char* fmt, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, v);
  return buf;
}

void print_rows(const std::vector<Row>& rows, const std::vector<Token>& tokens,
                const PeerResult& peer) {
  std::printf(
      "jwt alg    token B  verify µs  allocs  cache hit ns  allocs  PyJWT µs  PyJWT/Portico\n");
  for (const Row& r : rows) {
    const double us = r.verify.ns_per_op / 1e3;
    const double peer_us = peer.us[index_of(r.alg)];
    std::printf("jwt %-6s %7zu %10.3f %7.1f %13.1f %7.1f", name_of(r.alg).c_str(),
                tokens[index_of(r.alg)].text.size(), us, r.verify.allocs_per_op, r.hit.ns_per_op,
                r.hit.allocs_per_op);
    if (peer_us > 0) {
      std::printf(" %9.3f %13.2fx\n", peer_us, peer_us / us);
    } else {
      std::printf(" %9s %14s\n", "-", "-");
    }
  }
}

void print_baseline(const char* what, const Paired& portico_vs_bare, const char* alg) {
  std::printf("jwt %s %9.3f µs  %.1f allocs\n", padded(what, 84).c_str(),
              portico_vs_bare.b.ns_per_op / 1e3, portico_vs_bare.b.allocs_per_op);
  std::printf(
      "jwt %s %9.3f µs  Portico %s / bare %.3f (median of per-run ratios)\n",
      padded(std::string("  Portico ") + alg + " verify, in runs alternating with the bare one", 84)
          .c_str(),
      portico_vs_bare.a.ns_per_op / 1e3, alg, portico_vs_bare.a_over_b);
}

void print_target(const char* what, const std::string& figure, bool met) {
  std::printf("jwt target %s %s %s\n", padded(what, 48).c_str(), padded(figure, 18).c_str(),
              met ? "PASS" : "MISSED");
}

void print_targets(const std::vector<Row>& rows, const Paired& rs256_vs_bare) {
  const double hs256_us = rows[index_of(Algorithm::hs256)].verify.ns_per_op / 1e3;
  print_target("HS256 verify < 1.5 µs", format("%.3f µs", hs256_us), hs256_us < 1.5);
  const double rsa_ratio = rs256_vs_bare.a_over_b;
  print_target("RS256 verify / bare mbedTLS RSA verify <= 1.2", format("%.3f", rsa_ratio),
               rsa_ratio <= 1.2);
  // A hit hashes and compares the whole token, so the longest tokens set the bound.
  const Row& slowest = *std::max_element(rows.begin(), rows.end(), [](const Row& a, const Row& b) {
    return a.hit.ns_per_op < b.hit.ns_per_op;
  });
  print_target("cache hit < 150 ns (slowest algorithm)",
               format("%.1f ns", slowest.hit.ns_per_op) + " (" + name_of(slowest.alg) + ")",
               slowest.hit.ns_per_op < 150);
}

void print_es256_comparison(const std::vector<Row>& rows, const Paired& es256_vs_bare,
                            const PeerResult& peer) {
  const double portico_us = rows[index_of(Algorithm::es256)].verify.ns_per_op / 1e3;
  const double peer_us = peer.us[index_of(Algorithm::es256)];
  if (peer_us <= 0) return;
  std::printf(
      "jwt ES256: Portico %.1f µs (bare mbedTLS ECDSA %.1f µs), PyJWT on OpenSSL %.1f µs: "
      "Portico takes %.2fx the peer's time\n",
      portico_us, es256_vs_bare.b.ns_per_op / 1e3, peer_us, portico_us / peer_us);
}

struct Options {
  bool quick = false;
  std::string peer_script;
  std::string python = "/usr/bin/env python3";
};

Options parse_options(int argc, char** argv) {
  Options o;
  o.quick = bench::quick_mode(argc, argv);
#ifdef PORTICO_JWT_PEER
  o.peer_script = PORTICO_JWT_PEER;
#endif
  for (int i = 1; i + 1 < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--peer") o.peer_script = argv[++i];
    if (arg == "--python") o.python = argv[++i];
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  const Options opt = parse_options(argc, argv);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // figures appear as they come, also through a pipe
  const Timing timing = opt.quick ? Timing{3, 0.01} : Timing{5, 0.2};
  const MixSizes mix = opt.quick ? MixSizes{500, 205, 1000, 50, 3}
                                 : MixSizes{kMixTokens, kMixCacheCapacity, 20'000, 1000, 5};

  const std::int64_t now_s = std::chrono::duration_cast<std::chrono::seconds>(
                                 std::chrono::system_clock::now().time_since_epoch())
                                 .count();
  const WallTime now{std::chrono::seconds(now_s)};

  Drbg drbg(0x706f727469636fULL);
  SigningKeys keys;
  generate_keys(keys, drbg);
  const std::string jwks = public_jwks(keys);
  const auto verifier = make_verifier(jwks);

  const std::string sub = "user-00004217";
  const std::string payload = payload_json(now_s, 4217);
  std::vector<Token> tokens;
  for (std::size_t i = 0; i < kAlgorithmCount; ++i) {
    tokens.push_back(make_token(static_cast<Algorithm>(i), payload, keys, drbg));
  }
  std::printf(
      "jwt tokens: payload %zu bytes of JSON; signing input %zu bytes (RS256), %zu "
      "(ES256); now pinned at %lld; median of %zu runs\n",
      payload.size(), tokens[index_of(Algorithm::rs256)].signing_input_bytes,
      tokens[index_of(Algorithm::es256)].signing_input_bytes, static_cast<long long>(now_s),
      timing.runs);

  std::vector<Row> rows;
  for (std::size_t i = 0; i < kAlgorithmCount; ++i) {
    rows.push_back(
        bench_algorithm(static_cast<Algorithm>(i), tokens[i], sub, verifier, now, timing));
  }

  const Token& rs256 = tokens[index_of(Algorithm::rs256)];
  const Token& es256 = tokens[index_of(Algorithm::es256)];
  const std::string_view rs256_input(rs256.text.data(), rs256.signing_input_bytes);
  const std::string_view es256_input(es256.text.data(), es256.signing_input_bytes);
  BareRsaVerify bare_rsa(keys.rsa.ctx);
  BareP256Verify bare_p256(keys.ec[0].pair);
  const Paired rs256_vs_bare = time_paired(
      timing, "RS256 against bare RSA verify",
      [&] { return accepted(verifier->verify(rs256.text, now), sub); },
      [&] { return bare_rsa(rs256_input, rs256.signature); });
  const Paired es256_vs_bare = time_paired(
      timing, "ES256 against bare ECDSA verify",
      [&] { return accepted(verifier->verify(es256.text, now), sub); },
      [&] { return bare_p256(es256_input, es256.signature); });

  const PeerResult peer = run_peer(opt.python, opt.peer_script, jwks, tokens, timing);
  if (peer.status.empty()) {
    std::printf("jwt peer: %s; same tokens, same checks, same run\n", peer.info.c_str());
  } else {
    std::printf("jwt peer: %s\n", peer.status.c_str());
  }
  print_rows(rows, tokens, peer);
  print_baseline(
      "bare mbedTLS RSA-2048 PKCS#1 v1.5 verify (SHA-256 + "
      "mbedtls_rsa_rsassa_pkcs1_v15_verify)",
      rs256_vs_bare, "RS256");
  print_baseline("bare mbedTLS P-256 ECDSA verify (SHA-256 + mbedtls_ecdsa_verify)", es256_vs_bare,
                 "ES256");
  print_targets(rows, rs256_vs_bare);
  print_es256_comparison(rows, es256_vs_bare, peer);

  std::printf(
      "jwt mix: %zu distinct tokens, Zipf s=%.1f, TokenCache capacity %zu; median of %zu "
      "passes of %zu requests through a warm cache, and of %zu (HS256: %zu) without it\n",
      mix.tokens, kZipfExponent, mix.cache_capacity, mix.runs, mix.requests, mix.uncached_requests,
      mix.requests);
  bench_mix(Algorithm::hs256, keys, drbg, now_s, now, verifier, mix);
  bench_mix(Algorithm::es256, keys, drbg, now_s, now, verifier, mix);

  if (g_failed) {
    std::fprintf(stderr, "jwt_bench: FAILED\n");
    return 1;
  }
  return 0;
}
