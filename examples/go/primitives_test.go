package portico_test

import (
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"portico"
)

func TestVersionMatchesTheHeader(t *testing.T) {
	if err := portico.CheckVersion(); err != nil {
		t.Fatal(err)
	}
	if portico.Version() != portico.HeaderVersion {
		t.Errorf("library %s, header %s", portico.Version(), portico.HeaderVersion)
	}
}

func TestStatusesAreErrors(t *testing.T) {
	err := fmt.Errorf("loading: %w", &portico.Error{Op: "x", Status: portico.ErrConflict, Message: "m"})
	if !errors.Is(err, portico.ErrConflict) || errors.Is(err, portico.ErrNotFound) {
		t.Errorf("errors.Is through a wrapped *Error went wrong: %v", err)
	}
	if s := portico.ErrInvalidJSON.String(); s != "PORTICO_ERR_INVALID_JSON" {
		t.Errorf("ErrInvalidJSON.String() = %q", s)
	}
	if s := portico.Status(999).String(); s != "PORTICO_ERR_UNKNOWN" {
		t.Errorf("an unknown status is named %q", s)
	}
}

func mustNot(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestRouter(t *testing.T) {
	r, err := portico.NewRouter()
	mustNot(t, err)
	defer r.Close()
	users, err := r.Add(portico.Route{Name: "user", Methods: []string{"GET", "PUT"}, Path: "/users/{id}"})
	mustNot(t, err)
	files, err := r.Add(portico.Route{Path: "/files/{*rest}"})
	mustNot(t, err)
	api, err := r.Add(portico.Route{Host: "api.example.com", Path: "/users/{id}"})
	mustNot(t, err)
	if users != 0 || files != 1 || api != 2 {
		t.Fatalf("ids %d %d %d, want 0 1 2", users, files, api)
	}
	if n, err := r.Len(); n != 3 || err != nil {
		t.Fatalf("Len: %d, %v", n, err)
	}

	m, err := r.Match("GET", "www.example.com", "/users/./42")
	mustNot(t, err)
	if id, _ := m.Param("id"); m.Result != portico.Found || m.Route != users || id != "42" {
		t.Errorf("GET /users/./42: %+v", m)
	}
	m, _ = r.Match("GET", "api.example.com", "/users/7")
	if m.Route != api {
		t.Errorf("the host-specific route lost: %+v", m)
	}
	m, _ = r.Match("DELETE", "", "/files/a/b.txt")
	if rest, _ := m.Param("rest"); m.Route != files || rest != "a/b.txt" {
		t.Errorf("DELETE /files/a/b.txt: %+v", m)
	}
	if m, _ = r.Match("POST", "", "/users/1"); m.Result != portico.MethodNotAllowed || m.Route != -1 {
		t.Errorf("POST /users/1: %+v, want MethodNotAllowed", m)
	}
	if m, _ = r.Match("GET", "", "/nothing"); m.Result != portico.NotFound {
		t.Errorf("GET /nothing: %+v, want NotFound", m)
	}

	_, err = r.Add(portico.Route{Methods: []string{"GET"}, Path: "/users/{id}"})
	if !errors.Is(err, portico.ErrConflict) {
		t.Errorf("a clashing route: %v, want ErrConflict", err)
	}
	_, err = r.Add(portico.Route{Path: "/broken/{id"})
	if !errors.Is(err, portico.ErrMalformed) || !strings.Contains(err.Error(), "/broken/{id") {
		t.Errorf("an unclosed capture: %v, want ErrMalformed naming the pattern", err)
	}
	_, err = r.Add(portico.Route{Methods: []string{"FETCH"}, Path: "/x"})
	if !errors.Is(err, portico.ErrInvalidArgument) {
		t.Errorf("an unknown method: %v, want ErrInvalidArgument", err)
	}
	for _, path := range []string{"/bad\xff", "/nul\x00byte"} {
		if _, err = r.Add(portico.Route{Path: path}); !errors.Is(err, portico.ErrInvalidUTF8) {
			t.Errorf("the pattern %q: %v, want ErrInvalidUTF8", path, err)
		}
	}

	// Matches run in parallel.
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				want := fmt.Sprint(g*1000 + i)
				m, err := r.Match("GET", "", "/users/"+want)
				if id, _ := m.Param("id"); err != nil || id != want {
					t.Errorf("parallel match: %+v, %v", m, err)
					return
				}
			}
		}(g)
	}
	wg.Wait()

	mustNot(t, r.Close())
	if _, err := r.Match("GET", "", "/users/1"); !errors.Is(err, portico.ErrInvalidHandle) {
		t.Errorf("Match after Close: %v, want ErrInvalidHandle", err)
	}
	if _, err := r.Add(portico.Route{Path: "/y"}); !errors.Is(err, portico.ErrInvalidHandle) {
		t.Errorf("Add after Close: %v, want ErrInvalidHandle", err)
	}
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// token signs claims with HS256 or, given an RSA key, RS256.
func token(t testing.TB, claims map[string]any, kid string, hmacKey []byte, rsaKey *rsa.PrivateKey) string {
	t.Helper()
	header := map[string]string{"typ": "JWT", "alg": "HS256"}
	if rsaKey != nil {
		header["alg"] = "RS256"
	}
	if kid != "" {
		header["kid"] = kid
	}
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	signingInput := b64(h) + "." + b64(c)
	var sig []byte
	if rsaKey != nil {
		digest := sha256.Sum256([]byte(signingInput))
		var err error
		if sig, err = rsa.SignPKCS1v15(rand.Reader, rsaKey, crypto.SHA256, digest[:]); err != nil {
			t.Fatal(err)
		}
	} else {
		mac := hmac.New(sha256.New, hmacKey)
		mac.Write([]byte(signingInput))
		sig = mac.Sum(nil)
	}
	return signingInput + "." + b64(sig)
}

