// Every policy answers errors in one JSON shape:
//   {"error": "<message>", "request_id": "<id>"}
// so clients and dashboards parse one format whatever refused the request.
#pragma once

#include <span>
#include <string_view>

#include "portico/filter.hpp"
#include "portico/http.hpp"

namespace portico::detail {

// Answers `status` with the JSON error body (Content-Type application/json)
// and any extra headers; the filter then returns FilterStatus::respond.
void respond_error(proxy::RequestContext& ctx, int status, std::string_view message,
                   std::span<const http::Header> headers = {});

// Appends `text` as a JSON string body (without quotes), escaping quotes,
// backslashes and control characters.
void append_json_escaped(std::string& out, std::string_view text);

}  // namespace portico::detail
