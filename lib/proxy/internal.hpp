// The proxy's internal pieces: pooled buffers, intrusive lists, and the
// small helpers for writing HTTP heads.
#pragma once

#include <uv.h>

#include <cstddef>
#include <cstdint>
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

// Deadlines kept in lists ordered by due time, one uv_timer per list
// waiting for the earliest. Timeouts of one fixed duration expire in the
// order they were armed, so arming appends and disarming unlinks, both
// O(1); a uv_timer per connection would cost heap operations on every
// re-arm, several times per request. A list of varying durations (retry
// backoff) inserts in order instead.
struct TimeoutList;

struct Deadline {
  Link link;
  std::uint64_t due = 0;
  void* owner = nullptr;  // handed to the list's expire function
  Deadline() { link.owner = this; }
  bool armed() const noexcept { return link.linked(); }
  void disarm() noexcept { link.unlink(); }
};

struct TimeoutList {
  uv_timer_t timer{};
  Link armed;
  std::uint64_t ms = 1;  // the duration of arm()
  void (*expire)(void* owner) = nullptr;
  void* user = nullptr;  // for close callbacks
  bool open = false;

  void start(uv_loop_t* loop, std::uint64_t duration_ms, void (*on_expire)(void*)) {
    uv_timer_init(loop, &timer);
    timer.data = this;
    ms = duration_ms;
    expire = on_expire;
    open = true;
  }
  // Closes the timer; the list must outlive the close, which `on_closed`
  // (given the timer, whose data is the list) may report.
  void close(uv_close_cb on_closed = nullptr) {
    if (!open) return;
    open = false;
    uv_close(reinterpret_cast<uv_handle_t*>(&timer), on_closed);
  }
  void arm(Deadline& d) { arm_in(d, ms); }
  void arm_in(Deadline& d, std::uint64_t in_ms) {
    d.link.unlink();
    d.due = uv_now(timer.loop) + in_ms;
    Link* after = armed.prev;  // the latest due first: most arms go last
    while (after != &armed && static_cast<Deadline*>(after->owner)->due > d.due)
      after = after->prev;
    d.link.prev = after;
    d.link.next = after->next;
    after->next->prev = &d.link;
    after->next = &d.link;
    if (armed.next == &d.link) uv_timer_start(&timer, on_timer, in_ms, 0);
  }

 private:
  static void on_timer(uv_timer_t* t) {
    auto* list = static_cast<TimeoutList*>(t->data);
    const std::uint64_t now = uv_now(t->loop);
    while (list->armed.linked()) {
      auto* d = static_cast<Deadline*>(list->armed.next->owner);
      if (d->due > now) {
        uv_timer_start(t, on_timer, d->due - now, 0);
        return;
      }
      d->link.unlink();
      list->expire(d->owner);
    }
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