func TestJWTVerifierWithAnHMACKey(t *testing.T) {
	secret := []byte("a shared secret of at least thirty-two bytes")
	v, err := portico.NewJWTVerifierKey(portico.KeyHMAC, secret, "",
		`{"algorithms": ["HS256"], "issuers": ["https://idp.example"]}`)
	mustNot(t, err)
	defer v.Close()
	now := time.Now()
	claims := map[string]any{"iss": "https://idp.example", "sub": "ada", "exp": now.Add(time.Hour).Unix()}
	good := token(t, claims, "", secret, nil)

	res, err := v.Verify(good)
	mustNot(t, err)
	var payload struct{ Sub string }
	if !res.Valid() || res.Message != "" || json.Unmarshal(res.Claims, &payload) != nil || payload.Sub != "ada" {
		t.Fatalf("a good token: %+v", res)
	}

	tampered := good[:len(good)-2] + "AA"
	if res, _ = v.Verify(tampered); res.Reason != portico.JWTBadSignature || res.Claims != nil {
		t.Errorf("a tampered token: %+v, want bad signature", res)
	}
	if res, _ = v.VerifyAt(good, now.Add(2*time.Hour)); res.Reason != portico.JWTExpired || res.Reason.String() != "expired" {
		t.Errorf("a token verified after exp: %+v, want expired", res)
	}
	claims["iss"] = "https://elsewhere.example"
	if res, _ = v.Verify(token(t, claims, "", secret, nil)); res.Reason != portico.JWTBadIssuer {
		t.Errorf("another issuer: %+v, want bad issuer", res)
	}
	if res, _ = v.Verify("not.a.token"); res.Reason != portico.JWTMalformed || res.Message == "" {
		t.Errorf("garbage: %+v, want malformed with a message", res)
	}

	cache, err := v.NewCache(16)
	mustNot(t, err)
	defer cache.Close()
	first, err := cache.Verify(good)
	mustNot(t, err)
	second, err := cache.Verify(good)
	mustNot(t, err)
	if !first.Valid() || first.FromCache || !second.Valid() || !second.FromCache {
		t.Errorf("through the cache: first %+v, second %+v", first, second)
	}
	// The cache keeps the keys: it outlives its verifier.
	mustNot(t, v.Close())
	if _, err := v.Verify(good); !errors.Is(err, portico.ErrInvalidHandle) {
		t.Errorf("Verify after Close: %v, want ErrInvalidHandle", err)
	}
	if res, err := cache.Verify(good); err != nil || !res.Valid() {
		t.Errorf("the cache after its verifier closed: %+v, %v", res, err)
	}
	mustNot(t, cache.Close())
	if _, err := cache.Verify(good); !errors.Is(err, portico.ErrInvalidHandle) {
		t.Errorf("a closed cache: %v, want ErrInvalidHandle", err)
	}
}

