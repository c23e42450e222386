package portico

/*
#include <stdlib.h>
#include "portico.h"

// One borrowed view and the status of the getter that gave it, returned by
// value: reading a request then passes no Go pointer to C and allocates
// nothing.
typedef struct {
  portico_status status;
  const char* p;
  size_t n;
} portico_go_view;

enum {
  PORTICO_GO_METHOD,
  PORTICO_GO_PATH,
  PORTICO_GO_QUERY,
  PORTICO_GO_HEADER,
  PORTICO_GO_CLIENT_ADDRESS,
  PORTICO_GO_PARAM,
  PORTICO_GO_CLAIMS,
  PORTICO_GO_CONSUMER,
  PORTICO_GO_PLUGIN_CONFIG,
  PORTICO_GO_BODY,
  PORTICO_GO_RESPONSE_HEADER
};

static portico_go_view portico_go_request_view(const portico_request* r, int what,
                                               const char* name, size_t name_len) {
  portico_go_view v = {PORTICO_ERR_INVALID_ARGUMENT, NULL, 0};
  switch (what) {
    case PORTICO_GO_METHOD: v.status = portico_request_method(r, &v.p, &v.n); break;
    case PORTICO_GO_PATH: v.status = portico_request_path(r, &v.p, &v.n); break;
    case PORTICO_GO_QUERY: v.status = portico_request_query(r, &v.p, &v.n); break;
    case PORTICO_GO_HEADER: v.status = portico_request_header(r, name, name_len, &v.p, &v.n); break;
    case PORTICO_GO_CLIENT_ADDRESS: v.status = portico_request_client_address(r, &v.p, &v.n); break;
    case PORTICO_GO_PARAM: v.status = portico_request_param(r, name, name_len, &v.p, &v.n); break;
    case PORTICO_GO_CLAIMS: v.status = portico_request_claims(r, &v.p, &v.n); break;
    case PORTICO_GO_CONSUMER: v.status = portico_request_consumer(r, &v.p, &v.n); break;
    case PORTICO_GO_PLUGIN_CONFIG: v.status = portico_request_plugin_config(r, &v.p, &v.n); break;
    case PORTICO_GO_BODY: v.status = portico_request_body(r, &v.p, &v.n); break;
    case PORTICO_GO_RESPONSE_HEADER:
      v.status = portico_request_response_header(r, name, name_len, &v.p, &v.n);
      break;
  }
  return v;
}

typedef struct {
  portico_status status;
  const char* name;
  size_t name_len;
  const char* value;
  size_t value_len;
} portico_go_header_view;

static portico_go_header_view portico_go_request_header_at(const portico_request* r, size_t i) {
  portico_go_header_view h = {0, NULL, 0, NULL, 0};
  h.status = portico_request_header_at(r, i, &h.name, &h.name_len, &h.value, &h.value_len);
  return h;
}

typedef struct {
  portico_status status;
  size_t count;
} portico_go_count;

static portico_go_count portico_go_request_header_count(const portico_request* r) {
  portico_go_count c = {0, 0};
  c.status = portico_request_header_count(r, &c.count);
  return c;
}

typedef struct {
  portico_status status;
  int32_t value;
} portico_go_int;

static portico_go_int portico_go_request_response_status(const portico_request* r) {
  portico_go_int s = {0, 0};
  s.status = portico_request_response_status(r, &s.value);
  return s;
}

// Answers with `count` headers whose names and values lie end to end in
// `text`, their lengths in `lens` (name, value, name, value...): Go cannot
// hand C an array of pointers into Go memory, so the array is built here.
static portico_status portico_go_respond(portico_request* r, int32_t status, const char* text,
                                         const size_t* lens, size_t count, const char* body,
                                         size_t body_len) {
  portico_header on_stack[16];
  portico_header* headers = on_stack;
  if (count > 16) {
    headers = malloc(count * sizeof *headers);
    if (headers == NULL) return PORTICO_ERR_NO_MEMORY;
  }
  const char* at = text;
  for (size_t i = 0; i < count; i++) {
    headers[i].name = at;
    headers[i].name_len = lens[2 * i];
    at += lens[2 * i];
    headers[i].value = at;
    headers[i].value_len = lens[2 * i + 1];
    at += lens[2 * i + 1];
  }
  portico_status s = portico_request_respond(r, status, headers, count, body, body_len);
  if (headers != on_stack) free(headers);
  return s;
}
*/
import "C"

