package protows

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Error is the error of a failed call: a Code, a message and optional
// typed details (ErrorDetail), wrapping the cause when there is one.
// Handlers return it to choose the code the client sees; clients get it
// back from every failed call. Find it in a chain with errors.As, or read
// just the code with CodeOf.
type Error struct {
	code    Code
	err     error
	method  string // the failed call's method, when a client named it
	details []*ErrorDetail
}

// NewError returns an error with the given code that wraps underlying. The
// client sees underlying's message; a nil underlying leaves the message empty.
// CodeOK, which is no error code, becomes CodeUnknown.
func NewError(c Code, underlying error) *Error {
	return &Error{code: errorCode(c), err: underlying}
}

// Errorf returns an error with the given code and a formatted message. Like
// fmt.Errorf, it wraps an error given with the %w verb. CodeOK becomes
// CodeUnknown.
func Errorf(c Code, format string, args ...any) *Error {
	return &Error{code: errorCode(c), err: fmt.Errorf(format, args...)}
}

// errorCode keeps CodeOK out of errors: on the wire, 0 means "no error".
func errorCode(c Code) Code {
	if c == CodeOK {
		return CodeUnknown
	}
	return c
}

// Code returns the error's code.
func (e *Error) Code() Code {
	return e.code
}

// Message returns the error's message without the code: what goes on the
// wire as Error.message.
func (e *Error) Message() string {
	if e.err == nil {
		return ""
	}
	return e.err.Error()
}

// Method returns the full name of the method whose call failed, as
// WithMethod recorded it (the Go client does for every error its calls
// return), or "".
func (e *Error) Method() string {
	return e.method
}

// WithMethod returns a copy of e that names the method whose call failed:
// Method returns it and Error reads "protows: code: /pkg.S/M: message"
// (or "protows: code: message" when the message names the method already).
// The code, Message (the wire form) and the cause stay as they were, so
// the name never travels on the wire when the error is passed on.
func (e *Error) WithMethod(method string) *Error {
	named := *e
	named.method = method
	// Details added to the copy do not show in e.
	named.details = slices.Clip(e.details)
	return &named
}

// Error implements error as "protows: code: message", with the method
// before the message when one was recorded (WithMethod).
func (e *Error) Error() string {
	s := "protows: " + e.code.String()
	msg := e.Message()
	if e.method != "" && !strings.Contains(msg, e.method) {
		s += ": " + e.method
	}
	if msg != "" {
		s += ": " + msg
	}
	return s
}

// Unwrap returns the cause, for errors.Is and errors.As.
func (e *Error) Unwrap() error {
	return e.err
}

// CodeOf returns the code of err: CodeOK for nil, the code of the first
// *Error in its chain, CodeCanceled or CodeDeadlineExceeded for the context
// errors, and CodeUnknown for anything else. So CodeOf(err).String() names
// the outcome of any call, "ok" for a success:
//
//	res, err := next(ctx, call)
//	logger.Info("call", "method", call.Method, "code", protows.CodeOf(err))
func CodeOf(err error) Code {
	if err == nil {
		// Before perr is declared: errors.As makes it escape, and a
		// successful call, which every call's metrics ask about, would
		// allocate it for nothing.
		return CodeOK
	}
	var perr *Error
	switch {
	case errors.As(err, &perr):
		return perr.code
	case errors.Is(err, context.Canceled):
		return CodeCanceled
	case errors.Is(err, context.DeadlineExceeded):
		return CodeDeadlineExceeded
	default:
		return CodeUnknown
	}
}

// AsError converts any error to an *Error: the one already in its chain, or a
// new one with the code CodeOf gives and err's message.
func AsError(err error) *Error {
	var perr *Error
	if errors.As(err, &perr) {
		return perr
	}
	return &Error{code: errorCode(CodeOf(err)), err: err}
}
