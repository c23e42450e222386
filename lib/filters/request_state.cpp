#include "portico/filters/request_state.hpp"

#include <cstring>
#include <new>

namespace portico::filters {

RequestState& request_state(proxy::RequestContext& ctx) {
  if (void* p = ctx.shared_state()) return *static_cast<RequestState*>(p);
  auto* state = new (ctx.allocate(sizeof(RequestState), alignof(RequestState))) RequestState{};
  ctx.set_shared_state(state);
  return *state;
}

const RequestState* find_request_state(const proxy::RequestContext& ctx) noexcept {
  return static_cast<const RequestState*>(ctx.shared_state());
}

std::string_view keep(proxy::RequestContext& ctx, std::string_view text) {
  if (text.empty()) return {};
  auto* copy = static_cast<char*>(ctx.allocate(text.size(), 1));
  std::memcpy(copy, text.data(), text.size());
  return {copy, text.size()};
}

}  // namespace portico::filters
