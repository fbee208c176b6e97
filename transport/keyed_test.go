package transport_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/protows/protows"
	"github.com/protows/protows/benchmarks/payload"
	"github.com/protows/protows/codec"
	benchv1 "github.com/protows/protows/gen/go/protows/bench/v1"
	testv1 "github.com/protows/protows/gen/go/protows/test/v1"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"github.com/protows/protows/internal/testservice"
	"github.com/protows/protows/router"
	"github.com/protows/protows/transport"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

const (
	deadlineMethod = "/protows.test.v1.Probe/Deadline"
	stubbornMethod = "/protows.test.v1.Probe/Stubborn"
	runMethod      = "/protows.test.v1.Probe/Run"
)

// probes registers methods that report what a handler sees: its
// context's deadline, a handler that ignores its context, and a counted
// run that takes as long as its request says and reports whether its
// context was cancelled.
func probes(runs *atomic.Int64) func(r *router.Router) {
	return func(r *router.Router) {
		must := func(err error) {
			if err != nil {
				panic(err)
			}
		}
		must(router.HandleUnary(r, deadlineMethod, func(ctx context.Context, _ *testv1.EchoRequest) (*testv1.EchoResponse, error) {
			dl, ok := ctx.Deadline()
			if !ok {
				return &testv1.EchoResponse{Text: "none"}, nil
			}
			return &testv1.EchoResponse{Text: fmt.Sprint(time.Until(dl).Milliseconds())}, nil
		}))
		must(router.HandleUnary(r, stubbornMethod, func(ctx context.Context, req *testv1.SleepRequest) (*testv1.SleepResponse, error) {
			time.Sleep(req.GetDelay().AsDuration()) // ignores ctx
			return &testv1.SleepResponse{}, nil
		}))
		must(router.HandleUnary(r, runMethod, func(ctx context.Context, req *testv1.EchoRequest) (*testv1.EchoResponse, error) {
			n := runs.Add(1)
			if d, err := time.ParseDuration(string(req.GetPadding())); err == nil {
				time.Sleep(d)
			}
			if req.GetText() == "fail" {
				perr := protows.Errorf(protows.CodeAborted, "run %d failed", n)
				d, _ := protows.NewErrorDetail(durationpb.New(1500 * time.Millisecond))
				perr.AddDetail(d)
				return nil, perr
			}
			return &testv1.EchoResponse{Text: fmt.Sprintf("%s run %d ctx %v", req.GetText(), n, ctx.Err())}, nil
		}))
	}
}

func TestTimeoutMs(t *testing.T) {
	for _, c := range codecs {
		t.Run(c.Name(), func(t *testing.T) {
			var runs atomic.Int64
			ts := startServer(t, transport.Config{}, probes(&runs))
			cl := dial(t, ts.url, c, nil)

			// The handler's context has the deadline.
			e := cl.request(1, deadlineMethod, &testv1.EchoRequest{})
			e.TimeoutMs = 5000
			cl.send(e)
			var res testv1.EchoResponse
			cl.decode(cl.recv(), &res)
			var left int
			fmt.Sscan(res.GetText(), &left)
			if left <= 4000 || left > 5000 {
				t.Errorf("handler saw %q ms left, want about 5000", res.GetText())
			}
			if r := cl.call(2, deadlineMethod, &testv1.EchoRequest{}); !strings.Contains(string(r.GetPayload()), "none") {
				t.Errorf("without timeout_ms: %q, want no deadline", r.GetPayload())
			}

			// At the deadline the call ends, even when the handler ignores
			// its context.
			e = cl.request(3, stubbornMethod, &testv1.SleepRequest{Delay: durationpb.New(300 * time.Millisecond)})
			e.TimeoutMs = 50
			start := time.Now()
			cl.send(e)
			r := cl.recv()
			wantError(t, r, protowsv1.Kind_KIND_ERROR, protows.CodeDeadlineExceeded)
			if d := time.Since(start); d < 40*time.Millisecond || d > 250*time.Millisecond {
				t.Errorf("deadline_exceeded after %v, want about 50 ms", d)
			}

			// A stream ends with STREAM_END deadline_exceeded.
			e = cl.request(4, testservice.CountMethod, &testv1.CountRequest{Interval: durationpb.New(10 * time.Millisecond)})
			e.TimeoutMs = 100
			cl.send(e)
			for {
				r := cl.recv()
				if r.GetKind() == protowsv1.Kind_KIND_STREAM_MESSAGE {
					continue
				}
				wantError(t, r, protowsv1.Kind_KIND_STREAM_END, protows.CodeDeadlineExceeded)
				break
			}
			// The connection carries on.
			if r := cl.call(5, testservice.EchoMethod, &testv1.EchoRequest{Text: "ok"}); r.GetKind() != protowsv1.Kind_KIND_REPLY {
				t.Fatal(r)
			}
		})
	}
}

func keyed(cl *client, id uint32, method, key string, m proto.Message) *protowsv1.Envelope {
	e := cl.request(id, method, m)
	e.IdempotencyKey = key
	return e
}

