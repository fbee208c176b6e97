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

// TestInlineWhere checks where a unary call runs: on the connection's
// reader by default, on a worker when InlineCallFor is negative.
func TestInlineWhere(t *testing.T) {
	for _, tc := range []struct {
		inlineFor time.Duration
		want      string
	}{
		{0, "reader"},
		{time.Second, "reader"},
		{-1, "worker"},
	} {
		ts := startServer(t, transport.Config{InlineCallFor: tc.inlineFor}, registerInline(make(chan struct{})))
		cl := ts.dial(t, codec.Proto(), nil)
		for id := uint32(1); id <= 3; id++ {
			e := cl.call(id, inlineWhereMethod, &testv1.EchoRequest{})
			var res testv1.EchoResponse
			cl.decode(e, &res)
			if res.GetText() != tc.want {
				t.Errorf("InlineCallFor %v, call %d ran on the %s, want the %s", tc.inlineFor, id, res.GetText(), tc.want)
			}
		}
	}
}

// TestInlineCallHandsReadingOn: a call that the reader runs and that
// waits for the connection's next call does not stall the connection:
// after InlineCallFor a fresh reader reads that call, and both end.
func TestInlineCallHandsReadingOn(t *testing.T) {
	for _, inlineFor := range []time.Duration{0, 20 * time.Millisecond} {
		release := make(chan struct{})
		ts := startServer(t, transport.Config{InlineCallFor: inlineFor}, registerInline(release))
		cl := ts.dial(t, codec.JSON(), nil)
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
// connection reads on: the call's timer hands reading to a fresh reader.
func TestInlineCallEndsItsGoroutine(t *testing.T) {
	ts := startServer(t, transport.Config{}, registerInline(make(chan struct{})))
	cl := ts.dial(t, codec.Proto(), nil)
	wantError(t, cl.call(1, inlineExitMethod, &testv1.EchoRequest{}), protowsv1.Kind_KIND_ERROR, protows.CodeInternal)
	e := cl.call(2, inlineWhereMethod, &testv1.EchoRequest{})
	var res testv1.EchoResponse
	cl.decode(e, &res)
	if res.GetText() != "reader" {
		t.Errorf("the call after the Goexit ran on the %s", res.GetText())
	}
}
