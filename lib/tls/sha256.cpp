#include "sha256.hpp"

#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>
#define PORTICO_SHA_NI 1
#endif

namespace portico::detail {
namespace {

constexpr std::uint32_t kRound[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

constexpr std::uint32_t kInitial[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                       0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

constexpr std::uint32_t rotr(std::uint32_t x, int n) noexcept {
  return x >> n | x << (32 - n);
}

std::uint32_t load_be32(const unsigned char* p) noexcept {
  return std::uint32_t{p[0]} << 24 | std::uint32_t{p[1]} << 16 | std::uint32_t{p[2]} << 8 | p[3];
}

#ifdef PORTICO_SHA_NI
// Four rounds: the two SHA256RNDS2 instructions each do two, taking the
// message-plus-constant words from the low and then the high half.
__attribute__((target("sha,sse4.1"))) inline void four_rounds(__m128i& abef, __m128i& cdgh,
                                                              __m128i words, int group) noexcept {
  const __m128i k = _mm_loadu_si128(reinterpret_cast<const __m128i*>(&kRound[4 * group]));
  __m128i wk = _mm_add_epi32(words, k);
  cdgh = _mm_sha256rnds2_epu32(cdgh, abef, wk);
  wk = _mm_shuffle_epi32(wk, 0x0e);
  abef = _mm_sha256rnds2_epu32(abef, cdgh, wk);
}

__attribute__((target("sha,sse4.1"))) void compress_sha_ni(std::uint32_t state[8],
                                                           const unsigned char* blocks,
                                                           std::size_t count) noexcept {
  const __m128i byte_swap = _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);
  // The instructions want the state as ABEF and CDGH.
  __m128i dcba = _mm_loadu_si128(reinterpret_cast<const __m128i*>(state));
  __m128i hgfe = _mm_loadu_si128(reinterpret_cast<const __m128i*>(state + 4));
  __m128i cdab = _mm_shuffle_epi32(dcba, 0xb1);
  __m128i efgh = _mm_shuffle_epi32(hgfe, 0x1b);
  __m128i abef = _mm_alignr_epi8(cdab, efgh, 8);
  __m128i cdgh = _mm_blend_epi16(efgh, cdab, 0xf0);

  for (; count > 0; --count, blocks += 64) {
    const __m128i abef_in = abef, cdgh_in = cdgh;
    __m128i w[4];
    for (int i = 0; i < 4; ++i) {
      w[i] = _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blocks + 16 * i)),
                              byte_swap);
      four_rounds(abef, cdgh, w[i], i);
    }
#pragma GCC unroll 12
    for (int g = 4; g < 16; ++g) {
      // W[t..t+3] from W[t-16..t-1]: msg1 adds sigma0 of W[t-15..t-12] to
      // W[t-16..t-13], the alignr supplies W[t-7..t-4], msg2 adds sigma1.
      __m128i& oldest = w[g % 4];
      const __m128i& w1 = w[(g + 1) % 4];
      const __m128i& w2 = w[(g + 2) % 4];
      const __m128i& w3 = w[(g + 3) % 4];
      __m128i next = _mm_sha256msg1_epu32(oldest, w1);
      next = _mm_add_epi32(next, _mm_alignr_epi8(w3, w2, 4));
      oldest = _mm_sha256msg2_epu32(next, w3);
      four_rounds(abef, cdgh, oldest, g);
    }
    abef = _mm_add_epi32(abef, abef_in);
    cdgh = _mm_add_epi32(cdgh, cdgh_in);
  }

  __m128i feba = _mm_shuffle_epi32(abef, 0x1b);
  __m128i dchg = _mm_shuffle_epi32(cdgh, 0xb1);
  dcba = _mm_blend_epi16(feba, dchg, 0xf0);
  hgfe = _mm_alignr_epi8(dchg, feba, 8);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(state), dcba);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(state + 4), hgfe);
}

