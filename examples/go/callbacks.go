package portico

// The functions the C library calls back, reached through the trampolines
// in gateway.go. A Go panic must never unwind into C: each one recovers,
// reports and answers 500 (or sets 500, in the response phase) itself, so
// that the gateway has nothing to report again.

/*
#include <stdint.h>
#include "portico.h"
*/
import "C"

import (
	"fmt"
	"runtime/debug"
)

// phaseNames are the filter phases as the trampolines number them.
var phaseNames = [...]string{"request", "response"}

// badAction is a filter result outside the C ABI's list: the gateway
// answers such a request 500 and reports the filter.
const badAction = C.int32_t(-1)

//export portico_go_filter
func portico_go_filter(request *C.portico_request, user C.uintptr_t, phase C.int) (result C.int32_t) {
	r := &Request{}
	r.p.Store(request)
	var f *filter
	defer func() {
		r.p.Store(nil)
		if v := recover(); v != nil {
			name, rep := "?", (*reporter)(nil)
			if f != nil {
				name, rep = f.name, f.report
			}
			rep.report(fmt.Sprintf("filter %q panicked in the %s phase: %v\n%s", name, phaseNames[phase&1], v, debug.Stack()))
			result = filterFailed(request, phase)
		}
	}()
	f = handleValue(user).(*filter)
	fn := f.onRequest
	if phase != 0 {
		fn = f.onResponse
	}
	switch action := fn(r); action {
	case Continue, Respond:
		return C.int32_t(action)
	default:
		f.report.report(fmt.Sprintf("filter %q returned the unknown Action %d in the %s phase", f.name, action, phaseNames[phase&1]))
		return filterFailed(request, phase)
	}
}

//export portico_go_handler
func portico_go_handler(request *C.portico_request, user C.uintptr_t) (result C.int32_t) {
	r := &Request{}
	r.p.Store(request)
	var h *handler
	defer func() {
		r.p.Store(nil)
		if v := recover(); v != nil {
			name, rep := "?", (*reporter)(nil)
			if h != nil {
				name, rep = h.name, h.report
			}
			rep.report(fmt.Sprintf("handler %q panicked: %v\n%s", name, v, debug.Stack()))
			result = answerInternalError(request, true, C.PORTICO_OK, C.PORTICO_ERR_INTERNAL)
		}
	}()
	h = handleValue(user).(*handler)
	h.serve(r)
	return C.PORTICO_OK
}

//export portico_go_error
func portico_go_error(message *C.char, length C.size_t, user C.uintptr_t) {
	defer func() { _ = recover() }() // reporter.report recovers the host's panics; this is for a bad handle
	handleValue(user).(*reporter).report(gostr(message, length))
}

// filterFailed ends a filter callback that failed and was reported: the
// request phase answers 500; the response phase, which cannot answer,
// sets the status to 500 and goes on.
func filterFailed(request *C.portico_request, phase C.int) C.int32_t {
	if phase == 0 {
		return answerInternalError(request, true, C.PORTICO_FILTER_RESPOND, badAction)
	}
	if C.portico_request_set_response_status(request, 500) != C.PORTICO_OK {
		return badAction
	}
	return C.PORTICO_FILTER_CONTINUE
}

// answerInternalError answers 500 where the phase still allows an answer
// and says so with answered; otherwise it returns failed, which makes the
// gateway answer 500 itself (and report the callback once more).
func answerInternalError(request *C.portico_request, canRespond bool, answered, failed C.int32_t) C.int32_t {
	if !canRespond {
		return failed
	}
	body := "internal error\n"
	bp, bl := cstr(body)
	if C.portico_request_respond(request, 500, nil, 0, bp, bl) != C.PORTICO_OK {
		return failed
	}
	return answered
}
