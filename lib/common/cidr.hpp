// IPv4 and IPv6 networks in CIDR notation, parsed strictly, and matching of
// addresses against them: one parser for every list of networks (the
// ip-restriction policy, the proxy's trusted proxies, the configuration
// that names them), so all accept and refuse the same texts.
//
// Strict: an address inet_pton accepts (dotted-quad IPv4 without leading
// zeros, or IPv6 text; no zone id, no spaces), an optional "/" and a prefix
// length in decimal without leading zeros, within the family's width, and
// no bit set after the prefix ("10.0.0.1/8" is refused rather than silently
// read as 10.0.0.0/8, since it is usually a typo for /32 or another prefix).
// IPv4-mapped IPv6 ("::ffff:10.0.0.0/104", a client "::ffff:10.1.2.3") are
// treated as the IPv4 ones they carry, so one rule covers both socket kinds.
//
// Zone ids: a link-local IPv6 address may name the interface it was seen on
// ("fe80::1%eth0"), and proxies write it so in X-Forwarded-For. A network
// cannot carry one (a zone is where an address lives, not a range of
// addresses), so networks refuse it with an error that says so, and
// addresses read from forwarding headers are matched without it.
#pragma once

#include <sys/socket.h>

#include <array>
#include <optional>
#include <string_view>

#include "portico/result.hpp"

namespace portico::detail {

struct IpAddress {
  std::array<unsigned char, 16> bytes{};  // IPv4: the first 4
  bool v4 = false;
};

struct IpNetwork {
  IpAddress base;
  unsigned prefix = 0;  // 0..32 or 0..128
};

// The error message quotes `text` and says what is wrong with it.
Result<IpNetwork> parse_ip_network(std::string_view text);
std::optional<IpAddress> parse_ip_address(std::string_view text) noexcept;
// As parse_ip_address, and also an IPv6 address with a zone id
// ("fe80::1%eth0", the zone 1 to 64 of [A-Za-z0-9._-]), which is left out:
// for a hop of X-Forwarded-For, matched against networks that cannot name
// a zone. An IPv4 address has no zone.
std::optional<IpAddress> parse_ip_address_ignoring_zone(std::string_view text) noexcept;
// The address of an AF_INET or AF_INET6 socket address (a peer), or
// nullopt for another family.
std::optional<IpAddress> ip_address_of(const sockaddr_storage& address) noexcept;
bool network_contains(const IpNetwork& network, const IpAddress& address) noexcept;

}  // namespace portico::detail
