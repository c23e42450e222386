package portico

/*
#include "portico.h"
*/
import "C"

import "fmt"

// Status is an outcome code of the C ABI. The non-zero ones are also errors,
// so that errors.Is(err, portico.ErrInvalidConfig) asks for the status of
// any *Error in err's chain.
type Status int32

// The statuses of portico.h; their values are stable across releases.
const (
	OK                 Status = C.PORTICO_OK
	ErrInvalidArgument Status = C.PORTICO_ERR_INVALID_ARGUMENT // NULL where a value is needed, out of range
	ErrInvalidHandle   Status = C.PORTICO_ERR_INVALID_HANDLE   // closed, or a request after its callback
	ErrInvalidUTF8     Status = C.PORTICO_ERR_INVALID_UTF8     // text that is not UTF-8 (or holds a NUL)
	ErrInvalidJSON     Status = C.PORTICO_ERR_INVALID_JSON     // a document that is not JSON
	ErrInvalidConfig   Status = C.PORTICO_ERR_INVALID_CONFIG   // JSON, but not a valid configuration
	ErrMalformed       Status = C.PORTICO_ERR_MALFORMED        // text that does not follow its grammar
	ErrConflict        Status = C.PORTICO_ERR_CONFLICT         // clashes with something already present
	ErrCapacity        Status = C.PORTICO_ERR_CAPACITY         // a fixed bound would be exceeded
	ErrNotFound        Status = C.PORTICO_ERR_NOT_FOUND        // the named item does not exist
	ErrIO              Status = C.PORTICO_ERR_IO               // a file or socket operation failed
	ErrState           Status = C.PORTICO_ERR_STATE            // not allowed now (already started, stopped...)
	ErrNoMemory        Status = C.PORTICO_ERR_NO_MEMORY
	ErrInternal        Status = C.PORTICO_ERR_INTERNAL // a bug: please report it with the message
)

// String is the status's name in portico.h ("PORTICO_ERR_INVALID_JSON").
func (s Status) String() string { return C.GoString(C.portico_status_name(C.portico_status(s))) }

// Error makes a Status usable as a sentinel error.
func (s Status) Error() string { return "portico: " + s.String() }

// Error is what every failing call returns: the operation, the C status and
// the library's message ("routes[0].paths[0]: path pattern '/a/{id':
// unclosed '{'"). It unwraps to its Status.
type Error struct {
	Op      string // the Go function that failed ("portico.NewGateway")
	Status  Status
	Message string
}

func (e *Error) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("%s: %s", e.Op, e.Status)
	}
	return fmt.Sprintf("%s: %s: %s", e.Op, e.Status, e.Message)
}

// Unwrap gives the Status, so errors.Is matches the sentinel statuses.
func (e *Error) Unwrap() error { return e.Status }

// closedError is the answer of every method of a closed object.
func closedError(op string) error {
	return &Error{Op: op, Status: ErrInvalidHandle, Message: "used after Close"}
}
