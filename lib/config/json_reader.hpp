// Reading a JSON configuration document field by field, collecting every
// problem with the JSON path where it was found ("routes[3].paths[0]: ...")
// instead of stopping at the first, so an operator fixes a file in one pass.
//
// Readers never throw: a field of the wrong type or out of range records a
// problem and yields the default, and the caller goes on reading so that
// later problems are reported too. A configuration is used only when the
// problem list is empty.
#pragma once

#include <picojson.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "portico/clock.hpp"
#include "portico/result.hpp"

namespace portico::detail {

struct ConfigProblem {
  std::string path;  // "routes[3].paths[0]"; empty: the document itself
  std::string message;
};

class ConfigProblems {
 public:
  void add(std::string path, std::string message);
  bool empty() const noexcept { return items_.empty(); }
  std::size_t size() const noexcept { return items_.size(); }
  const std::vector<ConfigProblem>& all() const noexcept { return items_; }
  // One problem per line: "path: message".
  std::string to_string() const;

 private:
  std::vector<ConfigProblem> items_;
};

// Parses a whole document. Nesting deeper than `max_depth` is refused
// before parsing (the parser recurses), and errors name the line.
Result<picojson::value> parse_json_document(std::string_view text, unsigned max_depth = 64);

// "a.b" + key, and "a" + index -> "a[3]".
std::string json_path_join(std::string_view base, std::string_view key);
std::string json_path_index(std::string_view base, std::size_t index);

// Whether `path` is well formed: empty (the document), or a letter, then
// letters, digits and "_.[]-" ("routes[3].paths[0]").
bool is_json_path(std::string_view path);
// Whether a member name taken from a document (an unknown field, a key of a
// map such as "headers") can be written in a path: a letter, then letters,
// digits, '_' and '-'. Any other name would make a path ambiguous ("a.b")
// or unreadable (spaces, control bytes), so it is named in the message
// instead.
bool is_path_name(std::string_view name);
// The path of member `name` of the object at `base`: "base.name", or `base`
// itself when `name` is not a path name.
std::string json_member_path(std::string_view base, std::string_view name);
// A problem about member `name` of the object at `base`: at "base.name", or
// at `base` with the name quoted first ("'a b': unknown field").
void add_member_problem(ConfigProblems& problems, std::string_view base, std::string_view name,
                        std::string message);

// One JSON object of the document at a path. Fields it did not read are
// reported by finish() as unknown, which catches misspelt keys.
class JsonObject {
 public:
  // Records "expected an object" when `value` is not one.
  JsonObject(const picojson::value& value, std::string path, ConfigProblems& problems);

  bool valid() const noexcept { return object_ != nullptr; }
  const std::string& path() const noexcept { return path_; }
  std::string field_path(std::string_view key) const { return json_path_join(path_, key); }
  ConfigProblems& problems() const noexcept { return *problems_; }

  bool has(std::string_view key) const;
  // The raw value (marks the field read), or null when absent.
  const picojson::value* get(std::string_view key);

  // Typed fields. Absent: the default, or a problem when `required`.
  std::string string(std::string_view key, std::string fallback = {}, bool required = false);
  std::optional<std::string> optional_string(std::string_view key);
  std::int64_t integer(std::string_view key, std::int64_t fallback, std::int64_t min,
                       std::int64_t max, bool required = false);
  double number(std::string_view key, double fallback, double min, double max);
  bool boolean(std::string_view key, bool fallback);
  // "250ms", "5s", "2m", "1h", "1d", or a number of seconds (0.5).
  Duration duration(std::string_view key, Duration fallback, Duration min, Duration max);
  // An array of strings; absent: empty (or a problem when `required`).
  std::vector<std::string> strings(std::string_view key, bool required = false);
  // A nested object; absent: nullopt (or a problem when `required`).
  std::optional<JsonObject> object(std::string_view key, bool required = false);
  // An array of objects; elements that are not objects are reported and
  // skipped.
  std::vector<JsonObject> objects(std::string_view key, bool required = false);
  // One of `choices`; anything else is reported with the list.
  std::string choice(std::string_view key, std::initializer_list<std::string_view> choices,
                     std::string_view fallback);

  // Problems at a field of this object, or at the object itself.
  void problem(std::string_view key, std::string message);
  void problem(std::string message);

  // Reports every field that no reader asked for.
  void finish();

 private:
  const picojson::object* object_ = nullptr;
  std::string path_;
  ConfigProblems* problems_;
  std::vector<std::string> read_;
};

// Parses "250ms", "5s", "2m", "1h", "1d" (an integer or decimal before the
// unit); nullopt when malformed.
std::optional<Duration> parse_duration_text(std::string_view text);

// The JSON type of a value, for messages: "a string", "an array"...
std::string_view json_type_name(const picojson::value& value);

}  // namespace portico::detail
