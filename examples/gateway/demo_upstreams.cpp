#include "demo_upstreams.hpp"

#include <string>

namespace demo {

namespace {

using portico::http::Header;
using portico::http::RequestHead;
using portico::proxy::Handler;
using portico::proxy::Reply;

// Echoes what a service behind a gateway is told: its own name, the path
// it saw and the identity headers the gateway set.
Handler service(std::string name) {
  return [name](const RequestHead& req, std::string_view, Reply& reply) {
    auto header = [&](std::string_view n) { return std::string(req.header(n)); };
    std::string body = "{\"service\":\"" + name + "\",\"path\":\"" + std::string(req.path) +
                       "\",\"user\":\"" + header("x-user-id") + "\",\"request_id\":\"" +
                       header("x-request-id") + "\"}\n";
    const Header type{"content-type", "application/json"};
    reply.send(200, {&type, 1}, body);
  };
}

std::unique_ptr<portico::proxy::Server> start_service(uv_loop_t* loop, const std::string& name) {
  portico::proxy::ServerOptions o;
  o.address = "127.0.0.1";
  portico::proxy::RouteOptions all;
  all.name = name;
  all.path = "/**";
  all.target = service(name);
  o.routes.push_back(all);
  auto server = portico::proxy::Server::create(loop, o);
  if (!server || !(*server)->start()) return nullptr;
  return std::move(*server);
}

}  // namespace

DemoUpstreams::DemoUpstreams() {
  uv_loop_init(&loop_);
  users_ = start_service(&loop_, "users");
  orders_ = start_service(&loop_, "orders");
  uv_async_init(&loop_, &stop_, [](uv_async_t* a) {
    auto* self = static_cast<DemoUpstreams*>(a->data);
    for (auto* s : {self->users_.get(), self->orders_.get()})
      if (s != nullptr) s->stop(std::chrono::seconds(1));
    uv_close(reinterpret_cast<uv_handle_t*>(a), nullptr);
  });
  stop_.data = this;
  thread_ = std::thread([this] { uv_run(&loop_, UV_RUN_DEFAULT); });
}

DemoUpstreams::~DemoUpstreams() {
  uv_async_send(&stop_);
  thread_.join();
  users_.reset();
  orders_.reset();
  uv_loop_close(&loop_);
}

}  // namespace demo
