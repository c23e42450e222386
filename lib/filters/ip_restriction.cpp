#include "portico/filters/ip_restriction.hpp"

#include <fmt/format.h>

#include "../common/cidr.hpp"
#include "error_response.hpp"

namespace portico::filters {

namespace {

using detail::IpAddress;
using detail::IpNetwork;

bool any_contains(const std::vector<IpNetwork>& networks, const IpAddress& a) noexcept {
  for (const IpNetwork& n : networks)
    if (detail::network_contains(n, a)) return true;
  return false;
}

class IpRestriction final : public proxy::Filter {
 public:
  IpRestriction(std::vector<IpNetwork> allow, std::vector<IpNetwork> deny, std::string message)
      : allow_(std::move(allow)), deny_(std::move(deny)), message_(std::move(message)) {}

  std::string_view name() const noexcept override { return "ip-restriction"; }

  proxy::FilterStatus on_request_headers(proxy::RequestContext& ctx) override {
    // The client address may come from X-Forwarded-For with a zone id.
    const auto address = detail::parse_ip_address_ignoring_zone(ctx.client_address());
    if (address && !any_contains(deny_, *address) &&
        (allow_.empty() || any_contains(allow_, *address)))
      return proxy::FilterStatus::next;
    detail::respond_error(ctx, 403, message_);
    return proxy::FilterStatus::respond;
  }

 private:
  std::vector<IpNetwork> allow_;
  std::vector<IpNetwork> deny_;
  std::string message_;
};

Result<std::vector<IpNetwork>> parse_list(std::string_view field,
                                          const std::vector<std::string>& entries) {
  std::vector<IpNetwork> out;
  out.reserve(entries.size());
  for (std::size_t i = 0; i < entries.size(); ++i) {
    auto n = detail::parse_ip_network(entries[i]);
    if (!n)
      return make_error(n.error().kind, fmt::format("{}[{}]: {}", field, i, n.error().message));
    out.push_back(*n);
  }
  return out;
}

}  // namespace

Result<std::shared_ptr<proxy::Filter>> make_ip_restriction(IpRestrictionOptions options) {
  if (options.allow.empty() && options.deny.empty())
    return make_error(ErrorKind::invalid_argument,
                      "allow: at least one network is needed in allow or deny");
  auto allow = parse_list("allow", options.allow);
  if (!allow) return std::move(allow).error();
  auto deny = parse_list("deny", options.deny);
  if (!deny) return std::move(deny).error();
  return std::shared_ptr<proxy::Filter>(std::make_shared<IpRestriction>(
      std::move(*allow), std::move(*deny), std::move(options.message)));
}

}  // namespace portico::filters
