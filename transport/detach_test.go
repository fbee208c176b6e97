package transport_test

import (
	"context"
	"errors"
	"testing"
	"time"

	protows "github.com/protows/protows"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"github.com/protows/protows/router"
	"github.com/protows/protows/transport"
)

// detached is a call a detaching handler handed over, and the outcome its
// onEnd was given.
type detached struct {
	call *transport.Call
	end  chan error
}

// Methods of detachServer: each detaches its call, then
const (
	detachMethod       = "/protows.test.v1.Detach/Detach"       // returns nil
	detachFailMethod   = "/protows.test.v1.Detach/Fail"         // returns failed_precondition
	detachFinishMethod = "/protows.test.v1.Detach/FinishReturn" // finishes with not_found, then returns nil
	detachUnaryMethod  = "/protows.test.v1.Detach/Unary"        // (unary) answers with the error of Detach
	detachTwiceMethod  = "/protows.test.v1.Detach/Twice"        // returns the error of a second Detach
	detachLateMethod   = "/protows.test.v1.Detach/Late"         // detaches once its context ended, returns nil
)

// detachServer serves the Detach methods; each detached call is sent on
// the channel it returns.
func detachServer(t *testing.T, cfg transport.Config) (*testServer, <-chan detached) {
	t.Helper()
	calls := make(chan detached, 16)
	handler := func(then func(ctx context.Context, tc *transport.Call) error) func(context.Context, *protowsv1.AuthenticateRequest, router.Stream[*protowsv1.AuthenticateResponse]) error {
		return func(ctx context.Context, _ *protowsv1.AuthenticateRequest, _ router.Stream[*protowsv1.AuthenticateResponse]) error {
			tc, _ := transport.CallFromContext(ctx)
			d := detached{call: tc, end: make(chan error, 1)}
			if err := tc.Detach(ctx, func(err error) { d.end <- err }); err != nil {
				return err
			}
			calls <- d
			return then(ctx, tc)
		}
	}
	ts := startServer(t, cfg, func(r *router.Router) {
		err := errors.Join(
			router.HandleServerStream(r, detachMethod, handler(func(context.Context, *transport.Call) error { return nil })),
			router.HandleServerStream(r, detachFailMethod, handler(func(context.Context, *transport.Call) error {
				return protows.Errorf(protows.CodeFailedPrecondition, "after detach")
			})),
			router.HandleServerStream(r, detachFinishMethod, handler(func(_ context.Context, tc *transport.Call) error {
				tc.Finish(protows.Errorf(protows.CodeNotFound, "finished early"))
				return nil
			})),
			router.HandleServerStream(r, detachTwiceMethod, handler(func(ctx context.Context, tc *transport.Call) error {
				return tc.Detach(ctx, nil)
			})),
			router.HandleServerStream(r, detachLateMethod, func(ctx context.Context, _ *protowsv1.AuthenticateRequest, _ router.Stream[*protowsv1.AuthenticateResponse]) error {
				<-ctx.Done()
				tc, _ := transport.CallFromContext(ctx)
				d := detached{call: tc, end: make(chan error, 1)}
				err := tc.Detach(ctx, func(err error) { d.end <- err })
				if err != nil {
					d.end <- err
				}
				calls <- d
				return nil
			}),
			router.HandleUnary(r, detachUnaryMethod, func(ctx context.Context, _ *protowsv1.AuthenticateRequest) (*protowsv1.AuthenticateResponse, error) {
				tc, _ := transport.CallFromContext(ctx)
				return nil, tc.Detach(ctx, nil)
			}),
		)
		if err != nil {
			t.Fatal(err)
		}
	})
	return ts, calls
}

func receiveDetached(t *testing.T, calls <-chan detached) detached {
	t.Helper()
	select {
	case d := <-calls:
		return d
	case <-time.After(5 * time.Second):
		t.Fatal("no call was detached")
		return detached{}
	}
}

