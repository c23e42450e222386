package portico

/*
#include "portico.h"
*/
import "C"

import (
	"runtime"
	"sync"
	"time"
)

// Breaker is a circuit breaker (docs/breaker.md): it stops admitting
// requests to a failing upstream, then probes it. Safe for concurrent use,
// one call at a time.
type Breaker struct {
	mu sync.Mutex
	p  *C.portico_breaker
}

// BreakerState is where a Breaker is in its cycle.
type BreakerState int32

// The states of a Breaker.
const (
	BreakerClosed   BreakerState = C.PORTICO_BREAKER_CLOSED
	BreakerOpen     BreakerState = C.PORTICO_BREAKER_OPEN
	BreakerHalfOpen BreakerState = C.PORTICO_BREAKER_HALF_OPEN
)

// String is the state's name ("half_open").
func (s BreakerState) String() string {
	return C.GoString(C.portico_breaker_state_name(C.int32_t(s)))
}

// Admission says whether Acquire admitted a request, or why not.
type Admission int32

// The admissions of Breaker.Acquire.
const (
	Admitted             Admission = C.PORTICO_BREAKER_ADMITTED
	RejectedOpen         Admission = C.PORTICO_BREAKER_REJECTED_OPEN
	RejectedHalfOpenFull Admission = C.PORTICO_BREAKER_REJECTED_HALF_OPEN_FULL
	RejectedMaxInFlight  Admission = C.PORTICO_BREAKER_REJECTED_MAX_IN_FLIGHT
	RejectedMaxPending   Admission = C.PORTICO_BREAKER_REJECTED_MAX_PENDING
)

func (a Admission) String() string {
	switch a {
	case Admitted:
		return "admitted"
	case RejectedOpen:
		return "rejected: open"
	case RejectedHalfOpenFull:
		return "rejected: half-open probes in flight"
	case RejectedMaxInFlight:
		return "rejected: max in flight"
	case RejectedMaxPending:
		return "rejected: max pending"
	}
	return "unknown"
}

// Permit is one request's ticket: hand an admitted one back exactly once to
// Success, Failure or Cancel.
type Permit struct {
	c C.portico_breaker_permit
}

// Admission says whether the request may go.
func (p Permit) Admission() Admission { return Admission(p.c.admission) }

// Admitted reports whether the request may go.
func (p Permit) Admitted() bool { return p.Admission() == Admitted }

// NewBreaker makes a breaker from a JSON object like a service's "breaker"
// (docs/config.md), or the defaults for "".
func NewBreaker(config string) (*Breaker, error) {
	cp, cl := cstr(config)
	var p *C.portico_breaker
	if err := call("portico.NewBreaker", func() C.portico_status { return C.portico_breaker_new(&p, cp, cl) }); err != nil {
		return nil, err
	}
	b := &Breaker{p: p}
	runtime.SetFinalizer(b, (*Breaker).Close)
	return b, nil
}

// Close frees the breaker. Later calls return ErrInvalidHandle.
func (b *Breaker) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.p != nil {
		C.portico_breaker_free(b.p)
		b.p = nil
		runtime.SetFinalizer(b, nil)
	}
	return nil
}

// do runs f with the breaker locked and open.
func (b *Breaker) do(op string, f func() C.portico_status) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.p == nil {
		return closedError(op)
	}
	return call(op, f)
}

// Acquire asks to send a request at now.
func (b *Breaker) Acquire(now Instant) (Permit, error) {
	var permit Permit
	err := b.do("portico.Breaker.Acquire", func() C.portico_status {
		return C.portico_breaker_acquire(b.p, C.int64_t(now), &permit.c)
	})
	return permit, err
}

// Success reports that the permitted request succeeded at now.
func (b *Breaker) Success(permit Permit, now Instant) error {
	return b.do("portico.Breaker.Success", func() C.portico_status {
		return C.portico_breaker_success(b.p, &permit.c, C.int64_t(now))
	})
}

// Failure reports that the permitted request failed at now.
func (b *Breaker) Failure(permit Permit, now Instant) error {
	return b.do("portico.Breaker.Failure", func() C.portico_status {
		return C.portico_breaker_failure(b.p, &permit.c, C.int64_t(now))
	})
}

// Cancel returns a permit whose request was never sent.
func (b *Breaker) Cancel(permit Permit) error {
	return b.do("portico.Breaker.Cancel", func() C.portico_status {
		return C.portico_breaker_cancel(b.p, &permit.c)
	})
}

// State is the breaker's state at now.
func (b *Breaker) State(now Instant) (BreakerState, error) {
	var state C.int32_t
	err := b.do("portico.Breaker.State", func() C.portico_status {
		return C.portico_breaker_state(b.p, C.int64_t(now), &state)
	})
	return BreakerState(state), err
}

// RetryAfter is the time left in the open period at now; 0 unless open.
func (b *Breaker) RetryAfter(now Instant) (time.Duration, error) {
	var ns C.int64_t
	err := b.do("portico.Breaker.RetryAfter", func() C.portico_status {
		return C.portico_breaker_retry_after(b.p, C.int64_t(now), &ns)
	})
	return time.Duration(ns), err
}
