/* A configured gateway driven from C: a C filter (request and response
 * phases, per-entry config, header edits, path rewrite, local answers) in
 * front of a C handler serving the route, real requests on 127.0.0.1,
 * misbehaving callbacks answered 500 and reported once, reload, metrics, and
 * portico_gateway_run stopped from a callback. */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "check.h"
#include "http_client.h"

static portico_gateway* g_gateway = NULL;
static atomic_int g_errors = 0;
static char g_last_error[512];
static portico_request* g_kept_request = NULL;
static atomic_int g_stop_in_callback = -1;

static void on_error(const char* message, size_t len, void* user) {
  (void)user;
  if (len >= sizeof g_last_error) len = sizeof g_last_error - 1;
  memcpy(g_last_error, message, len);
  g_last_error[len] = '\0';
  atomic_fetch_add(&g_errors, 1);
}

/* "auth": requests need the header named by the entry's config ("header")
 * with the value "open-sesame"; the user header goes upstream; /hello/old
 * is rewritten. */
static int32_t auth_request(portico_request* req, void* user) {
  const char *config, *key, *path, *client;
  size_t config_len, key_len, path_len, client_len;
  portico_header headers[1];
  int* calls = user;
  ++*calls; /* racy across workers, but the test runs one worker */

  if (portico_request_plugin_config(req, &config, &config_len) != PORTICO_OK ||
      !view_is(config, config_len, "{\"header\":\"x-api-key\"}"))
    return 99; /* garbage on purpose: the test would see 500s */
  if (portico_request_header(req, S("x-api-key"), &key, &key_len) != PORTICO_OK ||
      !view_is(key, key_len, "open-sesame")) {
    headers[0].name = "WWW-Authenticate";
    headers[0].name_len = strlen("WWW-Authenticate");
    headers[0].value = "ApiKey";
    headers[0].value_len = strlen("ApiKey");
    if (portico_request_respond(req, 401, headers, 1, S("who are you?\n")) != PORTICO_OK) return 98;
    return PORTICO_FILTER_RESPOND;
  }
  if (portico_request_client_address(req, &client, &client_len) != PORTICO_OK) return 97;
  if (portico_request_set_header(req, S("x-client"), client, client_len) != PORTICO_OK) return 96;
  if (portico_request_remove_header(req, S("x-api-key")) != PORTICO_OK) return 95;
  if (portico_request_path(req, &path, &path_len) == PORTICO_OK &&
      view_is(path, path_len, "/hello/old"))
    if (portico_request_set_path(req, S("/hello/new?via=filter")) != PORTICO_OK) return 94;
  /* Editing the response here is refused: it is the request phase. */
  if (portico_request_set_response_header(req, S("x-a"), S("b")) != PORTICO_ERR_STATE) return 93;
  if (portico_request_set_response_status(req, 503) != PORTICO_ERR_STATE) return 91;
  /* Calls that would wait for this very thread are refused. */
  atomic_store(&g_stop_in_callback, portico_gateway_stop(g_gateway, 0));
  g_kept_request = req; /* to check that a use after the callback is caught */
  return PORTICO_FILTER_CONTINUE;
}

static int32_t auth_response(portico_request* req, void* user) {
  int32_t status = 0;
  (void)user;
  if (portico_request_response_status(req, &status) != PORTICO_OK) return 92;
  if (status == 200) portico_request_set_response_header(req, S("x-filtered"), S("yes"));
  return PORTICO_FILTER_CONTINUE;
}

/* "late", response phase only, as a binding does it: on /late/fails the
 * callback "fails", reports that itself (counted in *user) and sets the
 * status to 500, so the gateway has nothing more to report; on
 * /late/garbage it returns garbage, which the gateway reports once. */
