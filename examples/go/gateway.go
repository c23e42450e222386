package portico

/*
#include <stdint.h>
#include "portico.h"

// The Go side of the callbacks, in callbacks.go. `user` carries a
// runtime/cgo.Handle, never a Go pointer.
extern int32_t portico_go_filter(portico_request* request, uintptr_t user, int phase);
extern int32_t portico_go_handler(portico_request* request, uintptr_t user);
extern void portico_go_error(char* message, size_t len, uintptr_t user);

static int32_t portico_go_on_request(portico_request* request, void* user) {
  return portico_go_filter(request, (uintptr_t)user, 0);
}
static int32_t portico_go_on_response(portico_request* request, void* user) {
  return portico_go_filter(request, (uintptr_t)user, 1);
}
static int32_t portico_go_serve(portico_request* request, void* user) {
  return portico_go_handler(request, (uintptr_t)user);
}
static void portico_go_on_error(const char* message, size_t len, void* user) {
  portico_go_error((char*)message, len, (uintptr_t)user);
}

static portico_status portico_go_add_filter(portico_gateway_options* options, const char* name,
                                            size_t name_len, int32_t priority, int on_request,
                                            int on_response, uintptr_t user) {
  return portico_gateway_options_add_filter(options, name, name_len, priority,
                                            on_request ? portico_go_on_request : NULL,
                                            on_response ? portico_go_on_response : NULL,
                                            (void*)user);
}
static portico_status portico_go_add_handler(portico_gateway_options* options, const char* name,
                                             size_t name_len, uintptr_t user) {
  return portico_gateway_options_add_handler(options, name, name_len, portico_go_serve,
                                             (void*)user);
}
static portico_status portico_go_set_error_callback(portico_gateway_options* options,
                                                    uintptr_t user) {
  return portico_gateway_options_set_error_callback(options, portico_go_on_error, (void*)user);
}
*/
import "C"

import (
	"fmt"
	"os"
	"runtime/cgo"
	"sync"
	"time"
)

// Action is what a filter tells the gateway to do next.
type Action int32

// The actions of a FilterFunc.
const (
	Continue Action = C.PORTICO_FILTER_CONTINUE // go on with the next filter, then the upstream
	Respond  Action = C.PORTICO_FILTER_RESPOND  // answer with what Request.Respond set
)

// FilterFunc is one phase of a filter. It runs on a gateway worker thread,
// concurrently for different requests, so what it shares must be safe for
// concurrent use. A call that blocks stalls every connection of its worker:
// keep it short. It must not call the Gateway's methods except RequestStop.
// A panic is recovered and reported, and the request is answered 500.
type FilterFunc func(r *Request) Action

// HandlerFunc serves a route as its upstream: it must call r.Respond. Same
// thread rules as a FilterFunc; no response, or a panic, answers 500.
type HandlerFunc func(r *Request)

// Option configures NewGateway, NewGatewayFromFile and CheckConfig.
type Option func(*settings)

type settings struct {
	filters   []*filter
	handlers  []*handler
	ports     []portOverride
	adminPort *uint16
	onError   func(string)
}

type portOverride struct {
	listener int
	port     uint16
}

// filter and handler are what a callback's handle refers to.
type filter struct {
	name                  string
	priority              int32
	onRequest, onResponse FilterFunc
	report                *reporter
}

type handler struct {
	name   string
	serve  HandlerFunc
	report *reporter
}

// reporter hands the gateway's complaints about callbacks to the host.
type reporter struct {
	onError func(string)
}

func (r *reporter) report(message string) {
	if r == nil || r.onError == nil {
		fmt.Fprintln(os.Stderr, "portico:", message)
		return
	}
	defer func() {
		if v := recover(); v != nil {
			fmt.Fprintf(os.Stderr, "portico: %s (the error handler panicked: %v)\n", message, v)
		}
	}()
	r.onError(message)
}

