/*
 * The C side of bench/python/filter_bench.py: the same filter as the
 * benchmark's Python one, and the handler both gateways serve, as a shared
 * object that the benchmark loads with ctypes and registers through the
 * binding (portico.NativeFilter / NativeHandler).
 *
 * The filter: no X-Api-Key header answers 401 at once; otherwise the key is
 * copied into X-Tenant for the upstream. The handler answers 200 with the
 * X-Tenant it received (or "-"), so the benchmark can check that the filter
 * ran. Each counts its calls so the benchmark can check that every request
 * went through it.
 */
#include <stdatomic.h>
#include <stdint.h>

#include "portico.h"

static atomic_uint_fast64_t filter_calls;
static atomic_uint_fast64_t handler_calls;

int32_t portico_bench_tenant_filter(portico_request* request, void* user) {
  (void)user;
  atomic_fetch_add_explicit(&filter_calls, 1, memory_order_relaxed);
  const char* key;
  size_t key_len;
  if (portico_request_header(request, "X-Api-Key", 9, &key, &key_len) != PORTICO_OK) {
    static const char body[] = "no key\n";
    portico_request_respond(request, 401, NULL, 0, body, sizeof body - 1);
    return PORTICO_FILTER_RESPOND;
  }
  if (portico_request_set_header(request, "X-Tenant", 8, key, key_len) != PORTICO_OK) {
    return -1; /* outside the contract: the gateway answers 500 and reports it */
  }
  return PORTICO_FILTER_CONTINUE;
}

int32_t portico_bench_tenant_handler(portico_request* request, void* user) {
  (void)user;
  atomic_fetch_add_explicit(&handler_calls, 1, memory_order_relaxed);
  const char* tenant;
  size_t tenant_len;
  if (portico_request_header(request, "X-Tenant", 8, &tenant, &tenant_len) != PORTICO_OK) {
    tenant = "-";
    tenant_len = 1;
  }
  return portico_request_respond(request, 200, NULL, 0, tenant, tenant_len);
}

uint64_t portico_bench_filter_calls(void) {
  return atomic_load_explicit(&filter_calls, memory_order_relaxed);
}

uint64_t portico_bench_handler_calls(void) {
  return atomic_load_explicit(&handler_calls, memory_order_relaxed);
}
