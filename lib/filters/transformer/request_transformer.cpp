// request-transformer: the header rules on the request headed upstream.
#include "portico/filters/request_transformer.hpp"

#include "header_ops.hpp"

namespace portico::filters {

namespace {

class RequestTransformer final : public proxy::Filter {
 public:
  explicit RequestTransformer(detail::HeaderOps ops) : ops_(std::move(ops)) {}
  std::string_view name() const noexcept override { return "request-transformer"; }
  proxy::FilterStatus on_request_headers(proxy::RequestContext& ctx) override {
    detail::apply_header_ops(ops_, ctx, detail::HeaderSide::request);
    return proxy::FilterStatus::next;
  }

 private:
  const detail::HeaderOps ops_;
};

}  // namespace

Result<std::shared_ptr<proxy::Filter>> make_request_transformer(RequestTransformerOptions options) {
  auto ops = detail::compile_header_ops(options.headers, "headers");
  if (!ops) return std::move(ops).error();
  return std::shared_ptr<proxy::Filter>(std::make_shared<RequestTransformer>(std::move(*ops)));
}

}  // namespace portico::filters