static int32_t late_response(portico_request* req, void* user) {
  const char* path;
  size_t path_len;
  atomic_int* own_reports = user;
  if (portico_request_path(req, &path, &path_len) != PORTICO_OK) return 90;
  if (view_is(path, path_len, "/late/garbage")) return 42;
  if (!view_is(path, path_len, "/late/fails")) return PORTICO_FILTER_CONTINUE;
  atomic_fetch_add(own_reports, 1);
  if (portico_request_set_response_status(req, 99) != PORTICO_ERR_INVALID_ARGUMENT) return 89;
  if (portico_request_set_response_status(req, 600) != PORTICO_ERR_INVALID_ARGUMENT) return 88;
  if (portico_request_set_response_status(req, 500) != PORTICO_OK) return 87;
  return PORTICO_FILTER_CONTINUE;
}

static atomic_int g_late_reports = 0;

static int32_t garbage_filter(portico_request* req, void* user) {
  (void)req;
  (void)user;
  return 42;
}

static int32_t stop_filter(portico_request* req, void* user) {
  portico_gateway** gw = user;
  portico_request_respond(req, 202, NULL, 0, S("stopping\n"));
  portico_gateway_request_stop(*gw);
  return PORTICO_FILTER_RESPOND;
}

/* Echoes what reached it: "METHOD path?query client=... body=..." and, when
 * the route has a {who}, " who=...". */
static int32_t echo_handler(portico_request* req, void* user) {
  const char *method, *path, *query, *client = "", *body, *who;
  size_t method_len, path_len, query_len, client_len = 0, body_len, who_len;
  char text[1024];
  int n;
  (void)user;
  portico_request_method(req, &method, &method_len);
  portico_request_path(req, &path, &path_len);
  portico_request_query(req, &query, &query_len);
  portico_request_header(req, S("x-client"), &client, &client_len);
  portico_request_body(req, &body, &body_len);
  if (portico_request_header(req, S("x-api-key"), &body, &body_len) == PORTICO_OK)
    return 7; /* the filter should have removed it */
  portico_request_body(req, &body, &body_len);
  n = snprintf(text, sizeof text, "%.*s %.*s?%.*s client=%.*s body=%.*s", (int)method_len, method,
               (int)path_len, path, (int)query_len, query, (int)client_len, client, (int)body_len,
               body);
  /* Handlers read the route's parameters as filters do. */
  if (portico_request_param(req, S("who"), &who, &who_len) == PORTICO_OK)
    n += snprintf(text + n, sizeof text - (size_t)n, " who=%.*s", (int)who_len, who);
  if (portico_request_respond(req, 200, NULL, 0, text, (size_t)n) != PORTICO_OK) return 6;
  return PORTICO_OK;
}

static int32_t broken_handler(portico_request* req, void* user) {
  (void)req;
  (void)user;
  return 7;
}

static const char kConfig[] =
    "{\"listeners\": [{\"address\": \"127.0.0.1\", \"port\": 0, \"workers\": 1}],"
    " \"admin\": {\"enabled\": false}, \"access_log\": {\"enabled\": false},"
    " \"services\": [{\"name\": \"echo\", \"handler\": \"echo\"},"
    "                {\"name\": \"broken\", \"handler\": \"broken\"}],"
    " \"routes\": ["
    "  {\"name\": \"hello\", \"paths\": [\"/hello/{who}\"], \"service\": \"echo\","
    "   \"plugins\": [{\"name\": \"auth\", \"config\": {\"header\": \"x-api-key\"}}]},"
    "  {\"name\": \"garbage\", \"paths\": [\"/garbage\"], \"service\": \"echo\","
    "   \"plugins\": [{\"name\": \"garbage\"}]},"
    "  {\"name\": \"late\", \"paths\": [\"/late/{what}\"], \"service\": \"echo\","
    "   \"plugins\": [{\"name\": \"late\"}]},"
    "  {\"name\": \"broken\", \"paths\": [\"/broken\"], \"service\": \"broken\"}]}";

