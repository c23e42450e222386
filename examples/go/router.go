package portico

/*
#include "portico.h"

// One lookup in one C call, its outcome returned by value: no Go pointer
// crosses and nothing is allocated on the Go side.
typedef struct {
  portico_status status;
  int32_t result;
  uint32_t route;
  size_t params;
} portico_go_match;

static portico_go_match portico_go_router_match(const portico_router* router, portico_match* m,
                                                const char* method, size_t method_len,
                                                const char* host, size_t host_len,
                                                const char* path, size_t path_len) {
  portico_go_match out = {0, 0, 0, 0};
  out.status = portico_router_match(router, m, method, method_len, host, host_len, path, path_len);
  if (out.status == PORTICO_OK) out.status = portico_match_result(m, &out.result);
  if (out.status == PORTICO_OK && out.result == PORTICO_MATCH_FOUND) {
    out.status = portico_match_route(m, &out.route);
    if (out.status == PORTICO_OK) out.status = portico_match_param_count(m, &out.params);
  }
  return out;
}

typedef struct {
  portico_status status;
  const char* name;
  size_t name_len;
  const char* value;
  size_t value_len;
} portico_go_param;

static portico_go_param portico_go_match_param(const portico_match* m, size_t i) {
  portico_go_param p = {0, NULL, 0, NULL, 0};
  p.status = portico_match_param(m, i, &p.name, &p.name_len, &p.value, &p.value_len);
  return p;
}
*/
import "C"

import (
	"runtime"
	"strings"
	"sync"
)

// Router is the route table (docs/router.md): method, host and path pattern
// ("/users/{id}", "/static/{*rest}") to a route id and captured parameters.
// Safe for concurrent use; matches run in parallel, an Add waits for them.
type Router struct {
	mu sync.RWMutex
	p  *C.portico_router
}

// Route is one entry of a Router.
type Route struct {
	Name    string   // for error messages; empty to derive one from the pattern
	Methods []string // "GET", "POST"...; none for any method
	Host    string   // "", "*", "api.example.com" or "*.example.com"
	Path    string   // the pattern
}

// MatchResult says whether a lookup found a route.
type MatchResult int32

// The results of Router.Match.
const (
	Found            MatchResult = C.PORTICO_MATCH_FOUND
	NotFound         MatchResult = C.PORTICO_MATCH_NOT_FOUND          // answer 404
	MethodNotAllowed MatchResult = C.PORTICO_MATCH_METHOD_NOT_ALLOWED // answer 405
)

func (r MatchResult) String() string {
	switch r {
	case Found:
		return "found"
	case NotFound:
		return "not found"
	case MethodNotAllowed:
		return "method not allowed"
	}
	return "unknown"
}

// Param is a parameter captured by a route pattern. The unnamed catch-all
// ("/**") is named "*".
type Param struct {
	Name, Value string
}

// Match is the outcome of one lookup.
type Match struct {
	Result MatchResult
	Route  int // the id Add returned; -1 unless Result is Found
	Params []Param
}

// Param returns the value captured for name.
func (m Match) Param(name string) (string, bool) {
	for _, p := range m.Params {
		if p.Name == name {
			return p.Value, true
		}
	}
	return "", false
}

// NewRouter makes an empty router. Close it when done.
func NewRouter() (*Router, error) {
	var p *C.portico_router
	if err := call("portico.NewRouter", func() C.portico_status { return C.portico_router_new(&p) }); err != nil {
		return nil, err
	}
	r := &Router{p: p}
	runtime.SetFinalizer(r, (*Router).Close)
	return r, nil
}

// Close frees the router. Later calls return ErrInvalidHandle; a second
// Close does nothing.
func (r *Router) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.p != nil {
		C.portico_router_free(r.p)
		r.p = nil
		runtime.SetFinalizer(r, nil)
	}
	return nil
}

// Add adds a route and returns its id, counting up from 0 in insertion
// order. Errors: ErrMalformed (pattern), ErrInvalidArgument (unknown
// method), ErrConflict (the same place as another route).
func (r *Router) Add(route Route) (int, error) {
	const op = "portico.Router.Add"
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.p == nil {
		return -1, closedError(op)
	}
	name, nameLen := cstr(route.Name)
	methods, methodsLen := cstr(strings.Join(route.Methods, ","))
	host, hostLen := cstr(route.Host)
	path, pathLen := cstr(route.Path)
	var id C.uint32_t
	err := call(op, func() C.portico_status {
		return C.portico_router_add(r.p, name, nameLen, methods, methodsLen, host, hostLen, path, pathLen, &id)
	})
	if err != nil {
		return -1, err
	}
	return int(id), nil
}

// Len is the number of routes.
func (r *Router) Len() (int, error) {
	const op = "portico.Router.Len"
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.p == nil {
		return 0, closedError(op)
	}
	var n C.size_t
	if err := call(op, func() C.portico_status { return C.portico_router_size(r.p, &n) }); err != nil {
		return 0, err
	}
	return int(n), nil
}

// matchBuf is a C lookup result, pooled so that a lookup allocates nothing
// in C. One that the pool drops is freed by its finalizer.
type matchBuf struct{ p *C.portico_match }

var matchPool = sync.Pool{New: func() any {
	var p *C.portico_match
	if C.portico_match_new(&p) != C.PORTICO_OK {
		return nil
	}
	m := &matchBuf{p: p}
	runtime.SetFinalizer(m, func(m *matchBuf) { C.portico_match_free(m.p) })
	return m
}}

// Match looks a request up. path is the request path without its query; it
// is normalised first ("/a/./b" finds "/a/b"). A path that fits no route is
// not an error: the Match says NotFound or MethodNotAllowed.
func (r *Router) Match(method, host, path string) (Match, error) {
	const op = "portico.Router.Match"
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.p == nil {
		return Match{Route: -1}, closedError(op)
	}
	buf, _ := matchPool.Get().(*matchBuf)
	if buf == nil {
		return Match{Route: -1}, &Error{Op: op, Status: ErrNoMemory, Message: "no memory for a match"}
	}
	defer matchPool.Put(buf)
	m, err := r.lookup(op, buf.p, method, host, path)
	if err != nil {
		return Match{Route: -1}, err
	}
	return m, nil
}

func (r *Router) lookup(op string, m *C.portico_match, method, host, path string) (Match, error) {
	mp, ml := cstr(method)
	hp, hl := cstr(host)
	pp, pl := cstr(path)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	found := C.portico_go_router_match(r.p, m, mp, ml, hp, hl, pp, pl)
	out := Match{Result: MatchResult(found.result), Route: -1}
	if err := statusError(op, found.status); err != nil || out.Result != Found {
		return out, err
	}
	out.Route = int(found.route)
	if found.params > 0 {
		out.Params = make([]Param, found.params)
	}
	for i := range out.Params {
		p := C.portico_go_match_param(m, C.size_t(i))
		if err := statusError(op, p.status); err != nil {
			return out, err
		}
		out.Params[i] = Param{Name: gostr(p.name, p.name_len), Value: gostr(p.value, p.value_len)}
	}
	return out, nil
}
