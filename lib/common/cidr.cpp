#include "cidr.hpp"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>

#include <cstring>

namespace portico::detail {

namespace {

constexpr unsigned char kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

bool is_v4_mapped(const IpAddress& a) noexcept {
  return !a.v4 && std::memcmp(a.bytes.data(), kMappedPrefix, sizeof kMappedPrefix) == 0;
}

IpAddress unmap(const IpAddress& a) noexcept {
  IpAddress out;
  out.v4 = true;
  std::memcpy(out.bytes.data(), a.bytes.data() + 12, 4);
  return out;
}

// Whether any bit of `a` at or after bit `prefix` is set.
bool has_host_bits(const IpAddress& a, unsigned prefix) noexcept {
  const unsigned width = a.v4 ? 32 : 128;
  for (unsigned bit = prefix; bit < width; ++bit)
    if ((a.bytes[bit / 8] >> (7 - bit % 8)) & 1) return true;
  return false;
}

IpAddress masked(IpAddress a, unsigned prefix) noexcept {
  const unsigned width = a.v4 ? 32 : 128;
  for (unsigned bit = prefix; bit < width; ++bit)
    a.bytes[bit / 8] &= static_cast<unsigned char>(~(1u << (7 - bit % 8)));
  return a;
}

std::string address_text(const IpAddress& a) {
  char buf[INET6_ADDRSTRLEN];
  inet_ntop(a.v4 ? AF_INET : AF_INET6, a.bytes.data(), buf, sizeof buf);
  return buf;
}

constexpr std::size_t kMaxZoneBytes = 64;

// An interface name or number: what Linux and the BSDs name zones with.
bool is_zone_id(std::string_view zone) noexcept {
  if (zone.empty() || zone.size() > kMaxZoneBytes) return false;
  for (char c : zone) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

std::optional<IpAddress> parse_ip_address(std::string_view text) noexcept {
  char buf[INET6_ADDRSTRLEN + 1];
  if (text.empty() || text.size() >= sizeof buf) return std::nullopt;
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  IpAddress a;
  if (inet_pton(AF_INET, buf, a.bytes.data()) == 1) {
    a.v4 = true;
    return a;
  }
  if (inet_pton(AF_INET6, buf, a.bytes.data()) == 1) return is_v4_mapped(a) ? unmap(a) : a;
  return std::nullopt;
}

std::optional<IpAddress> parse_ip_address_ignoring_zone(std::string_view text) noexcept {
  const std::size_t percent = text.find('%');
  if (percent == std::string_view::npos) return parse_ip_address(text);
  const std::string_view address = text.substr(0, percent);
  // Only IPv6 text has zones: "10.0.0.1%eth0" is not an address.
  if (address.find(':') == std::string_view::npos || !is_zone_id(text.substr(percent + 1)))
    return std::nullopt;
  return parse_ip_address(address);
}

Result<IpNetwork> parse_ip_network(std::string_view text) {
  auto fail = [&](std::string_view why) {
    return make_error(ErrorKind::malformed, fmt::format("\"{}\": {}", text, why));
  };
  if (text.empty()) return fail("an empty network");
  if (const std::size_t percent = text.find('%'); percent != std::string_view::npos) {
    const std::string_view zone = text.substr(percent, text.find('/', percent) - percent);
    return fail(fmt::format(
        "a zone id (\"{}\") cannot be part of a network: write the address without it (an "
        "X-Forwarded-For address with a zone matches the network of its address)",
        zone));
  }
  const std::size_t slash = text.find('/');
  const std::string_view addr_text = text.substr(0, slash);
  IpAddress a;
  char buf[INET6_ADDRSTRLEN + 1];
  if (addr_text.empty() || addr_text.size() >= sizeof buf)
    return fail("not an IPv4 or IPv6 address");
  std::memcpy(buf, addr_text.data(), addr_text.size());
  buf[addr_text.size()] = '\0';
  if (inet_pton(AF_INET, buf, a.bytes.data()) == 1) {
    a.v4 = true;
  } else if (inet_pton(AF_INET6, buf, a.bytes.data()) != 1) {
    return fail("not an IPv4 or IPv6 address");
  }
  const unsigned width = a.v4 ? 32 : 128;
  unsigned prefix = width;
  if (slash != std::string_view::npos) {
    const std::string_view digits = text.substr(slash + 1);
    if (digits.empty() || digits.size() > 3 || (digits.size() > 1 && digits.front() == '0'))
      return fail(fmt::format("the prefix length must be a number from 0 to {}", width));
    prefix = 0;
    for (char c : digits) {
      if (c < '0' || c > '9')
        return fail(fmt::format("the prefix length must be a number from 0 to {}", width));
      prefix = prefix * 10 + static_cast<unsigned>(c - '0');
    }
    if (prefix > width)
      return fail(fmt::format("the prefix length must be a number from 0 to {}", width));
  }
  if (has_host_bits(a, prefix))
    return fail(fmt::format("bits are set after the /{} prefix (the network is {}/{})", prefix,
                            address_text(masked(a, prefix)), prefix));
  if (is_v4_mapped(a) && prefix >= 96) return IpNetwork{unmap(a), prefix - 96};
  return IpNetwork{a, prefix};
}

std::optional<IpAddress> ip_address_of(const sockaddr_storage& address) noexcept {
  IpAddress a;
  if (address.ss_family == AF_INET) {
    a.v4 = true;
    std::memcpy(a.bytes.data(), &reinterpret_cast<const sockaddr_in*>(&address)->sin_addr, 4);
    return a;
  }
  if (address.ss_family != AF_INET6) return std::nullopt;
  std::memcpy(a.bytes.data(), &reinterpret_cast<const sockaddr_in6*>(&address)->sin6_addr, 16);
  return is_v4_mapped(a) ? unmap(a) : a;
}

bool network_contains(const IpNetwork& network, const IpAddress& address) noexcept {
  if (network.base.v4 != address.v4) return false;
  const unsigned full = network.prefix / 8, rest = network.prefix % 8;
  if (std::memcmp(network.base.bytes.data(), address.bytes.data(), full) != 0) return false;
  if (rest == 0) return true;
  const auto mask = static_cast<unsigned char>(0xff << (8 - rest));
  return (network.base.bytes[full] & mask) == (address.bytes[full] & mask);
}

}  // namespace portico::detail
