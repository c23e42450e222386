// "routes": matching (paths, hosts, methods, header and query conditions),
// targets (one service or weighted ones), path changes (strip_path,
// rewrite) and plugins. Patterns are checked by the router's own parser and
// every route is added to a Router, so the router's messages and its
// notion of a conflict are what the operator sees; that router is the one
// the proxy then runs (GatewayConfig::router).
#include <fmt/format.h>

#include <algorithm>
#include <utility>

#include "../router/pattern.hpp"
#include "gateway_config_parts.hpp"

namespace portico::detail {
namespace {

// A predicate and where it was written, for the router's complaints.
struct PlacedPredicate {
  Predicate predicate;
  std::string path;
};

// A path pattern that parsed, with what rewrite and strip_path need.
struct ParsedPath {
  std::size_t index;  // in the "paths" array
  std::vector<PatternToken> tokens;
};

std::string strip_prefix_of(const std::vector<PatternToken>& tokens) {
  if (tokens.empty() || tokens.front().kind != PatternToken::Kind::text) return {};
  std::string prefix = tokens.front().text;
  if (tokens.size() > 1 && prefix.ends_with('/')) prefix.pop_back();
  return prefix == "/" ? std::string() : prefix;
}

std::vector<ParsedPath> read_paths(JsonObject& r, RouteConfig& out) {
  std::vector<ParsedPath> parsed;
  const std::vector<std::string> patterns = r.strings("paths", true);
  if (patterns.empty() && r.has("paths") && r.get("paths")->is<picojson::array>())
    r.problem("paths", "needs at least one path pattern");
  for (std::size_t i = 0; i < patterns.size(); ++i) {
    auto tokens = parse_path_pattern(patterns[i]);
    if (!tokens) {
      r.problems().add(json_path_index(r.field_path("paths"), i), tokens.error().message);
      continue;
    }
    out.paths.push_back({patterns[i], strip_prefix_of(*tokens)});
    parsed.push_back({i, std::move(*tokens)});
  }
  return parsed;
}

// Host patterns that parse; the others are reported and left out.
std::vector<std::string> read_hosts(JsonObject& r) {
  std::vector<std::string> hosts;
  const std::vector<std::string> written = r.strings("hosts");
  for (std::size_t i = 0; i < written.size(); ++i) {
    if (auto host = parse_host_pattern(written[i]); host) {
      hosts.push_back(written[i]);
    } else {
      r.problems().add(json_path_index(r.field_path("hosts"), i), host.error().message);
    }
  }
  return hosts;
}

MethodSet read_methods(JsonObject& r) {
  if (!r.has("methods")) return MethodSet::any();
  MethodSet methods;
  const std::vector<std::string> names = r.strings("methods");
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (auto m = parse_method(names[i])) {
      methods.add(*m);
    } else {
      r.problems().add(json_path_index(r.field_path("methods"), i),
                       fmt::format("'{}' is not one of GET, HEAD, POST, PUT, DELETE, CONNECT, "
                                   "OPTIONS, TRACE, PATCH (methods are upper case)",
                                   names[i]));
    }
  }
  if (names.empty() && r.get("methods")->is<picojson::array>())
    r.problem("methods", "needs at least one method (leave it out to accept any)");
  return methods;
}

// {"name": ..., "equals" | "prefix" | "regex" | "present": ...}
std::optional<Predicate> read_matcher(JsonObject& m, bool query) {
  const std::string name = m.string("name", {}, true);
  std::optional<Predicate> out;
  int kinds = 0;
  if (auto v = m.optional_string("equals")) {
    ++kinds;
    out = query ? Predicate::query_equals(name, *v) : Predicate::header_equals(name, *v);
  }
  if (m.has("present")) {
    ++kinds;
    if (!m.boolean("present", true))
      m.problem("present", "must be true (a condition cannot ask for an absent field)");
    out = query ? Predicate::query_present(name) : Predicate::header_present(name);
  }
  for (std::string_view key : {"prefix", "regex"}) {
    if (!m.has(key)) continue;
    ++kinds;
    auto v = m.optional_string(key);
    if (query) {
      m.problem(key, "query conditions take \"equals\" or \"present\"");
    } else if (v) {
      out =
          key == "prefix" ? Predicate::header_prefix(name, *v) : Predicate::header_regex(name, *v);
    }
  }
  if (kinds != 1)
    m.problem("needs exactly one of \"equals\", \"prefix\", \"regex\" or \"present\"");
  m.finish();
  if (kinds != 1 || name.empty()) return std::nullopt;
  return out;
}

// "headers" or "query": {"Name": "value"} (each an exact match), or an
// array of conditions.
void read_conditions(JsonObject& r, std::string_view key, std::vector<PlacedPredicate>& out) {
  const bool query = key == "query";
  const picojson::value* v = r.get(key);
  if (v == nullptr) return;
  if (v->is<picojson::object>()) {
    for (const auto& [name, value] : v->get<picojson::object>()) {
      const std::string path = json_member_path(r.field_path(key), name);
      if (!value.is<std::string>()) {
        add_member_problem(r.problems(), r.field_path(key), name,
                           fmt::format("expected a string, found {}", json_type_name(value)));
        continue;
      }
      const std::string& text = value.get<std::string>();
      out.push_back(
          {query ? Predicate::query_equals(name, text) : Predicate::header_equals(name, text),
           path});
    }
    return;
  }
  for (JsonObject& m : r.objects(key)) {
    if (auto p = read_matcher(m, query)) out.push_back({std::move(*p), m.path()});
  }
}

WeightedTarget read_weighted_target(JsonObject& t, const std::vector<WeightedTarget>& earlier,
                                    const RouteContext& context) {
  WeightedTarget target;
  target.name = read_name(t, "name");
  target.weight = static_cast<std::uint32_t>(t.integer("weight", 1, 0, kMaxEndpointWeight));
  const bool named = !target.name.empty();
  if (named && !context.services.contains(target.name))
    t.problem("name", fmt::format("no service named '{}'", target.name));
  const auto same = [&](const WeightedTarget& e) { return e.name == target.name; };
  if (named && std::any_of(earlier.begin(), earlier.end(), same))
    t.problem("name", fmt::format("service '{}' is listed twice", target.name));
  t.finish();
  return target;
}

void read_weighted_targets(JsonObject& r, RouteConfig& out, const RouteContext& context) {
  std::uint64_t sum = 0;
  for (JsonObject& t : r.objects("services", true)) {
    out.services.push_back(read_weighted_target(t, out.services, context));
    sum += out.services.back().weight;
  }
  if (r.get("services")->is<picojson::array>() && out.services.empty())
    r.problem("services", "needs at least one service");
  else if (!out.services.empty() && sum == 0)
    r.problem("services", "every weight is 0: at least one service must take traffic");
}

void read_targets(JsonObject& r, RouteConfig& out, const RouteContext& context) {
  const bool single = r.has("service");
  const bool weighted = r.has("services");
  if (!single && !weighted) {
    r.problem("needs \"service\" (a name) or \"services\" (weighted)");
  } else if (single && weighted) {
    r.problem("has both \"service\" and \"services\"; give one");
    (void)r.get("services");  // reported here, not as an unknown field
  }
  if (!single) {
    if (weighted) read_weighted_targets(r, out, context);
    return;
  }
  const std::string name = r.string("service");
  if (r.get("service")->is<std::string>() && !context.services.contains(name))
    r.problem("service", fmt::format("no service named '{}'", name));
  out.services.push_back({name, 1});
}

// "/v2/users/{id}" -> "/v2/users/", {id}. `{*rest}` may be written for a
// catch-all's `rest`, and `{*}` names the unnamed `/**`.
std::vector<RewritePart> parse_rewrite(std::string_view text, std::string& why) {
  std::vector<RewritePart> parts;
  if (!text.starts_with('/')) {
    why = "must start with '/'";
    return {};
  }
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t open = text.find('{', pos);
    if (open != pos) parts.push_back({false, std::string(text.substr(pos, open - pos))});
    if (open == std::string_view::npos) break;
    const std::size_t close = text.find('}', open);
    if (close == std::string_view::npos) {
      why = "unclosed '{'";
      return {};
    }
    std::string_view name = text.substr(open + 1, close - open - 1);
    if (name.size() > 1 && name.front() == '*') name.remove_prefix(1);
    if (name.empty() || name.find_first_of("{/") != std::string_view::npos) {
      why = fmt::format("'{}' does not name a capture", text.substr(open, close + 1 - open));
      return {};
    }
    parts.push_back({true, std::string(name)});
    pos = close + 1;
  }
  return parts;
}

