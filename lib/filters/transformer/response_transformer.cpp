// response-transformer: the header rules on the response, and top-level
// member edits of JSON bodies small enough to buffer.
#include "portico/filters/response_transformer.hpp"

#include <charconv>

#include "../../common/ascii.hpp"
#include "../../http/fields.hpp"
#include "header_ops.hpp"
#include "json_fields.hpp"

namespace portico::filters {

namespace {

constexpr std::size_t kMaxBodyBytes = std::size_t{64} << 20;

bool is_json_media_type(std::string_view content_type) {
  std::string_view type = detail::trim_ows(content_type.substr(0, content_type.find(';')));
  if (detail::ascii_iequals(type, "application/json")) return true;
  return type.size() > 5 && detail::ascii_iequals(type.substr(type.size() - 5), "+json") &&
         type.find('/') != std::string_view::npos;
}

class ResponseTransformer final : public proxy::Filter {
 public:
  ResponseTransformer(ResponseTransformerOptions options, detail::HeaderOps ops)
      : options_(std::move(options)),
        ops_(std::move(ops)),
        edits_body_(!options_.remove_json.empty() || !options_.rename_json.empty()) {}

  std::string_view name() const noexcept override { return "response-transformer"; }

  proxy::FilterStatus on_response_headers(proxy::RequestContext& ctx) override {
    detail::apply_header_ops(ops_, ctx, detail::HeaderSide::response);
    if (edits_body_ && body_editable(ctx)) ctx.buffer_response_body();
    return proxy::FilterStatus::next;
  }

  proxy::FilterStatus on_response_body(proxy::RequestContext& ctx, std::string_view body) override {
    if (!edits_body_ || body.size() > options_.max_body_bytes) return proxy::FilterStatus::next;
    if (auto edited = detail::edit_json_members(body, options_.remove_json, options_.rename_json))
      ctx.replace_body(*edited);
    return proxy::FilterStatus::next;
  }

 private:
  // Only a body known in advance to be small JSON in plain form is
  // buffered: buffering a chunked body could fail a response that would
  // otherwise stream through (see the header).
  bool body_editable(const proxy::RequestContext& ctx) const {
    if (ctx.request().method == "HEAD") return false;
    const int status = ctx.response_status();
    if (status < 200 || status == 204 || status == 304) return false;
    const auto type = ctx.response_header("content-type");
    if (!type || !is_json_media_type(*type)) return false;
    const auto encoding = ctx.response_header("content-encoding");
    if (encoding && !detail::ascii_iequals(detail::trim_ows(*encoding), "identity")) return false;
    const auto length = ctx.response_header("content-length");
    if (!length) return false;
    const auto size = detail::parse_content_length(*length);
    return size && *size <= options_.max_body_bytes;
  }

  const ResponseTransformerOptions options_;
  const detail::HeaderOps ops_;
  const bool edits_body_;
};

Status check_members(const ResponseTransformerOptions& o) {
  for (std::size_t i = 0; i < o.remove_json.size(); ++i) {
    if (o.remove_json[i].empty())
      return make_error(ErrorKind::invalid_argument,
                        "remove_json[" + std::to_string(i) + "]: an empty member name");
  }
  for (std::size_t i = 0; i < o.rename_json.size(); ++i) {
    const Rename& r = o.rename_json[i];
    const std::string at = "rename_json[" + std::to_string(i) + "]";
    if (r.from.empty() || r.to.empty())
      return make_error(ErrorKind::invalid_argument, at + ": an empty member name");
    for (std::size_t j = 0; j < i; ++j) {
      if (o.rename_json[j].from == r.from || o.rename_json[j].to == r.to)
        return make_error(ErrorKind::invalid_argument,
                          at + ": \"" + r.from + "\" -> \"" + r.to +
                              "\" repeats the source or target of an earlier rename");
    }
  }
  return {};
}

}  // namespace

Result<std::shared_ptr<proxy::Filter>> make_response_transformer(
    ResponseTransformerOptions options) {
  auto ops = detail::compile_header_ops(options.headers, "headers");
  if (!ops) return std::move(ops).error();
  if (Status s = check_members(options); !s) return std::move(s).error();
  if (options.max_body_bytes < 1 || options.max_body_bytes > kMaxBodyBytes)
    return make_error(
        ErrorKind::invalid_argument,
        "max_body_bytes: expected 1 to 67108864, found " + std::to_string(options.max_body_bytes));
  return std::shared_ptr<proxy::Filter>(
      std::make_shared<ResponseTransformer>(std::move(options), std::move(*ops)));
}

}  // namespace portico::filters