func TestIdempotencyKeyRequests(t *testing.T) {
	for _, c := range codecs {
		t.Run(c.Name(), func(t *testing.T) {
			var runs atomic.Int64
			ts := startServer(t, transport.Config{}, probes(&runs))
			cl := dial(t, ts.url, c, nil)

			// Malformed keys and keys on streams are refused.
			for i, key := range []string{strings.Repeat("k", 129), "a b", "é", "tab\t"} {
				cl.send(keyed(cl, uint32(10+i), runMethod, key, &testv1.EchoRequest{}))
				wantError(t, cl.recv(), protowsv1.Kind_KIND_ERROR, protows.CodeInvalidArgument)
			}
			// A key on any streaming method: server, client or bidirectional.
			for i, m := range []string{testservice.CountMethod, testservice.SumMethod, testservice.EchoStreamMethod} {
				var req proto.Message = &testv1.CountRequest{Count: 1}
				if m != testservice.CountMethod {
					req = &testv1.SumRequest{}
				}
				cl.send(keyed(cl, uint32(20+i), m, "k", req))
				r := cl.recv()
				wantError(t, r, protowsv1.Kind_KIND_ERROR, protows.CodeInvalidArgument)
				if r.GetId() != uint32(20+i) || !strings.Contains(r.GetError().GetMessage(), "is a stream") {
					t.Errorf("%s: got %v, want the key refused on a stream", m, r)
				}
			}
			if runs.Load() != 0 {
				t.Fatalf("%d runs of refused calls", runs.Load())
			}

			// The same key twice: one run, the same reply; metadata and
			// timeout may differ between sends.
			long := strings.Repeat("k", 128)
			cl.send(keyed(cl, 30, runMethod, long, &testv1.EchoRequest{Text: "a"}))
			first := cl.recv()
			again := keyed(cl, 31, runMethod, long, &testv1.EchoRequest{Text: "a"})
			again.Metadata, again.TimeoutMs = map[string]string{"x-try": "2"}, 5000
			cl.send(again)
			second := cl.recv()
			if first.GetKind() != protowsv1.Kind_KIND_REPLY || second.GetId() != 31 || string(second.GetPayload()) != string(first.GetPayload()) {
				t.Fatalf("first %v, second %v: want the same reply", first, second)
			}
			if runs.Load() != 1 {
				t.Fatalf("%d runs, want 1", runs.Load())
			}

			// Another request with the same key is refused.
			cl.send(keyed(cl, 32, runMethod, long, &testv1.EchoRequest{Text: "b"}))
			r := cl.recv()
			wantError(t, r, protowsv1.Kind_KIND_ERROR, protows.CodeFailedPrecondition)
			if !strings.Contains(r.GetError().GetMessage(), "different request") {
				t.Errorf("message %q", r.GetError().GetMessage())
			}

			// An error outcome is kept too, details included.
			cl.send(keyed(cl, 33, runMethod, "err", &testv1.EchoRequest{Text: "fail"}))
			e1 := cl.recv()
			cl.send(keyed(cl, 34, runMethod, "err", &testv1.EchoRequest{Text: "fail"}))
			e2 := cl.recv()
			wantError(t, e2, protowsv1.Kind_KIND_ERROR, protows.CodeAborted)
			if !proto.Equal(e1.GetError(), e2.GetError()) || len(e2.GetError().GetDetails()) != 1 {
				t.Errorf("errors %v and %v: want the same, with a detail", e1.GetError(), e2.GetError())
			}
			if runs.Load() != 2 {
				t.Fatalf("%d runs, want 2", runs.Load())
			}
		})
	}
}

// TestKeyedCallOutlivesConnection: a keyed call's handler is not cancelled
// when its connection drops; a send of the same call on a new connection
// waits for it and gets its outcome, in the other codec too.
func TestKeyedCallOutlivesConnection(t *testing.T) {
	var runs atomic.Int64
	ts := startServer(t, transport.Config{}, probes(&runs))
	a := dial(t, ts.url, codec.JSON(), nil)
	req := &testv1.EchoRequest{Text: "slow", Padding: []byte("300ms")}
	a.send(keyed(a, 1, runMethod, "k1", req))
	time.Sleep(50 * time.Millisecond) // the handler runs
	a.ws.Close()

	b := dial(t, ts.url, codec.Proto(), nil)
	start := time.Now()
	b.send(keyed(b, 7, runMethod, "k1", req))
	r := b.recv()
	var res testv1.EchoResponse
	b.decode(r, &res)
	if r.GetId() != 7 || res.GetText() != "slow run 1 ctx <nil>" {
		t.Errorf("reply %v %q: want the first run's, its context not cancelled", r.GetKind(), res.GetText())
	}
	// The waiter is woken by the first run's end (about 250 ms from
	// here), not by a later poll or a second run; the bound is loose
	// because a loaded host delays both.
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("waited %v: far more than the rest of the first run", d)
	}
	if runs.Load() != 1 {
		t.Errorf("%d runs, want 1", runs.Load())
	}

	// A waiting send ends at its own deadline; the first run goes on.
	req2 := &testv1.EchoRequest{Text: "slower", Padding: []byte("300ms")}
	b.send(keyed(b, 8, runMethod, "k2", req2))
	w := keyed(b, 9, runMethod, "k2", req2)
	w.TimeoutMs = 50
	b.send(w)
	wantError(t, b.recv(), protowsv1.Kind_KIND_ERROR, protows.CodeDeadlineExceeded)
	if r := b.recv(); r.GetId() != 8 || r.GetKind() != protowsv1.Kind_KIND_REPLY {
		t.Errorf("first run: %v", r)
	}
}

