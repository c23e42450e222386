#include "base64url.hpp"

#include <array>
#include <cstdint>

namespace portico::detail {
namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr std::uint8_t kInvalid = 0xff;

constexpr std::array<std::uint8_t, 256> make_table() {
  std::array<std::uint8_t, 256> t{};
  for (auto& v : t)
    v = kInvalid;
  for (std::uint8_t i = 0; i < 64; ++i)
    t[static_cast<unsigned char>(kAlphabet[i])] = i;
  return t;
}

constexpr auto kTable = make_table();

}  // namespace

bool base64url_decode(std::string_view in, std::string& out) {
  // A final group of one character would carry only 6 bits: not a byte.
  if (in.size() % 4 == 1) return false;
  out.resize(in.size() / 4 * 3 + (in.size() % 4 == 0 ? 0 : in.size() % 4 - 1));
  char* o = out.data();
  std::size_t i = 0;
  const auto* s = reinterpret_cast<const unsigned char*>(in.data());
  for (; i + 4 <= in.size(); i += 4) {
    std::uint32_t a = kTable[s[i]], b = kTable[s[i + 1]], c = kTable[s[i + 2]],
                  d = kTable[s[i + 3]];
    if ((a | b | c | d) & 0x80) return false;
    std::uint32_t v = a << 18 | b << 12 | c << 6 | d;
    *o++ = static_cast<char>(v >> 16);
    *o++ = static_cast<char>(v >> 8);
    *o++ = static_cast<char>(v);
  }
  const std::size_t rest = in.size() - i;
  if (rest == 0) return true;
  std::uint32_t a = kTable[s[i]], b = kTable[s[i + 1]];
  std::uint32_t c = rest == 3 ? kTable[s[i + 2]] : 0;
  if ((a | b | c) & 0x80) return false;
  if (rest == 2) {
    if (b & 0x0f) return false;  // non-zero padding bits: not canonical
    *o++ = static_cast<char>(a << 2 | b >> 4);
  } else {
    if (c & 0x03) return false;
    *o++ = static_cast<char>(a << 2 | b >> 4);
    *o++ = static_cast<char>((b & 0x0f) << 4 | c >> 2);
  }
  return true;
}

void base64url_encode(std::string_view in, std::string& out) {
  const auto* s = reinterpret_cast<const unsigned char*>(in.data());
  std::size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    std::uint32_t v = std::uint32_t{s[i]} << 16 | std::uint32_t{s[i + 1]} << 8 | s[i + 2];
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (in.size() - i == 1) {
    out += kAlphabet[s[i] >> 2];
    out += kAlphabet[(s[i] & 3) << 4];
  } else if (in.size() - i == 2) {
    out += kAlphabet[s[i] >> 2];
    out += kAlphabet[(s[i] & 3) << 4 | s[i + 1] >> 4];
    out += kAlphabet[(s[i + 1] & 15) << 2];
  }
}

}  // namespace portico::detail
