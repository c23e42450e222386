// Package portico embeds the Portico API gateway in a Go program through its
// C ABI (portico.h): a gateway configured from JSON that runs Go filters and
// Go handlers, and each of its primitives on its own — router, JWT
// verifier, rate limiter, circuit breaker and balancer.
//
// Every object is a handle to a C object: call Close when done with it. A
// method called after Close returns an *Error with status ErrInvalidHandle,
// never crashes. Errors are *Error values carrying the C status and the
// library's message; compare them with errors.Is against the Status
// constants (errors.Is(err, portico.ErrInvalidJSON)).
//
// Every type is safe for concurrent use by several goroutines, except
// Request, which lives only for the callback that received it.
//
// The package links against libportico: build with CGO_CFLAGS pointing at
// the directory of portico.h and CGO_LDFLAGS at the library, unless both are
// installed where the C compiler looks.
package portico

/*
#cgo LDFLAGS: -lportico
#include <stdlib.h>
#include "portico.h"
*/
import "C"

import (
	"fmt"
	"runtime"
	"time"
	"unsafe"
)

// HeaderVersion is the version of portico.h this package was built with.
const HeaderVersion = C.PORTICO_VERSION_STRING

// Version is the version of the library actually loaded ("0.1.0").
func Version() string { return C.GoString(C.portico_version_string()) }

// CheckVersion reports whether the loaded library can serve this package:
// the same major version and at least the header's minor version.
func CheckVersion() error {
	loaded := uint32(C.portico_version())
	built := uint32(C.PORTICO_VERSION)
	if loaded>>16 == built>>16 && (loaded>>8)&0xff >= (built>>8)&0xff {
		return nil
	}
	return &Error{Op: "portico.CheckVersion", Status: ErrState,
		Message: fmt.Sprintf("library %s loaded, package built for %s", Version(), HeaderVersion)}
}

// Instant is a reading of the monotonic clock the primitives use, in
// nanoseconds (see Now). The primitives' "At" methods take one so that a
// test can drive them in simulated time.
type Instant int64

// Now reads the primitives' monotonic clock.
func Now() Instant { return Instant(C.portico_now_ns()) }

// Add returns the instant d later.
func (i Instant) Add(d time.Duration) Instant { return i + Instant(d) }

// now is the C ABI's "read the clock yourself".
const now = C.int64_t(C.PORTICO_NOW)

// cstr views a Go string as C pointer + length for the duration of one call.
// The C ABI copies what it keeps, and string bytes hold no Go pointer, so
// passing them is allowed by the cgo rules; no copy is made.
func cstr(s string) (*C.char, C.size_t) {
	if len(s) == 0 {
		return nil, 0
	}
	return (*C.char)(*(*unsafe.Pointer)(unsafe.Pointer(&s))), C.size_t(len(s))
}

// cbytes is cstr for a byte slice.
func cbytes(b []byte) (*C.char, C.size_t) {
	if len(b) == 0 {
		return nil, 0
	}
	return (*C.char)(unsafe.Pointer(&b[0])), C.size_t(len(b))
}

// gostr copies a borrowed C view into a Go string.
func gostr(p *C.char, n C.size_t) string {
	if n == 0 {
		return ""
	}
	return C.GoStringN(p, C.int(n))
}

// call runs one C function and turns its status into an error. The C
// library keeps its last error message per OS thread, so the goroutine is
// pinned to its thread from the call to the reading of the message.
func call(op string, f func() C.portico_status) error {
	runtime.LockOSThread()
	err := statusError(op, f())
	runtime.UnlockOSThread()
	return err
}

// statusError is nil for PORTICO_OK, else an *Error with the calling
// thread's last error message: call it pinned to the thread of the call (see
// call), which the hot paths do by hand to spare a closure.
func statusError(op string, status C.portico_status) error {
	if status == C.PORTICO_OK {
		return nil
	}
	return &Error{Op: op, Status: Status(status), Message: C.GoString(C.portico_last_error())}
}
