// The embedded demo: built-in upstream services, a fresh JWT key, the
// configuration that ties them together, and the guide printed at start.
#pragma once

#include <cstdint>
#include <string>

#include "demo_token.hpp"
#include "demo_upstreams.hpp"

namespace demo {

class Demo {
 public:
  Demo();
  bool ok() const { return upstreams_.ok(); }
  // The gateway configuration (docs/config.md) of the demo.
  std::string config() const;
  // What to try: the token and curl commands against the bound ports.
  void print_guide(std::uint16_t port, std::uint16_t admin_port) const;

 private:
  DemoUpstreams upstreams_;
  DemoCredentials credentials_;
};

}  // namespace demo