// WithFilter registers a filter as a plugin named name, usable in every
// "plugins" list of the configuration like a built-in policy:
// {"name": "my-filter", "config": {...}}. Either phase may be nil, not
// both. priority orders it among the built-in policies (higher runs earlier
// in the request phase; the built-ins use 300..1000).
func WithFilter(name string, priority int32, onRequest, onResponse FilterFunc) Option {
	return func(s *settings) {
		s.filters = append(s.filters, &filter{name: name, priority: priority, onRequest: onRequest, onResponse: onResponse})
	}
}

// WithHandler registers an in-process handler: a service of the
// configuration that says {"name": "svc", "handler": name} is served by h,
// which sees the whole request body.
func WithHandler(name string, h HandlerFunc) Option {
	return func(s *settings) { s.handlers = append(s.handlers, &handler{name: name, serve: h}) }
}

// WithPort replaces the port of listener index (0: an ephemeral port, see
// Gateway.Port).
func WithPort(listener int, port uint16) Option {
	return func(s *settings) { s.ports = append(s.ports, portOverride{listener, port}) }
}

// WithAdminPort replaces the admin listener's port (0: ephemeral).
func WithAdminPort(port uint16) Option {
	return func(s *settings) { s.adminPort = &port }
}

// WithErrorHandler receives the gateway's reports of misbehaving callbacks
// (a panic, a bad Action, no response from a handler, a failed edit), each
// naming the filter or handler. It runs on worker threads, possibly
// concurrently, and must not block. Without one, reports go to standard error.
func WithErrorHandler(fn func(message string)) Option {
	return func(s *settings) { s.onError = fn }
}

// cOptions is a C options object and the handles its callbacks carry.
type cOptions struct {
	p       *C.portico_gateway_options
	handles []cgo.Handle
}

// release deletes the handles: only once no gateway built with them lives.
func (o *cOptions) release() {
	for _, h := range o.handles {
		h.Delete()
	}
	o.handles = nil
}

func (o *cOptions) free() {
	C.portico_gateway_options_free(o.p)
	o.p = nil
}

func buildOptions(op string, opts []Option) (*cOptions, error) {
	var s settings
	for _, opt := range opts {
		opt(&s)
	}
	o := &cOptions{}
	if err := call(op, func() C.portico_status { return C.portico_gateway_options_new(&o.p) }); err != nil {
		return nil, err
	}
	if err := o.fill(op, &s); err != nil {
		o.free()
		o.release()
		return nil, err
	}
	return o, nil
}

func (o *cOptions) fill(op string, s *settings) error {
	report := &reporter{onError: s.onError}
	if s.onError != nil {
		h := o.keep(report)
		if err := call(op, func() C.portico_status { return C.portico_go_set_error_callback(o.p, C.uintptr_t(h)) }); err != nil {
			return err
		}
	}
	for _, f := range s.filters {
		if f.onRequest == nil && f.onResponse == nil {
			return &Error{Op: op, Status: ErrInvalidArgument, Message: fmt.Sprintf("filter %q has no phase", f.name)}
		}
		f.report = report
		h := o.keep(f)
		np, nl := cstr(f.name)
		err := call(op, func() C.portico_status {
			return C.portico_go_add_filter(o.p, np, nl, C.int32_t(f.priority), cbool(f.onRequest != nil), cbool(f.onResponse != nil), C.uintptr_t(h))
		})
		if err != nil {
			return err
		}
	}
	for _, hd := range s.handlers {
		if hd.serve == nil {
			return &Error{Op: op, Status: ErrInvalidArgument, Message: fmt.Sprintf("handler %q is nil", hd.name)}
		}
		hd.report = report
		h := o.keep(hd)
		np, nl := cstr(hd.name)
		if err := call(op, func() C.portico_status { return C.portico_go_add_handler(o.p, np, nl, C.uintptr_t(h)) }); err != nil {
			return err
		}
	}
	for _, p := range s.ports {
		if p.listener < 0 {
			return &Error{Op: op, Status: ErrInvalidArgument, Message: fmt.Sprintf("listener index %d", p.listener)}
		}
		err := call(op, func() C.portico_status {
			return C.portico_gateway_options_set_port(o.p, C.size_t(p.listener), C.uint16_t(p.port))
		})
		if err != nil {
			return err
		}
	}
	if s.adminPort != nil {
		port := *s.adminPort
		if err := call(op, func() C.portico_status { return C.portico_gateway_options_set_admin_port(o.p, C.uint16_t(port)) }); err != nil {
			return err
		}
	}
	return nil
}

