// The proxy's internal pieces: pooled buffers, intrusive lists, and the
// small helpers for writing HTTP heads.
#pragma once

#include <uv.h>

#include <cstddef>
#include <cstring>
#include <string_view>
#include <vector>

namespace portico::detail {

// Fixed-size blocks, reused: a connection holds a block only while it has
// unconsumed bytes or a write in flight, so idle keep-alive connections cost
// no buffer memory and busy ones never allocate per request.
class BufferPool {
 public:
  explicit BufferPool(std::size_t block_size) : block_size_(block_size) {}
  ~BufferPool() {
    for (char* b : free_)
      delete[] b;
  }
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  std::size_t block_size() const noexcept { return block_size_; }
  char* get() {
    if (free_.empty()) return new char[block_size_];
    char* b = free_.back();
    free_.pop_back();
    return b;
  }
  void put(char* b) {
    if (b != nullptr) free_.push_back(b);
  }

 private:
  std::size_t block_size_;
  std::vector<char*> free_;
};

// A doubly linked list threaded through its elements (Link as a member).
struct Link {
  Link* prev = this;
  Link* next = this;
  void* owner = nullptr;  // the element this link is a member of
  bool linked() const noexcept { return next != this; }
  void unlink() noexcept {
    prev->next = next;
    next->prev = prev;
    prev = next = this;
  }
  void push_back(Link& item) noexcept {
    item.prev = prev;
    item.next = this;
    prev->next = &item;
    prev = &item;
  }
};

// Appends to a fixed buffer; remembers if anything did not fit.
class HeadWriter {
 public:
  HeadWriter(char* buf, std::size_t cap) : buf_(buf), cap_(cap) {}
  HeadWriter& operator<<(std::string_view s) noexcept {
    if (len_ + s.size() > cap_) {
      overflow_ = true;
      return *this;
    }
    std::memcpy(buf_ + len_, s.data(), s.size());
    len_ += s.size();
    return *this;
  }
  HeadWriter& number(unsigned long long v) noexcept { return digits(v, 10); }
  HeadWriter& hex(unsigned long long v) noexcept { return digits(v, 16); }
  std::size_t size() const noexcept { return len_; }
  bool overflow() const noexcept { return overflow_; }

 private:
  HeadWriter& digits(unsigned long long v, unsigned base) noexcept {
    static const char kDigits[] = "0123456789abcdef";
    char out[24];
    std::size_t n = sizeof out;
    do {
      out[--n] = kDigits[v % base];
      v /= base;
    } while (v != 0);
    return *this << std::string_view(out + n, sizeof out - n);
  }

  char* buf_;
  std::size_t cap_;
  std::size_t len_ = 0;
  bool overflow_ = false;
};

}  // namespace portico::detail