func TestJWTVerifierWithRSAKeys(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	mustNot(t, err)
	jwks := fmt.Sprintf(`{"keys": [{"kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig", "n": %q, "e": %q}]}`,
		b64(key.N.Bytes()), b64(big.NewInt(int64(key.E)).Bytes()))
	fromJWKS, err := portico.NewJWTVerifier(jwks, "")
	mustNot(t, err)
	defer fromJWKS.Close()
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	mustNot(t, err)
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	fromPEM, err := portico.NewJWTVerifierKey(portico.KeyPEM, pemKey, "k1", "")
	mustNot(t, err)
	defer fromPEM.Close()

	signed := token(t, map[string]any{"sub": "bob", "exp": time.Now().Add(time.Hour).Unix()}, "k1", nil, key)
	for name, v := range map[string]*portico.JWTVerifier{"JWKS": fromJWKS, "PEM": fromPEM} {
		if res, err := v.Verify(signed); err != nil || !res.Valid() {
			t.Errorf("%s: %+v, %v", name, res, err)
		}
	}
	unknownKid := token(t, map[string]any{"sub": "bob"}, "k9", nil, key)
	if res, _ := fromJWKS.Verify(unknownKid); res.Reason != portico.JWTUnknownKid {
		t.Errorf("an unknown kid: %+v", res)
	}
}

func TestJWTVerifierRefusesBadInput(t *testing.T) {
	_, err := portico.NewJWTVerifier(`{"keys": [`, "")
	if !errors.Is(err, portico.ErrInvalidJSON) {
		t.Errorf("broken JWKS: %v, want ErrInvalidJSON", err)
	}
	_, err = portico.NewJWTVerifier(`{"keys": []}`, "")
	if !errors.Is(err, portico.ErrInvalidArgument) {
		t.Errorf("a JWKS without keys: %v, want ErrInvalidArgument", err)
	}
	secret := []byte("a shared secret of at least thirty-two bytes")
	_, err = portico.NewJWTVerifierKey(portico.KeyHMAC, secret, "", `{"algorithmz": ["HS256"]}`)
	if err == nil || !strings.Contains(err.Error(), "algorithmz") {
		t.Errorf("a misspelt option: %v, want an error naming it", err)
	}
	_, err = portico.NewJWTVerifierKey(portico.KeyHMAC, []byte("short"), "", "")
	if err == nil {
		t.Error("a 5-byte HMAC secret was accepted")
	}
	_, err = portico.NewJWTVerifierKey(portico.KeyPEM, []byte("-----BEGIN PUBLIC KEY-----\nnope\n"), "", "")
	if err == nil {
		t.Error("a broken PEM key was accepted")
	}
}