func (o *cOptions) keep(v any) cgo.Handle {
	h := cgo.NewHandle(v)
	o.handles = append(o.handles, h)
	return h
}

func cbool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

// CheckConfig validates a configuration document, with the filters and
// handlers of opts, without binding anything. ErrInvalidJSON or
// ErrInvalidConfig carry every problem, one per line.
func CheckConfig(config string, opts ...Option) error {
	const op = "portico.CheckConfig"
	o, err := buildOptions(op, opts)
	if err != nil {
		return err
	}
	defer o.release()
	defer o.free()
	cp, cl := cstr(config)
	return call(op, func() C.portico_status { return C.portico_gateway_check(cp, cl, o.p) })
}

// Gateway is a configured gateway (docs/gateway.md): listeners with worker
// threads, an admin listener, hot reload. Safe for concurrent use, except
// from its own callbacks, which may call only RequestStop. Close it when
// done: a Gateway has no finalizer, since dropping the last reference to a
// serving gateway must not stop it.
type Gateway struct {
	mu      sync.RWMutex // held for reading by every call; Close takes it for writing
	closeMu sync.Mutex   // serialises Close
	p       *C.portico_gateway
	handles *cOptions
}

// NewGateway reads and validates a configuration document (docs/config.md);
// nothing is bound or started yet. Errors as CheckConfig.
func NewGateway(config string, opts ...Option) (*Gateway, error) {
	cp, cl := cstr(config)
	return newGateway("portico.NewGateway", opts, func(out **C.portico_gateway, o *C.portico_gateway_options) C.portico_status {
		return C.portico_gateway_new(out, cp, cl, o)
	})
}

// NewGatewayFromFile is NewGateway from a file, which ReloadFile reads
// again.
func NewGatewayFromFile(path string, opts ...Option) (*Gateway, error) {
	pp, pl := cstr(path)
	return newGateway("portico.NewGatewayFromFile", opts, func(out **C.portico_gateway, o *C.portico_gateway_options) C.portico_status {
		return C.portico_gateway_new_from_file(out, pp, pl, o)
	})
}

func newGateway(op string, opts []Option, create func(**C.portico_gateway, *C.portico_gateway_options) C.portico_status) (*Gateway, error) {
	o, err := buildOptions(op, opts)
	if err != nil {
		return nil, err
	}
	// The gateway copies its options; the handles must outlive it.
	defer o.free()
	var p *C.portico_gateway
	if err := call(op, func() C.portico_status { return create(&p, o.p) }); err != nil {
		o.release()
		return nil, err
	}
	return &Gateway{p: p, handles: o}, nil
}

// do runs f on an open gateway, which Close cannot free meanwhile.
func (g *Gateway) do(op string, f func(p *C.portico_gateway) C.portico_status) error {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.p == nil {
		return closedError(op)
	}
	return call(op, func() C.portico_status { return f(g.p) })
}

// Start builds every policy, binds every listener and serves on the
// gateway's own threads; it returns once the gateway is serving. ErrIO when
// a port cannot be bound, ErrInvalidConfig when a policy refuses its
// config, ErrState when already started.
func (g *Gateway) Start() error {
	return g.do("portico.Gateway.Start", func(p *C.portico_gateway) C.portico_status { return C.portico_gateway_start(p) })
}

// Run starts the gateway (unless started) and blocks until it is stopped by
// Stop, RequestStop or Close from another goroutine.
func (g *Gateway) Run() error {
	return g.do("portico.Gateway.Run", func(p *C.portico_gateway) C.portico_status { return C.portico_gateway_run(p) })
}

