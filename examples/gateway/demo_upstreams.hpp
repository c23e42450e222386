// The demo's built-in upstream services (users, orders): real HTTP servers
// on 127.0.0.1 ephemeral ports, on a loop thread of their own, so the demo
// gateway proxies to them over real sockets like to any service.
#pragma once

#include <uv.h>

#include <cstdint>
#include <memory>
#include <thread>

#include "portico/proxy.hpp"

namespace demo {

class DemoUpstreams {
 public:
  DemoUpstreams();
  ~DemoUpstreams();
  bool ok() const { return users_ != nullptr && orders_ != nullptr; }
  std::uint16_t users_port() const { return users_->port(); }
  std::uint16_t orders_port() const { return orders_->port(); }

 private:
  uv_loop_t loop_{};
  uv_async_t stop_{};
  std::unique_ptr<portico::proxy::Server> users_, orders_;
  std::thread thread_;
};

}  // namespace demo
