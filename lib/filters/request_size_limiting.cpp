#include "portico/filters/request_size_limiting.hpp"

#include <fmt/format.h>

#include "error_response.hpp"

namespace portico::filters {

namespace {

class RequestSizeLimiting final : public proxy::Filter {
 public:
  explicit RequestSizeLimiting(RequestSizeLimitingOptions options)
      : options_(options),
        too_large_(
            fmt::format("the request body is larger than {} bytes", options.max_body_bytes)) {}

  std::string_view name() const noexcept override { return "request-size-limiting"; }

  proxy::FilterStatus on_request_headers(proxy::RequestContext& ctx) override {
    const http::RequestHead& head = ctx.request();
    switch (head.framing) {
      case http::Framing::content_length:
        if (head.content_length > options_.max_body_bytes) return refuse(ctx, 413, too_large_);
        return proxy::FilterStatus::next;
      case http::Framing::chunked:
        if (options_.require_content_length)
          return refuse(ctx, 411, "the request body must have a Content-Length");
        ctx.buffer_request_body();
        return proxy::FilterStatus::next;
      default:
        return proxy::FilterStatus::next;
    }
  }

  proxy::FilterStatus on_request_body(proxy::RequestContext& ctx, std::string_view body) override {
    if (body.size() > options_.max_body_bytes) return refuse(ctx, 413, too_large_);
    return proxy::FilterStatus::next;
  }

 private:
  static proxy::FilterStatus refuse(proxy::RequestContext& ctx, int status,
                                    std::string_view message) {
    detail::respond_error(ctx, status, message);
    return proxy::FilterStatus::respond;
  }

  RequestSizeLimitingOptions options_;
  std::string too_large_;
};

}  // namespace

Result<std::shared_ptr<proxy::Filter>> make_request_size_limiting(
    RequestSizeLimitingOptions options) {
  if (options.max_body_bytes == 0)
    return make_error(ErrorKind::invalid_argument, "max_body_bytes: must be at least 1");
  return std::shared_ptr<proxy::Filter>(std::make_shared<RequestSizeLimiting>(options));
}

}  // namespace portico::filters
