package protows

import (
	"fmt"
	"strconv"
	"strings"
)

// Code is the status of a failed call. The values and meanings are those of
// gRPC and Connect. A call that succeeded has no error, so no error ever
// carries CodeOK; it exists so that code which reports every call's outcome
// (a logging or metrics interceptor) can write protows.CodeOf(err) for
// successes too.
type Code uint32

// The codes, in the order and with the numbers of the wire protocol's Code
// enum (proto/protows/v1/protows.proto).
const (
	// CodeOK is CodeOf(nil): no error. Its String is "ok". It is not an
	// error code: an *Error never has it (NewError and Errorf turn it into
	// CodeUnknown), it never appears on the wire (0 means "no error"
	// there), and UnmarshalText, which reads the codes of errors, refuses
	// "ok".
	CodeOK Code = 0
	// CodeCanceled: the call was cancelled, usually by the caller.
	CodeCanceled Code = 1
	// CodeUnknown: an error with no better code.
	CodeUnknown Code = 2
	// CodeInvalidArgument: the request is invalid whatever the state of the
	// system, for example a payload that does not decode.
	CodeInvalidArgument Code = 3
	// CodeDeadlineExceeded: the deadline expired before the call finished.
	CodeDeadlineExceeded Code = 4
	// CodeNotFound: a requested entity was not found.
	CodeNotFound Code = 5
	// CodeAlreadyExists: the entity the caller tried to create exists.
	CodeAlreadyExists Code = 6
	// CodePermissionDenied: the caller is known but may not do this.
	CodePermissionDenied Code = 7
	// CodeResourceExhausted: a quota, the in-flight limit or a rate limit is
	// used up.
	CodeResourceExhausted Code = 8
	// CodeFailedPrecondition: the system is not in the state the call needs.
	CodeFailedPrecondition Code = 9
	// CodeAborted: the call was aborted, typically by a concurrency conflict.
	CodeAborted Code = 10
	// CodeOutOfRange: the call went past a valid range.
	CodeOutOfRange Code = 11
	// CodeUnimplemented: the method is not implemented or not known.
	CodeUnimplemented Code = 12
	// CodeInternal: an invariant of the server broke (a handler panic, say).
	CodeInternal Code = 13
	// CodeUnavailable: the service is unavailable for now, for example the
	// connection dropped; the call may be retried.
	CodeUnavailable Code = 14
	// CodeDataLoss: data was lost or corrupted.
	CodeDataLoss Code = 15
	// CodeUnauthenticated: the caller has no valid credentials.
	CodeUnauthenticated Code = 16

	minCode = CodeCanceled
	maxCode = CodeUnauthenticated
)

// codeNames are the lower snake case names used by Connect and by the JSON
// codec of the wire protocol.
var codeNames = [...]string{
	CodeCanceled:           "canceled",
	CodeUnknown:            "unknown",
	CodeInvalidArgument:    "invalid_argument",
	CodeDeadlineExceeded:   "deadline_exceeded",
	CodeNotFound:           "not_found",
	CodeAlreadyExists:      "already_exists",
	CodePermissionDenied:   "permission_denied",
	CodeResourceExhausted:  "resource_exhausted",
	CodeFailedPrecondition: "failed_precondition",
	CodeAborted:            "aborted",
	CodeOutOfRange:         "out_of_range",
	CodeUnimplemented:      "unimplemented",
	CodeInternal:           "internal",
	CodeUnavailable:        "unavailable",
	CodeDataLoss:           "data_loss",
	CodeUnauthenticated:    "unauthenticated",
}

// String returns the code's name in lower snake case, such as
// "invalid_argument", "ok" for CodeOK, or "code_N" for a code this version
// does not know.
func (c Code) String() string {
	if c >= minCode && c <= maxCode {
		return codeNames[c]
	}
	if c == CodeOK {
		return "ok"
	}
	return "code_" + strconv.FormatUint(uint64(c), 10)
}

// MarshalText implements encoding.TextMarshaler with the String form.
func (c Code) MarshalText() ([]byte, error) {
	return []byte(c.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler. It accepts the String
// form, including "code_N" for codes this version does not know.
func (c *Code) UnmarshalText(b []byte) error {
	s := string(b)
	for code := minCode; code <= maxCode; code++ {
		if codeNames[code] == s {
			*c = code
			return nil
		}
	}
	if rest, ok := strings.CutPrefix(s, "code_"); ok {
		n, err := strconv.ParseUint(rest, 10, 32)
		if err == nil && n != 0 {
			*c = Code(n)
			return nil
		}
	}
	return fmt.Errorf("protows: invalid code %q", s)
}
