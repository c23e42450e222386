package portico_test

import (
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"portico"
)

// The cost of a call from Go: `go test -run - -bench .` (see run-tests.sh
// for the environment). Not part of the test suite.

func BenchmarkRouterMatch(b *testing.B) {
	r, err := portico.NewRouter()
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	for i := 0; i < 100; i++ {
		if _, err := r.Add(portico.Route{Methods: []string{"GET"}, Path: fmt.Sprintf("/api/v%d/users/{id}", i)}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if m, err := r.Match("GET", "", "/api/v42/users/7"); err != nil || m.Result != portico.Found {
			b.Fatal(m, err)
		}
	}
}

func BenchmarkLimiterCheck(b *testing.B) {
	l, err := portico.NewLimiter(1_000_000_000, time.Second, 0, 1000)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := l.Check("client-1", 1, portico.ClockNow); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkJWTCacheVerify(b *testing.B) {
	secret := []byte("a shared secret of at least thirty-two bytes")
	v, err := portico.NewJWTVerifierKey(portico.KeyHMAC, secret, "", "")
	if err != nil {
		b.Fatal(err)
	}
	defer v.Close()
	cache, err := v.NewCache(0)
	if err != nil {
		b.Fatal(err)
	}
	defer cache.Close()
	tok := token(b, map[string]any{"sub": "ada", "exp": time.Now().Add(time.Hour).Unix()}, "", secret, nil)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if res, err := cache.Verify(tok); err != nil || !res.Valid() {
			b.Fatal(res, err)
		}
	}
}

// Requests through a gateway whose route has a Go filter in both phases and
// a Go handler, one keep-alive connection at a time.
func BenchmarkGatewayGoFilterAndHandler(b *testing.B) {
	gw, err := portico.NewGateway(gatewayConfig,
		portico.WithFilter("go-tag", 450,
			func(r *portico.Request) portico.Action { _ = r.SetHeader("X-Tag", "blue"); return portico.Continue },
			func(r *portico.Request) portico.Action { return portico.Continue }),
		portico.WithHandler("greet", func(r *portico.Request) { _ = r.Respond(200, []byte("hi\n")) }))
	if err != nil {
		b.Fatal(err)
	}
	defer gw.Close()
	if err := gw.Start(); err != nil {
		b.Fatal(err)
	}
	port, _ := gw.Port(0)
	url := fmt.Sprintf("http://127.0.0.1:%d/hello/ada", port)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := client.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			b.Fatal(res.Status)
		}
	}
	b.StopTimer()
	client.CloseIdleConnections()
}