func TestLimiterInSimulatedTime(t *testing.T) {
	// 2 per second with a burst of 1: two at once, then one every 500ms.
	l, err := portico.NewLimiter(2, time.Second, 1, 100)
	mustNot(t, err)
	defer l.Close()
	t0 := portico.Now()
	for i := 0; i < 2; i++ {
		d, err := l.Check("alice", 1, t0)
		mustNot(t, err)
		if !d.Allowed || d.Limit != 2 || d.Remaining != int64(1-i) {
			t.Fatalf("request %d: %+v", i, d)
		}
	}
	d, err := l.Check("alice", 1, t0)
	mustNot(t, err)
	if d.Allowed || d.RetryAfter != 500*time.Millisecond {
		t.Fatalf("the third request at once: %+v, want refused for 500ms", d)
	}
	if d, _ = l.Check("bob", 1, t0); !d.Allowed {
		t.Error("another key was limited by alice's requests")
	}
	if d, _ = l.Check("alice", 1, t0.Add(d.RetryAfter+500*time.Millisecond)); !d.Allowed {
		t.Errorf("after the retry-after: %+v", d)
	}
	if d, _ = l.Check("carol", 5, t0); d.Allowed || !d.CostOutOfRange {
		t.Errorf("a cost above the limit: %+v, want CostOutOfRange", d)
	}
	if d, err = l.Check("dave", 1, portico.ClockNow); err != nil || !d.Allowed {
		t.Errorf("with the library's clock: %+v, %v", d, err)
	}

	if _, err := portico.NewLimiter(0, time.Second, 0, 10); !errors.Is(err, portico.ErrInvalidArgument) {
		t.Errorf("rate 0: %v, want ErrInvalidArgument", err)
	}
	mustNot(t, l.Close())
	if _, err := l.Check("alice", 1, t0); !errors.Is(err, portico.ErrInvalidHandle) {
		t.Errorf("Check after Close: %v, want ErrInvalidHandle", err)
	}
}

func TestBreakerOpensAndRecovers(t *testing.T) {
	b, err := portico.NewBreaker(`{"consecutive_failures": 3, "open_duration": "1s"}`)
	mustNot(t, err)
	defer b.Close()
	t0 := portico.Now()
	for i := 0; i < 3; i++ {
		p, err := b.Acquire(t0)
		mustNot(t, err)
		if !p.Admitted() {
			t.Fatalf("request %d refused while closed: %v", i, p.Admission())
		}
		mustNot(t, b.Failure(p, t0))
	}
	if s, _ := b.State(t0); s != portico.BreakerOpen || s.String() != "open" {
		t.Fatalf("after 3 failures: %v, want open", s)
	}
	p, _ := b.Acquire(t0)
	if p.Admission() != portico.RejectedOpen {
		t.Fatalf("while open: %v, want rejected", p.Admission())
	}
	if wait, _ := b.RetryAfter(t0.Add(250 * time.Millisecond)); wait != 750*time.Millisecond {
		t.Errorf("RetryAfter 250ms into the open second: %v", wait)
	}
	t1 := t0.Add(time.Second)
	if s, _ := b.State(t1); s != portico.BreakerHalfOpen {
		t.Fatalf("after open_duration: %v, want half_open", s)
	}
	probe, _ := b.Acquire(t1)
	if !probe.Admitted() {
		t.Fatalf("the probe: %v", probe.Admission())
	}
	if second, _ := b.Acquire(t1); second.Admission() != portico.RejectedHalfOpenFull {
		t.Errorf("a second probe at once: %v", second.Admission())
	}
	mustNot(t, b.Success(probe, t1))
	if s, _ := b.State(t1); s != portico.BreakerClosed {
		t.Errorf("after a good probe: %v, want closed", s)
	}

	_, err = portico.NewBreaker(`{"open_duration": "soon"}`)
	if err == nil || !strings.Contains(err.Error(), "open_duration") {
		t.Errorf("a bad duration: %v, want an error naming it", err)
	}
	if _, err = portico.NewBreaker(`{"consecutive_failures": `); !errors.Is(err, portico.ErrInvalidJSON) {
		t.Errorf("broken JSON: %v, want ErrInvalidJSON", err)
	}
	mustNot(t, b.Close())
	if _, err := b.Acquire(t1); !errors.Is(err, portico.ErrInvalidHandle) {
		t.Errorf("Acquire after Close: %v, want ErrInvalidHandle", err)
	}
}

