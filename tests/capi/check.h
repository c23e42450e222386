/* A minimal test harness for the C ABI tests, in C11: checks that count
 * failures instead of aborting (so one run reports every broken case), and
 * a blocking HTTP/1.1 client for the gateway tests. */
#ifndef PORTICO_TESTS_CAPI_CHECK_H
#define PORTICO_TESTS_CAPI_CHECK_H

#include <stdio.h>
#include <string.h>

#include "portico.h"

static int check_failures = 0;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      ++check_failures;                                                        \
      fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
    }                                                                          \
  } while (0)

/* A call that must return `expected`; prints the status name and message. */
#define CHECK_STATUS(expected, call)                                                          \
  do {                                                                                        \
    portico_status check_st_ = (call);                                                        \
    if (check_st_ != (expected)) {                                                            \
      ++check_failures;                                                                       \
      fprintf(stderr, "%s:%d: %s returned %s (%s), expected %s\n", __FILE__, __LINE__, #call, \
              portico_status_name(check_st_), portico_last_error(),                           \
              portico_status_name(expected));                                                 \
    }                                                                                         \
  } while (0)

#define CHECK_OK(call) CHECK_STATUS(PORTICO_OK, call)

/* The last error mentions `needle`. */
#define CHECK_ERROR_SAYS(needle)                                                            \
  do {                                                                                      \
    if (strstr(portico_last_error(), (needle)) == NULL) {                                   \
      ++check_failures;                                                                     \
      fprintf(stderr, "%s:%d: last error \"%s\" does not say \"%s\"\n", __FILE__, __LINE__, \
              portico_last_error(), (needle));                                              \
    }                                                                                       \
  } while (0)

/* A view equals a C string. */
static inline int view_is(const char* s, size_t len, const char* expected) {
  return s != NULL && len == strlen(expected) && memcmp(s, expected, len) == 0;
}

static inline int check_report(const char* name) {
  if (check_failures == 0) {
    printf("%s: all checks passed\n", name);
    return 0;
  }
  fprintf(stderr, "%s: %d check(s) failed\n", name, check_failures);
  return 1;
}

#define S(literal) literal, (sizeof(literal) - 1)

#endif
