#include "resolver.hpp"

#include <netinet/in.h>

#include <algorithm>
#include <cassert>
#include <cstring>
#include <utility>

#include "timer_ms.hpp"

namespace portico::detail {

namespace {

// The part of an address that identifies it: family, address bytes and (for
// link-local IPv6) the interface.
int compare_addresses(const sockaddr_storage& a, const sockaddr_storage& b) noexcept {
  if (a.ss_family != b.ss_family) return a.ss_family == AF_INET ? -1 : 1;
  if (a.ss_family == AF_INET) {
    const auto& a4 = reinterpret_cast<const sockaddr_in&>(a);
    const auto& b4 = reinterpret_cast<const sockaddr_in&>(b);
    return std::memcmp(&a4.sin_addr, &b4.sin_addr, sizeof a4.sin_addr);
  }
  const auto& a6 = reinterpret_cast<const sockaddr_in6&>(a);
  const auto& b6 = reinterpret_cast<const sockaddr_in6&>(b);
  const int bytes = std::memcmp(&a6.sin6_addr, &b6.sin6_addr, sizeof a6.sin6_addr);
  if (bytes != 0) return bytes;
  if (a6.sin6_scope_id == b6.sin6_scope_id) return 0;
  return a6.sin6_scope_id < b6.sin6_scope_id ? -1 : 1;
}

// The address with `port`, or nothing for a family a TCP endpoint cannot use.
bool to_endpoint(const addrinfo& ai, std::uint16_t port, sockaddr_storage& out) noexcept {
  out = {};
  if (ai.ai_addr == nullptr) return false;
  if (ai.ai_family == AF_INET && ai.ai_addrlen >= sizeof(sockaddr_in)) {
    auto& in = reinterpret_cast<sockaddr_in&>(out);
    std::memcpy(&in, ai.ai_addr, sizeof in);
    in.sin_port = htons(port);
    return true;
  }
  if (ai.ai_family == AF_INET6 && ai.ai_addrlen >= sizeof(sockaddr_in6)) {
    auto& in6 = reinterpret_cast<sockaddr_in6&>(out);
    std::memcpy(&in6, ai.ai_addr, sizeof in6);
    in6.sin6_port = htons(port);
    return true;
  }
  return false;
}

}  // namespace

Resolver::Resolver(uv_loop_t* loop, std::string host, std::uint16_t port, Duration refresh,
                   Callback on_result)
    : loop_(loop),
      host_(std::move(host)),
      port_(port),
      refresh_ms_(timer_ms(refresh)),
      on_result_(std::move(on_result)) {}

Resolver::~Resolver() {
  assert(!timer_open_ && !lookup_pending_);
}

void Resolver::start() {
  if (started_ || stopping_) return;
  started_ = true;
  uv_timer_init(loop_, &timer_);
  timer_.data = this;
  lookup_.data = this;
  timer_open_ = true;
  look_up();
}

void Resolver::stop(std::function<void()> on_closed) {
  if (stopping_) return;
  stopping_ = true;
  on_closed_ = std::move(on_closed);
  if (timer_open_) uv_close(reinterpret_cast<uv_handle_t*>(&timer_), on_timer_closed);
  // Cancelled or not, the lookup's callback still comes (UV_EAI_CANCELED or
  // the answer) and is dropped there.
  if (lookup_pending_) uv_cancel(reinterpret_cast<uv_req_t*>(&lookup_));
  maybe_closed();
}

void Resolver::look_up() {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  const int rc = uv_getaddrinfo(loop_, &lookup_, on_resolved, host_.c_str(), nullptr, &hints);
  if (rc == 0) {
    lookup_pending_ = true;
    return;
  }
  // Reported from the loop, as a lookup's answer is, so that start() never
  // calls back into its caller.
  deferred_error_ = rc;
  uv_timer_start(&timer_, on_timer, 0, 0);
}

void Resolver::on_timer(uv_timer_t* timer) {
  auto* self = static_cast<Resolver*>(timer->data);
  if (self->deferred_error_ == 0) return self->look_up();
  const int error = self->deferred_error_;
  self->deferred_error_ = 0;
  self->report(error);
}

void Resolver::on_timer_closed(uv_handle_t* handle) {
  auto* self = static_cast<Resolver*>(handle->data);
  self->timer_open_ = false;
  self->maybe_closed();
}

void Resolver::on_resolved(uv_getaddrinfo_t* req, int status, addrinfo* result) {
  auto* self = static_cast<Resolver*>(req->data);
  self->lookup_pending_ = false;
  if (self->stopping_) {
    uv_freeaddrinfo(result);
    return self->maybe_closed();
  }
  if (status == 0) status = self->collect(result);
  uv_freeaddrinfo(result);
  self->report(status);
}

int Resolver::collect(const addrinfo* result) {
  addresses_.clear();
  for (const addrinfo* ai = result; ai != nullptr; ai = ai->ai_next) {
    sockaddr_storage endpoint;
    if (to_endpoint(*ai, port_, endpoint)) addresses_.push_back(endpoint);
  }
  const auto less = [](const sockaddr_storage& a, const sockaddr_storage& b) {
    return compare_addresses(a, b) < 0;
  };
  const auto same = [](const sockaddr_storage& a, const sockaddr_storage& b) {
    return compare_addresses(a, b) == 0;
  };
  std::sort(addresses_.begin(), addresses_.end(), less);
  addresses_.erase(std::unique(addresses_.begin(), addresses_.end(), same), addresses_.end());
  return addresses_.empty() ? UV_EAI_NODATA : 0;
}

// The callback may stop the resolver, which closes the timer: the next
// lookup is scheduled only if it did not.
void Resolver::report(int status) {
  if (status != 0) addresses_.clear();
  if (on_result_) on_result_(status, addresses_);
  if (!stopping_) uv_timer_start(&timer_, on_timer, refresh_ms_, 0);
}

// on_closed may destroy the resolver: it is the last thing done here.
void Resolver::maybe_closed() {
  if (!stopping_ || closed_ || timer_open_ || lookup_pending_) return;
  closed_ = true;
  const std::function<void()> on_closed = std::move(on_closed_);
  on_closed_ = nullptr;
  if (on_closed) on_closed();
}

}  // namespace portico::detail