bool captures(const std::vector<PatternToken>& tokens, std::string_view name) {
  return std::any_of(tokens.begin(), tokens.end(), [&](const PatternToken& t) {
    return t.kind != PatternToken::Kind::text && t.text == name;
  });
}

void read_rewrite(JsonObject& r, RouteConfig& out, const std::vector<ParsedPath>& paths) {
  out.strip_path = r.boolean("strip_path", false);
  out.rewrite = r.string("rewrite");
  if (!r.has("rewrite") || !r.get("rewrite")->is<std::string>()) return;
  if (out.strip_path)
    r.problem("strip_path", "cannot be combined with rewrite, which sets the whole path");
  std::string why;
  out.rewrite_parts = parse_rewrite(out.rewrite, why);
  if (!why.empty()) return r.problem("rewrite", fmt::format("'{}': {}", out.rewrite, why));
  for (const RewritePart& part : out.rewrite_parts) {
    if (!part.is_capture) continue;
    for (const ParsedPath& p : paths) {
      if (captures(p.tokens, part.text)) continue;
      r.problem("rewrite",
                fmt::format("names {{{}}}, which paths[{}] does not capture", part.text, p.index));
      break;
    }
  }
}

void read_plugin_order(JsonObject& r, RouteConfig& out, const RouteContext& context) {
  out.plugin_order = r.strings("plugin_order");
  auto attached = [&](const std::string& name) {
    auto named = [&](const PluginEntry& e) { return e.name == name; };
    if (context.shared_plugins.contains(name)) return true;
    if (std::any_of(out.plugins.begin(), out.plugins.end(), named)) return true;
    return std::any_of(out.services.begin(), out.services.end(), [&](const WeightedTarget& t) {
      auto s = context.services.find(t.name);
      return s != context.services.end() &&
             std::any_of(s->second->plugins.begin(), s->second->plugins.end(), named);
    });
  };
  for (std::size_t i = 0; i < out.plugin_order.size(); ++i) {
    const std::string& name = out.plugin_order[i];
    const std::string path = json_path_index(r.field_path("plugin_order"), i);
    if (std::find(out.plugin_order.begin(), out.plugin_order.begin() + i, name) !=
        out.plugin_order.begin() + i) {
      r.problems().add(path, fmt::format("'{}' is listed twice", name));
    } else if (!attached(name)) {
      r.problems().add(path, fmt::format("'{}' is not attached to this route, its services, a "
                                         "consumer or globally",
                                         name));
    }
  }
}

