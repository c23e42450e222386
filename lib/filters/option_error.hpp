// How a plugin's build_ function reports the error its make_<name>()
// returned: make_ names the field first ("max_length: expected ..."), and
// the problem is recorded at that field's JSON path under the plugin's
// config ("plugins[0].config.max_length"); a message that names no field
// is recorded at the config object itself, and so is one whose "field" is
// not a path (a claim name such as "https://idp/roles" in it), which would
// make the problem's path unreadable.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "../config/json_reader.hpp"
#include "portico/result.hpp"

namespace portico::detail {

inline void report_option_error(JsonObject& config, const Error& error) {
  const std::string_view message = error.message;
  const std::size_t colon = message.find(": ");
  const std::string_view field = message.substr(0, colon);
  if (colon != std::string_view::npos && !field.empty() && is_json_path(field)) {
    config.problems().add(json_path_join(config.path(), field),
                          std::string(message.substr(colon + 2)));
    return;
  }
  config.problem(std::string(message));
}

}  // namespace portico::detail
