// Kept in a file of its own so the replaced operators are never inlined into
// their callers (GCC would then see malloc/free pairs and warn).
#include "alloc_counter.hpp"

#include <atomic>
#include <cstdlib>
#include <new>

namespace {
std::atomic<std::uint64_t> g_allocations{0};
std::atomic<std::uint64_t> g_thread_counted{0};
thread_local bool t_counting = false;

void* counted_alloc(std::size_t size) {
  portico::test::count_allocation();
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
}  // namespace

std::uint64_t portico::test::allocation_count() noexcept {
  return g_allocations.load(std::memory_order_relaxed);
}

void portico::test::set_thread_counting(bool on) noexcept {
  t_counting = on;
}

std::uint64_t portico::test::thread_counted_allocations() noexcept {
  return g_thread_counted.load(std::memory_order_relaxed);
}

void portico::test::count_allocation() noexcept {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (t_counting) g_thread_counted.fetch_add(1, std::memory_order_relaxed);
}

void* operator new(std::size_t size) {
  return counted_alloc(size);
}
void* operator new[](std::size_t size) {
  return counted_alloc(size);
}
// The nothrow forms too (std::stable_sort's buffer, for one), so that every
// allocation is counted and every pointer freed by the matching operator.
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  portico::test::count_allocation();
  return std::malloc(size == 0 ? 1 : size);
}
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
  portico::test::count_allocation();
  return std::malloc(size == 0 ? 1 : size);
}
void operator delete(void* p, const std::nothrow_t&) noexcept {
  std::free(p);
}
void operator delete[](void* p, const std::nothrow_t&) noexcept {
  std::free(p);
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete[](void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
  std::free(p);
}
