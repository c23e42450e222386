// ip-restriction: allow and deny lists of IPv4/IPv6 networks for the
// client's address.
//
// The address is RequestContext::client_address(): the peer's, or, when the
// peer is one of the server's trusted_proxies, the nearest untrusted address
// of X-Forwarded-For — so behind a load balancer the rule sees the real
// client, and a client elsewhere cannot choose its address by sending the
// header.
//
// A request is refused with 403 (the JSON error body) when its address is in
// a `deny` network, or when `allow` is not empty and no `allow` network holds
// it: deny wins over allow. An address that cannot be parsed is refused too.
// IPv4-mapped IPv6 addresses ("::ffff:10.1.2.3") are matched as the IPv4
// address they carry.
//
// Networks are parsed strictly (see lib/filters/cidr.hpp): "10.0.0.0/8",
// "192.0.2.7" (one address), "2001:db8::/32", "::1"; "10.0.0.1/8" (bits
// after the prefix), "10.0.0.0/33", "010.0.0.1" and "fe80::1%eth0" are
// errors naming the entry.
//
// Threading: immutable; may be shared by every worker. Matching is a scan of
// the lists and does not allocate.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "portico/export.hpp"
#include "portico/filter.hpp"
#include "portico/result.hpp"

namespace portico::filters {

struct IpRestrictionOptions {
  std::vector<std::string> allow;  // empty: every address not denied
  std::vector<std::string> deny;
  // The "error" of the 403 body.
  std::string message = "your IP address is not allowed";
};

// Fails (malformed or invalid_argument) naming the entry: "deny[1]:
// \"10.0.0.1/8\": bits are set after the /8 prefix (the network is
// 10.0.0.0/8)"; both lists empty.
PORTICO_API Result<std::shared_ptr<proxy::Filter>> make_ip_restriction(
    IpRestrictionOptions options);

}  // namespace portico::filters
