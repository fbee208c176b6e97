package transport

import (
	"context"
	"errors"
	"time"

	protows "github.com/protows/protows"
	"google.golang.org/protobuf/proto"
)

// A detached call (Call.Detach) outlives the return of its handler: a room
// membership lasts as long as its client wants it, and a goroutine parked
// for each one would cost more memory than the connection itself. The
// call then ends through Finish, or when its context ends, by the same
// code as any call whose handler returned (Call.complete).

// ErrNotDetachable is returned by Call.Detach for a call that cannot be
// detached: one whose server does not stream, one detached already, or
// one whose handler has returned.
var ErrNotDetachable = errors.New("transport: call cannot be detached")

// detachState is what a detached call keeps, under Call.mu; allocated by
// Detach, so that other calls do not carry it.
type detachState struct {
	returned  bool // the handler returned nil: the call waits for Finish
	finishing bool // Finish was called; err is the outcome
	err       error
	onEnd     func(error)
	timer     *time.Timer // the deadline of the handler's context, nil without one
}

// Detach keeps the call open after its handler returns nil: no STREAM_END
// is sent and the call stays registered on its connection, taking no
// goroutine, until Finish is called with its outcome, or until it ends
// the way every call can end: the client cancels (ERROR, or STREAM_END,
// canceled), the connection closes or drains, the REQUEST's timeout_ms
// passes. The deadline of ctx, the handler's context, ends it with
// STREAM_END deadline_exceeded, as a handler returning ctx.Err() would;
// a mere cancellation of ctx does not, since interceptors release the
// contexts they made when the handler returns.
//
// onEnd, when not nil, is called once, after the call's terminal envelope
// was queued, with what its handler would have returned: the error given
// to Finish; the context's error when the call was cancelled (the client
// cancelled, timeout_ms passed, the connection ended or drained: the
// terminal envelope went out then, with its own code); or the handler's
// own error when it returned one after Detach, which ends the call as
// usual. It runs on a goroutine of the server's, never while a caller of
// Finish holds its locks, and may block briefly.
//
// Detach is for handlers that hand the call to something that sends on it
// later, such as a room of package hub (hub.Hub.Attach): call it from the
// handler's goroutine, before the handler returns. It returns
// ErrNotDetachable for a call whose server does not stream, a call
// detached already or whose handler returned, and ErrCallEnded for a call
// that ended already (its onEnd is then never called).
func (c *Call) Detach(ctx context.Context, onEnd func(error)) error {
	if !c.method.ServerStream {
		return ErrNotDetachable
	}
	c.mu.Lock()
	switch {
	case c.detach != nil || c.returned:
		c.mu.Unlock()
		return ErrNotDetachable
	case c.ended:
		c.mu.Unlock()
		return ErrCallEnded
	}
	d := &detachState{onEnd: onEnd}
	c.detach = d
	c.mu.Unlock()
	// The end of a connection cancels its calls without ending them
	// first: one cancelled before it was detached finishes now (a cancel
	// racing this sees c.detach and finishes it too; the first counts).
	if err := c.ctx.Err(); err != nil {
		c.Finish(err)
	}
	// Every end of the call's context goes through Call.cancel, which
	// finishes a detached call: no goroutine and no context.AfterFunc
	// watches it (each would cost an idle member memory).
	if dl, ok := ctx.Deadline(); ok {
		if cdl, cok := c.ctx.Deadline(); !cok || dl.Before(cdl) {
			t := time.AfterFunc(time.Until(dl), func() { c.Finish(context.DeadlineExceeded) })
			c.mu.Lock()
			d.timer = t
			c.mu.Unlock()
		}
	}
	return nil
}

// cancel cancels the call's context, and finishes a detached call with
// its error (Finish ignores a call that already has its outcome). Every
// end of a call cancels it: CANCEL, timeout_ms, the connection's end, a
// drain, the call's own completion.
func (c *Call) cancel() {
	c.cx.cancel(ctxCanceled)
	c.mu.Lock()
	d := c.detach
	c.mu.Unlock()
	if d != nil {
		c.Finish(c.ctx.Err())
	}
}

// Finish ends a detached call with err, as its handler returning err
// would have ended it: nil with STREAM_END ok, an error with STREAM_END
// and the error's code (protows.CodeOf). Only the first Finish counts, and
// nothing is sent for a call that ended already. When the handler has not
// returned yet, the call ends once it returns, with err unless the handler
// returns an error of its own. Finish never waits: the terminal envelope
// is queued on another goroutine. It has no effect on a call that was not
// detached.
func (c *Call) Finish(err error) {
	c.mu.Lock()
	d := c.detach
	if d == nil || d.finishing {
		c.mu.Unlock()
		return
	}
	d.finishing, d.err = true, err
	returned := d.returned
	c.mu.Unlock()
	if returned {
		// The end may wait for room in the send queue: not on the
		// caller's goroutine, which may be a broadcast holding a room's
		// lock.
		c.conn.srv.workers.run(func() { c.complete(nil, err, false) })
	}
}

// Context returns the call's context: cancelled when the client cancels
// the call, when it reaches the REQUEST's timeout_ms, when its connection
// ends, and once the call has ended. It is the context handlers get,
// without what interceptors added to it.
func (c *Call) Context() context.Context { return c.ctx }

// handlerReturned records the return of the handler with err and reports
// whether the call ends now (complete), with *err set to its outcome:
// false for a detached call whose handler returned nil and that was not
// finished yet.
func (c *Call) handlerReturned(err *error) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.returned = true
	d := c.detach
	if d == nil || *err != nil {
		if d != nil {
			d.finishing = true // later Finishes are ignored
		}
		return true
	}
	d.returned = true
	if !d.finishing {
		return false
	}
	*err = d.err
	return true
}

// complete ends the call with the outcome of its handler, or of its
// detached life, and releases what it held: the end of every call but the
// keyed ones (runKeyed). It runs once per call.
//
// With through set, complete is called on the goroutine that ran the
// handler, which then runs the connection's writer when complete reports
// true (see Call.endThrough), once the call was released.
func (c *Call) complete(res proto.Message, err error, through bool) (write bool) {
	_, write = c.endThrough(res, err, true, through)
	if c.stopDeadline != nil {
		c.stopDeadline()
	}
	c.cancel()
	c.mu.Lock()
	d := c.detach
	c.mu.Unlock()
	if d != nil && d.timer != nil {
		d.timer.Stop()
	}
	if c.conn.srv.timed {
		c.conn.srv.cfg.Metrics.CallDone(c.method.Name, protows.CodeOf(err).String(), time.Since(c.start))
	}
	if d != nil && d.onEnd != nil {
		d.onEnd(err)
	}
	c.conn.handlerDone()
	return write
}
