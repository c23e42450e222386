package portico_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"portico"
)

// A gateway on an ephemeral loopback port, without admin listener or access
// log, whose routes are served by in-process handlers.
const gatewayConfig = `{
  "listeners": [{"address": "127.0.0.1", "port": 0, "workers": 2}],
  "admin": {"enabled": false},
  "access_log": {"enabled": false},
  "server": {"drain_timeout": "1s"},
  "services": [{"name": "greeter", "handler": "greet"}],
  "routes": [
    {"name": "hello", "paths": ["/hello/{name}"], "service": "greeter",
     "plugins": [{"name": "go-tag", "config": {"tag": "blue"}}]},
    {"name": "plain", "paths": ["/plain"], "service": "greeter"}
  ]
}`

var client = &http.Client{Timeout: 10 * time.Second}

// nameOf is the last segment of the path ({name} on /hello/{name}).
func nameOf(r *portico.Request) string { return strings.TrimPrefix(r.Path(), "/hello/") }

// greet answers with what it saw, so tests can check what arrived upstream.
func greet(r *portico.Request) {
	name := nameOf(r)
	tag, _ := r.Header("X-Tag")
	body := fmt.Sprintf("hello %s method=%s path=%s query=%s tag=%s body=%s\n",
		name, r.Method(), r.Path(), r.Query(), tag, r.Body())
	if err := r.Respond(200, []byte(body), portico.Header{Name: "Content-Type", Value: "text/plain"}); err != nil {
		panic(err)
	}
}

// startGateway builds and starts a gateway closed at the end of the test,
// and returns its base URL.
func startGateway(t *testing.T, config string, opts ...portico.Option) (*portico.Gateway, string) {
	t.Helper()
	gw, err := portico.NewGateway(config, append([]portico.Option{portico.WithPort(0, 0)}, opts...)...)
	if err != nil {
		t.Fatalf("NewGateway: %v", err)
	}
	t.Cleanup(func() {
		client.CloseIdleConnections()
		if err := gw.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	if err := gw.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	port, err := gw.Port(0)
	if err != nil || port == 0 {
		t.Fatalf("Port: %d, %v", port, err)
	}
	return gw, fmt.Sprintf("http://127.0.0.1:%d", port)
}

type response struct {
	status int
	header http.Header
	body   string
}

func send(t *testing.T, method, url, body string, header map[string]string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, url, err)
	}
	return response{res.StatusCode, res.Header, string(b)}
}

// reports collects what the gateway reports about misbehaving callbacks.
type reports struct {
	mu   sync.Mutex
	seen []string
}

func (r *reports) add(message string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = append(r.seen, message)
}

// count is how many reports contain every one of words.
func (r *reports) count(words ...string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, s := range r.seen {
		found := true
		for _, w := range words {
			found = found && strings.Contains(s, w)
		}
		if found {
			n++
		}
	}
	return n
}

// waitFor returns the first report that contains every one of words,
// waiting a little: a report may arrive just after the response.
func (r *reports) waitFor(t *testing.T, words ...string) string {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		r.mu.Lock()
		for _, s := range r.seen {
			found := true
			for _, w := range words {
				found = found && strings.Contains(s, w)
			}
			if found {
				r.mu.Unlock()
				return s
			}
		}
		r.mu.Unlock()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	t.Fatalf("no report with %q; reports: %q", words, r.seen)
	return ""
}