void check_plugin_consumers(const RouteConfig& route, const RouteContext& context,
                            ConfigProblems& problems) {
  for (const PluginEntry& e : route.plugins) {
    if (e.scope == PluginScope::consumer_route && !context.consumers.contains(e.consumer))
      problems.add(json_path_join(e.path, "consumer"),
                   fmt::format("no consumer with id '{}'", e.consumer));
  }
}

// The router's message without its "route 'name': " opening, which the
// JSON path already says.
std::string without_route_name(const std::string& message, const std::string& route) {
  const std::string opening = "route '" + route + "': ";
  return message.starts_with(opening) ? message.substr(opening.size()) : message;
}

// Reports the conditions the router refuses, each at its own path; false
// when there was one.
bool check_conditions(const std::vector<PlacedPredicate>& conditions, ConfigProblems& problems) {
  bool ok = true;
  for (const PlacedPredicate& c : conditions) {
    Router probe;
    auto added = probe.add({"probe", "", "/", MethodSet::any(), {c.predicate}, {}});
    if (added) continue;
    ok = false;
    std::string message = without_route_name(added.error().message, "probe");
    constexpr std::string_view kWhere = "predicates[0]: ";
    if (message.starts_with(kWhere)) message.erase(0, kWhere.size());
    problems.add(c.path, std::move(message));
  }
  return ok;
}