bool cpu_has_sha_ni() noexcept {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
  const bool ssse3 = c & (1u << 9), sse41 = c & (1u << 19);
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  const bool sha = b & (1u << 29);
  return ssse3 && sse41 && sha;
}
#endif

Sha256Compress best_compress() noexcept {
  static const Sha256Compress chosen = [] {
    Sha256Compress hw = sha256_compress_hardware();
    return hw != nullptr ? hw : &sha256_compress_portable;
  }();
  return chosen;
}

}  // namespace

void sha256_compress_portable(std::uint32_t state[8], const unsigned char* blocks,
                              std::size_t count) noexcept {
  for (; count > 0; --count, blocks += 64) {
    std::uint32_t w[64];
    for (int t = 0; t < 16; ++t)
      w[t] = load_be32(blocks + 4 * t);
    for (int t = 16; t < 64; ++t) {
      const std::uint32_t s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >> 3);
      const std::uint32_t s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >> 10);
      w[t] = w[t - 16] + s0 + w[t - 7] + s1;
    }
    std::uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
    std::uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
    for (int t = 0; t < 64; ++t) {
      const std::uint32_t s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
      const std::uint32_t ch = (e & f) ^ (~e & g);
      const std::uint32_t t1 = h + s1 + ch + kRound[t] + w[t];
      const std::uint32_t s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
      const std::uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
      h = g, g = f, f = e, e = d + t1;
      d = c, c = b, b = a, a = t1 + s0 + maj;
    }
    state[0] += a, state[1] += b, state[2] += c, state[3] += d;
    state[4] += e, state[5] += f, state[6] += g, state[7] += h;
  }
}

Sha256Compress sha256_compress_hardware() noexcept {
#ifdef PORTICO_SHA_NI
  static const bool has = cpu_has_sha_ni();
  return has ? &compress_sha_ni : nullptr;
#else
  return nullptr;
#endif
}

Sha256::Sha256() noexcept : Sha256(best_compress()) {}

Sha256::Sha256(Sha256Compress compress) noexcept : compress_(compress) {
  std::memcpy(state_, kInitial, sizeof state_);
}

void Sha256::update(const unsigned char* data, std::size_t size) noexcept {
  total_ += size;
  if (buffered_ != 0) {
    const std::size_t take = size < kBlockSize - buffered_ ? size : kBlockSize - buffered_;
    std::memcpy(buffer_ + buffered_, data, take);
    buffered_ += take, data += take, size -= take;
    if (buffered_ < kBlockSize) return;
    compress_(state_, buffer_, 1);
    buffered_ = 0;
  }
  if (size >= kBlockSize) {
    compress_(state_, data, size / kBlockSize);
    data += size / kBlockSize * kBlockSize;
    size %= kBlockSize;
  }
  if (size != 0) std::memcpy(buffer_, data, size);
  buffered_ = size;
}

void Sha256::finish(unsigned char out[kDigestSize]) noexcept {
  const std::uint64_t bits = total_ * 8;
  buffer_[buffered_++] = 0x80;
  if (buffered_ > kBlockSize - 8) {
    std::memset(buffer_ + buffered_, 0, kBlockSize - buffered_);
    compress_(state_, buffer_, 1);
    buffered_ = 0;
  }
  std::memset(buffer_ + buffered_, 0, kBlockSize - 8 - buffered_);
  for (int i = 0; i < 8; ++i)
    buffer_[kBlockSize - 1 - i] = static_cast<unsigned char>(bits >> (8 * i));
  compress_(state_, buffer_, 1);
  for (int i = 0; i < 8; ++i) {
    out[4 * i] = static_cast<unsigned char>(state_[i] >> 24);
    out[4 * i + 1] = static_cast<unsigned char>(state_[i] >> 16);
    out[4 * i + 2] = static_cast<unsigned char>(state_[i] >> 8);
    out[4 * i + 3] = static_cast<unsigned char>(state_[i]);
  }
}

}  // namespace portico::detail
