// response-transformer: edits the headers of responses (to strip internal
// ones such as X-Internal-Trace-Id, or add values drawn from the request),
// and removes or renames top-level members of JSON response bodies
// (header_transforms.hpp has the header rules and the template syntax).
//
// Body edits apply only to a response that is one JSON object, says so
// (Content-Type application/json or a +json type), is not content-encoded,
// and announces a Content-Length of at most max_body_bytes: such a body is
// buffered whole, edited, and sent with its new length. Every other response
// streams through unchanged: a chunked body (its size is unknown until the
// end, and buffering it could fail a response that would otherwise pass),
// a larger one, a compressed one, or one that is not valid JSON. Members
// keep their text exactly (numbers are not re-encoded), but whitespace
// between top-level members is not kept. max_body_bytes must not exceed the
// route's max_body_bytes (8 MiB by default), the most a filter may buffer.
//
// Renaming onto a name that is already present replaces that member, so
// the result never holds the name twice.
//
// Threading: immutable; may be shared by every worker.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "portico/export.hpp"
#include "portico/filter.hpp"
#include "portico/filters/header_transforms.hpp"
#include "portico/result.hpp"

namespace portico::filters {

struct ResponseTransformerOptions {
  HeaderTransforms headers;
  // Top-level members of JSON bodies to drop ("internal_metadata").
  std::vector<std::string> remove_json;
  // Top-level members of JSON bodies to rename.
  std::vector<Rename> rename_json;
  // The largest body edited, 1 .. 64 MiB.
  std::size_t max_body_bytes = 1 << 20;
};

// Fails with invalid_argument naming the field: as make_request_transformer
// for the headers, an empty JSON member name, max_body_bytes out of range.
PORTICO_API Result<std::shared_ptr<proxy::Filter>> make_response_transformer(
    ResponseTransformerOptions options);

}  // namespace portico::filters
