// The header rules of both transformers, compiled from HeaderTransforms and
// applied to the request headed upstream or to the response.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "portico/filter.hpp"
#include "portico/filters/header_transforms.hpp"
#include "portico/result.hpp"
#include "value_template.hpp"

namespace portico::detail {

struct HeaderOps {
  struct Set {
    std::string name;
    ValueTemplate value;
  };
  std::vector<std::string> remove;
  std::vector<filters::Rename> rename;
  std::vector<Set> replace;
  std::vector<Set> add;
  std::vector<Set> append;

  bool empty() const noexcept {
    return remove.empty() && rename.empty() && replace.empty() && add.empty() && append.empty();
  }
};

// Errors (invalid_argument) name the rule: "<field>.add[1]: ...".
Result<HeaderOps> compile_header_ops(const filters::HeaderTransforms& rules,
                                     std::string_view field);

enum class HeaderSide { request, response };

void apply_header_ops(const HeaderOps& ops, proxy::RequestContext& ctx, HeaderSide side);

}  // namespace portico::detail