func TestGatewayServesAGoFilterAndAGoHandler(t *testing.T) {
	var clientAddress, param atomic.Value
	var upstreamStatus atomic.Int32
	tagFilter := func(r *portico.Request) portico.Action {
		var config struct{ Tag string }
		if err := json.Unmarshal(r.PluginConfig(), &config); err != nil {
			panic(err)
		}
		clientAddress.Store(r.ClientAddress())
		name, _ := r.Param("name")
		param.Store(name)
		if _, blocked := r.Header("X-Block"); blocked {
			if err := r.Respond(403, []byte("blocked by the go filter\n"), portico.Header{Name: "X-Filter", Value: "go-tag"}); err != nil {
				panic(err)
			}
			return portico.Respond
		}
		if err := r.SetHeader("X-Tag", config.Tag); err != nil {
			panic(err)
		}
		if err := r.SetHeader("Transfer-Encoding", "chunked"); !errors.Is(err, portico.ErrInvalidArgument) {
			panic(fmt.Sprintf("setting a framing header: %v, want ErrInvalidArgument", err))
		}
		return portico.Continue
	}
	stamp := func(r *portico.Request) portico.Action {
		upstreamStatus.Store(int32(r.ResponseStatus()))
		if err := r.SetResponseHeader("X-Seen-By", "go-tag"); err != nil {
			panic(err)
		}
		return portico.Continue
	}
	var served atomic.Int32
	gw, base := startGateway(t, gatewayConfig,
		portico.WithFilter("go-tag", 450, tagFilter, stamp),
		portico.WithHandler("greet", func(r *portico.Request) { served.Add(1); greet(r) }))

	res := send(t, "GET", base+"/hello/ada?lang=en", "", nil)
	if res.status != 200 || res.body != "hello ada method=GET path=/hello/ada query=lang=en tag=blue body=\n" {
		t.Fatalf("GET /hello/ada: %d %q", res.status, res.body)
	}
	if got := res.header.Get("X-Seen-By"); got != "go-tag" {
		t.Errorf("X-Seen-By = %q, want the response filter's go-tag", got)
	}
	if got := upstreamStatus.Load(); got != 200 {
		t.Errorf("the response filter saw status %d, want 200", got)
	}
	if got, _ := clientAddress.Load().(string); got != "127.0.0.1" {
		t.Errorf("client address %q, want 127.0.0.1", got)
	}
	if got, _ := param.Load().(string); got != "ada" {
		t.Errorf("the filter read the parameter name as %q, want ada", got)
	}

	res = send(t, "POST", base+"/hello/bob", "some bytes", nil)
	if res.status != 200 || !strings.Contains(res.body, "method=POST") || !strings.Contains(res.body, "body=some bytes") {
		t.Fatalf("POST /hello/bob: %d %q", res.status, res.body)
	}

	before := served.Load()
	res = send(t, "GET", base+"/hello/eve", "", map[string]string{"X-Block": "1"})
	if res.status != 403 || res.body != "blocked by the go filter\n" || res.header.Get("X-Filter") != "go-tag" {
		t.Fatalf("blocked request: %d %q %v", res.status, res.body, res.header)
	}
	if served.Load() != before {
		t.Error("a request the filter answered reached the handler")
	}

	// The filter is attached to one route only.
	res = send(t, "GET", base+"/plain", "", nil)
	if res.status != 200 || !strings.Contains(res.body, "tag= ") || res.header.Get("X-Seen-By") != "" {
		t.Fatalf("GET /plain: %d %q %v", res.status, res.body, res.header)
	}
	if res = send(t, "GET", base+"/nowhere", "", nil); res.status != 404 {
		t.Fatalf("GET /nowhere: %d, want 404", res.status)
	}

	metrics, err := gw.Metrics()
	if err != nil || !strings.Contains(metrics, "# TYPE") {
		t.Fatalf("Metrics: %v, %.200q", err, metrics)
	}
	if err := gw.Stop(time.Second); err != nil {
		t.Fatalf("Stop: %v", err)
	}
}

func TestGatewayReloadsAndRefusesABadDocument(t *testing.T) {
	gw, base := startGateway(t, gatewayConfig,
		portico.WithFilter("go-tag", 450, func(r *portico.Request) portico.Action { return portico.Continue }, nil),
		portico.WithHandler("greet", greet))
	if gen, err := gw.Generation(); err != nil || gen != 0 {
		t.Fatalf("Generation: %d, %v", gen, err)
	}
	withV2 := strings.Replace(gatewayConfig, `"/plain"]`, `"/plain", "/v2/plain"]`, 1)
	if err := gw.Reload(withV2); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if gen, err := gw.Generation(); err != nil || gen != 1 {
		t.Fatalf("Generation after a reload: %d, %v", gen, err)
	}
	if res := send(t, "GET", base+"/v2/plain", "", nil); res.status != 200 {
		t.Fatalf("GET /v2/plain after the reload: %d", res.status)
	}

	err := gw.Reload(`{"routes": [`)
	if !errors.Is(err, portico.ErrInvalidJSON) {
		t.Fatalf("Reload of broken JSON: %v, want ErrInvalidJSON", err)
	}
	if gen, _ := gw.Generation(); gen != 1 {
		t.Errorf("a refused reload changed the generation to %d", gen)
	}
	if res := send(t, "GET", base+"/v2/plain", "", nil); res.status != 200 {
		t.Fatalf("the running document was dropped by a refused reload: %d", res.status)
	}
}

