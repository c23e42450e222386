#include "trace_context.hpp"

#include <sys/random.h>

#include <atomic>
#include <bit>
#include <chrono>
#include <cstring>

#include "../../common/mix.hpp"

namespace portico::detail {

namespace {

// A seed no other thread gets: the system's random bytes when available,
// and in every case a process-wide counter mixed in, so that two threads
// never start from the same state even if getrandom() fails.
std::uint64_t thread_seed() noexcept {
  static std::atomic<std::uint64_t> threads{0};
  std::uint64_t random = 0;
  if (::getrandom(&random, sizeof random, GRND_NONBLOCK) != sizeof random) {
    random =
        static_cast<std::uint64_t>(std::chrono::system_clock::now().time_since_epoch().count());
  }
  const std::uint64_t index = threads.fetch_add(1, std::memory_order_relaxed);
  return mix64(random ^ mix64(index + kGoldenGamma));
}

// One generator per thread: no lock, no sharing, no cache-line traffic
// between workers. A thread's Weyl sequence visits every state once per
// 2^64 draws, so its words do not repeat.
SplitMix64& thread_generator() noexcept {
  thread_local SplitMix64 generator(thread_seed());
  return generator;
}

// The 16 lower-case hex digits of `word`, most significant first, written
// with word-wide steps rather than a digit at a time: ids are drawn on every
// request.
void write_hex(std::uint64_t word, char* out) noexcept {
  constexpr std::uint64_t kEach = 0x0101010101010101ULL;
  for (int half = 0; half < 2; ++half) {
    // The eight nibbles of 32 bits, one per byte, the least significant in
    // the lowest byte.
    std::uint64_t x = half == 0 ? word >> 32 : word & 0xffffffffu;
    x = (x | (x << 16)) & 0x0000ffff0000ffffULL;
    x = (x | (x << 8)) & 0x00ff00ff00ff00ffULL;
    x = (x | (x << 4)) & 0x0f0f0f0f0f0f0f0fULL;
    // '0' + n, and 'a' - '0' - 10 more where n > 9 (then n + 6 carries
    // into bit 4).
    const std::uint64_t letters = ((x + kEach * 6) >> 4) & kEach;
    x += kEach * '0' + letters * ('a' - '0' - 10);
    // The most significant digit first in memory.
    if constexpr (std::endian::native == std::endian::little) x = __builtin_bswap64(x);
    std::memcpy(out + 8 * half, &x, sizeof x);
  }
}

bool is_lower_hex(std::string_view s) noexcept {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

bool all_zero(std::string_view s) noexcept {
  return s.find_first_not_of('0') == std::string_view::npos;
}

}  // namespace

void random_hex(char* out, std::size_t words) noexcept {
  SplitMix64& generator = thread_generator();
  for (;;) {
    bool zero = true;
    for (std::size_t w = 0; w < words; ++w) {
      const std::uint64_t word = generator.next();
      zero = zero && word == 0;
      write_hex(word, out + w * 16);
    }
    if (!zero || words == 0) return;
  }
}

bool is_valid_request_id(std::string_view id, std::size_t max_length) noexcept {
  if (id.empty() || id.size() > max_length) return false;
  for (char c : id) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x21 || u > 0x7e) return false;
  }
  return true;
}

std::optional<TraceParent> parse_traceparent(std::string_view value) noexcept {
  // 2 + 1 + 32 + 1 + 16 + 1 + 2
  constexpr std::size_t kLength = 55;
  if (value.size() < kLength) return std::nullopt;
  if (value[2] != '-' || value[35] != '-' || value[52] != '-') return std::nullopt;
  TraceParent tp{value.substr(0, 2), value.substr(3, 32), value.substr(36, 16),
                 value.substr(53, 2)};
  if (!is_lower_hex(tp.version) || tp.version == "ff") return std::nullopt;
  if (tp.version == "00" ? value.size() != kLength
                         : (value.size() > kLength && value[kLength] != '-'))
    return std::nullopt;
  if (!is_lower_hex(tp.trace_id) || all_zero(tp.trace_id)) return std::nullopt;
  if (!is_lower_hex(tp.parent_id) || all_zero(tp.parent_id)) return std::nullopt;
  if (!is_lower_hex(tp.flags)) return std::nullopt;
  return tp;
}

}  // namespace portico::detail
