package transport_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	protows "github.com/protows/protows"
	"github.com/protows/protows/codec"
	testv1 "github.com/protows/protows/gen/go/protows/test/v1"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"github.com/protows/protows/internal/testservice"
	"github.com/protows/protows/router"
	"github.com/protows/protows/transport"
	"google.golang.org/protobuf/types/known/durationpb"
)

// brokenID is the envelope id brokenCodec cannot encode.
const brokenID = 13

// brokenCodec is a codec that fails to encode every envelope with id
// brokenID: an internal failure of the server's own encoding.
type brokenCodec struct{ codec.Codec }

func (b brokenCodec) AppendEnvelope(dst []byte, e *protowsv1.Envelope) ([]byte, error) {
	if e.GetId() == brokenID {
		return nil, errors.New("broken codec")
	}
	return b.Codec.AppendEnvelope(dst, e)
}

// TestInternalError: an envelope the server cannot encode, even as an
// ERROR internal, closes with 1011; a handler panic does not.
func TestInternalError(t *testing.T) {
	t.Parallel()
	reg, err := codec.NewRegistry(brokenCodec{codec.Proto()}, brokenCodec{codec.JSON()})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range codecs {
		for _, kind := range []protowsv1.Kind{protowsv1.Kind_KIND_REQUEST, protowsv1.Kind_KIND_PING} {
			t.Run(c.Name()+"/"+kind.String(), func(t *testing.T) {
				t.Parallel()
				ts := startServer(t, transport.Config{Codecs: reg})
				cl := dial(t, ts.url, c, nil)
				// A panic is the handler's failure: ERROR internal, the
				// connection stays.
				wantError(t, cl.call(1, testservice.FailMethod, &testv1.FailRequest{Panic: true, Message: "boom"}), protowsv1.Kind_KIND_ERROR, protows.CodeInternal)
				if e := cl.call(2, testservice.EchoMethod, &testv1.EchoRequest{Text: "ok"}); e.GetKind() != protowsv1.Kind_KIND_REPLY {
					t.Fatalf("after a panic: %v", e)
				}
				if kind == protowsv1.Kind_KIND_PING {
					cl.send(&protowsv1.Envelope{Id: brokenID, Kind: protowsv1.Kind_KIND_PING})
				} else {
					cl.send(cl.request(brokenID, testservice.EchoMethod, &testv1.EchoRequest{Text: "unencodable"}))
				}
				cl.expectClose(protows.CloseInternalError)
				checkServing(t, ts, c)
			})
		}
	}
}

const (
	badMetadataMethod = "/enc.v1.Enc/BadMetadata"
	badMessageMethod  = "/enc.v1.Enc/BadMessage"
)

