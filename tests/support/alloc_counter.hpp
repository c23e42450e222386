// Counts heap allocations in a test binary (the promise that a hot path does
// not allocate is tested, not only benchmarked). Linking alloc_counter.cpp
// replaces the global operator new of the whole test executable.
#pragma once

#include <cstdint>

namespace portico::test {

// Every allocation of the process.
std::uint64_t allocation_count() noexcept;

// Allocations made by threads while they had counting on: for a path that
// runs on a thread the test does not control (a server's loop), which turns
// counting on and off around the code under test. Readable from any thread.
void set_thread_counting(bool on) noexcept;
std::uint64_t thread_counted_allocations() noexcept;
// Counts an allocation made outside operator new (a malloc-based allocator
// handed to a C library, such as uv_replace_allocator's).
void count_allocation() noexcept;

}  // namespace portico::test
