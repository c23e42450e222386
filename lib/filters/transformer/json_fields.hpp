// Removing and renaming the top-level members of a JSON object without
// re-encoding it: the document is scanned (strictly, RFC 8259), and the
// members kept are copied byte for byte, so large numbers and escapes come
// out exactly as they went in.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "portico/filters/header_transforms.hpp"

namespace portico::detail {

// The edited document, or nullopt when `body` is not one JSON object (with
// optional surrounding whitespace), nests deeper than `max_depth`, or
// nothing in it changes. A member renamed onto a name another member has
// replaces that member.
std::optional<std::string> edit_json_members(std::string_view body,
                                             std::span<const std::string> remove,
                                             std::span<const filters::Rename> rename,
                                             unsigned max_depth = 64);

}  // namespace portico::detail
