package transport_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gorilla/websocket"
	protows "github.com/protows/protows"
	"github.com/protows/protows/codec"
	testv1 "github.com/protows/protows/gen/go/protows/test/v1"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"github.com/protows/protows/hub"
	"github.com/protows/protows/internal/testservice"
	"github.com/protows/protows/router"
	"github.com/protows/protows/transport"
	"google.golang.org/protobuf/types/known/durationpb"
)

const workMethod = "/load.v1.Load/Work"

// TestShutdownUnderLoad shuts the server down while clients keep calling:
// every call a handler started gets its reply before the 1001 close, and
// the calls that arrive during the drain are refused with unavailable.
func TestShutdownUnderLoad(t *testing.T) {
	t.Parallel()
	for _, c := range codecs {
		t.Run(c.Name(), func(t *testing.T) {
			t.Parallel()
			var started atomic.Int64
			ts := startServer(t, transport.Config{}, func(r *router.Router) {
				err := router.HandleUnary(r, workMethod, func(ctx context.Context, req *testv1.SleepRequest) (*testv1.SleepResponse, error) {
					started.Add(1)
					time.Sleep(req.GetDelay().AsDuration()) // ignores ctx on purpose: shutdown must wait
					return &testv1.SleepResponse{Slept: req.GetDelay()}, nil
				})
				if err != nil {
					t.Fatal(err)
				}
			})
			const clients = 10
			var (
				replies, unavailable, other atomic.Int64
				wg                          sync.WaitGroup
				codes                       = make([]int, clients)
			)
			for i := range clients {
				cl := dial(t, ts.url, c, nil)
				wg.Add(2)
				stop := make(chan struct{})
				go func() { // reader
					defer wg.Done()
					defer close(stop)
					for {
						e, err := cl.next(10 * time.Second)
						var ce *websocket.CloseError
						if errors.As(err, &ce) {
							codes[i] = ce.Code
							return
						}
						if err != nil {
							codes[i] = -1
							return
						}
						switch {
						case e.GetKind() == protowsv1.Kind_KIND_REPLY:
							replies.Add(1)
						case protows.Code(e.GetError().GetCode()) == protows.CodeUnavailable:
							unavailable.Add(1)
						default:
							other.Add(1)
						}
					}
				}()
				go func() { // writer: a request every millisecond
					defer wg.Done()
					req := &testv1.SleepRequest{Delay: durationpb.New(30 * time.Millisecond)}
					for id := uint32(1); ; id++ {
						select {
						case <-stop:
							return
						case <-time.After(time.Millisecond):
						}
						frame, _ := marshal(cl, cl.request(id, workMethod, req))
						_ = cl.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
						if cl.ws.WriteMessage(cl.msgType(), frame) != nil {
							<-stop
							return
						}
					}
				}()
			}
			time.Sleep(200 * time.Millisecond)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := ts.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}
			wg.Wait()
			for i, code := range codes {
				if code != websocket.CloseGoingAway {
					t.Errorf("client %d: close %d, want 1001", i, code)
				}
			}
			if replies.Load() != started.Load() || replies.Load() == 0 || other.Load() != 0 {
				t.Fatalf("started %d, replies %d, unavailable %d, other %d", started.Load(), replies.Load(), unavailable.Load(), other.Load())
			}
			t.Logf("started %d, replied %d, refused while draining %d", started.Load(), replies.Load(), unavailable.Load())
			// A handshake during or after shutdown gets 503.
			_, resp, err := dialErr(ts.url, c, nil)
			if err == nil || resp.StatusCode != 503 {
				t.Fatalf("handshake after shutdown: %v", resp)
			}
		})
	}
}

// marshal encodes one frame without a testing.T, for writer goroutines.
func marshal(cl *client, envs ...*protowsv1.Envelope) ([]byte, error) {
	return codec.MarshalFrame(cl.c, envs...)
}

const gateMethod = "/load.v1.Load/Gate"

