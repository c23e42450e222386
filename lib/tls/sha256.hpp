// SHA-256 (FIPS 180-4) with the x86 SHA extensions when the CPU has them.
//
// mbedTLS 2.28 hashes in portable C only, and HS256 verification is almost
// all hashing, so this one hash gets a hardware path: on CPUs with SHA-NI a
// 64-byte block costs about a fifth as much. The portable block function is
// used elsewhere and is what the hardware one is tested against (besides
// mbedTLS itself).
#pragma once

#include <cstddef>
#include <cstdint>

namespace portico::detail {

using Sha256Compress = void (*)(std::uint32_t state[8], const unsigned char* blocks,
                                std::size_t count) noexcept;

void sha256_compress_portable(std::uint32_t state[8], const unsigned char* blocks,
                              std::size_t count) noexcept;
// Null when the CPU lacks SHA-NI or SSE4.1 (or on other architectures).
Sha256Compress sha256_compress_hardware() noexcept;

class Sha256 {
 public:
  static constexpr std::size_t kBlockSize = 64;
  static constexpr std::size_t kDigestSize = 32;

  // The fastest block function this CPU supports, chosen once.
  Sha256() noexcept;
  explicit Sha256(Sha256Compress compress) noexcept;

  void update(const unsigned char* data, std::size_t size) noexcept;
  void finish(unsigned char out[kDigestSize]) noexcept;

 private:
  Sha256Compress compress_;
  std::uint32_t state_[8];
  std::uint64_t total_ = 0;  // bytes hashed so far
  unsigned char buffer_[kBlockSize];
  std::size_t buffered_ = 0;
};

}  // namespace portico::detail
