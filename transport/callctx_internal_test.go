package transport

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// newTestCallContext returns the context of a call with id 7 on a
// connection of its own, with a deadline d from now when d > 0.
func newTestCallContext(d time.Duration) (*callContext, *Call) {
	call := &Call{conn: &Conn{}, id: 7}
	call.cx.init(call, d)
	call.ctx = &call.cx
	return &call.cx, call
}

// isDone reports whether ch is closed.
func isDone(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// TestCallContextCancel: the context is live until cancelled, then its
// Done channel is closed, whether it was made before or after, and its
// error is context.Canceled, also for context.Cause; a second cancel
// changes nothing.
func TestCallContextCancel(t *testing.T) {
	for _, early := range []bool{true, false} {
		x, _ := newTestCallContext(0)
		var done <-chan struct{}
		if early {
			done = x.Done()
			if isDone(done) {
				t.Fatal("Done is closed before the cancel")
			}
		}
		if err := x.Err(); err != nil {
			t.Fatalf("Err before the cancel: %v", err)
		}
		if _, ok := x.Deadline(); ok {
			t.Fatal("a deadline without timeout_ms")
		}
		x.cancel(ctxCanceled)
		x.cancel(ctxDeadline)
		if !early {
			done = x.Done()
		}
		if !isDone(done) {
			t.Fatalf("Done (made early: %v) is not closed after the cancel", early)
		}
		if err := x.Err(); !errors.Is(err, context.Canceled) {
			t.Fatalf("Err = %v, want context.Canceled", err)
		}
		if err := context.Cause(x); !errors.Is(err, context.Canceled) {
			t.Fatalf("Cause = %v, want context.Canceled", err)
		}
	}
}

// TestCallContextDeadline: a call with timeout_ms has that deadline, and
// its context ends with context.DeadlineExceeded when it passes; a cancel
// before it stops the timer, and the error stays context.Canceled.
func TestCallContextDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		x, _ := newTestCallContext(50 * time.Millisecond)
		dl, ok := x.Deadline()
		if !ok || !dl.Equal(start.Add(50*time.Millisecond)) {
			t.Fatalf("Deadline = %v, %v; want %v", dl, ok, start.Add(50*time.Millisecond))
		}
		done := x.Done()
		time.Sleep(49 * time.Millisecond)
		if isDone(done) || x.Err() != nil {
			t.Fatal("the context ended before its deadline")
		}
		<-done
		if got := time.Since(start); got != 50*time.Millisecond {
			t.Fatalf("ended after %v, want 50ms", got)
		}
		if err := x.Err(); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Err = %v, want context.DeadlineExceeded", err)
		}
		x.cancel(ctxCanceled)
		if err := x.Err(); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Err after a later cancel = %v, want context.DeadlineExceeded", err)
		}

		y, _ := newTestCallContext(time.Second)
		y.cancel(ctxCanceled)
		time.Sleep(2 * time.Second)
		if err := y.Err(); !errors.Is(err, context.Canceled) {
			t.Fatalf("Err of a context cancelled before its deadline = %v, want context.Canceled", err)
		}
	})
}

// TestCallContextValues: the call and its connection are the values a
// handler finds (CallFromContext, ConnFromContext), through contexts
// derived from the call's too; other keys have none.
func TestCallContextValues(t *testing.T) {
	x, call := newTestCallContext(0)
	type otherKey struct{}
	child := context.WithValue(x, otherKey{}, "v")
	for _, ctx := range []context.Context{x, child} {
		if got, ok := CallFromContext(ctx); !ok || got != call {
			t.Fatalf("CallFromContext = %p, %v; want %p", got, ok, call)
		}
		if got, ok := ConnFromContext(ctx); !ok || got != call.conn {
			t.Fatalf("ConnFromContext = %p, %v; want %p", got, ok, call.conn)
		}
	}
	if v := x.Value(otherKey{}); v != nil {
		t.Fatalf("Value of another key = %v, want nil", v)
	}
	if v := child.Value(otherKey{}); v != "v" {
		t.Fatalf("a child's own value = %v, want v", v)
	}
	if got, want := x.String(), "transport.Call(7).Context"; got != want {
		t.Fatalf("String = %q, want %q", got, want)
	}
}

// TestCallContextChildren: contexts the context package derives from the
// call's (WithCancel, WithTimeout, WithDeadlineCause) are cancelled with
// it, with its error, and start no goroutine to watch it (they register
// with AfterFunc); a child cancelled first unregisters itself; one made after
// the cancel is cancelled at once.
func TestCallContextChildren(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		x, _ := newTestCallContext(time.Minute)
		const n = 100
		children := make([]context.Context, 0, n)
		cancels := make([]context.CancelFunc, 0, n)
		for i := range n {
			var ctx context.Context
			var cancel context.CancelFunc
			switch i % 3 {
			case 0:
				ctx, cancel = context.WithCancel(x)
			case 1:
				ctx, cancel = context.WithTimeout(x, time.Hour)
			default:
				ctx, cancel = context.WithDeadlineCause(x, time.Now().Add(time.Hour), errors.New("cause"))
			}
			children = append(children, ctx)
			cancels = append(cancels, cancel)
		}
		// Each child registered with AfterFunc: the context package starts
		// a goroutine only for a parent that has no AfterFunc.
		if got := registered(x); got != n {
			t.Fatalf("%d functions registered by %d children", got, n)
		}
		if dl, _ := children[1].Deadline(); !dl.Equal(time.Now().Add(time.Minute)) {
			t.Fatalf("a child's deadline %v is not its parent's, the earlier", dl)
		}
		// A child cancelled on its own leaves the others, and unregisters.
		cancels[0]()
		if children[0].Err() == nil || children[1].Err() != nil {
			t.Fatal("cancelling one child affected another")
		}
		if got := registered(x); got != n-1 {
			t.Fatalf("%d functions registered after a child's cancel, want %d", got, n-1)
		}
		x.cancel(ctxCanceled)
		for i, ctx := range children[1:] {
			if !isDone(ctx.Done()) || !errors.Is(ctx.Err(), context.Canceled) || !errors.Is(context.Cause(ctx), context.Canceled) {
				t.Fatalf("child %d after the cancel: Err %v, Cause %v", i+1, ctx.Err(), context.Cause(ctx))
			}
		}
		for _, cancel := range cancels {
			cancel()
		}
		late, cancel := context.WithCancel(x)
		defer cancel()
		if !errors.Is(late.Err(), context.Canceled) {
			t.Fatalf("a child made after the cancel: Err %v", late.Err())
		}
		if got := registered(x); got != 0 {
			t.Fatalf("%d functions registered after the cancel", got)
		}
	})
}