/* The same routes, the hello route without its filter. */
static const char kConfigWithoutAuth[] =
    "{\"listeners\": [{\"address\": \"127.0.0.1\", \"port\": 0, \"workers\": 1}],"
    " \"admin\": {\"enabled\": false}, \"access_log\": {\"enabled\": false},"
    " \"services\": [{\"name\": \"echo\", \"handler\": \"echo\"}],"
    " \"routes\": [{\"name\": \"hello\", \"paths\": [\"/hello/{who}\"], \"service\": \"echo\"}]}";

static portico_gateway_options* make_options(int* auth_calls) {
  portico_gateway_options* o = NULL;
  CHECK_OK(portico_gateway_options_new(&o));
  CHECK_OK(portico_gateway_options_add_filter(o, S("auth"), 500, auth_request, auth_response,
                                              auth_calls));
  CHECK_OK(portico_gateway_options_add_filter(o, S("garbage"), 0, garbage_filter, NULL, NULL));
  CHECK_OK(
      portico_gateway_options_add_filter(o, S("late"), 0, NULL, late_response, &g_late_reports));
  CHECK_OK(portico_gateway_options_add_handler(o, S("echo"), echo_handler, NULL));
  CHECK_OK(portico_gateway_options_add_handler(o, S("broken"), broken_handler, NULL));
  CHECK_OK(portico_gateway_options_set_error_callback(o, on_error, NULL));
  /* Names are unique and may not shadow a built-in policy. */
  CHECK_STATUS(PORTICO_ERR_CONFLICT,
               portico_gateway_options_add_filter(o, S("echo"), 0, garbage_filter, NULL, NULL));
  CHECK_STATUS(PORTICO_ERR_CONFLICT, portico_gateway_options_add_filter(
                                         o, S("rate-limit"), 0, garbage_filter, NULL, NULL));
  CHECK_STATUS(PORTICO_ERR_INVALID_ARGUMENT,
               portico_gateway_options_add_filter(o, S("none"), 0, NULL, NULL, NULL));
  return o;
}

