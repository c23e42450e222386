#include "header_ops.hpp"

#include "../../common/ascii.hpp"
#include "../../http/fields.hpp"
#include "portico/filters/request_state.hpp"

namespace portico::detail {

namespace {

// Fields the proxy writes itself: a filter's edits of them are ignored, so
// a rule naming one is a configuration mistake worth reporting.
bool managed_by_proxy(std::string_view name) {
  static constexpr std::string_view kManaged[] = {
      "host",    "connection", "keep-alive",     "te", "trailer", "transfer-encoding",
      "upgrade", "proxy",      "content-length",
  };
  for (std::string_view m : kManaged)
    if (ascii_iequals(name, m)) return true;
  return name.size() > 6 && ascii_iequals(name.substr(0, 6), "proxy-");
}

Status check_name(std::string_view name, const std::string& at) {
  if (!is_token(name))
    return make_error(ErrorKind::invalid_argument,
                      at + ": \"" + std::string(name) + "\" is not a header field name");
  if (managed_by_proxy(name))
    return make_error(ErrorKind::invalid_argument,
                      at + ": \"" + std::string(name) + "\" is managed by the proxy");
  return {};
}

Status compile_sets(const std::vector<filters::NameValue>& in, std::vector<HeaderOps::Set>& out,
                    const std::string& field) {
  for (std::size_t i = 0; i < in.size(); ++i) {
    const std::string at = field + "[" + std::to_string(i) + "]";
    if (Status s = check_name(in[i].name, at); !s) return s;
    auto value = ValueTemplate::parse(in[i].value);
    if (!value) return make_error(ErrorKind::invalid_argument, at + ": " + value.error().message);
    out.push_back(HeaderOps::Set{in[i].name, std::move(*value)});
  }
  return {};
}

// Reading and editing one side through the same calls.
struct Side {
  proxy::RequestContext& ctx;
  HeaderSide side;

  std::optional<std::string_view> get(std::string_view name) const {
    return side == HeaderSide::request ? ctx.request_header(name) : ctx.response_header(name);
  }
  void set(std::string_view name, std::string_view value) const {
    side == HeaderSide::request ? ctx.set_request_header(name, value)
                                : ctx.set_response_header(name, value);
  }
  void add(std::string_view name, std::string_view value) const {
    side == HeaderSide::request ? ctx.add_request_header(name, value)
                                : ctx.add_response_header(name, value);
  }
  void remove(std::string_view name) const {
    side == HeaderSide::request ? ctx.remove_request_header(name)
                                : ctx.remove_response_header(name);
  }
};

}  // namespace

Result<HeaderOps> compile_header_ops(const filters::HeaderTransforms& rules,
                                     std::string_view field) {
  HeaderOps ops;
  const std::string base(field);
  for (std::size_t i = 0; i < rules.remove.size(); ++i) {
    if (Status s = check_name(rules.remove[i], base + ".remove[" + std::to_string(i) + "]"); !s)
      return std::move(s).error();
    ops.remove.push_back(rules.remove[i]);
  }
  for (std::size_t i = 0; i < rules.rename.size(); ++i) {
    const std::string at = base + ".rename[" + std::to_string(i) + "]";
    if (Status s = check_name(rules.rename[i].from, at); !s) return std::move(s).error();
    if (Status s = check_name(rules.rename[i].to, at); !s) return std::move(s).error();
    ops.rename.push_back(rules.rename[i]);
  }
  if (Status s = compile_sets(rules.replace, ops.replace, base + ".replace"); !s)
    return std::move(s).error();
  if (Status s = compile_sets(rules.add, ops.add, base + ".add"); !s) return std::move(s).error();
  if (Status s = compile_sets(rules.append, ops.append, base + ".append"); !s)
    return std::move(s).error();
  return ops;
}

void apply_header_ops(const HeaderOps& ops, proxy::RequestContext& ctx, HeaderSide which) {
  const Side side{ctx, which};
  for (const auto& name : ops.remove)
    side.remove(name);
  for (const auto& r : ops.rename) {
    const auto value = side.get(r.from);
    if (!value) continue;
    // A copy first: the view may point into the edit list the next calls
    // change.
    const std::string_view kept = filters::keep(ctx, *value);
    side.remove(r.from);
    side.set(r.to, kept);
  }
  for (const auto& s : ops.replace) {
    if (!side.get(s.name)) continue;
    if (const auto v = s.value.render(ctx)) side.set(s.name, *v);
  }
  for (const auto& s : ops.add) {
    if (side.get(s.name)) continue;
    if (const auto v = s.value.render(ctx)) side.set(s.name, *v);
  }
  for (const auto& s : ops.append) {
    if (const auto v = s.value.render(ctx)) side.add(s.name, *v);
  }
}

}  // namespace portico::detail