import (
	"encoding/json"
	"sync/atomic"
	"unsafe"
)

// Request is one request as a filter or a handler sees it. It is valid only
// during the callback that received it and only on the callback's
// goroutine: afterwards its getters return zero values and its edits
// ErrInvalidHandle. Getters return copies, which may be kept.
type Request struct {
	// nil once the callback returned. Atomic, since a request kept past its
	// callback may be read from any goroutine.
	p atomic.Pointer[C.portico_request]
}

// Header is one header field.
type Header struct {
	Name, Value string
}

func (r *Request) view(what C.int, name string) (string, bool) {
	p := r.p.Load()
	if p == nil {
		return "", false
	}
	np, nl := cstr(name)
	v := C.portico_go_request_view(p, what, np, nl)
	if v.status != C.PORTICO_OK {
		return "", false
	}
	return gostr(v.p, v.n), true
}

func (r *Request) viewBytes(what C.int) ([]byte, bool) {
	p := r.p.Load()
	if p == nil {
		return nil, false
	}
	v := C.portico_go_request_view(p, what, nil, 0)
	if v.status != C.PORTICO_OK {
		return nil, false
	}
	return C.GoBytes(unsafe.Pointer(v.p), C.int(v.n)), true
}

// Method is the request method ("GET").
func (r *Request) Method() string { s, _ := r.view(C.PORTICO_GO_METHOD, ""); return s }

// Path is the normalised path without the query (the original, not a
// rewrite).
func (r *Request) Path() string { s, _ := r.view(C.PORTICO_GO_PATH, ""); return s }

// Query is the raw query without '?'; "" when none.
func (r *Request) Query() string { s, _ := r.view(C.PORTICO_GO_QUERY, ""); return s }

// Header is the first header of that name (case-insensitive), with the
// edits of earlier filters applied.
func (r *Request) Header(name string) (string, bool) { return r.view(C.PORTICO_GO_HEADER, name) }

// Headers are the headers as received (edits not applied), in arrival order.
func (r *Request) Headers() []Header {
	p := r.p.Load()
	if p == nil {
		return nil
	}
	count := C.portico_go_request_header_count(p)
	if count.status != C.PORTICO_OK {
		return nil
	}
	headers := make([]Header, 0, int(count.count))
	for i := C.size_t(0); i < count.count; i++ {
		h := C.portico_go_request_header_at(p, i)
		if h.status != C.PORTICO_OK {
			break
		}
		headers = append(headers, Header{Name: gostr(h.name, h.name_len), Value: gostr(h.value, h.value_len)})
	}
	return headers
}

// ClientAddress is the client's address ("127.0.0.1"); "" in a handler.
func (r *Request) ClientAddress() string {
	s, _ := r.view(C.PORTICO_GO_CLIENT_ADDRESS, "")
	return s
}

// Param is a path parameter of the matched route ("{id}"), in filters and
// handlers.
func (r *Request) Param(name string) (string, bool) { return r.view(C.PORTICO_GO_PARAM, name) }

// Claims are the claims of the JWT that the jwt-auth policy verified for
// this request; false when none was (and in a handler).
func (r *Request) Claims() (json.RawMessage, bool) {
	b, ok := r.viewBytes(C.PORTICO_GO_CLAIMS)
	return json.RawMessage(b), ok
}

// Consumer is the consumer an authentication policy resolved.
func (r *Request) Consumer() (string, bool) { return r.view(C.PORTICO_GO_CONSUMER, "") }

// PluginConfig is the "config" object of the plugin entry this filter
// instance was built from ("{}" when the entry had none). Filters only.
func (r *Request) PluginConfig() json.RawMessage {
	b, _ := r.viewBytes(C.PORTICO_GO_PLUGIN_CONFIG)
	return json.RawMessage(b)
}

// Body is the request body. Handlers only: filters see no body.
func (r *Request) Body() []byte { b, _ := r.viewBytes(C.PORTICO_GO_BODY); return b }