static void test_serving(void) {
  int auth_calls = 0;
  portico_gateway_options* o = make_options(&auth_calls);
  http_response r;
  uint16_t port = 0;
  uint64_t generation = 99;
  char value[256];
  char* metrics = NULL;
  size_t metrics_len = 0;
  const char* s;
  size_t len;

  CHECK_OK(portico_gateway_check(kConfig, strlen(kConfig), o));
  /* Without the options, the filter and handlers are unknown. */
  CHECK_STATUS(PORTICO_ERR_INVALID_CONFIG, portico_gateway_check(kConfig, strlen(kConfig), NULL));
  CHECK_ERROR_SAYS("unknown plugin 'auth'");
  CHECK_ERROR_SAYS("services[0].handler");

  CHECK_OK(portico_gateway_new(&g_gateway, kConfig, strlen(kConfig), o));
  portico_gateway_options_free(o); /* copied */
  CHECK_STATUS(PORTICO_ERR_STATE, portico_gateway_port(g_gateway, 0, &port));
  CHECK_OK(portico_gateway_start(g_gateway));
  CHECK_STATUS(PORTICO_ERR_STATE, portico_gateway_start(g_gateway));
  CHECK_OK(portico_gateway_port(g_gateway, 0, &port));
  CHECK(port != 0);
  CHECK_STATUS(PORTICO_ERR_NOT_FOUND, portico_gateway_port(g_gateway, 1, &port));
  CHECK_OK(portico_gateway_generation(g_gateway, &generation));
  CHECK(generation == 0);

  /* No key: the filter answers by itself. */
  CHECK(http_request(port, "GET", "/hello/ann", "", "", &r) == 0);
  CHECK(r.status == 401);
  CHECK(strcmp(r.body, "who are you?\n") == 0);
  CHECK(http_header(&r, "www-authenticate", value, sizeof value) == 0 &&
        strcmp(value, "ApiKey") == 0);
  CHECK(http_header(&r, "x-filtered", value, sizeof value) != 0);

  /* With the key: through to the handler, edits applied both ways. */
  CHECK(http_request(port, "POST", "/hello/ann?q=1", "X-Api-Key: open-sesame\r\n", "ping", &r) ==
        0);
  CHECK(r.status == 200);
  CHECK(strcmp(r.body, "POST /hello/ann?q=1 client=127.0.0.1 body=ping who=ann") == 0);
  CHECK(http_header(&r, "x-filtered", value, sizeof value) == 0 && strcmp(value, "yes") == 0);
  CHECK(atomic_load(&g_stop_in_callback) == PORTICO_ERR_STATE);

  CHECK(http_request(port, "GET", "/hello/old", "X-Api-Key: open-sesame\r\n", "", &r) == 0);
  CHECK(r.status == 200);
  CHECK(strcmp(r.body, "GET /hello/new?via=filter client=127.0.0.1 body= who=old") == 0);
  CHECK(auth_calls == 3);

  /* The request pointer a callback kept is dead once it returned. */
  CHECK(g_kept_request != NULL);
  CHECK_STATUS(PORTICO_ERR_INVALID_HANDLE, portico_request_method(g_kept_request, &s, &len));
  CHECK_ERROR_SAYS("after its callback returned");

  /* A filter returning garbage: 500, reported, the gateway goes on. */
  atomic_store(&g_errors, 0);
  CHECK(http_request(port, "GET", "/garbage", "", "", &r) == 0);
  CHECK(r.status == 500);
  CHECK(atomic_load(&g_errors) == 1);
  CHECK(strstr(g_last_error, "filter 'garbage'") != NULL);
  CHECK(strstr(g_last_error, "returned 42") != NULL);

  /* A handler returning garbage without answering: the same. */
  CHECK(http_request(port, "GET", "/broken", "", "", &r) == 0);
  CHECK(r.status == 500);
  CHECK(atomic_load(&g_errors) == 2);
  CHECK(strstr(g_last_error, "handler 'broken'") != NULL);

  /* A response phase that failed and said so itself: 500, and the gateway
   * reports nothing more (the failure is reported once, by the callback). */
  CHECK(http_request(port, "GET", "/late/fails", "", "", &r) == 0);
  CHECK(r.status == 500);
  CHECK(atomic_load(&g_late_reports) == 1);
  CHECK(atomic_load(&g_errors) == 2);
  /* A response phase returning garbage: 500, reported once by the gateway. */
  CHECK(http_request(port, "GET", "/late/garbage", "", "", &r) == 0);
  CHECK(r.status == 500);
  CHECK(atomic_load(&g_errors) == 3);
  CHECK(strstr(g_last_error, "filter 'late' (response phase) returned 42") != NULL);
  CHECK(atomic_load(&g_late_reports) == 1);
  /* And a healthy request through the same filter is untouched. */
  CHECK(http_request(port, "GET", "/late/fine", "", "", &r) == 0);
  CHECK(r.status == 200);
  CHECK(atomic_load(&g_errors) == 3);

  CHECK(http_request(port, "GET", "/nowhere", "", "", &r) == 0);
  CHECK(r.status == 404);

  /* Reload: the hello route loses its filter; a bad document changes
   * nothing and says why. */
  {
    static const char kBad[] = "{\"listeners\": [{\"port\": 0, \"workers\": 1}], \"routes\": 3}";
    CHECK_STATUS(PORTICO_ERR_INVALID_CONFIG, portico_gateway_reload(g_gateway, S(kBad)));
    CHECK_ERROR_SAYS("routes");
    CHECK_STATUS(PORTICO_ERR_INVALID_JSON, portico_gateway_reload(g_gateway, S("{\"routes\": [")));
  }
  CHECK_OK(portico_gateway_reload(g_gateway, S(kConfigWithoutAuth)));
  CHECK_OK(portico_gateway_generation(g_gateway, &generation));
  CHECK(generation == 1);
  CHECK(http_request(port, "GET", "/hello/ann", "", "", &r) == 0);
  CHECK(r.status == 200);
  CHECK(strcmp(r.body, "GET /hello/ann? client= body= who=ann") == 0);

  CHECK_OK(portico_gateway_metrics(g_gateway, &metrics, &metrics_len));
  CHECK(metrics != NULL && metrics_len == strlen(metrics));
  CHECK(metrics != NULL && strstr(metrics, "route=\"hello\"") != NULL);
  portico_string_free(metrics);

  CHECK_OK(portico_gateway_stop(g_gateway, 1000000000));
  CHECK_OK(portico_gateway_stop(g_gateway, 0)); /* idempotent */
  CHECK(http_request(port, "GET", "/hello/ann", "", "", &r) != 0);
  CHECK_STATUS(PORTICO_ERR_STATE, portico_gateway_metrics(g_gateway, &metrics, &metrics_len));
  portico_gateway_free(g_gateway);
  g_gateway = NULL;
}

