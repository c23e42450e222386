// The demo's signing key and a token for it: a fresh random HS256 secret
// each run (so no key ships with the program), and a token for the demo
// consumer signed with it.
#pragma once

#include <string>

namespace demo {

struct DemoCredentials {
  std::string secret_base64url;  // the HS256 key, as a JWK "k"
  std::string token;             // valid for `lifetime_seconds`
};

DemoCredentials make_demo_credentials(const std::string& subject, long lifetime_seconds);

}  // namespace demo
