#include "json_reader.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <stdexcept>

#include "../common/describe.hpp"

namespace portico::detail {

void ConfigProblems::add(std::string path, std::string message) {
  items_.push_back({std::move(path), std::move(message)});
}

std::string ConfigProblems::to_string() const {
  std::string out;
  for (const auto& p : items_) {
    out += p.path.empty() ? std::string("(document)") : p.path;
    out += ": ";
    out += p.message;
    out += '\n';
  }
  return out;
}

namespace {

// The deepest nesting of arrays and objects, outside strings. picojson
// recurses once per level, so a hostile file of brackets would otherwise
// exhaust the stack.
unsigned nesting_depth(std::string_view text) {
  unsigned depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (char ch : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (ch == '\\') {
        escaped = true;
      } else if (ch == '"') {
        in_string = false;
      }
      continue;
    }
    if (ch == '"') {
      in_string = true;
    } else if (ch == '[' || ch == '{') {
      deepest = std::max(deepest, ++depth);
    } else if ((ch == ']' || ch == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

}  // namespace

Result<picojson::value> parse_json_document(std::string_view text, unsigned max_depth) {
  if (nesting_depth(text) > max_depth)
    return make_error(ErrorKind::malformed,
                      fmt::format("JSON nested deeper than {} levels", max_depth));
  picojson::value value;
  std::string error;
  const char* end = nullptr;
  try {
    end = picojson::parse(value, text.data(), text.data() + text.size(), &error);
  } catch (const std::overflow_error&) {
    // picojson throws for a number beyond a double's range (1e999), which
    // must not escape into the program that embeds the gateway.
    return make_error(ErrorKind::malformed, "invalid JSON: a number out of range");
  }
  if (!error.empty()) {
    // picojson's message spans lines ("syntax error at line N near: ...").
    std::replace(error.begin(), error.end(), '\n', ' ');
    while (!error.empty() && error.back() == ' ')
      error.pop_back();
    return make_error(ErrorKind::malformed, "invalid JSON: " + error);
  }
  for (const char* p = end; p < text.data() + text.size(); ++p) {
    if (*p != ' ' && *p != '\n' && *p != '\r' && *p != '\t') {
      const auto line = 1 + std::count(text.data(), p, '\n');
      return make_error(ErrorKind::malformed,
                        fmt::format("invalid JSON: text after the document at line {}", line));
    }
  }
  return value;
}

std::string json_path_join(std::string_view base, std::string_view key) {
  if (base.empty()) return std::string(key);
  std::string out(base);
  out += '.';
  out += key;
  return out;
}

std::string json_path_index(std::string_view base, std::size_t index) {
  return fmt::format("{}[{}]", base, index);
}

namespace {

bool is_letter(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

bool is_name_char(char c) {
  return is_letter(c) || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

bool is_path_char(char c) {
  return is_name_char(c) || c == '.' || c == '[' || c == ']';
}

}  // namespace

bool is_json_path(std::string_view path) {
  return path.empty() ||
         (is_letter(path.front()) && std::all_of(path.begin(), path.end(), is_path_char));
}

bool is_path_name(std::string_view name) {
  return !name.empty() && is_letter(name.front()) &&
         std::all_of(name.begin(), name.end(), is_name_char);
}

std::string json_member_path(std::string_view base, std::string_view name) {
  return is_path_name(name) ? json_path_join(base, name) : std::string(base);
}

void add_member_problem(ConfigProblems& problems, std::string_view base, std::string_view name,
                        std::string message) {
  if (is_path_name(name)) return problems.add(json_path_join(base, name), std::move(message));
  problems.add(std::string(base), describe_untrusted(name) + ": " + message);
}

std::string_view json_type_name(const picojson::value& v) {
  if (v.is<picojson::null>()) return "null";
  if (v.is<bool>()) return "a boolean";
  if (v.is<double>()) return "a number";
  if (v.is<std::string>()) return "a string";
  if (v.is<picojson::array>()) return "an array";
  return "an object";
}

std::optional<Duration> parse_duration_text(std::string_view text) {
  std::size_t unit_at = 0;
  while (unit_at < text.size() &&
         ((text[unit_at] >= '0' && text[unit_at] <= '9') || text[unit_at] == '.'))
    ++unit_at;
  if (unit_at == 0) return std::nullopt;
  double amount = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + unit_at, amount);
  if (ec != std::errc() || end != text.data() + unit_at) return std::nullopt;
  const std::string_view unit = text.substr(unit_at);
  double ns_per_unit = 0;
  if (unit == "ms") {
    ns_per_unit = 1e6;
  } else if (unit == "s") {
    ns_per_unit = 1e9;
  } else if (unit == "m") {
    ns_per_unit = 60e9;
  } else if (unit == "h") {
    ns_per_unit = 3600e9;
  } else if (unit == "d") {
    ns_per_unit = 86400e9;
  } else {
    return std::nullopt;
  }
  const double ns = amount * ns_per_unit;
  if (!std::isfinite(ns) || ns > 9e18) return std::nullopt;
  return Duration(static_cast<std::int64_t>(ns));
}

JsonObject::JsonObject(const picojson::value& value, std::string path, ConfigProblems& problems)
    : path_(std::move(path)), problems_(&problems) {
  if (value.is<picojson::object>()) {
    object_ = &value.get<picojson::object>();
  } else {
    problems.add(path_, fmt::format("expected an object, found {}", json_type_name(value)));
  }
}

bool JsonObject::has(std::string_view key) const {
  return object_ != nullptr && object_->find(std::string(key)) != object_->end();
}

const picojson::value* JsonObject::get(std::string_view key) {
  if (object_ == nullptr) return nullptr;
  auto it = object_->find(std::string(key));
  if (it == object_->end()) return nullptr;
  if (std::find(read_.begin(), read_.end(), key) == read_.end()) read_.emplace_back(key);
  return &it->second;
}

void JsonObject::problem(std::string_view key, std::string message) {
  problems_->add(field_path(key), std::move(message));
}

void JsonObject::problem(std::string message) {
  problems_->add(path_, std::move(message));
}

std::string JsonObject::string(std::string_view key, std::string fallback, bool required) {
  const picojson::value* v = get(key);
  if (v == nullptr) {
    if (required && valid()) problem(key, "is required (a string)");
    return fallback;
  }
  if (!v->is<std::string>()) {
    problem(key, fmt::format("expected a string, found {}", json_type_name(*v)));
    return fallback;
  }
  return v->get<std::string>();
}

std::optional<std::string> JsonObject::optional_string(std::string_view key) {
  if (!has(key)) return std::nullopt;
  const picojson::value* v = get(key);
  if (!v->is<std::string>()) {
    problem(key, fmt::format("expected a string, found {}", json_type_name(*v)));
    return std::nullopt;
  }
  return v->get<std::string>();
}

std::int64_t JsonObject::integer(std::string_view key, std::int64_t fallback, std::int64_t min,
                                 std::int64_t max, bool required) {
  const picojson::value* v = get(key);
  if (v == nullptr) {
    if (required && valid()) problem(key, "is required (an integer)");
    return fallback;
  }
  if (!v->is<double>()) {
    problem(key, fmt::format("expected an integer, found {}", json_type_name(*v)));
    return fallback;
  }
  const double d = v->get<double>();
  if (d != std::floor(d) || d < static_cast<double>(min) || d > static_cast<double>(max)) {
    problem(key, fmt::format("expected an integer from {} to {}, found {}", min, max, d));
    return fallback;
  }
  return static_cast<std::int64_t>(d);
}

double JsonObject::number(std::string_view key, double fallback, double min, double max) {
  const picojson::value* v = get(key);
  if (v == nullptr) return fallback;
  if (!v->is<double>()) {
    problem(key, fmt::format("expected a number, found {}", json_type_name(*v)));
    return fallback;
  }
  const double d = v->get<double>();
  if (!(d >= min && d <= max)) {
    problem(key, fmt::format("expected a number from {} to {}, found {}", min, max, d));
    return fallback;
  }
  return d;
}

bool JsonObject::boolean(std::string_view key, bool fallback) {
  const picojson::value* v = get(key);
  if (v == nullptr) return fallback;
  if (!v->is<bool>()) {
    problem(key, fmt::format("expected true or false, found {}", json_type_name(*v)));
    return fallback;
  }
  return v->get<bool>();
}

namespace {

std::string duration_text(Duration d) {
  const auto ns = d.count();
  if (ns % 1'000'000'000 == 0) return fmt::format("{}s", ns / 1'000'000'000);
  return fmt::format("{}ms", ns / 1'000'000);
}

}  // namespace

Duration JsonObject::duration(std::string_view key, Duration fallback, Duration min, Duration max) {
  const picojson::value* v = get(key);
  if (v == nullptr) return fallback;
  std::optional<Duration> d;
  if (v->is<double>()) {
    const double seconds = v->get<double>();
    if (seconds >= 0 && seconds <= 9e9) d = Duration(static_cast<std::int64_t>(seconds * 1e9));
  } else if (v->is<std::string>()) {
    d = parse_duration_text(v->get<std::string>());
  }
  if (!d) {
    problem(key, fmt::format("expected a duration such as \"250ms\", \"5s\" or \"2m\", found {}",
                             v->is<std::string>() ? '"' + v->get<std::string>() + '"'
                                                  : std::string(json_type_name(*v))));
    return fallback;
  }
  if (*d < min || *d > max) {
    problem(key, fmt::format("expected a duration from {} to {}", duration_text(min),
                             duration_text(max)));
    return fallback;
  }
  return *d;
}

std::vector<std::string> JsonObject::strings(std::string_view key, bool required) {
  std::vector<std::string> out;
  const picojson::value* v = get(key);
  if (v == nullptr) {
    if (required && valid()) problem(key, "is required (an array of strings)");
    return out;
  }
  if (!v->is<picojson::array>()) {
    problem(key, fmt::format("expected an array of strings, found {}", json_type_name(*v)));
    return out;
  }
  const auto& items = v->get<picojson::array>();
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (!items[i].is<std::string>()) {
      problems_->add(json_path_index(field_path(key), i),
                     fmt::format("expected a string, found {}", json_type_name(items[i])));
      continue;
    }
    out.push_back(items[i].get<std::string>());
  }
  return out;
}

std::optional<JsonObject> JsonObject::object(std::string_view key, bool required) {
  const picojson::value* v = get(key);
  if (v == nullptr) {
    if (required && valid()) problem(key, "is required (an object)");
    return std::nullopt;
  }
  JsonObject o(*v, field_path(key), *problems_);
  if (!o.valid()) return std::nullopt;
  return o;
}

std::vector<JsonObject> JsonObject::objects(std::string_view key, bool required) {
  std::vector<JsonObject> out;
  const picojson::value* v = get(key);
  if (v == nullptr) {
    if (required && valid()) problem(key, "is required (an array of objects)");
    return out;
  }
  if (!v->is<picojson::array>()) {
    problem(key, fmt::format("expected an array of objects, found {}", json_type_name(*v)));
    return out;
  }
  const auto& items = v->get<picojson::array>();
  for (std::size_t i = 0; i < items.size(); ++i) {
    JsonObject o(items[i], json_path_index(field_path(key), i), *problems_);
    if (o.valid()) out.push_back(std::move(o));
  }
  return out;
}

std::string JsonObject::choice(std::string_view key,
                               std::initializer_list<std::string_view> choices,
                               std::string_view fallback) {
  if (!has(key)) return std::string(fallback);
  std::string value = string(key);
  for (std::string_view c : choices)
    if (value == c) return value;
  std::string list;
  for (std::string_view c : choices) {
    if (!list.empty()) list += ", ";
    list += '"';
    list += c;
    list += '"';
  }
  if (get(key)->is<std::string>())
    problem(key, fmt::format("expected one of {}, found \"{}\"", list, value));
  return std::string(fallback);
}

void JsonObject::finish() {
  if (object_ == nullptr) return;
  for (const auto& [name, value] : *object_) {
    (void)value;
    if (std::find(read_.begin(), read_.end(), name) == read_.end())
      add_member_problem(*problems_, path_, name, "unknown field");
  }
}

}  // namespace portico::detail