struct runner {
  portico_gateway* gateway;
  portico_status status;
};

static void* run_gateway(void* arg) {
  struct runner* r = arg;
  r->status = portico_gateway_run(r->gateway);
  return NULL;
}

/* portico_gateway_run on a thread of ours, stopped by a filter. */
static void test_run_and_request_stop(void) {
  static const char kStopConfig[] =
      "{\"listeners\": [{\"port\": 0, \"workers\": 2}], \"admin\": {\"enabled\": false},"
      " \"access_log\": {\"enabled\": false}, \"server\": {\"drain_timeout\": \"1s\"},"
      " \"services\": [{\"name\": \"echo\", \"handler\": \"echo\"}],"
      " \"routes\": [{\"name\": \"stop\", \"paths\": [\"/stop\"], \"service\": \"echo\","
      "   \"plugins\": [{\"name\": \"stop\"}]},"
      "  {\"name\": \"echo\", \"paths\": [\"/echo\"], \"service\": \"echo\"}]}";
  /* The filter needs the gateway, which exists only after the options: its
   * user pointer is this slot, filled in before the gateway starts. */
  static portico_gateway* slot = NULL;
  portico_gateway_options* o = NULL;
  struct runner runner;
  pthread_t thread;
  http_response r;
  uint16_t port = 0;
  int i;
  const struct timespec tick = {0, 10000000};

  CHECK_OK(portico_gateway_options_new(&o));
  CHECK_OK(portico_gateway_options_add_handler(o, S("echo"), echo_handler, NULL));
  CHECK_OK(portico_gateway_options_add_filter(o, S("stop"), 0, stop_filter, NULL, &slot));
  CHECK_OK(portico_gateway_new(&slot, S(kStopConfig), o));
  portico_gateway_options_free(o);
  runner.gateway = slot;
  runner.status = -1;
  CHECK(pthread_create(&thread, NULL, run_gateway, &runner) == 0);
  /* Wait (bounded) until run() has started the listeners. */
  for (i = 0; i < 500 && portico_gateway_port(slot, 0, &port) != PORTICO_OK; ++i)
    nanosleep(&tick, NULL);
  CHECK(port != 0);
  CHECK(http_request(port, "GET", "/echo", "", "", &r) == 0);
  CHECK(r.status == 200);
  CHECK(http_request(port, "GET", "/stop", "", "", &r) == 0);
  CHECK(r.status == 202);
  CHECK(pthread_join(thread, NULL) == 0);
  CHECK(runner.status == PORTICO_OK);
  CHECK(http_request(port, "GET", "/echo", "", "", &r) != 0);
  CHECK_STATUS(PORTICO_ERR_STATE, portico_gateway_run(slot));
  portico_gateway_free(slot);
}

int main(void) {
  test_serving();
  test_run_and_request_stop();
  return check_report("capi gateway");
}
