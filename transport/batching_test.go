package transport_test

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"testing/synctest"
	"time"

	"github.com/protows/protows/codec"
	testv1 "github.com/protows/protows/gen/go/protows/test/v1"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"github.com/protows/protows/internal/testservice"
	"github.com/protows/protows/router"
	"github.com/protows/protows/transport"
)

// streamFrames asks for a stream of n numbers and returns how many
// envelopes each frame of the answer held, up to and including the
// STREAM_END.
func streamFrames(t *testing.T, cl *client, n uint32) []int {
	t.Helper()
	cl.send(cl.request(1, testservice.CountMethod, &testv1.CountRequest{Count: n}))
	var sizes []int
	got := 0
	deadline := time.Now().Add(10 * time.Second)
	for {
		_ = cl.ws.SetReadDeadline(deadline)
		mt, b, err := cl.ws.ReadMessage()
		if err != nil {
			t.Fatalf("after %d envelopes: %v", got, err)
		}
		if mt != cl.msgType() {
			t.Fatalf("frame type %d", mt)
		}
		envs, err := cl.c.DecodeFrame(b)
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, len(envs))
		for _, e := range envs {
			got++
			if e.GetKind() == protowsv1.Kind_KIND_STREAM_END {
				if got != int(n)+1 {
					t.Fatalf("STREAM_END after %d envelopes, want %d", got, n+1)
				}
				return sizes
			}
		}
	}
}

// TestDisableBatching: with batching off every envelope of a fast stream
// leaves in a frame of its own, in both codecs; with the default the same
// stream shares frames (the writer is slower than the handler).
func TestDisableBatching(t *testing.T) {
	t.Parallel()
	const n = 500 // below the send queue's 1024, which the delay lets fill
	for _, c := range codecs {
		for _, tc := range []struct {
			name string
			cfg  transport.Config
		}{
			{"off", transport.Config{DisableBatching: true}},
			{"off-with-delay", transport.Config{DisableBatching: true, WriteDelay: time.Millisecond}},
			{"default", transport.Config{}},
		} {
			t.Run(c.Name()+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				ts := startServer(t, tc.cfg)
				cl := dial(t, ts.url, c, nil)
				sizes := streamFrames(t, cl, n)
				largest := 0
				for _, s := range sizes {
					largest = max(largest, s)
				}
				if tc.cfg.DisableBatching {
					if largest != 1 || len(sizes) != n+1 {
						t.Fatalf("%d frames, largest %d envelopes; want %d frames of 1", len(sizes), largest, n+1)
					}
				} else if largest < 2 {
					t.Fatalf("%d envelopes in %d frames: the default never batched", n+1, len(sizes))
				}
			})
		}
	}
}

// TestWriteDelay: a reply waits WriteDelay before it is written, and the
// envelopes queued meanwhile go out with it.
func TestWriteDelay(t *testing.T) {
	t.Parallel()
	const delay = 100 * time.Millisecond
	for _, c := range codecs {
		t.Run(c.Name(), func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				ts := startMemServer(t, transport.Config{WriteDelay: delay})
				cl := ts.dial(t, c, nil)
				start := time.Now()
				e := cl.call(1, testservice.EchoMethod, &testv1.EchoRequest{Text: "hi"})
				if e.GetKind() != protowsv1.Kind_KIND_REPLY {
					t.Fatalf("kind %v", e.GetKind())
				}
				if d := time.Since(start); d != delay {
					t.Fatalf("reply after %v, want after the write delay of %v", d, delay)
				}
				// Ten calls in one frame: their replies are queued within the
				// delay of the first and share its frame.
				var reqs []*protowsv1.Envelope
				for id := uint32(2); id < 12; id++ {
					reqs = append(reqs, cl.request(id, testservice.EchoMethod, &testv1.EchoRequest{Text: "x"}))
				}
				cl.send(reqs...)
				envs := readFrame(t, cl)
				if len(envs) != len(reqs) {
					t.Fatalf("first frame held %d replies, want all %d", len(envs), len(reqs))
				}
			})
		})
	}
}

// readFrame reads one frame and decodes it.
func readFrame(t *testing.T, cl *client) []*protowsv1.Envelope {
	t.Helper()
	_ = cl.ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	mt, b, err := cl.ws.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	if mt != cl.msgType() {
		t.Fatalf("frame type %d, want %d", mt, cl.msgType())
	}
	envs, err := cl.c.DecodeFrame(b)
	if err != nil {
		t.Fatal(err)
	}
	return envs
}

// TestSingleEnvelopeYield: a writer woken for a single envelope yields
// once before it writes, so that an envelope its sender queues right after
// shares the frame. With one P the order is fixed: the handler sends,
// yields to the writer, which yields back, and the handler sends again
// and ends before the writer writes. Without the yield the first message
// leaves alone.
func TestSingleEnvelopeYield(t *testing.T) {
	const method = "/protows.test.v1.Yield/Two"
	ts := startServer(t, transport.Config{}, func(r *router.Router) {
		err := router.HandleServerStream(r, method, func(_ context.Context, _ *testv1.CountRequest, s router.Stream[*testv1.CountResponse]) error {
			if err := s.Send(&testv1.CountResponse{N: 1}); err != nil {
				return err
			}
			runtime.Gosched()
			return s.Send(&testv1.CountResponse{N: 2})
		})
		if err != nil {
			t.Fatal(err)
		}
	})
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	const runs = 20
	joined := 0
	for range runs {
		cl := dial(t, ts.url, codecs[0], nil)
		cl.send(cl.request(1, method, &testv1.CountRequest{}))
		envs := readFrame(t, cl)
		if len(envs) > 1 && envs[0].GetKind() == protowsv1.Kind_KIND_STREAM_MESSAGE && envs[1].GetKind() == protowsv1.Kind_KIND_STREAM_MESSAGE {
			joined++
		}
		cl.ws.Close()
	}
	// The scheduler is free to run things in another order now and then
	// (a timer, the network poller); most runs must join the two.
	if joined < runs/2 {
		t.Fatalf("the two messages shared a frame in %d of %d runs", joined, runs)
	}
}

