// Counts heap allocations in a test binary (the promise that a hot path does
// not allocate is tested, not only benchmarked). Linking alloc_counter.cpp
// replaces the global operator new of the whole test executable.
#pragma once

#include <cstdint>

namespace portico::test {

std::uint64_t allocation_count() noexcept;

}  // namespace portico::test
