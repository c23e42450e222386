// Header edits shared by request-transformer and response-transformer.
//
// Applied in this order, each step seeing the result of the previous ones:
//   remove   drop every field of these names;
//   rename   move a present field to a new name (its value kept);
//   replace  change the value of a present field (absent: nothing);
//   add      set a field that is absent (present: nothing);
//   append   add a field whether or not one is present.
// To force a value whatever the client or upstream sent, list the name
// under `remove` and under `add`.
//
// Values are templates: "$(ref)" is replaced by a value of the request:
//   $(claims.<path>)      a verified JWT claim (a string as is, an array of
//                         strings joined with ",", other values as JSON)
//   $(consumer.id) $(consumer.plan) $(credential)
//   $(route.name) $(route.param.<name>)
//   $(request_id) $(trace_id) $(span_id) $(client_ip)
//   $(headers.<name>)     a header of the client's request
// A "$" not followed by "(" is literal. When a reference has no value (an
// anonymous request, a missing claim), the field is not set at all, rather
// than set to an empty or partial value; a rendered value longer than 8 KiB
// or holding control characters is dropped the same way.
//
// Names are field-name tokens; the fields the proxy manages (Host,
// Content-Length, Transfer-Encoding, Connection and the other hop-by-hop
// fields) cannot be edited.
#pragma once

#include <string>
#include <vector>

namespace portico::filters {

struct NameValue {
  std::string name;
  std::string value;  // a template
};

struct Rename {
  std::string from;
  std::string to;
};

struct HeaderTransforms {
  std::vector<std::string> remove;
  std::vector<Rename> rename;
  std::vector<NameValue> replace;
  std::vector<NameValue> add;
  std::vector<NameValue> append;
};

}  // namespace portico::filters
