// Every policy answers errors in one JSON shape:
//   {"error": "<message>", "request_id": "<id>"}
// so clients and dashboards parse one format whatever refused the request.
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "portico/filter.hpp"
#include "portico/http.hpp"

namespace portico::detail {

// Answers `status` with the JSON error body (Content-Type application/json)
// and any extra headers; the filter then returns FilterStatus::respond.
void respond_error(proxy::RequestContext& ctx, int status, std::string_view message,
                   std::span<const http::Header> headers = {});

// Appends {"error":"<message>","request_id":"<id>"} and a newline to
// `out`. The id is the X-Request-ID the request-id policy set when it ran
// (RequestState::request_id), else the proxy's number for the request.
void append_error_json(std::string& out, const proxy::RequestContext& ctx,
                       std::string_view message);

// The proxy's own errors (no route, an upstream that refused...) in the
// same shape: a proxy::ErrorFormatter that returns "application/json".
std::string_view format_proxy_error(const proxy::RequestContext& ctx, int status,
                                    std::string_view cause, std::string& body);

// Appends `text` as a JSON string body (without quotes), escaping quotes,
// backslashes and control characters.
void append_json_escaped(std::string& out, std::string_view text);

}  // namespace portico::detail
