// The "request-transformer" and "response-transformer" plugins' JSON config
// (docs/policies.md), in Kong's shape: one object per operation, each with
// its lists.
//   {"remove": {"headers": ["X-Debug"], "json": ["internal_metadata"]},
//    "rename": {"headers": ["X-Old:X-New"], "json": ["old:new"]},
//    "replace": {"headers": ["X-Env:prod"]},
//    "add": {"headers": ["X-User-Id:$(claims.sub)"]},
//    "append": {"headers": ["X-Via:portico"]}}
#include <optional>

#include "../registry.hpp"
#include "portico/filters/request_transformer.hpp"
#include "portico/filters/response_transformer.hpp"

namespace portico::detail {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

// "name:value" items of the list `list` of an operation's object.
std::vector<std::pair<std::string, std::string>> pairs(JsonObject& section, std::string_view list) {
  std::vector<std::pair<std::string, std::string>> out;
  const std::vector<std::string> items = section.strings(list);
  for (std::size_t i = 0; i < items.size(); ++i) {
    const std::size_t colon = items[i].find(':');
    if (colon == std::string::npos) {
      section.problems().add(json_path_index(section.field_path(list), i),
                             "expected \"name:value\", found \"" + items[i] + "\"");
      continue;
    }
    const std::string_view item = items[i];
    out.emplace_back(std::string(trim(item.substr(0, colon))),
                     std::string(trim(item.substr(colon + 1))));
  }
  return out;
}

std::vector<filters::NameValue> name_values(JsonObject& section) {
  std::vector<filters::NameValue> out;
  for (auto& [name, value] : pairs(section, "headers"))
    out.push_back({std::move(name), std::move(value)});
  return out;
}

std::vector<filters::Rename> renames(JsonObject& section, std::string_view list) {
  std::vector<filters::Rename> out;
  for (auto& [from, to] : pairs(section, list))
    out.push_back({std::move(from), std::move(to)});
  return out;
}

struct Sections {
  filters::HeaderTransforms headers;
  std::vector<std::string> remove_json;
  std::vector<filters::Rename> rename_json;
};

// Each operation's object, read once; the response transformer's remove
// and rename also take a "json" list. Other fields are reported.
Sections read_sections(JsonObject& config, bool with_json) {
  Sections out;
  if (auto section = config.object("remove")) {
    out.headers.remove = section->strings("headers");
    if (with_json) out.remove_json = section->strings("json");
    section->finish();
  }
  if (auto section = config.object("rename")) {
    out.headers.rename = renames(*section, "headers");
    if (with_json) out.rename_json = renames(*section, "json");
    section->finish();
  }
  if (auto section = config.object("replace")) {
    out.headers.replace = name_values(*section);
    section->finish();
  }
  if (auto section = config.object("add")) {
    out.headers.add = name_values(*section);
    section->finish();
  }
  if (auto section = config.object("append")) {
    out.headers.append = name_values(*section);
    section->finish();
  }
  return out;
}

// make_*'s errors name the Options' fields; in the file they live at
// "<op>.headers[i]", "<op>.json[i]".
void report(JsonObject& config, const Error& error) {
  std::string_view message = error.message;
  const std::size_t colon = message.find(": ");
  std::string_view field = colon == std::string_view::npos ? "" : message.substr(0, colon);
  std::string path;
  for (std::string_view op : {"remove", "rename", "replace", "add", "append"}) {
    const std::string headers_prefix = "headers." + std::string(op) + "[";
    const std::string json_prefix = std::string(op) + "_json[";
    if (field.starts_with(headers_prefix)) {
      path = std::string(op) + ".headers" + std::string(field.substr(headers_prefix.size() - 1));
    } else if (field.starts_with(json_prefix)) {
      path = std::string(op) + ".json" + std::string(field.substr(json_prefix.size() - 1));
    }
  }
  if (path.empty() && field == "max_body_bytes") path = "max_body_bytes";
  if (path.empty()) {
    config.problem(std::string(message));
  } else {
    config.problems().add(json_path_join(config.path(), path),
                          std::string(message.substr(colon + 2)));
  }
}

template <class Make>
std::shared_ptr<proxy::Filter> finish(JsonObject& config, std::size_t problems_before,
                                      Make&& make) {
  config.finish();
  if (config.problems().size() != problems_before) return nullptr;
  auto filter = make();
  if (!filter) {
    report(config, filter.error());
    return nullptr;
  }
  return std::move(*filter);
}

}  // namespace

std::shared_ptr<proxy::Filter> build_request_transformer(JsonObject& config, const PluginEnv&) {
  const std::size_t problems_before = config.problems().size();
  filters::RequestTransformerOptions o;
  o.headers = read_sections(config, false).headers;
  return finish(config, problems_before,
                [&] { return filters::make_request_transformer(std::move(o)); });
}

std::shared_ptr<proxy::Filter> build_response_transformer(JsonObject& config, const PluginEnv&) {
  const std::size_t problems_before = config.problems().size();
  filters::ResponseTransformerOptions o;
  Sections sections = read_sections(config, true);
  o.headers = std::move(sections.headers);
  o.remove_json = std::move(sections.remove_json);
  o.rename_json = std::move(sections.rename_json);
  o.max_body_bytes = static_cast<std::size_t>(
      config.integer("max_body_bytes", std::int64_t{1} << 20, 1, std::int64_t{64} << 20));
  return finish(config, problems_before,
                [&] { return filters::make_response_transformer(std::move(o)); });
}

}  // namespace portico::detail