func TestBalancer(t *testing.T) {
	b, err := portico.NewBalancer(`{"policy": "round_robin", "endpoints": [
	  {"id": "10.0.0.1:80"}, {"id": "10.0.0.2:80"}, {"id": "10.0.0.3:80"}]}`)
	mustNot(t, err)
	defer b.Close()
	now := portico.Now()
	picked := map[string]int{}
	for i := 0; i < 30; i++ {
		e, err := b.Pick(0, now)
		mustNot(t, err)
		id, err := b.ID(e)
		mustNot(t, err)
		picked[id]++
		mustNot(t, b.Start(e))
		mustNot(t, b.End(e, time.Millisecond, portico.OutcomeSuccess, now))
	}
	if len(picked) != 3 || picked["10.0.0.1:80"] != 10 || picked["10.0.0.3:80"] != 10 {
		t.Fatalf("round robin over 3 endpoints, 30 picks: %v", picked)
	}

	second, err := b.Find("10.0.0.2:80")
	mustNot(t, err)
	mustNot(t, b.SetHealthy(second, false))
	for i := 0; i < 10; i++ {
		if e, _ := b.Pick(0, now); e == second {
			t.Fatal("an unhealthy endpoint was picked")
		}
	}
	mustNot(t, b.Remove("10.0.0.2:80"))
	if _, err := b.ID(second); !errors.Is(err, portico.ErrNotFound) {
		t.Errorf("the id of a removed endpoint: %v, want ErrNotFound", err)
	}
	if _, err := b.Find("10.0.0.2:80"); !errors.Is(err, portico.ErrNotFound) {
		t.Errorf("Find of a removed endpoint: %v, want ErrNotFound", err)
	}
	added, err := b.Add("10.0.0.4:80", 1)
	mustNot(t, err)
	if id, _ := b.ID(added); id != "10.0.0.4:80" {
		t.Errorf("the added endpoint's id: %q", id)
	}

	if _, err := portico.NewBalancer(`{"policy": "round_robin"`); !errors.Is(err, portico.ErrInvalidJSON) {
		t.Errorf("broken JSON: %v, want ErrInvalidJSON", err)
	}
	_, err = portico.NewBalancer(`{"policy": "random", "endpoints": [{"id": "a:1"}]}`)
	if err == nil || !strings.Contains(err.Error(), "random") {
		t.Errorf("an unknown policy: %v, want an error naming it", err)
	}
	mustNot(t, b.Close())
	if _, err := b.Pick(0, now); !errors.Is(err, portico.ErrInvalidHandle) {
		t.Errorf("Pick after Close: %v, want ErrInvalidHandle", err)
	}
}

func TestMaglevKeepsAKeyOnItsEndpoint(t *testing.T) {
	b, err := portico.NewBalancer(`{"policy": "maglev", "endpoints": [
	  {"id": "a:1"}, {"id": "b:1"}, {"id": "c:1"}, {"id": "d:1"}]}`)
	mustNot(t, err)
	defer b.Close()
	spread := map[portico.Endpoint]bool{}
	for user := 0; user < 50; user++ {
		h := portico.HashKey(fmt.Sprint("user-", user))
		first, err := b.Pick(h, portico.ClockNow)
		mustNot(t, err)
		for i := 0; i < 3; i++ {
			if again, _ := b.Pick(h, portico.ClockNow); again != first {
				t.Fatalf("user-%d moved from %v to %v", user, first, again)
			}
		}
		spread[first] = true
	}
	if len(spread) < 3 {
		t.Errorf("50 keys landed on %d of 4 endpoints", len(spread))
	}
	if portico.HashKey("x") != portico.HashKey("x") || portico.HashKey("x") == portico.HashKey("y") {
		t.Error("HashKey is not a stable hash")
	}
}
