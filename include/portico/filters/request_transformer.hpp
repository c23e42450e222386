// request-transformer: edits the headers of the request sent upstream, with
// values drawn from the request's identity, claims, route and trace
// (header_transforms.hpp has the rules and the template syntax).
//
// A typical use maps an identity to upstream headers after authentication:
// remove the client's X-User-Id, then add X-User-Id: $(claims.sub).
//
// Threading: immutable; may be shared by every worker. Rendering uses the
// request's arena, not the heap.
#pragma once

#include <memory>

#include "portico/export.hpp"
#include "portico/filter.hpp"
#include "portico/filters/header_transforms.hpp"
#include "portico/result.hpp"

namespace portico::filters {

struct RequestTransformerOptions {
  HeaderTransforms headers;
};

// Fails with invalid_argument naming the field ("headers.add[1]: ..."): a
// name that is not a token or is managed by the proxy, a template with an
// unknown reference or an unclosed "$(".
PORTICO_API Result<std::shared_ptr<proxy::Filter>> make_request_transformer(
    RequestTransformerOptions options);

}  // namespace portico::filters
