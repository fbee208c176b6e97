package transport_test

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	protows "github.com/protows/protows"
	testv1 "github.com/protows/protows/gen/go/protows/test/v1"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"github.com/protows/protows/internal/testservice"
	"github.com/protows/protows/router"
	"github.com/protows/protows/transport"
	"google.golang.org/protobuf/types/known/durationpb"
)

const connMethod = "/wt.v1.WT/Conn"

// writerWatch is a Metrics that sees a server's writers: MessageOut is
// called by the writer of a connection for every frame it wrote. It
// lingers there, so that a second writer of the same connection running
// meanwhile would be seen.
type writerWatch struct {
	transport.NopMetrics
	active  atomic.Int32
	overlap atomic.Int32
	frames  atomic.Int32
}

func (w *writerWatch) MessageOut(string, int) {
	if w.active.Add(1) > 1 {
		w.overlap.Add(1)
	}
	w.frames.Add(1)
	time.Sleep(20 * time.Microsecond)
	w.active.Add(-1)
}

// TestOneWriterAtATime: the replies of unary calls that end together,
// each of which may make its handler's goroutine the writer
// (write-through), half of them keyed (runKeyed writes through too), PONGs answered by the reader and envelopes queued from
// other goroutines are all written, by one writer at a time.
func TestOneWriterAtATime(t *testing.T) {
	t.Parallel()
	for _, c := range codecs {
		t.Run(c.Name(), func(t *testing.T) {
			t.Parallel()
			watch := &writerWatch{}
			// One connection per server: the writers of different
			// connections do run at once.
			conn := make(chan *transport.Conn, 1)
			ts := startServer(t, transport.Config{Metrics: watch, RateLimit: -1, SendQueue: 1 << 16, MaxInFlight: 1 << 12}, func(r *router.Router) {
				err := router.HandleUnary(r, connMethod, func(ctx context.Context, _ *testv1.EchoRequest) (*testv1.EchoResponse, error) {
					sc, _ := transport.ConnFromContext(ctx)
					conn <- sc
					return &testv1.EchoResponse{}, nil
				})
				if err != nil {
					t.Fatal(err)
				}
			})
			cl := dial(t, ts.url, c, nil)
			if e := cl.call(1, connMethod, &testv1.EchoRequest{}); e.GetKind() != protowsv1.Kind_KIND_REPLY {
				t.Fatalf("want a REPLY, got %v", e)
			}
			sc := <-conn
			const (
				frames   = 200
				perFrame = 4
				pushers  = 4
				pushes   = 100
			)
			var wg sync.WaitGroup
			wg.Go(func() {
				for f := range frames {
					envs := make([]*protowsv1.Envelope, 0, perFrame+1)
					for i := range perFrame {
						id := uint32(f*perFrame + i + 1)
						env := cl.request(id, testservice.EchoMethod, &testv1.EchoRequest{Text: "x"})
						if id%2 == 0 {
							env.IdempotencyKey = "wt-" + strconv.Itoa(int(id))
						}
						envs = append(envs, env)
					}
					envs = append(envs, &protowsv1.Envelope{Id: uint32(f + 1), Kind: protowsv1.Kind_KIND_PING})
					frame, err := marshal(cl, envs...)
					if err != nil {
						t.Error(err)
						return
					}
					if err := cl.ws.WriteMessage(cl.msgType(), frame); err != nil {
						t.Error(err)
						return
					}
				}
			})
			pong, err := c.AppendEnvelope(nil, &protowsv1.Envelope{Id: 1 << 30, Kind: protowsv1.Kind_KIND_PONG})
			if err != nil {
				t.Fatal(err)
			}
			for range pushers {
				wg.Go(func() {
					for range pushes {
						if err := sc.Enqueue(pong); err != nil {
							t.Error(err)
							return
						}
					}
				})
			}
			replies, pongs, pushed := map[uint32]bool{}, 0, 0
			for len(replies) < frames*perFrame || pongs < frames || pushed < pushers*pushes {
				e := cl.recv()
				switch {
				case e.GetKind() == protowsv1.Kind_KIND_REPLY:
					if replies[e.GetId()] {
						t.Fatalf("a second REPLY %d", e.GetId())
					}
					replies[e.GetId()] = true
				case e.GetKind() == protowsv1.Kind_KIND_PONG && e.GetId() == 1<<30:
					pushed++
				case e.GetKind() == protowsv1.Kind_KIND_PONG:
					pongs++
				default:
					t.Fatalf("unexpected %v", e)
				}
			}
			wg.Wait()
			if n := watch.overlap.Load(); n > 0 {
				t.Fatalf("two writers of one connection ran at once %d times (in %d frames)", n, watch.frames.Load())
			}
		})
	}
}

