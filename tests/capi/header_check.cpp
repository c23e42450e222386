// portico.h compiled as C++ (pedantic, warnings as errors): the header must
// stay usable from C++ programs and bindings generated from it.
#include "portico.h"

#include <type_traits>

static_assert(std::is_same_v<portico_status, int32_t>);
static_assert(std::is_standard_layout_v<portico_limit_decision>);
static_assert(std::is_standard_layout_v<portico_breaker_permit>);
static_assert(sizeof(portico_endpoint) == 8);

int main() {
  // The C linkage: the functions are callable from C++ without mangling.
  portico_router* router = nullptr;
  if (portico_router_new(&router) != PORTICO_OK) return 1;
  portico_router_free(router);
  return portico_version() == PORTICO_VERSION ? 0 : 1;
}
