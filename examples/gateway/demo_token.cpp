#include "demo_token.hpp"

#include <mbedtls/md.h>

#include <array>
#include <ctime>
#include <random>

namespace demo {

namespace {

std::string base64url(const unsigned char* data, std::size_t size) {
  static const char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < size; i += 3) {
    const unsigned v = (data[i] << 16) | (data[i + 1] << 8) | data[i + 2];
    for (int shift : {18, 12, 6, 0})
      out += kAlphabet[(v >> shift) & 63];
  }
  if (i + 1 == size) {
    const unsigned v = data[i] << 16;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
  } else if (i + 2 == size) {
    const unsigned v = (data[i] << 16) | (data[i + 1] << 8);
    for (int shift : {18, 12, 6})
      out += kAlphabet[(v >> shift) & 63];
  }
  return out;
}

std::string base64url(const std::string& s) {
  return base64url(reinterpret_cast<const unsigned char*>(s.data()), s.size());
}

}  // namespace

DemoCredentials make_demo_credentials(const std::string& subject, long lifetime_seconds) {
  std::array<unsigned char, 32> key{};
  std::random_device random;  // the kernel's generator on Linux
  for (auto& b : key)
    b = static_cast<unsigned char>(random());
  DemoCredentials c;
  c.secret_base64url = base64url(key.data(), key.size());

  const long now = static_cast<long>(std::time(nullptr));
  const std::string header = base64url(R"({"alg":"HS256","typ":"JWT"})");
  const std::string payload =
      base64url("{\"iss\":\"portico-demo\",\"aud\":\"demo-api\",\"sub\":\"" + subject +
                "\",\"roles\":[\"reader\"],\"iat\":" + std::to_string(now) +
                ",\"exp\":" + std::to_string(now + lifetime_seconds) + "}");
  const std::string signing_input = header + "." + payload;
  std::array<unsigned char, 32> mac{};
  mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), key.data(), key.size(),
                  reinterpret_cast<const unsigned char*>(signing_input.data()),
                  signing_input.size(), mac.data());
  c.token = signing_input + "." + base64url(mac.data(), mac.size());
  return c;
}

}  // namespace demo