// TestShutdownEndsStreams shuts the server down while a client has an
// endless stream open and a unary call in flight: the stream ends at once
// with STREAM_END unavailable, the unary call still finishes (its context
// untouched) and answers, then the 1001 close comes, and Shutdown returns
// long before its deadline.
func TestShutdownEndsStreams(t *testing.T) {
	t.Parallel()
	for _, c := range codecs {
		t.Run(c.Name(), func(t *testing.T) {
			started := make(chan struct{})
			release := make(chan struct{})
			unaryErr := make(chan error, 1)
			ts := startServer(t, transport.Config{}, func(r *router.Router) {
				err := router.HandleUnary(r, gateMethod, func(ctx context.Context, req *testv1.SleepRequest) (*testv1.SleepResponse, error) {
					close(started)
					<-release
					unaryErr <- ctx.Err() // shutdown must not cancel a unary call
					return &testv1.SleepResponse{Slept: req.GetDelay()}, nil
				})
				if err != nil {
					t.Fatal(err)
				}
			})
			cl := dial(t, ts.url, c, nil)
			cl.send(cl.request(1, testservice.CountMethod, &testv1.CountRequest{Interval: durationpb.New(5 * time.Millisecond)}))
			if e := cl.recv(); e.GetId() != 1 || e.GetKind() != protowsv1.Kind_KIND_STREAM_MESSAGE {
				t.Fatalf("want a stream message, got %v", e)
			}
			cl.send(cl.request(2, gateMethod, &testv1.SleepRequest{Delay: durationpb.New(time.Second)}))
			<-started

			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			begin := time.Now()
			shutdown := make(chan error, 1)
			go func() { shutdown <- ts.Shutdown(ctx) }()

			// The stream ends while the unary handler is still running.
			for {
				e := cl.recv()
				if e.GetId() != 1 {
					t.Fatalf("before the stream's end: %v", e)
				}
				if e.GetKind() == protowsv1.Kind_KIND_STREAM_MESSAGE {
					continue
				}
				wantError(t, e, protowsv1.Kind_KIND_STREAM_END, protows.CodeUnavailable)
				if msg := e.GetError().GetMessage(); msg != "server shutting down" {
					t.Fatalf("STREAM_END message %q", msg)
				}
				break
			}
			select {
			case err := <-shutdown:
				t.Fatalf("Shutdown returned %v with a unary call running", err)
			default:
			}
			// A stream asked for while draining is refused.
			cl.send(cl.request(3, testservice.CountMethod, &testv1.CountRequest{}))
			wantError(t, cl.recv(), protowsv1.Kind_KIND_ERROR, protows.CodeUnavailable)

			close(release)
			e := cl.recv()
			if e.GetId() != 2 || e.GetKind() != protowsv1.Kind_KIND_REPLY {
				t.Fatalf("want the unary reply, got %v", e)
			}
			if err := <-unaryErr; err != nil {
				t.Fatalf("the unary call's context ended: %v", err)
			}
			if reason := cl.expectClose(websocket.CloseGoingAway); reason != "server shutting down" {
				t.Fatalf("close reason %q", reason)
			}
			if err := <-shutdown; err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
			if d := time.Since(begin); d > 5*time.Second {
				t.Fatalf("Shutdown took %v", d)
			}
		})
	}
}

// TestShutdownOnlyStreams: connections whose only calls are endless
// streams close with 1001 at once.
func TestShutdownOnlyStreams(t *testing.T) {
	t.Parallel()
	for _, c := range codecs {
		t.Run(c.Name(), func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) { testShutdownOnlyStreams(t, c) })
		})
	}
}