func TestGatewayRunsUntilRequestStop(t *testing.T) {
	gw, err := portico.NewGateway(gatewayConfig,
		portico.WithFilter("go-tag", 450, func(r *portico.Request) portico.Action { return portico.Continue }, nil),
		portico.WithHandler("greet", greet))
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	if _, err := gw.Port(0); !errors.Is(err, portico.ErrState) {
		t.Fatalf("Port before start: %v, want ErrState", err)
	}
	done := make(chan error, 1)
	go func() { done <- gw.Run() }()
	var port int
	for deadline := time.Now().Add(5 * time.Second); port == 0 && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		port, _ = gw.Port(0)
	}
	if port == 0 {
		t.Fatal("Run did not start serving within 5s")
	}
	if res := send(t, "GET", fmt.Sprintf("http://127.0.0.1:%d/plain", port), "", nil); res.status != 200 {
		t.Fatalf("GET /plain: %d", res.status)
	}
	client.CloseIdleConnections()
	if err := gw.RequestStop(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10s of RequestStop")
	}
}

func TestCloseEndsARunningRun(t *testing.T) {
	gw, err := portico.NewGateway(gatewayConfig,
		portico.WithFilter("go-tag", 450, func(r *portico.Request) portico.Action { return portico.Continue }, nil),
		portico.WithHandler("greet", greet))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- gw.Run() }()
	time.Sleep(50 * time.Millisecond)
	closed := make(chan error, 1)
	go func() { closed <- gw.Close() }()
	for _, ch := range []chan error{done, closed} {
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			t.Fatal("Close and Run did not both return within 10s")
		}
	}
	if err := gw.Start(); !errors.Is(err, portico.ErrInvalidHandle) {
		t.Fatalf("Start after Close: %v, want ErrInvalidHandle", err)
	}
}

func TestPanickingFilterAnswers500AndTheGatewayKeepsServing(t *testing.T) {
	var got reports
	panicky := func(r *portico.Request) portico.Action {
		if _, ok := r.Header("X-Panic"); ok {
			panic("the filter fell over")
		}
		return portico.Continue
	}
	var refused, replaced atomic.Value
	panickyResponse := func(r *portico.Request) portico.Action {
		if r.ResponseStatus() == 200 && strings.HasSuffix(r.Path(), "/late") {
			panic("the response phase fell over")
		}
		if strings.HasSuffix(r.Path(), "/teapot") {
			refused.Store(errors.Is(r.SetResponseStatus(99), portico.ErrInvalidArgument))
			replaced.Store(r.SetResponseStatus(418) == nil)
		}
		return portico.Continue
	}
	_, base := startGateway(t, gatewayConfig,
		portico.WithFilter("go-tag", 450, panicky, panickyResponse),
		portico.WithHandler("greet", greet),
		portico.WithErrorHandler(got.add))

	for i := 0; i < 3; i++ {
		res := send(t, "GET", base+"/hello/ada", "", map[string]string{"X-Panic": "1"})
		if res.status != 500 {
			t.Fatalf("a panicking filter: %d %q, want 500", res.status, res.body)
		}
		if res = send(t, "GET", base+"/hello/ada", "", nil); res.status != 200 {
			t.Fatalf("the request after a panic: %d %q, want 200", res.status, res.body)
		}
	}
	got.waitFor(t, `filter "go-tag" panicked in the request phase`, "the filter fell over")

	res := send(t, "GET", base+"/hello/late", "", nil)
	if res.status != 500 {
		t.Fatalf("a filter panicking in the response phase: %d %q, want 500", res.status, res.body)
	}
	got.waitFor(t, `filter "go-tag" panicked in the response phase`)
	if res = send(t, "GET", base+"/hello/ada", "", nil); res.status != 200 {
		t.Fatalf("the request after a response-phase panic: %d", res.status)
	}
	// Reported once: by the binding, not again by the gateway ("status set
	// to 500"), since the binding set the status itself.
	time.Sleep(50 * time.Millisecond)
	if n := got.count(`"go-tag"`, "response phase"); n != 1 {
		t.Fatalf("the response-phase panic was reported %d times, want once: %q", n, got.seen)
	}

	// The response phase may replace the status, within 200..599.
	if res = send(t, "GET", base+"/hello/teapot", "", nil); res.status != 418 {
		t.Fatalf("a status set in the response phase: %d, want 418", res.status)
	}
	if ok, _ := refused.Load().(bool); !ok {
		t.Fatal("SetResponseStatus(99) was not refused with ErrInvalidArgument")
	}
	if ok, _ := replaced.Load().(bool); !ok {
		t.Fatal("SetResponseStatus(418) failed")
	}
}

