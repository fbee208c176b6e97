package client

import (
	"context"
	"errors"

	"github.com/protows/protows"
)

var (
	// ErrConnectionLost is wrapped by the CodeUnavailable error of a call
	// that was in flight when its connection dropped: its outcome is
	// unknown. Test for it with errors.Is.
	ErrConnectionLost = errors.New("connection lost")
	// ErrClosed is wrapped by the CodeCanceled error of calls made, or in
	// flight, when Close was called.
	ErrClosed = errors.New("client closed")
)

// errLinkDown is what a conn returns to a call that tried to use it after
// it ended; the call then waits for the next connection or fails.
var errLinkDown = errors.New("client: connection is down")

// errHeartbeat is the cause of a connection ended by the heartbeat.
var errHeartbeat = errors.New("no PONG within the heartbeat timeout")

// ctxError returns the error of a call whose context ended: CodeCanceled or
// CodeDeadlineExceeded, wrapping the context's error.
func ctxError(ctx context.Context) error {
	err := ctx.Err()
	return protows.NewError(protows.CodeOf(err), err)
}