func testShutdownOnlyStreams(t *testing.T, c codec.Codec) {
	ts := startMemServer(t, transport.Config{})
	var cls []*client
	for range 3 {
		cl := ts.dial(t, c, nil)
		cl.send(cl.request(1, testservice.CountMethod, &testv1.CountRequest{Interval: durationpb.New(time.Hour)}))
		cl.send(cl.request(2, testservice.CountMethod, &testv1.CountRequest{Interval: durationpb.New(time.Hour)}))
		// The PING's PONG proves both REQUESTs were read.
		cl.send(&protowsv1.Envelope{Id: 9, Kind: protowsv1.Kind_KIND_PING})
		if e := cl.recv(); e.GetKind() != protowsv1.Kind_KIND_PONG {
			t.Fatalf("want PONG, got %v", e)
		}
		cls = append(cls, cl)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	begin := time.Now()
	if err := ts.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if d := time.Since(begin); d > 5*time.Second {
		t.Fatalf("Shutdown took %v", d)
	}
	for _, cl := range cls {
		ended := map[uint32]bool{}
		for range 2 {
			e := cl.recv()
			wantError(t, e, protowsv1.Kind_KIND_STREAM_END, protows.CodeUnavailable)
			ended[e.GetId()] = true
		}
		if !ended[1] || !ended[2] {
			t.Fatalf("streams ended: %v", ended)
		}
		cl.expectClose(websocket.CloseGoingAway)
	}
}

const roomMethod = "/load.v1.Load/Room"

// TestShutdownEndsHubRooms: members of a hub room, on both codecs, get
// STREAM_END unavailable and then 1001 when the server shuts down; their
// Join returns, so the room empties.
func TestShutdownEndsHubRooms(t *testing.T) {
	t.Parallel()
	synctest.Test(t, testShutdownEndsHubRooms)
}

func testShutdownEndsHubRooms(t *testing.T) {
	h, err := hub.New(hub.Config[*testv1.CountResponse]{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ts := startMemServer(t, transport.Config{}, func(r *router.Router) {
		err := router.HandleServerStream(r, roomMethod, func(ctx context.Context, _ *testv1.CountRequest, s router.Stream[*testv1.CountResponse]) error {
			return h.Join(ctx, "lobby", s)
		})
		if err != nil {
			t.Fatal(err)
		}
	})
	var cls []*client
	for _, c := range codecs {
		cl := ts.dial(t, c, nil)
		cl.send(cl.request(1, roomMethod, &testv1.CountRequest{}))
		cls = append(cls, cl)
	}
	synctest.Wait() // the handlers wait in Join
	if n := len(h.Members("lobby")); n != len(cls) {
		t.Fatalf("%d members, want %d", n, len(cls))
	}
	if err := h.Broadcast(context.Background(), "lobby", &testv1.CountResponse{N: 7}); err != nil {
		t.Fatal(err)
	}
	for _, cl := range cls {
		if e := cl.recv(); e.GetId() != 1 || e.GetKind() != protowsv1.Kind_KIND_STREAM_MESSAGE {
			t.Fatalf("want the broadcast, got %v", e)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ts.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for _, cl := range cls {
		e := cl.recv()
		if e.GetId() != 1 {
			t.Fatalf("want the room's STREAM_END, got %v", e)
		}
		wantError(t, e, protowsv1.Kind_KIND_STREAM_END, protows.CodeUnavailable)
		cl.expectClose(websocket.CloseGoingAway)
	}
	if n := len(h.Members("lobby")); n != 0 {
		t.Fatalf("%d members left after shutdown", n)
	}
}

// TestDrainTimeout: handlers that ignore their context cannot hold a
// draining connection open: at the drain timeout their calls end with
// ERROR unavailable and the connection closes with 1001, well before
// Shutdown's own deadline; what the handlers return later is discarded.
func TestDrainTimeout(t *testing.T) {
	t.Parallel()
	for _, c := range codecs {
		t.Run(c.Name(), func(t *testing.T) {
			release := make(chan struct{})
			started := make(chan struct{}, 2)
			ts := startServer(t, transport.Config{DrainTimeout: 200 * time.Millisecond}, func(r *router.Router) {
				err := router.HandleUnary(r, gateMethod, func(ctx context.Context, req *testv1.SleepRequest) (*testv1.SleepResponse, error) {
					started <- struct{}{}
					<-release // ignores ctx
					return &testv1.SleepResponse{}, nil
				})
				if err == nil {
					err = router.HandleServerStream(r, roomMethod, func(ctx context.Context, _ *testv1.CountRequest, s router.Stream[*testv1.CountResponse]) error {
						started <- struct{}{}
						<-release // ignores ctx
						return nil
					})
				}
				if err != nil {
					t.Fatal(err)
				}
			})
			cl := dial(t, ts.url, c, nil)
			cl.send(cl.request(1, gateMethod, &testv1.SleepRequest{}), cl.request(2, roomMethod, &testv1.CountRequest{}))
			<-started
			<-started
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			begin := time.Now()
			shutdown := make(chan error, 1)
			go func() { shutdown <- ts.Shutdown(ctx) }()
			// The stream ends at once, the unary call at the drain timeout.
			wantError(t, cl.recv(), protowsv1.Kind_KIND_STREAM_END, protows.CodeUnavailable)
			e := cl.recv()
			if e.GetId() != 1 {
				t.Fatalf("want the unary call's end, got %v", e)
			}
			wantError(t, e, protowsv1.Kind_KIND_ERROR, protows.CodeUnavailable)
			cl.expectClose(websocket.CloseGoingAway)
			if d := time.Since(begin); d < 200*time.Millisecond || d > 3*time.Second {
				t.Fatalf("closed after %v, want about the drain timeout", d)
			}
			close(release)
			if err := <-shutdown; err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
		})
	}
}