// TestUnencodableReplies: what a handler returns that a codec refuses
// (strings that are not UTF-8) still ends the call with one envelope, and
// the connection stays.
func TestUnencodableReplies(t *testing.T) {
	t.Parallel()
	extra := func(r *router.Router) {
		err := router.HandleUnary(r, badMetadataMethod, func(ctx context.Context, _ *testv1.EchoRequest) (*testv1.EchoResponse, error) {
			call, _ := transport.CallFromContext(ctx)
			call.SetReplyMetadata("k", "bad \xff value")
			return &testv1.EchoResponse{Text: "metadata"}, nil
		})
		if err == nil {
			err = router.HandleUnary(r, badMessageMethod, func(context.Context, *testv1.EchoRequest) (*testv1.EchoResponse, error) {
				return nil, protows.Errorf(protows.CodeNotFound, "no \xff here")
			})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	ts := startServer(t, transport.Config{}, extra)
	for _, c := range codecs {
		t.Run(c.Name(), func(t *testing.T) {
			cl := dial(t, ts.url, c, nil)
			e := cl.call(1, badMessageMethod, &testv1.EchoRequest{})
			wantError(t, e, protowsv1.Kind_KIND_ERROR, protows.CodeNotFound)
			if got := e.GetError().GetMessage(); got != "no \uFFFD here" {
				t.Fatalf("message %q", got)
			}
			e = cl.call(2, badMetadataMethod, &testv1.EchoRequest{})
			switch {
			case c.Binary():
				// Protobuf refuses the string: the call still ends.
				wantError(t, e, protowsv1.Kind_KIND_ERROR, protows.CodeInternal)
			case e.GetKind() != protowsv1.Kind_KIND_REPLY || e.GetMetadata()["k"] != "bad \uFFFD value":
				// encoding/json replaces invalid UTF-8 itself.
				t.Fatalf("JSON reply: %v", e)
			}
			if e := cl.call(3, testservice.EchoMethod, &testv1.EchoRequest{}); e.GetKind() != protowsv1.Kind_KIND_REPLY {
				t.Fatalf("after an unencodable reply: %v", e)
			}
		})
	}
}

const blockMethod = "/block.v1.Block/Wait"

// blocker is a unary method that runs until released.
type blocker struct {
	started chan uint32
	release chan struct{}
}

func newBlocker(t *testing.T) (*blocker, func(*router.Router)) {
	b := &blocker{started: make(chan uint32, 16), release: make(chan struct{})}
	return b, func(r *router.Router) {
		err := router.HandleUnary(r, blockMethod, func(ctx context.Context, req *testv1.EchoRequest) (*testv1.EchoResponse, error) {
			call, _ := transport.CallFromContext(ctx)
			b.started <- call.ID()
			select {
			case <-b.release:
				return &testv1.EchoResponse{Text: req.GetText()}, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func (b *blocker) waitStarted(t *testing.T, id uint32) {
	t.Helper()
	select {
	case got := <-b.started:
		if got != id {
			t.Fatalf("call %d started, want %d", got, id)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("call %d did not start", id)
	}
}

// TestOverloaded: a REQUEST beyond Config.MaxCalls sheds its connection:
// ERROR unavailable for it, STREAM_END unavailable for the connection's
// streams, replies for its unary calls, then close 1013. Other
// connections keep their calls.
func TestOverloaded(t *testing.T) {
	t.Parallel()
	for _, c := range codecs {
		t.Run(c.Name(), func(t *testing.T) {
			t.Parallel()
			b, extra := newBlocker(t)
			m := &shedMetrics{}
			ts := startServer(t, transport.Config{MaxCalls: 3, Metrics: m}, extra)
			a := dial(t, ts.url, c, nil)
			a.send(a.request(1, blockMethod, &testv1.EchoRequest{Text: "a"}))
			b.waitStarted(t, 1)

			cl := dial(t, ts.url, c, nil)
			cl.send(cl.request(5, blockMethod, &testv1.EchoRequest{Text: "b"}))
			b.waitStarted(t, 5)
			cl.send(cl.request(1, testservice.CountMethod, &testv1.CountRequest{Interval: durationpb.New(10 * time.Millisecond)}))
			if e := cl.recv(); e.GetKind() != protowsv1.Kind_KIND_STREAM_MESSAGE {
				t.Fatalf("stream: %v", e)
			}
			// Three calls run: the fourth overloads the server.
			cl.send(cl.request(2, testservice.EchoMethod, &testv1.EchoRequest{}))
			var refused, streamEnded bool
			for !refused || !streamEnded {
				e := cl.recv()
				switch e.GetId() {
				case 2:
					wantError(t, e, protowsv1.Kind_KIND_ERROR, protows.CodeUnavailable)
					refused = true
				case 1:
					if e.GetKind() == protowsv1.Kind_KIND_STREAM_END {
						wantError(t, e, protowsv1.Kind_KIND_STREAM_END, protows.CodeUnavailable)
						streamEnded = true
					}
				default:
					t.Fatalf("unexpected %v", e)
				}
			}
			// While its unary call runs, the shed connection refuses new
			// calls.
			wantError(t, cl.call(3, testservice.EchoMethod, &testv1.EchoRequest{}), protowsv1.Kind_KIND_ERROR, protows.CodeUnavailable)
			close(b.release)
			if e := cl.recv(); e.GetId() != 5 || e.GetKind() != protowsv1.Kind_KIND_REPLY {
				t.Fatalf("the accepted call's reply: %v", e)
			}
			cl.expectClose(protows.CloseTryAgainLater)
			if n := m.shed.Load(); n != 1 {
				t.Errorf("LoadMetrics.ConnShed counted %d connections, want 1", n)
			}

			// The other connection was not affected.
			if e := a.recv(); e.GetId() != 1 || e.GetKind() != protowsv1.Kind_KIND_REPLY {
				t.Fatalf("other connection: %v", e)
			}
			if e := a.call(2, testservice.EchoMethod, &testv1.EchoRequest{}); e.GetKind() != protowsv1.Kind_KIND_REPLY {
				t.Fatalf("other connection after the overload: %v", e)
			}
		})
	}
}

// shedMetrics counts shed connections (transport.LoadMetrics).
type shedMetrics struct {
	transport.NopMetrics
	shed atomic.Int32
}

var _ transport.LoadMetrics = (*shedMetrics)(nil)

func (m *shedMetrics) ConnShed() { m.shed.Add(1) }

// TestForbidden: Config.Authorize refuses authenticated principals with
// ERROR permission_denied and close 4503, for a handshake token, a first
// in-band Authenticate and a refresh.
func TestForbidden(t *testing.T) {
	t.Parallel()
	iss := newIssuer(t)
	var (
		mu     sync.Mutex
		banned = map[string]bool{"mallory": true}
		seen   = map[string]bool{} // connection ids Authorize saw
	)
	ban := func(sub string) {
		mu.Lock()
		defer mu.Unlock()
		banned[sub] = true
	}
	authorize := func(ctx context.Context, c *transport.Conn, p *transport.Principal) error {
		if _, ok := ctx.Deadline(); !ok {
			t.Error("Authorize without a deadline")
		}
		mu.Lock()
		defer mu.Unlock()
		seen[c.ID()] = true
		if banned[p.Subject] {
			return errors.New("banned")
		}
		return nil
	}
	ts := startServer(t, transport.Config{Authenticator: iss.Authenticator(), Authorize: authorize})
	for _, c := range codecs {
		t.Run(c.Name(), func(t *testing.T) {
			// Handshake token of a banned subject.
			cl := dial(t, ts.url, c, http.Header{"Authorization": {"Bearer " + mint(t, iss, "mallory", time.Hour)}})
			e := cl.recv()
			if e.GetId() != 0 {
				t.Fatalf("want ERROR id 0, got %v", e)
			}
			wantError(t, e, protowsv1.Kind_KIND_ERROR, protows.CodePermissionDenied)
			cl.expectClose(protows.CloseForbidden)

			// In band.
			cl = dial(t, ts.url, c, nil)
			wantError(t, cl.authenticate(1, mint(t, iss, "mallory", time.Hour)), protowsv1.Kind_KIND_ERROR, protows.CodePermissionDenied)
			cl.expectClose(protows.CloseForbidden)

			// An allowed subject, then banned: its refresh is refused.
			sub := "alice-" + c.Name()
			cl = dial(t, ts.url, c, http.Header{"Authorization": {"Bearer " + mint(t, iss, sub, time.Hour)}})
			if got := cl.whoami(1); got != sub {
				t.Fatalf("whoami %q", got)
			}
			mu.Lock()
			ok := len(seen) > 0
			mu.Unlock()
			if !ok {
				t.Fatal("Authorize never saw a connection")
			}
			ban(sub)
			wantError(t, cl.authenticate(2, mint(t, iss, sub, 2*time.Hour)), protowsv1.Kind_KIND_ERROR, protows.CodePermissionDenied)
			cl.expectClose(protows.CloseForbidden)
			checkAuthServing(t, ts, c, iss)
		})
	}
}

// checkAuthServing proves an allowed client is still served.
func checkAuthServing(t *testing.T, ts *testServer, c codec.Codec, iss *testservice.TokenIssuer) {
	t.Helper()
	cl := dial(t, ts.url, c, nil)
	if e := cl.authenticate(1, mint(t, iss, "bob", time.Hour)); e.GetKind() != protowsv1.Kind_KIND_REPLY {
		t.Fatalf("bob: %v", e)
	}
	if got := cl.whoami(2); got != "bob" {
		t.Fatalf("whoami %q", got)
	}
	_ = cl.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
}