// The targets the proxy gives the router for this route (the gateway's
// assembly: weighted services, when there are several), so that the router
// built here is the one the proxy runs. Weights that are all 0 were
// reported already, and the router would only say it again.
std::vector<WeightedTarget> router_targets(const RouteConfig& route) {
  std::uint64_t sum = 0;
  for (const WeightedTarget& t : route.services)
    sum += t.weight;
  if (route.services.size() < 2 || sum == 0) return {};
  return route.services;
}

// Adds every (path, host) pair to the router, in the order the gateway
// gives them to the proxy (paths, then hosts); conflicts are reported at
// the path of the later route.
void add_to_router(JsonObject& r, RouteConfig& route, const std::vector<ParsedPath>& paths,
                   const std::vector<PlacedPredicate>& conditions, Router& router) {
  if (route.methods.empty()) return;
  const std::vector<WeightedTarget> weighted = router_targets(route);
  const std::vector<std::string> any_host{""};
  const auto& hosts = route.hosts.empty() ? any_host : route.hosts;
  for (std::size_t i = 0; i < paths.size(); ++i) {
    for (const std::string& host : hosts) {
      RouteSpec spec{route.name, host, route.paths[i].pattern, route.methods, {}, {}};
      for (const PlacedPredicate& c : conditions)
        spec.predicates.push_back(c.predicate);
      spec.targets = weighted;
      auto added = router.add(std::move(spec));
      if (added) continue;
      const std::string path = json_path_index(r.field_path("paths"), paths[i].index);
      if (added.error().kind == ErrorKind::conflict) {
        r.problems().add(path, added.error().message);
      } else if (check_conditions(conditions, r.problems())) {
        r.problems().add(path, without_route_name(added.error().message, route.name));
      }
      if (added.error().kind != ErrorKind::conflict) return;
    }
  }
}

}  // namespace

RouteConfig read_route(JsonObject& r, RouteContext& context) {
  RouteConfig out;
  out.name = read_name(r, "name");
  const std::vector<ParsedPath> paths = read_paths(r, out);
  out.hosts = read_hosts(r);
  out.methods = read_methods(r);
  std::vector<PlacedPredicate> conditions;
  read_conditions(r, "headers", conditions);
  read_conditions(r, "query", conditions);
  for (const PlacedPredicate& c : conditions)
    out.predicates.push_back(c.predicate);
  read_targets(r, out, context);
  read_rewrite(r, out, paths);
  out.max_body_bytes =
      static_cast<std::uint64_t>(r.integer("max_body_bytes", 8 << 20, 0, std::int64_t{1} << 40));
  out.plugins = read_plugins(r, PluginScope::route, out.name);
  check_duplicate_plugins(out.plugins, r.problems());
  check_plugin_consumers(out, context, r.problems());
  read_plugin_order(r, out, context);
  r.finish();
  add_to_router(r, out, paths, conditions, *context.router);
  return out;
}

}  // namespace portico::detail