// registered returns how many functions are registered with x.AfterFunc.
func registered(x *callContext) int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.afters)
}

// TestCallContextAfterFunc: context.AfterFunc on the call's context runs
// its function once the context is cancelled, or not at all when stopped
// first; on a context cancelled already it runs at once.
func TestCallContextAfterFunc(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		x, _ := newTestCallContext(0)
		ran := make(chan string, 3)
		context.AfterFunc(x, func() { ran <- "kept" })
		stop := context.AfterFunc(x, func() { ran <- "stopped" })
		if !stop() {
			t.Fatal("stop before the cancel reported false")
		}
		if stop() {
			t.Fatal("a second stop reported true")
		}
		synctest.Wait()
		if len(ran) != 0 {
			t.Fatalf("%q ran before the cancel", <-ran)
		}
		x.cancel(ctxCanceled)
		synctest.Wait()
		if len(ran) != 1 || <-ran != "kept" {
			t.Fatal("after the cancel, only the function not stopped must have run")
		}
		stop = context.AfterFunc(x, func() { ran <- "late" })
		synctest.Wait()
		if len(ran) != 1 || <-ran != "late" {
			t.Fatal("AfterFunc on a cancelled context did not run its function")
		}
		if stop() {
			t.Fatal("stop after the function ran reported true")
		}
	})
}

// TestCallContextConcurrent: children made, cancelled and waited for
// while the context is cancelled all end (run with -race).
func TestCallContextConcurrent(t *testing.T) {
	for range 50 {
		x, _ := newTestCallContext(0)
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				for j := range 20 {
					ctx, cancel := context.WithCancel(x)
					if (i+j)%2 == 0 {
						cancel()
						continue
					}
					defer cancel()
					context.AfterFunc(ctx, func() {})
					_ = x.Done()
				}
			})
		}
		wg.Go(func() { x.cancel(ctxCanceled) })
		wg.Wait()
		if left := registered(x); left != 0 {
			t.Fatalf("%d functions still registered after the cancel", left)
		}
	}
}

// TestDetachedContext: withoutCancel of a call's context, cancelled or
// not, is never done, has no deadline, keeps the call's values, and costs
// no allocation; of another context it is context.WithoutCancel's.
func TestDetachedContext(t *testing.T) {
	x, call := newTestCallContext(time.Hour)
	defer x.cancel(ctxCanceled)
	d := withoutCancel(x)
	x.cancel(ctxCanceled)
	if x.Err() == nil {
		t.Fatal("the call's context is not cancelled")
	}
	if err, done := d.Err(), d.Done(); err != nil || done != nil {
		t.Errorf("detached: Err = %v, Done = %v; want nil, nil", err, done)
	}
	if err := context.Cause(d); err != nil {
		t.Errorf("detached: Cause = %v, want nil", err)
	}
	if dl, ok := d.Deadline(); ok {
		t.Errorf("detached: Deadline = %v, true; want none", dl)
	}
	if got, ok := CallFromContext(d); !ok || got != call {
		t.Errorf("detached: CallFromContext = %p, %v; want %p", got, ok, call)
	}
	if got, ok := ConnFromContext(d); !ok || got != call.conn {
		t.Errorf("detached: ConnFromContext = %p, %v; want %p", got, ok, call.conn)
	}
	if got, want := d.(interface{ String() string }).String(), "transport.Call(7).Context.WithoutCancel"; got != want {
		t.Errorf("detached: String = %q, want %q", got, want)
	}
	child, cancel := context.WithCancel(d)
	cancel()
	if child.Err() == nil || d.Err() != nil {
		t.Errorf("a child's cancel: child's Err %v, detached's %v; want canceled, nil", child.Err(), d.Err())
	}
	if n := testing.AllocsPerRun(100, func() { _ = withoutCancel(x) }); n != 0 {
		t.Errorf("withoutCancel of a call's context: %v allocations, want 0", n)
	}

	type k struct{}
	other, stop := context.WithCancel(context.WithValue(context.Background(), k{}, "v"))
	stop()
	if d := withoutCancel(other); d.Err() != nil || d.Value(k{}) != "v" {
		t.Errorf("withoutCancel of another context: Err %v, value %v; want nil, v", d.Err(), d.Value(k{}))
	}
}
