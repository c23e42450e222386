package portico

/*
#include "portico.h"

// A verification and the reading of its result in one C call, returned by
// value: the views stay valid until the next verification into `r`.
typedef struct {
  portico_status status;
  int32_t reason;
  int32_t from_cache;
  const char* message;
  size_t message_len;
  const char* claims;
  size_t claims_len;
} portico_go_jwt;

static portico_go_jwt portico_go_jwt_read(const portico_jwt_result* r, portico_status status) {
  portico_go_jwt out = {status, 0, 0, NULL, 0, NULL, 0};
  if (out.status == PORTICO_OK) out.status = portico_jwt_result_reason(r, &out.reason);
  if (out.status == PORTICO_OK)
    out.status = portico_jwt_result_message(r, &out.message, &out.message_len);
  if (out.status == PORTICO_OK) out.status = portico_jwt_result_from_cache(r, &out.from_cache);
  if (out.status == PORTICO_OK && out.reason == PORTICO_JWT_VALID)
    out.status = portico_jwt_result_claims(r, &out.claims, &out.claims_len);
  return out;
}

static portico_go_jwt portico_go_jwt_verify(const portico_jwt_verifier* v, const char* token,
                                            size_t token_len, int64_t now,
                                            portico_jwt_result* r) {
  return portico_go_jwt_read(r, portico_jwt_verify(v, token, token_len, now, r));
}

static portico_go_jwt portico_go_jwt_cache_verify(portico_jwt_cache* c, const char* token,
                                                  size_t token_len, int64_t now,
                                                  portico_jwt_result* r) {
  return portico_go_jwt_read(r, portico_jwt_cache_verify(c, token, token_len, now, r));
}
*/
import "C"

import (
	"encoding/json"
	"runtime"
	"sync"
	"time"
	"unsafe"
)

// JWTVerifier verifies compact JWS tokens (docs/jwt.md) against a key set
// and a policy. Safe for concurrent use; verifications run in parallel.
type JWTVerifier struct {
	mu sync.RWMutex
	p  *C.portico_jwt_verifier
}

// KeyKind says what NewJWTVerifierKey is given.
type KeyKind int32

// The kinds of keys.
const (
	KeyPEM  KeyKind = C.PORTICO_JWT_KEY_PEM  // an RSA or EC public key in PEM
	KeyHMAC KeyKind = C.PORTICO_JWT_KEY_HMAC // a raw HMAC secret, at least 32 bytes
	KeyJWK  KeyKind = C.PORTICO_JWT_KEY_JWK  // one JWK object (JSON)
)

// JWTReason is why a token was refused, or JWTValid.
type JWTReason int32

// The reasons; their values are stable.
const (
	JWTValid          JWTReason = C.PORTICO_JWT_VALID
	JWTMalformed      JWTReason = C.PORTICO_JWT_MALFORMED
	JWTUnsupportedAlg JWTReason = C.PORTICO_JWT_UNSUPPORTED_ALG
	JWTAlgNotAllowed  JWTReason = C.PORTICO_JWT_ALG_NOT_ALLOWED
	JWTUnknownKid     JWTReason = C.PORTICO_JWT_UNKNOWN_KID
	JWTBadSignature   JWTReason = C.PORTICO_JWT_BAD_SIGNATURE
	JWTExpired        JWTReason = C.PORTICO_JWT_EXPIRED
	JWTNotYetValid    JWTReason = C.PORTICO_JWT_NOT_YET_VALID
	JWTBadIssuer      JWTReason = C.PORTICO_JWT_BAD_ISSUER
	JWTBadAudience    JWTReason = C.PORTICO_JWT_BAD_AUDIENCE
	JWTMissingClaim   JWTReason = C.PORTICO_JWT_MISSING_CLAIM
	JWTTooLarge       JWTReason = C.PORTICO_JWT_TOO_LARGE
)

// String is the reason's name ("expired").
func (r JWTReason) String() string { return C.GoString(C.portico_jwt_reason_name(C.int32_t(r))) }

// JWTResult is the outcome of one verification.
type JWTResult struct {
	Reason    JWTReason
	Message   string          // why it was refused, safe to log (never the token); "" when valid
	Claims    json.RawMessage // the verified payload; nil unless valid
	FromCache bool            // answered by a JWTCache without a signature check
}

// Valid reports whether the token was accepted.
func (r JWTResult) Valid() bool { return r.Reason == JWTValid }

// NewJWTVerifier makes a verifier from a JWKS document ({"keys": [...]});
// keys that cannot be used are left out, and ErrInvalidArgument says so when
// none is left. options (may be empty: the defaults) is a JSON object with
// optional members "algorithms", "issuers", "audiences", "required_claims"
// (arrays of strings), "leeway" (seconds) and "max_token_bytes".
func NewJWTVerifier(jwks, options string) (*JWTVerifier, error) {
	const op = "portico.NewJWTVerifier"
	jp, jl := cstr(jwks)
	optionsPtr, optionsLen := cstr(options)
	var p *C.portico_jwt_verifier
	err := call(op, func() C.portico_status {
		return C.portico_jwt_verifier_new_jwks(&p, jp, jl, optionsPtr, optionsLen)
	})
	return newJWTVerifier(p, err)
}

// NewJWTVerifierKey makes a verifier from one key; kid may be empty.
// options as for NewJWTVerifier.
func NewJWTVerifierKey(kind KeyKind, key []byte, kid, options string) (*JWTVerifier, error) {
	const op = "portico.NewJWTVerifierKey"
	kp, kl := cbytes(key)
	kidPtr, kidLen := cstr(kid)
	optionsPtr, optionsLen := cstr(options)
	var p *C.portico_jwt_verifier
	err := call(op, func() C.portico_status {
		return C.portico_jwt_verifier_new_key(&p, C.int32_t(kind), kp, kl, kidPtr, kidLen, optionsPtr, optionsLen)
	})
	return newJWTVerifier(p, err)
}