// TestCanceledKeyIsReleased: a keyed call cancelled by its client keeps no
// outcome: the next send of it runs the handler.
func TestCanceledKeyIsReleased(t *testing.T) {
	var runs atomic.Int64
	ts := startServer(t, transport.Config{}, func(r *router.Router) {
		if err := router.HandleUnary(r, runMethod, func(ctx context.Context, req *testv1.EchoRequest) (*testv1.EchoResponse, error) {
			if runs.Add(1) == 1 {
				<-ctx.Done()
				return nil, protows.NewError(protows.CodeCanceled, ctx.Err())
			}
			return &testv1.EchoResponse{Text: "done"}, nil
		}); err != nil {
			t.Fatal(err)
		}
	})
	cl := dial(t, ts.url, codec.Proto(), nil)
	cl.send(keyed(cl, 1, runMethod, "k", &testv1.EchoRequest{}))
	time.Sleep(20 * time.Millisecond)
	cl.send(&protowsv1.Envelope{Id: 1, Kind: protowsv1.Kind_KIND_CANCEL})
	wantError(t, cl.recv(), protowsv1.Kind_KIND_ERROR, protows.CodeCanceled)
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(time.Millisecond) {
		cl.send(keyed(cl, 2, runMethod, "k", &testv1.EchoRequest{}))
		if r := cl.recv(); r.GetKind() == protowsv1.Kind_KIND_REPLY {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("the key was not released: %v", r)
		}
	}
	if runs.Load() != 2 {
		t.Errorf("%d runs, want 2", runs.Load())
	}
}

// TestFingerprintIsDeterministicProtobuf pins the fingerprint to its
// definition (docs/PROTOCOL.md, section 3.7), which windows shared by
// servers of several versions rely on: the SHA-256 of the request's
// deterministic Protobuf encoding, maps in key order, whichever encoder
// the Protobuf codec takes for the type.
func TestFingerprintIsDeterministicProtobuf(t *testing.T) {
	for _, size := range []payload.Size{payload.Small, payload.Medium} {
		req := &benchv1.EchoRequest{Sample: payload.New(size)}
		if size == payload.Medium && len(req.GetSample().GetTags()) < 2 {
			t.Fatal("the medium sample has no map of several entries: the test would not cover map order")
		}
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		for range 20 { // Go's map order changes from one iteration to the next
			got, err := transport.Fingerprint(req)
			if err != nil {
				t.Fatal(err)
			}
			if want := sha256.Sum256(b); got != want {
				t.Fatalf("%s: fingerprint %x, want %x", size, got, want)
			}
		}
	}
}

// TestKeyedRequestComparedAcrossCodecs: the window keeps a first send's
// request as it came and compares a later send in the other codec by
// fingerprint: the same request gets the outcome, another is refused.
func TestKeyedRequestComparedAcrossCodecs(t *testing.T) {
	var runs atomic.Int64
	ts := startServer(t, transport.Config{}, probes(&runs))
	p := dial(t, ts.url, codec.Proto(), nil)
	j := dial(t, ts.url, codec.JSON(), nil)
	req := &testv1.EchoRequest{Text: "a", Padding: []byte{1, 2, 3}}
	p.send(keyed(p, 1, runMethod, "k", req))
	var first testv1.EchoResponse
	p.decode(p.recv(), &first)

	j.send(keyed(j, 2, runMethod, "k", req))
	r := j.recv()
	var second testv1.EchoResponse
	j.decode(r, &second)
	if r.GetKind() != protowsv1.Kind_KIND_REPLY || !proto.Equal(&first, &second) {
		t.Fatalf("the same request in JSON: %v %v, want the first reply %v", r.GetKind(), &second, &first)
	}
	j.send(keyed(j, 3, runMethod, "k", &testv1.EchoRequest{Text: "b", Padding: []byte{1, 2, 3}}))
	wantError(t, j.recv(), protowsv1.Kind_KIND_ERROR, protows.CodeFailedPrecondition)
	p.send(keyed(p, 4, runMethod, "k", &testv1.EchoRequest{Text: "a"}))
	wantError(t, p.recv(), protowsv1.Kind_KIND_ERROR, protows.CodeFailedPrecondition)
	p.send(keyed(p, 5, runMethod, "k", req))
	if r := p.recv(); r.GetKind() != protowsv1.Kind_KIND_REPLY || r.GetId() != 5 {
		t.Fatalf("the same request again: %v", r)
	}
	if runs.Load() != 1 {
		t.Fatalf("%d runs, want 1", runs.Load())
	}
}
