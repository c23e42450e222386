// Shorthands for building server options in the integration tests.
#pragma once

#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "portico/proxy.hpp"

namespace portico::test {

inline std::string ok_response(std::string_view body, std::string_view extra = "") {
  return "HTTP/1.1 200 OK\r\ncontent-length: " + std::to_string(body.size()) + "\r\n" +
         std::string(extra) + "\r\n" + std::string(body);
}

// A route to an in-process handler or (given a string) to a cluster.
inline proxy::RouteOptions route_to(std::string path,
                                    std::variant<proxy::Handler, std::string> target) {
  proxy::RouteOptions r;
  r.name = path;
  r.path = std::move(path);
  r.target = std::move(target);
  return r;
}

inline proxy::RouteOptions handler_route(std::string path, proxy::Handler h) {
  return route_to(std::move(path), std::move(h));
}

inline proxy::RouteOptions cluster_route(std::string path, std::string cluster) {
  return route_to(std::move(path), std::move(cluster));
}

inline proxy::ClusterOptions cluster_of(std::string name, std::vector<std::uint16_t> ports) {
  proxy::ClusterOptions c;
  c.name = std::move(name);
  for (auto p : ports)
    c.endpoints.push_back({"127.0.0.1", p});
  return c;
}

inline proxy::Handler echo_handler() {
  return [](const http::RequestHead& req, std::string_view body, proxy::Reply& reply) {
    const http::Header h[] = {{"content-type", "text/plain"}, {"x-method", req.method}};
    reply.send(200, h, body.empty() ? std::string_view("hello") : body);
  };
}

inline int status_of(const std::string& response) {
  return response.size() >= 12 ? std::stoi(response.substr(9, 3)) : 0;
}

inline std::size_t count(const std::string& s, std::string_view what) {
  std::size_t n = 0;
  for (std::size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1))
    ++n;
  return n;
}

}  // namespace portico::test
