/* Checks that the llhttp subproject builds Debian's generated sources into a
 * working parser: a request is parsed in strict mode and its parts arrive. */
#include <llhttp.h>
#include <stdio.h>
#include <string.h>

static char url[64];
static size_t url_len;
static int complete;

static int on_url(llhttp_t* p, const char* at, size_t len) {
  (void)p;
  if (url_len + len >= sizeof url) return -1;
  memcpy(url + url_len, at, len);
  url_len += len;
  return 0;
}

static int on_complete(llhttp_t* p) {
  (void)p;
  complete = 1;
  return 0;
}

int main(void) {
  llhttp_settings_t settings;
  llhttp_settings_init(&settings);
  settings.on_url = on_url;
  settings.on_message_complete = on_complete;
  llhttp_t parser;
  llhttp_init(&parser, HTTP_REQUEST, &settings);

  const char good[] = "GET /api/orders?id=7 HTTP/1.1\r\nHost: a\r\n\r\n";
  if (llhttp_execute(&parser, good, sizeof good - 1) != HPE_OK) {
    fprintf(stderr, "valid request rejected: %s\n", llhttp_errno_name(llhttp_get_errno(&parser)));
    return 1;
  }
  if (!complete || parser.method != HTTP_GET || strcmp(url, "/api/orders?id=7") != 0) {
    fprintf(stderr, "parsed wrong: complete=%d method=%d url=%s\n", complete, parser.method, url);
    return 1;
  }

  /* Strict mode: a bare LF line ending must be refused. */
  llhttp_init(&parser, HTTP_REQUEST, &settings);
  const char bad[] = "GET / HTTP/1.1\nHost: a\n\n";
  if (llhttp_execute(&parser, bad, sizeof bad - 1) == HPE_OK) {
    fprintf(stderr, "bare LF accepted\n");
    return 1;
  }
  puts("llhttp glue: 2 passed, 0 failed");
  return 0;
}
