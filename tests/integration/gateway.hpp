// A Server on its own loop thread, stopped (gracefully) on destruction.
#pragma once

#include <uv.h>

#include <doctest/doctest.h>

#include <functional>
#include <thread>

#include "portico/proxy.hpp"

namespace portico::test {

class Gateway {
 public:
  explicit Gateway(proxy::ServerOptions options)
      : Gateway([&options](uv_loop_t*) { return std::move(options); }) {}
  // For options whose filters need the server's loop.
  explicit Gateway(const std::function<proxy::ServerOptions(uv_loop_t*)>& make_options) {
    uv_loop_init(&loop_);
    auto s = proxy::Server::create(&loop_, make_options(&loop_));
    REQUIRE_MESSAGE(s, (s ? "" : s.error().message));
    server_ = std::move(*s);
    auto st = server_->start();
    REQUIRE_MESSAGE(st, (st ? "" : st.error().message));
    uv_async_init(&loop_, &stop_, [](uv_async_t* a) {
      auto* self = static_cast<Gateway*>(a->data);
      self->server_->stop(self->drain_,
                          [a] { uv_close(reinterpret_cast<uv_handle_t*>(a), nullptr); });
    });
    stop_.data = this;
    thread_ = std::thread([this] { uv_run(&loop_, UV_RUN_DEFAULT); });
  }
  ~Gateway() { stop(); }

  // Graceful stop with the given drain time; returns when the loop ended.
  void stop(Duration drain = std::chrono::seconds(1)) {
    if (!thread_.joinable()) return;
    drain_ = drain;
    uv_async_send(&stop_);
    thread_.join();
    CHECK(uv_loop_close(&loop_) == 0);
  }

  std::uint16_t port() const { return server_->port(); }
  // The loop the server runs on: filters use it for their asynchronous work.
  uv_loop_t* loop() { return &loop_; }
  proxy::ServerStats stats() const { return server_->stats(); }
  proxy::Server& server() { return *server_; }

 private:
  uv_loop_t loop_;
  uv_async_t stop_;
  Duration drain_ = std::chrono::seconds(1);
  std::unique_ptr<proxy::Server> server_;
  std::thread thread_;
};

}  // namespace portico::test