func TestMisbehavingHandlersAnswer500(t *testing.T) {
	var got reports
	handler := func(r *portico.Request) {
		switch nameOf(r) {
		case "panic":
			panic("the handler fell over")
		case "silent":
			// returns without answering
		case "crlf":
			// A header that would split the response is refused, and the
			// handler may still answer.
			err := r.Respond(200, nil, portico.Header{Name: "X-Split", Value: "a\r\nSet-Cookie: b"})
			_ = r.Respond(200, []byte(fmt.Sprint(err)))
		default:
			greet(r)
		}
	}
	badAction := func(r *portico.Request) portico.Action {
		if _, ok := r.Header("X-Bad-Action"); ok {
			return portico.Action(7)
		}
		return portico.Continue
	}
	_, base := startGateway(t, gatewayConfig,
		portico.WithFilter("go-tag", 450, badAction, nil),
		portico.WithHandler("greet", handler),
		portico.WithErrorHandler(got.add))

	if res := send(t, "GET", base+"/hello/panic", "", nil); res.status != 500 {
		t.Fatalf("a panicking handler: %d, want 500", res.status)
	}
	got.waitFor(t, `handler "greet" panicked`, "the handler fell over")
	if res := send(t, "GET", base+"/hello/silent", "", nil); res.status != 500 {
		t.Fatalf("a handler that did not answer: %d, want 500", res.status)
	}
	got.waitFor(t, "greet")
	res := send(t, "GET", base+"/hello/crlf", "", nil)
	if res.status != 200 || !strings.Contains(res.body, "PORTICO_ERR_INVALID_ARGUMENT") || res.header.Get("Set-Cookie") != "" {
		t.Fatalf("a header value holding CR LF: %d %q %v, want it refused", res.status, res.body, res.header)
	}
	if res := send(t, "GET", base+"/hello/ada", "", map[string]string{"X-Bad-Action": "1"}); res.status != 500 {
		t.Fatalf("a filter returning an unknown Action: %d, want 500", res.status)
	}
	got.waitFor(t, `filter "go-tag" returned the unknown Action 7`)
	if res := send(t, "GET", base+"/hello/ada", "", nil); res.status != 200 {
		t.Fatalf("the gateway stopped serving after misbehaving callbacks: %d", res.status)
	}
}

func TestARequestKeptAfterItsCallbackIsDead(t *testing.T) {
	kept := make(chan *portico.Request, 1)
	keep := func(r *portico.Request) portico.Action {
		select {
		case kept <- r:
		default:
		}
		return portico.Continue
	}
	_, base := startGateway(t, gatewayConfig,
		portico.WithFilter("go-tag", 450, keep, nil),
		portico.WithHandler("greet", greet))
	if res := send(t, "GET", base+"/hello/ada", "", nil); res.status != 200 {
		t.Fatalf("GET: %d", res.status)
	}
	r := <-kept
	if err := r.SetHeader("X-Late", "1"); !errors.Is(err, portico.ErrInvalidHandle) {
		t.Errorf("SetHeader after the callback: %v, want ErrInvalidHandle", err)
	}
	if err := r.Respond(200, nil); !errors.Is(err, portico.ErrInvalidHandle) {
		t.Errorf("Respond after the callback: %v, want ErrInvalidHandle", err)
	}
	if m := r.Method(); m != "" {
		t.Errorf("Method after the callback: %q, want \"\"", m)
	}
}

