#include "error_response.hpp"

#include <array>
#include <charconv>
#include <cstdio>
#include <string>

#include "portico/filters/request_state.hpp"

namespace portico::detail {

void append_json_escaped(std::string& out, std::string_view text) {
  for (unsigned char ch : text) {
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += static_cast<char>(ch);
    } else if (ch < 0x20) {
      char esc[8];
      std::snprintf(esc, sizeof esc, "\\u%04x", ch);
      out += esc;
    } else {
      out += static_cast<char>(ch);
    }
  }
}

void append_error_json(std::string& out, const proxy::RequestContext& ctx,
                       std::string_view message) {
  out += "{\"error\":\"";
  append_json_escaped(out, message);
  out += "\",\"request_id\":\"";
  const filters::RequestState* state = filters::find_request_state(ctx);
  if (state != nullptr && !state->request_id.empty()) {
    append_json_escaped(out, state->request_id);
  } else {
    char digits[24];
    const auto end = std::to_chars(digits, digits + sizeof digits, ctx.request_id()).ptr;
    out.append(digits, end);
  }
  out += "\"}\n";
}

std::string_view format_proxy_error(const proxy::RequestContext& ctx, int /*status*/,
                                    std::string_view cause, std::string& body) {
  append_error_json(body, ctx, cause);
  return "application/json";
}

void respond_error(proxy::RequestContext& ctx, int status, std::string_view message,
                   std::span<const http::Header> headers) {
  std::string body;
  append_error_json(body, ctx, message);
  // The caller's headers first, then the content type, in one list.
  std::array<http::Header, 16> all;
  std::size_t n = 0;
  for (const auto& h : headers)
    if (n + 1 < all.size()) all[n++] = h;
  all[n++] = http::Header{"Content-Type", "application/json"};
  ctx.respond(status, body, std::span<const http::Header>(all.data(), n));
}

}  // namespace portico::detail
