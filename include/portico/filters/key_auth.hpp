// key-auth: API keys resolved to consumers (consumers.hpp).
//
// The key is read from one of `header_names` or `query_names`. A request
// that carries none is refused with 401 (or, with `anonymous`, goes on as
// that consumer); one whose key no consumer owns is refused with 401 too,
// with the same JSON error body and `WWW-Authenticate: Key realm="..."`. A
// request that carries more than one key (two headers, a header and a query
// parameter, a parameter given twice) is refused as well, so a proxy in
// front and the gateway can never read different keys.
//
// On success the consumer is recorded in the request's shared state
// (RequestState: consumer, plan, credential "key-auth") for the policies
// after it, and told to the upstream in the identity headers
// (X-Consumer-ID, X-Consumer-Plan; X-Anonymous-Consumer: true for the
// anonymous consumer). Those headers are removed from every client request
// first, so a client can never choose them. With `hide_credentials` (the
// default) the key is taken out of the request before it goes upstream: its
// header removed, its query parameter removed from the upstream target
// with every other parameter kept as sent.
//
// After another authentication policy that already resolved a consumer
// (jwt-auth first, say), a request without a key keeps that consumer; a key
// that is sent is still checked and, when valid, its consumer wins.
//
// Keys are compared as SHA-256 digests in constant time (Consumers); the
// key is never logged nor echoed.
//
// Threading: immutable; may be shared by every worker.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "portico/export.hpp"
#include "portico/filter.hpp"
#include "portico/filters/consumers.hpp"
#include "portico/result.hpp"

namespace portico::filters {

struct KeyAuthOptions {
  // Who the keys belong to. Required.
  std::shared_ptr<const Consumers> consumers;
  // Headers that may carry the key (names compared without regard to case).
  std::vector<std::string> header_names = {"X-API-Key"};
  // Query parameters that may carry the key (exact names; the value is
  // percent-decoded, '+' is kept as '+'). Empty: keys in URLs are not
  // accepted, the safer default (URLs end up in logs).
  std::vector<std::string> query_names;
  // The id of a consumer to use for requests that send no key; empty: such
  // requests are refused. A request with an invalid key is refused anyway.
  std::string anonymous;
  // Take the key out of the request before it goes upstream.
  bool hide_credentials = true;
  // The realm of the WWW-Authenticate challenge.
  std::string realm = "portico";
  // The identity headers set for the upstream (and removed from clients).
  std::string consumer_id_header = "X-Consumer-ID";
  std::string consumer_plan_header = "X-Consumer-Plan";
  std::string anonymous_header = "X-Anonymous-Consumer";
};

// Fails with invalid_argument naming the field: no consumers; no header
// or query name; a name that is not a header token (or an empty query
// name); an anonymous consumer that does not exist; a realm with quotes,
// backslashes or control characters.
PORTICO_API Result<std::shared_ptr<proxy::Filter>> make_key_auth(KeyAuthOptions options);

}  // namespace portico::filters