func TestGatewayConfigurationErrors(t *testing.T) {
	noop := func(r *portico.Request) portico.Action { return portico.Continue }
	opts := []portico.Option{portico.WithFilter("go-tag", 450, noop, nil), portico.WithHandler("greet", greet)}

	err := portico.CheckConfig(`{"listeners": [{"port": 0}`, opts...)
	var perr *portico.Error
	if !errors.As(err, &perr) || perr.Status != portico.ErrInvalidJSON || !strings.Contains(perr.Message, "JSON") {
		t.Fatalf("broken JSON: %v, want an ErrInvalidJSON that says so", err)
	}
	if !strings.Contains(err.Error(), "portico.CheckConfig") || !strings.Contains(err.Error(), "PORTICO_ERR_INVALID_JSON") {
		t.Errorf("the error text does not name the call and the status: %q", err)
	}

	err = portico.CheckConfig(`{"admin": {"prot": 1}}`, opts...)
	if !errors.Is(err, portico.ErrInvalidConfig) || !strings.Contains(err.Error(), "admin.prot") {
		t.Fatalf("a misspelt field: %v, want ErrInvalidConfig naming admin.prot", err)
	}

	// The Go filter and handler are known only when registered.
	if err := portico.CheckConfig(gatewayConfig, opts...); err != nil {
		t.Fatalf("CheckConfig with the filter and handler: %v", err)
	}
	_, err = portico.NewGateway(gatewayConfig)
	if !errors.Is(err, portico.ErrInvalidConfig) || !strings.Contains(err.Error(), "go-tag") || !strings.Contains(err.Error(), "greet") {
		t.Fatalf("a document naming an unregistered filter and handler: %v", err)
	}

	_, err = portico.NewGateway(gatewayConfig, portico.WithFilter("go-tag", 450, nil, nil))
	if !errors.Is(err, portico.ErrInvalidArgument) {
		t.Errorf("a filter without a phase: %v, want ErrInvalidArgument", err)
	}
	_, err = portico.NewGateway("{}", portico.WithFilter("cors", 450, noop, nil))
	if !errors.Is(err, portico.ErrConflict) {
		t.Errorf("a filter named like a built-in: %v, want ErrConflict", err)
	}
	_, err = portico.NewGatewayFromFile("/nonexistent/portico.json")
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/portico.json") {
		t.Errorf("a missing file: %v, want an error naming it", err)
	}
}

func TestStartOnABusyPortIsAnIOError(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	port := taken.Addr().(*net.TCPAddr).Port
	gw, err := portico.NewGateway(gatewayConfig,
		portico.WithFilter("go-tag", 450, func(r *portico.Request) portico.Action { return portico.Continue }, nil),
		portico.WithHandler("greet", greet),
		portico.WithPort(0, uint16(port)))
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	if err := gw.Start(); !errors.Is(err, portico.ErrIO) {
		t.Fatalf("Start on a busy port: %v, want ErrIO", err)
	}
}

func TestGatewayUseAfterClose(t *testing.T) {
	gw, err := portico.NewGateway(`{"admin": {"enabled": false}, "access_log": {"enabled": false}}`)
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gw.Close(); err != nil {
		t.Errorf("a second Close: %v, want nil", err)
	}
	checks := map[string]error{
		"Start":  gw.Start(),
		"Reload": gw.Reload("{}"),
		"Stop":   gw.Stop(0),
	}
	_, checks["Metrics"] = gw.Metrics()
	_, checks["Port"] = gw.Port(0)
	for name, err := range checks {
		var perr *portico.Error
		if !errors.As(err, &perr) || perr.Status != portico.ErrInvalidHandle || !strings.Contains(perr.Error(), name) {
			t.Errorf("%s after Close: %v, want ErrInvalidHandle naming the call", name, err)
		}
	}
}
