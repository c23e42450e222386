// Header value templates of the transformers: "Bearer $(claims.sub)".
// Parsed once from the config; rendered per request into its arena.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "portico/filter.hpp"
#include "portico/result.hpp"

namespace portico::detail {

class ValueTemplate {
 public:
  // The most parts (literal runs and references) and the longest rendered
  // value.
  static constexpr std::size_t kMaxParts = 16;
  static constexpr std::size_t kMaxValue = 8192;

  // Fails (malformed) on "$(" without ")", an unknown reference, or more
  // than kMaxParts parts; the message names the reference.
  static Result<ValueTemplate> parse(std::string_view text);

  // The value for this request, in its arena; nullopt when a reference has
  // no value, or the result is longer than kMaxValue or holds a control
  // character (which no header may carry).
  std::optional<std::string_view> render(proxy::RequestContext& ctx) const;

 private:
  enum class Kind : std::uint8_t {
    literal,
    claim,
    consumer_id,
    consumer_plan,
    credential,
    route_name,
    route_param,
    request_id,
    trace_id,
    span_id,
    client_ip,
    header,
  };
  struct Part {
    Kind kind;
    std::string text;  // the literal, or the claim path / parameter / header name
  };
  static std::optional<Part> reference(std::string_view name);
  std::optional<std::string_view> resolve(const Part& part, proxy::RequestContext& ctx) const;

  std::vector<Part> parts_;
};

}  // namespace portico::detail