// TestDrainAnswersEndingCalls: unary calls whose handlers all return at
// once while their connection drains each get their REPLY before the
// 1001 close, which the last of them triggers (handlerDone): whichever
// goroutine writes, writer on a worker or a handler's own
// (write-through), no reply is lost behind the close frame.
func TestDrainAnswersEndingCalls(t *testing.T) {
	t.Parallel()
	for _, c := range codecs {
		t.Run(c.Name(), func(t *testing.T) {
			t.Parallel()
			for round := range 5 {
				const calls = 32
				var started sync.WaitGroup
				started.Add(calls)
				release := make(chan struct{})
				ts := startServer(t, transport.Config{RateLimit: -1}, func(r *router.Router) {
					err := router.HandleUnary(r, gateMethod, func(ctx context.Context, req *testv1.SleepRequest) (*testv1.SleepResponse, error) {
						started.Done()
						<-release
						return &testv1.SleepResponse{}, nil
					})
					if err != nil {
						t.Fatal(err)
					}
				})
				cl := dial(t, ts.url, c, nil)
				envs := make([]*protowsv1.Envelope, 0, calls)
				for id := uint32(1); id <= calls; id++ {
					envs = append(envs, cl.request(id, gateMethod, &testv1.SleepRequest{}))
				}
				cl.send(envs...)
				started.Wait()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				shutdown := make(chan error, 1)
				go func() { shutdown <- ts.Shutdown(ctx) }()
				// The drain began once a request sent now is refused.
				for id := uint32(calls + 1); ; id++ {
					e := cl.call(id, testservice.EchoMethod, &testv1.EchoRequest{})
					if e.GetKind() == protowsv1.Kind_KIND_ERROR {
						wantError(t, e, protowsv1.Kind_KIND_ERROR, protows.CodeUnavailable)
						break
					}
					time.Sleep(time.Millisecond)
				}
				close(release)
				got := map[uint32]bool{}
				for len(got) < calls {
					e := cl.recv()
					if e.GetKind() != protowsv1.Kind_KIND_REPLY || e.GetId() < 1 || e.GetId() > calls || got[e.GetId()] {
						t.Fatalf("round %d: after %d replies: %v", round, len(got), e)
					}
					got[e.GetId()] = true
				}
				cl.expectClose(websocket.CloseGoingAway)
				if err := <-shutdown; err != nil {
					t.Fatalf("Shutdown: %v", err)
				}
				cancel()
			}
		})
	}
}

// callTimes is a Metrics that records the calls it is told of.
type callTimes struct {
	transport.NopMetrics
	done chan time.Duration
}

func (m *callTimes) CallDone(method, outcome string, d time.Duration) {
	if method == testservice.SleepMethod && outcome == "ok" {
		m.done <- d
	}
}

// TestCallDoneTimesTheHandler: a Metrics other than NopMetrics is told of
// every call with how long its handler ran (calls are timed only then).
func TestCallDoneTimesTheHandler(t *testing.T) {
	t.Parallel()
	m := &callTimes{done: make(chan time.Duration, 1)}
	ts := startServer(t, transport.Config{Metrics: m})
	cl := dial(t, ts.url, codecs[0], nil)
	const delay = 20 * time.Millisecond
	if e := cl.call(1, testservice.SleepMethod, &testv1.SleepRequest{Delay: durationpb.New(delay)}); e.GetKind() != protowsv1.Kind_KIND_REPLY {
		t.Fatalf("want a REPLY, got %v", e)
	}
	select {
	case d := <-m.done:
		if d < delay || d > time.Minute {
			t.Fatalf("CallDone got %v for a handler that slept %v", d, delay)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("CallDone was not called")
	}
}
