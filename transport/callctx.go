package transport

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// callContext is a call's context, held inside its Call: a call costs no
// allocation for its context, where context.WithoutCancel, WithCancel and
// WithValue cost four. Its Done channel is made only when asked for, and
// it has an AfterFunc method, which the context package uses for the
// children made from it (context.WithCancel, WithTimeout, AfterFunc):
// they are cancelled by its cancel, as a cancelCtx cancels its children,
// with no goroutine to watch it.
//
// It carries the call (callKey) and its connection (connKey) as values
// and nothing else, and is cancelled only by its call: it does not derive
// from the connection's context, whose children map an idle room member
// would otherwise occupy (see handleRequest); Conn.finish and Shutdown
// cancel the calls themselves.
type callContext struct {
	call     *Call
	deadline time.Time // zero without one
	// state is ctxLive until cancel sets it, before it closes done:
	// Err reads it without the lock.
	state atomic.Uint32
	mu    sync.Mutex
	done  chan struct{} // made by the first Done
	timer *time.Timer   // the deadline's, nil without one
	// afters are the functions AfterFunc registered and whose stop was not
	// called; each knows its index.
	afters []*afterFunc
}

const (
	ctxLive uint32 = iota
	ctxCanceled
	ctxDeadline
)

// afterFunc is a function registered with callContext.AfterFunc.
type afterFunc struct {
	f func()
	i int // index in callContext.afters, -1 once run or stopped
}

// Compile-time checks: callContext is a context whose AfterFunc the
// context package uses for its children.
var (
	_ context.Context                            = (*callContext)(nil)
	_ interface{ AfterFunc(func()) func() bool } = (*callContext)(nil)
	_ interface{ String() string }               = (*callContext)(nil)
)

// init prepares x for call, with a deadline d from now when d > 0. It
// must be called before x is used.
func (x *callContext) init(call *Call, d time.Duration) {
	x.call = call
	if d > 0 {
		x.deadline = time.Now().Add(d)
		x.timer = time.AfterFunc(d, x.expire)
	}
}

// expire is the deadline timer's function.
func (x *callContext) expire() { x.cancel(ctxDeadline) }

// Deadline returns the deadline of the REQUEST's timeout_ms, if it had one.
func (x *callContext) Deadline() (time.Time, bool) {
	return x.deadline, !x.deadline.IsZero()
}

// Done returns a channel closed once the context is cancelled.
func (x *callContext) Done() <-chan struct{} {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.done == nil {
		x.done = make(chan struct{})
		if x.state.Load() != ctxLive {
			close(x.done)
		}
	}
	return x.done
}

// Err returns nil until the context is cancelled, then context.Canceled,
// or context.DeadlineExceeded when the deadline passed first.
func (x *callContext) Err() error {
	switch x.state.Load() {
	case ctxCanceled:
		return context.Canceled
	case ctxDeadline:
		return context.DeadlineExceeded
	}
	return nil
}

// Value returns the call for callKey, its connection for connKey, and nil
// for any other key: the values of the connection's context, from which
// the call's context derived before it was a type of its own.
func (x *callContext) Value(key any) any {
	switch key.(type) {
	case callKey:
		return x.call
	case connKey:
		return x.call.conn
	}
	return nil
}

// String names the context, as the context package's own do (it shows in
// the String of the contexts derived from it).
func (x *callContext) String() string {
	return "transport.Call(" + strconv.FormatUint(uint64(x.call.id), 10) + ").Context"
}

// AfterFunc arranges for f to run once the context is cancelled: on the
// goroutine that cancels it, or, when it is cancelled already, on a
// goroutine of its own. The returned stop unregisters f, and reports
// whether it did so before f ran. The context package calls it for the
// children of the context (see callContext); f then cancels a child,
// which does not block (context.AfterFunc's own f runs on a goroutine the
// child starts).
func (x *callContext) AfterFunc(f func()) (stop func() bool) {
	a := &afterFunc{f: f, i: -1}
	x.mu.Lock()
	if x.state.Load() != ctxLive {
		x.mu.Unlock()
		// The caller may hold a lock that f takes: a child's propagation
		// does.
		go f()
		return func() bool { return false }
	}
	a.i = len(x.afters)
	x.afters = append(x.afters, a)
	x.mu.Unlock()
	return func() bool {
		x.mu.Lock()
		defer x.mu.Unlock()
		i := a.i
		if i < 0 {
			return false
		}
		last := len(x.afters) - 1
		x.afters[i] = x.afters[last]
		x.afters[i].i = i
		x.afters[last] = nil
		x.afters = x.afters[:last]
		a.i = -1
		return true
	}
}

// cancel cancels the context with the error of state (ctxCanceled or
// ctxDeadline), unless it was cancelled already, and runs the functions
// registered with AfterFunc.
func (x *callContext) cancel(state uint32) {
	x.mu.Lock()
	if x.state.Load() != ctxLive {
		x.mu.Unlock()
		return
	}
	x.state.Store(state)
	if x.done != nil {
		close(x.done)
	}
	if x.timer != nil {
		x.timer.Stop()
	}
	afters := x.afters
	x.afters = nil
	for _, a := range afters {
		a.i = -1
	}
	x.mu.Unlock()
	for _, a := range afters {
		a.f()
	}
}

// detachedContext is a call's context without its cancellation, what
// context.WithoutCancel makes of it, without its allocation: a keyed
// call's outcome is recorded with it (runKeyed), whether or not the call
// ended. It is the callContext itself, seen through another type, so a
// Store that keeps it sees the call's values for as long as it does.
type detachedContext callContext

var _ context.Context = (*detachedContext)(nil)

// Deadline reports none.
func (*detachedContext) Deadline() (time.Time, bool) { return time.Time{}, false }

// Done returns nil: the context is never cancelled.
func (*detachedContext) Done() <-chan struct{} { return nil }

// Err returns nil.
func (*detachedContext) Err() error { return nil }

// Value returns the call's context's values.
func (x *detachedContext) Value(key any) any { return (*callContext)(x).Value(key) }

// String names the context as context.WithoutCancel's String would.
func (x *detachedContext) String() string { return (*callContext)(x).String() + ".WithoutCancel" }

// withoutCancel returns ctx without its cancellation: a detachedContext
// for a call's own context, context.WithoutCancel's for any other.
func withoutCancel(ctx context.Context) context.Context {
	if x, ok := ctx.(*callContext); ok {
		return (*detachedContext)(x)
	}
	return context.WithoutCancel(ctx)
}
