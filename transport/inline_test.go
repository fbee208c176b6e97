package transport_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/protows/protows"
	"github.com/protows/protows/codec"
	testv1 "github.com/protows/protows/gen/go/protows/test/v1"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"github.com/protows/protows/router"
	"github.com/protows/protows/transport"
)

// Methods of the inline tests (Config.InlineCallFor).
const (
	inlineWhereMethod   = "/inline.v1.Inline/Where"
	inlineWaitMethod    = "/inline.v1.Inline/Wait"
	inlineReleaseMethod = "/inline.v1.Inline/Release"
	inlineExitMethod    = "/inline.v1.Inline/Exit"
)

// registerInline adds: Where, which says whether it runs on the
// connection's reader; Wait, which returns once Release was called; and
// Exit, which ends its goroutine (runtime.Goexit).
func registerInline(release chan struct{}) func(*router.Router) {
	return func(r *router.Router) {
		err := errors.Join(
			router.HandleUnary(r, inlineWhereMethod, func(context.Context, *testv1.EchoRequest) (*testv1.EchoResponse, error) {
				buf := make([]byte, 64<<10)
				stack := string(buf[:runtime.Stack(buf, false)])
				where := "worker"
				if strings.Contains(stack, "transport.(*Conn).read(") {
					where = "reader"
				}
				return &testv1.EchoResponse{Text: where}, nil
			}),
			router.HandleUnary(r, inlineWaitMethod, func(ctx context.Context, _ *testv1.EchoRequest) (*testv1.EchoResponse, error) {
				select {
				case <-release:
					return &testv1.EchoResponse{Text: "released"}, nil
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			}),
			router.HandleUnary(r, inlineReleaseMethod, func(context.Context, *testv1.EchoRequest) (*testv1.EchoResponse, error) {
				close(release)
				return &testv1.EchoResponse{Text: "release"}, nil
			}),
			router.HandleUnary(r, inlineExitMethod, func(context.Context, *testv1.EchoRequest) (*testv1.EchoResponse, error) {
				runtime.Goexit()
				return nil, nil
			}),
		)
		if err != nil {
			panic(err)
		}
	}
}

// busyAfter is how many messages a connection's reader takes as the start
// of a run, each followed by a hop to a fresh goroutine (read's
// freshReads); the calls of those messages go to workers.
const busyAfter = 4

// startBusyServer is startServer with connections that count as busy
// however slowly a test sends: a silence never starts a new run.
func startBusyServer(t *testing.T, cfg transport.Config, extra ...func(*router.Router)) *testServer {
	ts := startServer(t, cfg, extra...)
	transport.SetIdleGap(ts.Server, time.Hour)
	return ts
}

// TestInlineWhere checks where a unary call runs: on a worker for the
// first messages of a connection, then on the connection's reader, but
// always on a worker when InlineCallFor is negative.
func TestInlineWhere(t *testing.T) {
	for _, tc := range []struct {
		inlineFor time.Duration
		busy      string // where the calls after the first busyAfter run
	}{
		{0, "reader"},
		{time.Second, "reader"},
		{-1, "worker"},
	} {
		ts := startBusyServer(t, transport.Config{InlineCallFor: tc.inlineFor}, registerInline(make(chan struct{})))
		cl := ts.dial(t, codec.Proto(), nil)
		for id := uint32(1); id <= busyAfter+3; id++ {
			e := cl.call(id, inlineWhereMethod, &testv1.EchoRequest{})
			var res testv1.EchoResponse
			cl.decode(e, &res)
			want := tc.busy
			if id <= busyAfter {
				want = "worker"
			}
			if res.GetText() != want {
				t.Errorf("InlineCallFor %v, call %d ran on the %s, want the %s", tc.inlineFor, id, res.GetText(), want)
			}
		}
	}
}

// warmUp makes the connection busy: its next calls run on the reader.
func warmUp(cl *client) {
	for id := uint32(1000); id < 1000+busyAfter; id++ {
		cl.call(id, inlineWhereMethod, &testv1.EchoRequest{})
	}
}

// TestInlineCallHandsReadingOn: a call that the reader runs and that
// waits for the connection's next call does not stall the connection:
// after InlineCallFor another reader reads that call, and both end.
func TestInlineCallHandsReadingOn(t *testing.T) {
	for _, inlineFor := range []time.Duration{0, 20 * time.Millisecond} {
		release := make(chan struct{})
		ts := startBusyServer(t, transport.Config{InlineCallFor: inlineFor}, registerInline(release))
		cl := ts.dial(t, codec.JSON(), nil)
		warmUp(cl)
		cl.send(cl.request(1, inlineWaitMethod, &testv1.EchoRequest{}))
		cl.send(cl.request(2, inlineReleaseMethod, &testv1.EchoRequest{}))
		got := map[uint32]string{}
		for len(got) < 2 {
			e := cl.recv()
			if e.GetKind() != protowsv1.Kind_KIND_REPLY {
				t.Fatalf("InlineCallFor %v: %v", inlineFor, e)
			}
			var res testv1.EchoResponse
			cl.decode(e, &res)
			got[e.GetId()] = res.GetText()
		}
		if got[1] != "released" || got[2] != "release" {
			t.Errorf("InlineCallFor %v: replies %v", inlineFor, got)
		}
	}
}

// TestInlineCallEndsItsGoroutine: a handler that ends its goroutine
// (runtime.Goexit) on the reader fails its call with internal, and the
// connection reads on: the call's timer hands reading to another reader.
func TestInlineCallEndsItsGoroutine(t *testing.T) {
	ts := startBusyServer(t, transport.Config{}, registerInline(make(chan struct{})))
	cl := ts.dial(t, codec.Proto(), nil)
	warmUp(cl)
	wantError(t, cl.call(1, inlineExitMethod, &testv1.EchoRequest{}), protowsv1.Kind_KIND_ERROR, protows.CodeInternal)
	e := cl.call(2, inlineWhereMethod, &testv1.EchoRequest{})
	var res testv1.EchoResponse
	cl.decode(e, &res)
	if res.GetText() != "reader" {
		t.Errorf("the call after the Goexit ran on the %s", res.GetText())
	}
}