func wantEnd(t *testing.T, d detached, code protows.Code) {
	t.Helper()
	select {
	case err := <-d.end:
		if got := protows.CodeOf(err); got != code {
			t.Fatalf("onEnd got %v (%v), want %v", err, got, code)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("onEnd was not called")
	}
}

// streamEnd reads until the end of call id.
func streamEnd(t *testing.T, cl *client, id uint32) *protowsv1.Envelope {
	t.Helper()
	for {
		e := cl.recv()
		if e.GetId() == id && e.GetKind() != protowsv1.Kind_KIND_STREAM_MESSAGE {
			return e
		}
	}
}

// TestDetach: a detached call stays open after its handler returned, takes
// stream messages, and ends with what Finish, the client, the handler or
// the connection decide, calling onEnd once.
func TestDetach(t *testing.T) {
	t.Parallel()
	req := &protowsv1.AuthenticateRequest{}
	for _, c := range codecs {
		t.Run(c.Name(), func(t *testing.T) {
			t.Parallel()
			ts, calls := detachServer(t, transport.Config{})
			cl := ts.dial(t, c, nil)

			// Finish after the handler returned; messages before it.
			cl.send(cl.request(1, detachMethod, req))
			d := receiveDetached(t, calls)
			time.Sleep(10 * time.Millisecond) // let the handler return; the order does not matter
			if err := d.call.Send(&protowsv1.AuthenticateResponse{Subject: "later"}); err != nil {
				t.Fatalf("Send on a detached call: %v", err)
			}
			if e := cl.recv(); e.GetId() != 1 || e.GetKind() != protowsv1.Kind_KIND_STREAM_MESSAGE {
				t.Fatalf("got %v, want the STREAM_MESSAGE of call 1", e)
			}
			d.call.Finish(protows.Errorf(protows.CodeUnavailable, "gone"))
			d.call.Finish(nil) // the first outcome counts
			wantError(t, streamEnd(t, cl, 1), protowsv1.Kind_KIND_STREAM_END, protows.CodeUnavailable)
			wantEnd(t, d, protows.CodeUnavailable)
			if err := d.call.Send(&protowsv1.AuthenticateResponse{}); !errors.Is(err, transport.ErrCallEnded) {
				t.Fatalf("Send after the end: %v, want ErrCallEnded", err)
			}

			// Finish(nil): STREAM_END ok.
			cl.send(cl.request(2, detachMethod, req))
			d = receiveDetached(t, calls)
			d.call.Finish(nil)
			if e := streamEnd(t, cl, 2); e.GetKind() != protowsv1.Kind_KIND_STREAM_END || e.GetError() != nil {
				t.Fatalf("got %v, want STREAM_END ok", e)
			}
			wantEnd(t, d, protows.CodeOK)

			// The client cancels.
			cl.send(cl.request(3, detachMethod, req))
			d = receiveDetached(t, calls)
			cl.send(&protowsv1.Envelope{Id: 3, Kind: protowsv1.Kind_KIND_CANCEL})
			wantError(t, streamEnd(t, cl, 3), protowsv1.Kind_KIND_STREAM_END, protows.CodeCanceled)
			wantEnd(t, d, protows.CodeCanceled)

			// The handler returns an error after Detach.
			cl.send(cl.request(4, detachFailMethod, req))
			d = receiveDetached(t, calls)
			wantError(t, streamEnd(t, cl, 4), protowsv1.Kind_KIND_STREAM_END, protows.CodeFailedPrecondition)
			wantEnd(t, d, protows.CodeFailedPrecondition)

			// Finish before the handler returned.
			cl.send(cl.request(5, detachFinishMethod, req))
			d = receiveDetached(t, calls)
			wantError(t, streamEnd(t, cl, 5), protowsv1.Kind_KIND_STREAM_END, protows.CodeNotFound)
			wantEnd(t, d, protows.CodeNotFound)

			// timeout_ms.
			e := cl.request(6, detachMethod, req)
			e.TimeoutMs = 50
			cl.send(e)
			d = receiveDetached(t, calls)
			wantError(t, streamEnd(t, cl, 6), protowsv1.Kind_KIND_STREAM_END, protows.CodeDeadlineExceeded)
			wantEnd(t, d, protows.CodeDeadlineExceeded)

			// Refusals: a unary call, a second Detach.
			wantError(t, cl.call(7, detachUnaryMethod, req), protowsv1.Kind_KIND_ERROR, protows.CodeUnknown)
			cl.send(cl.request(8, detachTwiceMethod, req))
			d = receiveDetached(t, calls)
			wantError(t, streamEnd(t, cl, 8), protowsv1.Kind_KIND_STREAM_END, protows.CodeUnknown)
			wantEnd(t, d, protows.CodeUnknown)

			// The connection closes: the open call ends with it.
			cl.send(cl.request(9, detachMethod, req))
			d = receiveDetached(t, calls)
			_ = cl.ws.Close()
			wantEnd(t, d, protows.CodeCanceled)
		})
	}
}

// TestDetachedCallDrains: Shutdown ends a detached call like any stream,
// with STREAM_END unavailable, and is not held up by it.
func TestDetachedCallDrains(t *testing.T) {
	t.Parallel()
	ts, calls := detachServer(t, transport.Config{})
	cl := ts.dial(t, codecs[0], nil)
	cl.send(cl.request(1, detachMethod, &protowsv1.AuthenticateRequest{}))
	d := receiveDetached(t, calls)
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- ts.Shutdown(ctx)
	}()
	wantError(t, streamEnd(t, cl, 1), protowsv1.Kind_KIND_STREAM_END, protows.CodeUnavailable)
	wantEnd(t, d, protows.CodeCanceled)
	cl.expectClose(protows.CloseGoingAway)
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// TestDetachAfterConnectionEnd: a call whose connection ended before it
// was detached (the end cancels calls without ending them) still ends,
// and the connection with it, when its handler returns.
func TestDetachAfterConnectionEnd(t *testing.T) {
	t.Parallel()
	ts, calls := detachServer(t, transport.Config{})
	cl := ts.dial(t, codecs[0], nil)
	cl.send(cl.request(1, detachLateMethod, &protowsv1.AuthenticateRequest{}))
	time.Sleep(20 * time.Millisecond) // the handler runs; the order does not matter
	_ = cl.ws.Close()
	d := receiveDetached(t, calls)
	wantEnd(t, d, protows.CodeCanceled)
	select {
	case <-d.call.Conn().Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the connection did not end")
	}
}
