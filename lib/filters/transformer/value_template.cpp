#include "value_template.hpp"

#include <array>
#include <cstring>

#include "portico/filters/request_state.hpp"
#include "portico/jwt.hpp"

namespace portico::detail {

namespace {

// The claim at `path` as header text: a string as is, an array of strings
// joined with "," (in the arena), any other value as its JSON text.
std::optional<std::string_view> claim_text(const jwt::Claims& claims, std::string_view path,
                                           proxy::RequestContext& ctx) {
  switch (claims.type(path)) {
    case jwt::ClaimType::absent:
    case jwt::ClaimType::null:
      return std::nullopt;
    case jwt::ClaimType::string:
      return claims.string(path);
    case jwt::ClaimType::array: {
      const auto items = claims.strings(path);
      if (!items) break;
      std::size_t size = 0;
      for (auto item : *items)
        size += item.size() + 1;
      if (size == 0) return std::string_view();
      auto* out = static_cast<char*>(ctx.allocate(size, 1));
      std::size_t n = 0;
      for (auto item : *items) {
        if (n > 0) out[n++] = ',';
        if (!item.empty()) std::memcpy(out + n, item.data(), item.size());
        n += item.size();
      }
      return std::string_view(out, n);
    }
    default:
      break;
  }
  return claims.json(path);
}

std::optional<std::string_view> non_empty(std::string_view v) {
  if (v.empty()) return std::nullopt;
  return v;
}

}  // namespace

std::optional<ValueTemplate::Part> ValueTemplate::reference(std::string_view name) {
  static constexpr std::array<std::pair<std::string_view, Kind>, 8> kFixed{{
      {"consumer.id", Kind::consumer_id},
      {"consumer.plan", Kind::consumer_plan},
      {"credential", Kind::credential},
      {"route.name", Kind::route_name},
      {"request_id", Kind::request_id},
      {"trace_id", Kind::trace_id},
      {"span_id", Kind::span_id},
      {"client_ip", Kind::client_ip},
  }};
  for (const auto& [text, kind] : kFixed)
    if (name == text) return Part{kind, {}};
  static constexpr std::array<std::pair<std::string_view, Kind>, 3> kPrefixed{{
      {"claims.", Kind::claim},
      {"route.param.", Kind::route_param},
      {"headers.", Kind::header},
  }};
  for (const auto& [prefix, kind] : kPrefixed) {
    if (name.size() > prefix.size() && name.starts_with(prefix))
      return Part{kind, std::string(name.substr(prefix.size()))};
  }
  return std::nullopt;
}

Result<ValueTemplate> ValueTemplate::parse(std::string_view text) {
  ValueTemplate t;
  std::string literal;
  auto flush = [&] {
    if (!literal.empty()) t.parts_.push_back(Part{Kind::literal, std::move(literal)});
    literal.clear();
  };
  for (std::size_t i = 0; i < text.size();) {
    if (text[i] != '$' || i + 1 >= text.size() || text[i + 1] != '(') {
      const auto c = static_cast<unsigned char>(text[i]);
      if ((c < 0x20 && c != '\t') || c == 0x7f)
        return make_error(ErrorKind::malformed, "a control character in a header value");
      literal += text[i++];
      continue;
    }
    const std::size_t close = text.find(')', i + 2);
    if (close == std::string_view::npos)
      return make_error(ErrorKind::malformed,
                        "\"$(\" without \")\" in \"" + std::string(text) + "\"");
    const std::string_view name = text.substr(i + 2, close - i - 2);
    auto part = reference(name);
    if (!part)
      return make_error(ErrorKind::malformed,
                        "unknown reference \"$(" + std::string(name) +
                            ")\" (expected claims.<path>, consumer.id, consumer.plan, "
                            "credential, route.name, route.param.<name>, request_id, trace_id, "
                            "span_id, client_ip or headers.<name>)");
    flush();
    t.parts_.push_back(std::move(*part));
    i = close + 1;
  }
  flush();
  if (t.parts_.size() > kMaxParts)
    return make_error(ErrorKind::malformed, "more than 16 parts in \"" + std::string(text) + "\"");
  return t;
}

std::optional<std::string_view> ValueTemplate::resolve(const Part& part,
                                                       proxy::RequestContext& ctx) const {
  const filters::RequestState* state = filters::find_request_state(ctx);
  switch (part.kind) {
    case Kind::literal:
      return std::string_view(part.text);
    case Kind::claim:
      if (state == nullptr || state->claims == nullptr) return std::nullopt;
      return claim_text(*state->claims, part.text, ctx);
    case Kind::consumer_id:
      return state ? non_empty(state->consumer) : std::nullopt;
    case Kind::consumer_plan:
      return state ? non_empty(state->plan) : std::nullopt;
    case Kind::credential:
      return state ? non_empty(state->credential) : std::nullopt;
    case Kind::request_id:
      return state ? non_empty(state->request_id) : std::nullopt;
    case Kind::trace_id:
      return state ? non_empty(state->trace_id) : std::nullopt;
    case Kind::span_id:
      return state ? non_empty(state->span_id) : std::nullopt;
    case Kind::route_name:
      return non_empty(ctx.route_name());
    case Kind::route_param:
      return ctx.param(part.text);
    case Kind::client_ip:
      return non_empty(ctx.client_address());
    case Kind::header:
      return non_empty(ctx.request().header(part.text));
  }
  return std::nullopt;
}

std::optional<std::string_view> ValueTemplate::render(proxy::RequestContext& ctx) const {
  if (parts_.size() == 1 && parts_[0].kind == Kind::literal)
    return std::string_view(parts_[0].text);
  std::array<std::string_view, kMaxParts> values;
  std::size_t size = 0;
  for (std::size_t i = 0; i < parts_.size(); ++i) {
    const auto v = resolve(parts_[i], ctx);
    if (!v) return std::nullopt;
    values[i] = *v;
    size += v->size();
    if (size > kMaxValue) return std::nullopt;
  }
  auto* out = static_cast<char*>(ctx.allocate(size == 0 ? 1 : size, 1));
  std::size_t n = 0;
  for (std::size_t i = 0; i < parts_.size(); ++i) {
    if (!values[i].empty()) std::memcpy(out + n, values[i].data(), values[i].size());
    n += values[i].size();
  }
  for (std::size_t i = 0; i < n; ++i) {
    const auto c = static_cast<unsigned char>(out[i]);
    if ((c < 0x20 && c != '\t') || c == 0x7f) return std::nullopt;
  }
  return std::string_view(out, n);
}

}  // namespace portico::detail