// TestYieldWhileQueueGrows: a writer whose queue grew while it yielded
// yields again (up to a bound), so that messages sent one after another
// while it waits share one frame. With one P the order is fixed: each
// yield of the writer lets the handler send one more message, and the
// writer writes once its queue stops growing. With a single yield only
// the first two messages share the frame.
func TestYieldWhileQueueGrows(t *testing.T) {
	const method = "/protows.test.v1.Yield/Four"
	ts := startServer(t, transport.Config{}, func(r *router.Router) {
		err := router.HandleServerStream(r, method, func(_ context.Context, _ *testv1.CountRequest, s router.Stream[*testv1.CountResponse]) error {
			for n := uint32(1); n <= 4; n++ {
				if err := s.Send(&testv1.CountResponse{N: n}); err != nil {
					return err
				}
				runtime.Gosched()
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	const runs = 20
	joined := 0
	for range runs {
		cl := dial(t, ts.url, codecs[0], nil)
		cl.send(cl.request(1, method, &testv1.CountRequest{}))
		msgs := 0
		for _, e := range readFrame(t, cl) {
			if e.GetKind() == protowsv1.Kind_KIND_STREAM_MESSAGE {
				msgs++
			}
		}
		if msgs == 4 {
			joined++
		}
		cl.ws.Close()
	}
	if joined < runs/2 {
		t.Fatalf("the four messages shared a frame in %d of %d runs", joined, runs)
	}
}

// TestWriterLingersAfterBroadcast: a writer that wrote room broadcasts
// (Call.EnqueueParts, the broadcast path) arriving faster than it writes
// them, two in its last batch, and found its queue empty yields a few
// times before it exits, so that the connection's next broadcast finds it
// running; one that wrote a lone broadcast, or a handler's Send, exits at
// once. With GOMAXPROCS at 1 the handler sees the writer between its
// yields.
func TestWriterLingersAfterBroadcast(t *testing.T) {
	const (
		bcast2 = "/protows.test.v1.Linger/BroadcastTwo"
		bcast1 = "/protows.test.v1.Linger/BroadcastOne"
		send   = "/protows.test.v1.Linger/Send"
	)
	type seen struct{ drained, running bool }
	seenCh := make(chan seen, 1)
	// After queueing its messages, the handler yields until the writer
	// wrote them and reports whether the writer still ran then.
	watch := func(ctx context.Context) {
		c, _ := transport.CallFromContext(ctx)
		var s seen
		for range 1000 {
			if s.drained, s.running = transport.WriterState(c.Conn()); s.drained {
				break
			}
			runtime.Gosched()
		}
		seenCh <- s
	}
	broadcast := func(n uint64) func(context.Context, *testv1.CountRequest, router.Stream[*testv1.CountResponse]) error {
		return func(ctx context.Context, _ *testv1.CountRequest, _ router.Stream[*testv1.CountResponse]) error {
			c, _ := transport.CallFromContext(ctx)
			for seq := range n {
				payload, err := c.Codec().AppendPayload(nil, &testv1.CountResponse{N: uint32(seq)})
				if err != nil {
					return err
				}
				elem, _, err := codec.AppendStreamMessage(c.Codec(), nil, c.ID(), payload, seq+1)
				if err != nil {
					return err
				}
				if err := c.EnqueueParts(elem); err != nil {
					return err
				}
			}
			watch(ctx)
			return nil
		}
	}
	ts := startServer(t, transport.Config{}, func(r *router.Router) {
		err := errors.Join(
			router.HandleServerStream(r, bcast2, broadcast(2)),
			router.HandleServerStream(r, bcast1, broadcast(1)),
			router.HandleServerStream(r, send, func(ctx context.Context, _ *testv1.CountRequest, s router.Stream[*testv1.CountResponse]) error {
				if err := s.Send(&testv1.CountResponse{N: 1}); err != nil {
					return err
				}
				watch(ctx)
				return nil
			}),
		)
		if err != nil {
			t.Fatal(err)
		}
	})
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	const runs = 20
	count := func(method string) (running int) {
		for range runs {
			cl := dial(t, ts.url, codecs[0], nil)
			cl.send(cl.request(1, method, &testv1.CountRequest{}))
			s := <-seenCh
			if !s.drained {
				t.Fatalf("%s: the writer did not write the messages", method)
			}
			if s.running {
				running++
			}
			cl.ws.Close()
		}
		return running
	}
	if n := count(bcast2); n < runs/2 {
		t.Errorf("after two broadcasts, the writer still ran once it had written in %d of %d runs, want most", n, runs)
	}
	for _, m := range []string{bcast1, send} {
		if n := count(m); n > runs/2 {
			t.Errorf("%s: the writer still ran once it had written in %d of %d runs, want few", m, n, runs)
		}
	}
}
