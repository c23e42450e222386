// The "request-id" plugin's JSON config (docs/policies.md).
#include "../option_error.hpp"
#include "../registry.hpp"
#include "portico/filters/request_id.hpp"

namespace portico::detail {

std::shared_ptr<proxy::Filter> build_request_id(JsonObject& config, const PluginEnv&) {
  const std::size_t problems_before = config.problems().size();
  filters::RequestIdOptions o;
  o.header = config.string("header", o.header);
  o.trust_incoming = config.boolean("trust_incoming", o.trust_incoming);
  o.max_length = static_cast<std::size_t>(config.integer("max_length", 128, 1, 1024));
  o.echo_on_response = config.boolean("echo_on_response", o.echo_on_response);
  o.trace_context = config.boolean("trace_context", o.trace_context);
  o.trust_incoming_trace = config.boolean("trust_incoming_trace", o.trust_incoming_trace);
  o.sample_new_traces = config.boolean("sample_new_traces", o.sample_new_traces);
  config.finish();
  if (config.problems().size() != problems_before) return nullptr;
  auto filter = filters::make_request_id(std::move(o));
  if (!filter) {
    report_option_error(config, filter.error());
    return nullptr;
  }
  return std::move(*filter);
}

}  // namespace portico::detail