// ResponseStatus is the upstream's status (response phase only; else 0).
func (r *Request) ResponseStatus() int {
	p := r.p.Load()
	if p == nil {
		return 0
	}
	s := C.portico_go_request_response_status(p)
	if s.status != C.PORTICO_OK {
		return 0
	}
	return int(s.value)
}

// ResponseHeader is a header of the response (response phase only).
func (r *Request) ResponseHeader(name string) (string, bool) {
	return r.view(C.PORTICO_GO_RESPONSE_HEADER, name)
}

// edit runs one editing call on a live request.
func (r *Request) edit(op string, f func(p *C.portico_request) C.portico_status) error {
	p := r.p.Load()
	if p == nil {
		return &Error{Op: op, Status: ErrInvalidHandle, Message: "request used after its callback returned"}
	}
	return call(op, func() C.portico_status { return f(p) })
}

// SetHeader sets a header of the request sent upstream (request phase).
// Hop-by-hop and framing headers, and values holding CR, LF or NUL, are
// refused with ErrInvalidArgument.
func (r *Request) SetHeader(name, value string) error {
	np, nl := cstr(name)
	vp, vl := cstr(value)
	return r.edit("portico.Request.SetHeader", func(p *C.portico_request) C.portico_status {
		return C.portico_request_set_header(p, np, nl, vp, vl)
	})
}

// RemoveHeader removes a header of the request sent upstream.
func (r *Request) RemoveHeader(name string) error {
	np, nl := cstr(name)
	return r.edit("portico.Request.RemoveHeader", func(p *C.portico_request) C.portico_status {
		return C.portico_request_remove_header(p, np, nl)
	})
}

// SetPath replaces the path and query sent upstream ("/v2/items?id=3").
func (r *Request) SetPath(pathAndQuery string) error {
	pp, pl := cstr(pathAndQuery)
	return r.edit("portico.Request.SetPath", func(p *C.portico_request) C.portico_status {
		return C.portico_request_set_path(p, pp, pl)
	})
}

// SetResponseStatus replaces the status the client gets (response phase;
// 200..599, else ErrInvalidArgument).
func (r *Request) SetResponseStatus(status int) error {
	s := C.int32_t(0) // refused by the library, as is anything out of range
	if status >= 0 && status <= 999 {
		s = C.int32_t(status)
	}
	return r.edit("portico.Request.SetResponseStatus", func(p *C.portico_request) C.portico_status {
		return C.portico_request_set_response_status(p, s)
	})
}

// SetResponseHeader sets a header of the response (response phase).
func (r *Request) SetResponseHeader(name, value string) error {
	np, nl := cstr(name)
	vp, vl := cstr(value)
	return r.edit("portico.Request.SetResponseHeader", func(p *C.portico_request) C.portico_status {
		return C.portico_request_set_response_header(p, np, nl, vp, vl)
	})
}

// RemoveResponseHeader removes a header of the response (response phase).
func (r *Request) RemoveResponseHeader(name string) error {
	np, nl := cstr(name)
	return r.edit("portico.Request.RemoveResponseHeader", func(p *C.portico_request) C.portico_status {
		return C.portico_request_remove_response_header(p, np, nl)
	})
}

// Respond answers the request: from a filter's request phase (which then
// returns Respond) or from a handler. Status 100..599 (a handler:
// 200..599); Content-Length is added. Once per callback.
func (r *Request) Respond(status int, body []byte, headers ...Header) error {
	size := 0
	for _, h := range headers {
		size += len(h.Name) + len(h.Value)
	}
	text := make([]byte, 0, size)
	lens := make([]C.size_t, 0, 2*len(headers))
	for _, h := range headers {
		text = append(text, h.Name...)
		text = append(text, h.Value...)
		lens = append(lens, C.size_t(len(h.Name)), C.size_t(len(h.Value)))
	}
	tp, _ := cbytes(text)
	var lp *C.size_t
	if len(lens) > 0 {
		lp = &lens[0]
	}
	bp, bl := cbytes(body)
	if status < -1<<31 || status > 1<<31-1 {
		status = -1 // refused by the C side as out of range
	}
	return r.edit("portico.Request.Respond", func(p *C.portico_request) C.portico_status {
		return C.portico_go_respond(p, C.int32_t(status), tp, lp, C.size_t(len(headers)), bp, bl)
	})
}
