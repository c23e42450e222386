package portico

/*
#include <string.h>
#include "portico.h"

// A check whose decision comes back by value (no Go pointer, no allocation).
typedef struct {
  portico_status status;
  portico_limit_decision d;
} portico_go_decision;

static portico_go_decision portico_go_limiter_check(portico_limiter* l, const char* key,
                                                    size_t key_len, uint32_t cost, int64_t now) {
  portico_go_decision out;
  memset(&out, 0, sizeof out);
  out.status = portico_limiter_check(l, key, key_len, cost, now, &out.d);
  return out;
}
*/
import "C"

import (
	"math"
	"runtime"
	"sync"
	"time"
)

// ClockNow, given as the now of a primitive's method, lets the library read
// its monotonic clock itself (one call fewer than passing Now()).
const ClockNow Instant = math.MinInt64

// Limiter is a GCRA rate limiter per key (docs/limiter.md). Safe for
// concurrent use; checks run in parallel.
type Limiter struct {
	mu sync.RWMutex
	p  *C.portico_limiter
}

// LimitDecision is the outcome of one Limiter.Check.
type LimitDecision struct {
	Allowed        bool // conforms and was counted
	CostOutOfRange bool // cost 0 or above Limit: can never pass
	Limit          int64
	Remaining      int64         // further requests of this cost that would pass now
	RetryAfter     time.Duration // 0 when allowed
	ResetAfter     time.Duration // until the key has its full allowance back
}

// NewLimiter allows rate requests per period plus burst beyond it, for up to
// maxKeys keys tracked at once.
func NewLimiter(rate int64, period time.Duration, burst, maxKeys int64) (*Limiter, error) {
	var p *C.portico_limiter
	err := call("portico.NewLimiter", func() C.portico_status {
		return C.portico_limiter_new(&p, C.int64_t(rate), C.int64_t(period), C.int64_t(burst), C.int64_t(maxKeys))
	})
	if err != nil {
		return nil, err
	}
	l := &Limiter{p: p}
	runtime.SetFinalizer(l, (*Limiter).Close)
	return l, nil
}

// Close frees the limiter. Later calls return ErrInvalidHandle.
func (l *Limiter) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.p != nil {
		C.portico_limiter_free(l.p)
		l.p = nil
		runtime.SetFinalizer(l, nil)
	}
	return nil
}

// Check decides, and counts when allowed, a request of cost for key at now
// (Now(), an instant of a simulation, or ClockNow).
func (l *Limiter) Check(key string, cost uint32, now Instant) (LimitDecision, error) {
	const op = "portico.Limiter.Check"
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.p == nil {
		return LimitDecision{}, closedError(op)
	}
	kp, kl := cstr(key)
	runtime.LockOSThread()
	out := C.portico_go_limiter_check(l.p, kp, kl, C.uint32_t(cost), C.int64_t(now))
	err := statusError(op, out.status)
	runtime.UnlockOSThread()
	if err != nil {
		return LimitDecision{}, err
	}
	d := out.d
	return LimitDecision{
		Allowed:        d.allowed != 0,
		CostOutOfRange: d.cost_out_of_range != 0,
		Limit:          int64(d.limit),
		Remaining:      int64(d.remaining),
		RetryAfter:     time.Duration(d.retry_after_ns),
		ResetAfter:     time.Duration(d.reset_after_ns),
	}, nil
}
