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

// Balancer chooses an endpoint of a pool per request (docs/balancer.md).
// Safe for concurrent use, one call at a time.
type Balancer struct {
	mu sync.Mutex
	p  *C.portico_balancer
}

// Endpoint names one endpoint of a Balancer; stale once it is removed.
type Endpoint struct {
	Slot, Generation uint32
}

func (e Endpoint) c() C.portico_endpoint {
	return C.portico_endpoint{slot: C.uint32_t(e.Slot), generation: C.uint32_t(e.Generation)}
}

func endpointFromC(e C.portico_endpoint) Endpoint {
	return Endpoint{Slot: uint32(e.slot), Generation: uint32(e.generation)}
}

// Outcome is how a request sent to an endpoint ended.
type Outcome int32

// The outcomes of Balancer.End.
const (
	OutcomeSuccess   Outcome = C.PORTICO_OUTCOME_SUCCESS
	OutcomeFailure   Outcome = C.PORTICO_OUTCOME_FAILURE
	OutcomeCancelled Outcome = C.PORTICO_OUTCOME_CANCELLED
)

// NewBalancer makes a balancer from a JSON object: {"policy":
// "round_robin" | "weighted_round_robin" | "least_request" |
// "power_of_two_choices" | "peak_ewma" | "maglev", "endpoints": [{"id":
// "10.0.0.1:80", "weight": 1}, ...], "seed": 0, "panic_threshold": 0.5};
// only "endpoints" is required.
func NewBalancer(config string) (*Balancer, error) {
	cp, cl := cstr(config)
	var p *C.portico_balancer
	if err := call("portico.NewBalancer", func() C.portico_status { return C.portico_balancer_new(&p, cp, cl) }); err != nil {
		return nil, err
	}
	b := &Balancer{p: p}
	runtime.SetFinalizer(b, (*Balancer).Close)
	return b, nil
}

// Close frees the balancer. Later calls return ErrInvalidHandle.
func (b *Balancer) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.p != nil {
		C.portico_balancer_free(b.p)
		b.p = nil
		runtime.SetFinalizer(b, nil)
	}
	return nil
}

func (b *Balancer) do(op string, f func() C.portico_status) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.p == nil {
		return closedError(op)
	}
	return call(op, f)
}

// HashKey is a stable 64-bit hash of an affinity key, for maglev's Pick.
func HashKey(key string) uint64 {
	kp, kl := cstr(key)
	return uint64(C.portico_hash_key(kp, kl))
}

// Pick chooses an endpoint at now; hash is maglev's affinity (HashKey),
// ignored by the other policies. ErrNotFound when none is available.
func (b *Balancer) Pick(hash uint64, now Instant) (Endpoint, error) {
	var e C.portico_endpoint
	err := b.do("portico.Balancer.Pick", func() C.portico_status {
		return C.portico_balancer_pick(b.p, C.uint64_t(hash), C.int64_t(now), &e)
	})
	return endpointFromC(e), err
}

// ID is the endpoint's id ("10.0.0.1:80"); ErrNotFound when stale.
func (b *Balancer) ID(e Endpoint) (string, error) {
	var id *C.char
	var n C.size_t
	err := b.do("portico.Balancer.ID", func() C.portico_status {
		return C.portico_balancer_endpoint_id(b.p, e.c(), &id, &n)
	})
	if err != nil {
		return "", err
	}
	return gostr(id, n), nil
}

// Find is the endpoint of that id; ErrNotFound when there is none.
func (b *Balancer) Find(id string) (Endpoint, error) {
	ip, il := cstr(id)
	var e C.portico_endpoint
	err := b.do("portico.Balancer.Find", func() C.portico_status {
		return C.portico_balancer_find(b.p, ip, il, &e)
	})
	return endpointFromC(e), err
}

// Start counts a request sent to e (least_request, power_of_two_choices,
// peak_ewma and outlier detection); call End once per Start.
func (b *Balancer) Start(e Endpoint) error {
	return b.do("portico.Balancer.Start", func() C.portico_status {
		return C.portico_balancer_start(b.p, e.c())
	})
}

// End reports how a started request ended.
func (b *Balancer) End(e Endpoint, latency time.Duration, outcome Outcome, now Instant) error {
	return b.do("portico.Balancer.End", func() C.portico_status {
		return C.portico_balancer_end(b.p, e.c(), C.int64_t(latency), C.int32_t(outcome), C.int64_t(now))
	})
}

// SetHealthy marks e healthy or not (an unhealthy endpoint is not picked).
func (b *Balancer) SetHealthy(e Endpoint, healthy bool) error {
	var h C.int32_t
	if healthy {
		h = 1
	}
	return b.do("portico.Balancer.SetHealthy", func() C.portico_status {
		return C.portico_balancer_set_healthy(b.p, e.c(), h)
	})
}

// Add adds an endpoint of that id and weight.
func (b *Balancer) Add(id string, weight uint32) (Endpoint, error) {
	ip, il := cstr(id)
	var e C.portico_endpoint
	err := b.do("portico.Balancer.Add", func() C.portico_status {
		return C.portico_balancer_add(b.p, ip, il, C.uint32_t(weight), &e)
	})
	return endpointFromC(e), err
}

// Remove removes the endpoint of that id; its Endpoint turns stale.
func (b *Balancer) Remove(id string) error {
	ip, il := cstr(id)
	return b.do("portico.Balancer.Remove", func() C.portico_status {
		return C.portico_balancer_remove(b.p, ip, il)
	})
}