// Reload swaps in a new document atomically; requests in flight finish on
// the old one. An invalid document leaves the running one in place.
func (g *Gateway) Reload(config string) error {
	cp, cl := cstr(config)
	return g.do("portico.Gateway.Reload", func(p *C.portico_gateway) C.portico_status {
		return C.portico_gateway_reload(p, cp, cl)
	})
}

// ReloadFile reloads the file given to NewGatewayFromFile.
func (g *Gateway) ReloadFile() error {
	return g.do("portico.Gateway.ReloadFile", func(p *C.portico_gateway) C.portico_status { return C.portico_gateway_reload_file(p) })
}

// Stop stops gracefully: no new connections, requests in flight may finish
// for up to drain, then everything is closed. Idempotent.
func (g *Gateway) Stop(drain time.Duration) error {
	return g.do("portico.Gateway.Stop", func(p *C.portico_gateway) C.portico_status {
		return C.portico_gateway_stop(p, C.int64_t(drain))
	})
}

// RequestStop asks for a stop (with the configured drain timeout) and
// returns at once; Run then returns. Safe from a callback.
func (g *Gateway) RequestStop() error {
	return g.do("portico.Gateway.RequestStop", func(p *C.portico_gateway) C.portico_status { return C.portico_gateway_request_stop(p) })
}

// Metrics is the Prometheus text of the admin listener's GET /metrics.
func (g *Gateway) Metrics() (string, error) {
	var text *C.char
	var n C.size_t
	err := g.do("portico.Gateway.Metrics", func(p *C.portico_gateway) C.portico_status {
		return C.portico_gateway_metrics(p, &text, &n)
	})
	if err != nil {
		return "", err
	}
	defer C.portico_string_free(text)
	return gostr(text, n), nil
}

// Port is the bound port of listener index (after Start).
func (g *Gateway) Port(listener int) (int, error) {
	const op = "portico.Gateway.Port"
	if listener < 0 {
		return 0, &Error{Op: op, Status: ErrInvalidArgument, Message: fmt.Sprintf("listener index %d", listener)}
	}
	var port C.uint16_t
	err := g.do(op, func(p *C.portico_gateway) C.portico_status {
		return C.portico_gateway_port(p, C.size_t(listener), &port)
	})
	return int(port), err
}

// AdminPort is the admin listener's port; 0 when it is disabled.
func (g *Gateway) AdminPort() (int, error) {
	var port C.uint16_t
	err := g.do("portico.Gateway.AdminPort", func(p *C.portico_gateway) C.portico_status {
		return C.portico_gateway_admin_port(p, &port)
	})
	return int(port), err
}

// Generation is the configuration generation now serving (0 after Start,
// +1 per reload).
func (g *Gateway) Generation() (uint64, error) {
	var gen C.uint64_t
	err := g.do("portico.Gateway.Generation", func(p *C.portico_gateway) C.portico_status {
		return C.portico_gateway_generation(p, &gen)
	})
	return uint64(gen), err
}

// Close stops the gateway without draining (call Stop first for a graceful
// stop), frees it and releases its filters and handlers. A Run in another
// goroutine returns first. Later calls return ErrInvalidHandle; a second
// Close does nothing. Not from a callback.
func (g *Gateway) Close() error {
	g.closeMu.Lock()
	defer g.closeMu.Unlock()
	// Only Close writes g.p, and closeMu is held: reading it here is safe.
	if g.p == nil {
		return nil
	}
	// A Run (or Stop) in progress holds the read lock: ask it to return
	// until the write lock is ours. request_stop is safe from any thread.
	for !g.mu.TryLock() {
		C.portico_gateway_request_stop(g.p)
		time.Sleep(time.Millisecond)
	}
	C.portico_gateway_free(g.p)
	g.p = nil
	g.mu.Unlock()
	g.handles.release()
	return nil
}

// handleValue is the Go value behind a callback's `user`.
func handleValue(user C.uintptr_t) any {
	return cgo.Handle(user).Value()
}
