/* A blocking HTTP/1.1 client for the gateway tests: one request per
 * connection (Connection: close), the whole response read until EOF, a
 * 5-second timeout on every socket call. Loopback only. */
#ifndef PORTICO_TESTS_CAPI_HTTP_CLIENT_H
#define PORTICO_TESTS_CAPI_HTTP_CLIENT_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

typedef struct http_response {
  int status;      /* 0: no response */
  char head[4096]; /* status line and headers, NUL-terminated */
  char body[4096]; /* NUL-terminated (truncated if longer) */
} http_response;

static inline void copy_truncated(char* to, size_t size, const char* from) {
  size_t n = strlen(from);
  if (n >= size) n = size - 1;
  memcpy(to, from, n);
  to[n] = '\0';
}

/* Sends `method path` with `extra_headers` ("Name: value\r\n"..., may be
 * "") and `body` to 127.0.0.1:port. Returns 0 when a response was read. */
static inline int http_request(uint16_t port, const char* method, const char* path,
                               const char* extra_headers, const char* body, http_response* out) {
  struct sockaddr_in addr;
  struct timeval timeout = {5, 0};
  char request[8192];
  char buffer[16384];
  size_t used = 0;
  ssize_t n;
  int fd, len;
  char* split;

  memset(out, 0, sizeof *out);
  fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr*)&addr, sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  len = snprintf(request, sizeof request,
                 "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s"
                 "Content-Length: %zu\r\n\r\n%s",
                 method, path, extra_headers, strlen(body), body);
  if (len < 0 || (size_t)len >= sizeof request || send(fd, request, (size_t)len, 0) != len) {
    close(fd);
    return -1;
  }
  while (used < sizeof buffer - 1 && (n = recv(fd, buffer + used, sizeof buffer - 1 - used, 0)) > 0)
    used += (size_t)n;
  close(fd);
  buffer[used] = '\0';
  split = strstr(buffer, "\r\n\r\n");
  if (split == NULL || strncmp(buffer, "HTTP/1.1 ", 9) != 0) return -1;
  *split = '\0';
  copy_truncated(out->head, sizeof out->head, buffer);
  copy_truncated(out->body, sizeof out->body, split + 4);
  out->status = atoi(buffer + 9);
  return 0;
}

/* The value of response header `name` (exact case as sent by Portico:
 * lower-case compare), copied into `value`; 0 when found. */
static inline int http_header(const http_response* r, const char* name, char* value, size_t size) {
  const char* p = r->head;
  size_t name_len = strlen(name);
  while ((p = strstr(p, "\r\n")) != NULL) {
    size_t i;
    int same = 1;
    p += 2;
    for (i = 0; i < name_len; ++i) {
      char a = p[i], b = name[i];
      if (a >= 'A' && a <= 'Z') a = (char)(a - 'A' + 'a');
      if (b >= 'A' && b <= 'Z') b = (char)(b - 'A' + 'a');
      if (a != b || a == '\0') {
        same = 0;
        break;
      }
    }
    if (same && p[name_len] == ':') {
      const char* v = p + name_len + 1;
      const char* end = strstr(v, "\r\n");
      size_t n = end != NULL ? (size_t)(end - v) : strlen(v);
      while (n > 0 && *v == ' ') {
        ++v;
        --n;
      }
      if (n >= size) n = size - 1;
      memcpy(value, v, n);
      value[n] = '\0';
      return 0;
    }
  }
  return -1;
}

#endif