func newJWTVerifier(p *C.portico_jwt_verifier, err error) (*JWTVerifier, error) {
	if err != nil {
		return nil, err
	}
	v := &JWTVerifier{p: p}
	runtime.SetFinalizer(v, (*JWTVerifier).Close)
	return v, nil
}

// Close frees the verifier (a JWTCache made from it keeps working). Later
// calls return ErrInvalidHandle; a second Close does nothing.
func (v *JWTVerifier) Close() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.p != nil {
		C.portico_jwt_verifier_free(v.p)
		v.p = nil
		runtime.SetFinalizer(v, nil)
	}
	return nil
}

// Verify checks token now. A refused token is not an error: read the
// result's Reason.
func (v *JWTVerifier) Verify(token string) (JWTResult, error) {
	return v.verify(token, 0)
}

// VerifyAt checks token as if the wall clock read at.
func (v *JWTVerifier) VerifyAt(token string, at time.Time) (JWTResult, error) {
	return v.verify(token, at.Unix())
}

func (v *JWTVerifier) verify(token string, unixSeconds int64) (JWTResult, error) {
	const op = "portico.JWTVerifier.Verify"
	v.mu.RLock()
	defer v.mu.RUnlock()
	if v.p == nil {
		return JWTResult{}, closedError(op)
	}
	tp, tl := cstr(token)
	return withJWTResult(op, func(result *C.portico_jwt_result) C.portico_go_jwt {
		return C.portico_go_jwt_verify(v.p, tp, tl, C.int64_t(unixSeconds), result)
	})
}

// NewCache puts a cache of capacity verified tokens (0: 4096) in front of
// the verifier: a repeated token skips the signature check. The cache keeps
// the verifier's keys alive: either may be closed first.
func (v *JWTVerifier) NewCache(capacity int) (*JWTCache, error) {
	const op = "portico.JWTVerifier.NewCache"
	v.mu.RLock()
	defer v.mu.RUnlock()
	if v.p == nil {
		return nil, closedError(op)
	}
	if capacity < 0 {
		return nil, &Error{Op: op, Status: ErrInvalidArgument, Message: "negative capacity"}
	}
	var p *C.portico_jwt_cache
	if err := call(op, func() C.portico_status { return C.portico_jwt_cache_new(&p, v.p, C.size_t(capacity)) }); err != nil {
		return nil, err
	}
	c := &JWTCache{p: p}
	runtime.SetFinalizer(c, (*JWTCache).Close)
	return c, nil
}

// JWTCache is a JWTVerifier with a cache of verified tokens. Safe for
// concurrent use, one verification at a time; give each busy goroutine its
// own cache for parallelism.
type JWTCache struct {
	mu sync.Mutex
	p  *C.portico_jwt_cache
}

// Close frees the cache. Later calls return ErrInvalidHandle.
func (c *JWTCache) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.p != nil {
		C.portico_jwt_cache_free(c.p)
		c.p = nil
		runtime.SetFinalizer(c, nil)
	}
	return nil
}

// Verify is JWTVerifier.Verify through the cache.
func (c *JWTCache) Verify(token string) (JWTResult, error) { return c.verify(token, 0) }

// VerifyAt is JWTVerifier.VerifyAt through the cache.
func (c *JWTCache) VerifyAt(token string, at time.Time) (JWTResult, error) {
	return c.verify(token, at.Unix())
}

func (c *JWTCache) verify(token string, unixSeconds int64) (JWTResult, error) {
	const op = "portico.JWTCache.Verify"
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.p == nil {
		return JWTResult{}, closedError(op)
	}
	tp, tl := cstr(token)
	return withJWTResult(op, func(result *C.portico_jwt_result) C.portico_go_jwt {
		return C.portico_go_jwt_cache_verify(c.p, tp, tl, C.int64_t(unixSeconds), result)
	})
}

// jwtResultBuf is a C verification result, pooled like matchBuf.
type jwtResultBuf struct{ p *C.portico_jwt_result }

var jwtResultPool = sync.Pool{New: func() any {
	var p *C.portico_jwt_result
	if C.portico_jwt_result_new(&p) != C.PORTICO_OK {
		return nil
	}
	r := &jwtResultBuf{p: p}
	runtime.SetFinalizer(r, func(r *jwtResultBuf) { C.portico_jwt_result_free(r.p) })
	return r
}}

// withJWTResult runs verify into a pooled C result and copies it out.
func withJWTResult(op string, verify func(*C.portico_jwt_result) C.portico_go_jwt) (JWTResult, error) {
	buf, _ := jwtResultPool.Get().(*jwtResultBuf)
	if buf == nil {
		return JWTResult{}, &Error{Op: op, Status: ErrNoMemory, Message: "no memory for a result"}
	}
	defer jwtResultPool.Put(buf)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	v := verify(buf.p)
	if err := statusError(op, v.status); err != nil {
		return JWTResult{}, err
	}
	out := JWTResult{Reason: JWTReason(v.reason), Message: gostr(v.message, v.message_len), FromCache: v.from_cache != 0}
	if out.Reason == JWTValid {
		out.Claims = json.RawMessage(C.GoBytes(unsafe.Pointer(v.claims), C.int(v.claims_len)))
	}
	return out, nil
}
