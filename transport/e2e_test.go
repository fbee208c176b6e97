package transport_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	protows "github.com/protows/protows"
	testv1 "github.com/protows/protows/gen/go/protows/test/v1"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"github.com/protows/protows/internal/testservice"
	"github.com/protows/protows/router"
	"github.com/protows/protows/transport"
	"google.golang.org/protobuf/types/known/durationpb"
)

func TestCalls(t *testing.T) {
	t.Parallel()
	for _, c := range codecs {
		t.Run(c.Name(), func(t *testing.T) {
			t.Parallel()
			ts := startServer(t, transport.Config{})
			cl := dial(t, ts.url+"/ws", c, nil)

			e := cl.call(1, testservice.EchoMethod, &testv1.EchoRequest{Text: "hi"})
			var echo testv1.EchoResponse
			if e.GetKind() != protowsv1.Kind_KIND_REPLY {
				t.Fatalf("echo: %v", e)
			}
			cl.decode(e, &echo)
			if echo.GetText() != "hi" {
				t.Fatalf("echo text %q", echo.GetText())
			}

			e = cl.call(2, testservice.FailMethod, &testv1.FailRequest{Code: uint32(protows.CodeNotFound), Message: "nope"})
			wantError(t, e, protowsv1.Kind_KIND_ERROR, protows.CodeNotFound)
			if e.GetError().GetMessage() != "nope" {
				t.Fatalf("message %q", e.GetError().GetMessage())
			}

			e = cl.call(3, testservice.FailMethod, &testv1.FailRequest{Panic: true, Message: "boom"})
			wantError(t, e, protowsv1.Kind_KIND_ERROR, protows.CodeInternal)

			e = cl.call(4, "/nope.v1.Nope/Nope", &testv1.EchoRequest{})
			wantError(t, e, protowsv1.Kind_KIND_ERROR, protows.CodeUnimplemented)

			e = cl.call(5, testservice.WhoamiMethod, &testv1.WhoamiRequest{})
			var who testv1.WhoamiResponse
			cl.decode(e, &who)
			if who.GetSubprotocol() != c.Name() || who.GetConnectionId() == "" || who.GetSubject() != "" {
				t.Fatalf("whoami %v", &who)
			}

			// A stream: messages in order, then STREAM_END.
			cl.send(cl.request(6, testservice.CountMethod, &testv1.CountRequest{Count: 5}))
			for n := uint32(1); n <= 5; n++ {
				e := cl.recv()
				var m testv1.CountResponse
				cl.decode(e, &m)
				if e.GetKind() != protowsv1.Kind_KIND_STREAM_MESSAGE || m.GetN() != n {
					t.Fatalf("stream message %d: %v", n, e)
				}
			}
			if e := cl.recv(); e.GetKind() != protowsv1.Kind_KIND_STREAM_END || e.GetError() != nil {
				t.Fatalf("stream end: %v", e)
			}

			// A stream that fails ends with STREAM_END carrying the error.
			cl.send(cl.request(7, testservice.CountMethod, &testv1.CountRequest{Count: 1, FailCode: uint32(protows.CodeAborted)}))
			cl.recv()
			wantError(t, cl.recv(), protowsv1.Kind_KIND_STREAM_END, protows.CodeAborted)

			// Ping gets its pong.
			cl.send(&protowsv1.Envelope{Id: 99, Kind: protowsv1.Kind_KIND_PING})
			if e := cl.recv(); e.GetKind() != protowsv1.Kind_KIND_PONG || e.GetId() != 99 {
				t.Fatalf("pong: %v", e)
			}
		})
	}
}

func TestCancel(t *testing.T) {
	t.Parallel()
	for _, c := range codecs {
		t.Run(c.Name(), func(t *testing.T) {
			t.Parallel()
			ts := startServer(t, transport.Config{})
			cl := dial(t, ts.url, c, nil)
			cl.send(cl.request(1, testservice.SleepMethod, &testv1.SleepRequest{Delay: durationpb.New(time.Minute)}))
			cl.send(cl.request(2, testservice.CountMethod, &testv1.CountRequest{Interval: durationpb.New(time.Millisecond)}))
			if e := cl.recv(); e.GetId() != 2 || e.GetKind() != protowsv1.Kind_KIND_STREAM_MESSAGE {
				t.Fatalf("want a stream message, got %v", e)
			}
			cl.send(&protowsv1.Envelope{Id: 1, Kind: protowsv1.Kind_KIND_CANCEL}, &protowsv1.Envelope{Id: 2, Kind: protowsv1.Kind_KIND_CANCEL})
			var gotUnary, gotStream bool
			for !gotUnary || !gotStream {
				e := cl.recv()
				switch {
				case e.GetId() == 1:
					wantError(t, e, protowsv1.Kind_KIND_ERROR, protows.CodeCanceled)
					gotUnary = true
				case e.GetId() == 2 && e.GetKind() == protowsv1.Kind_KIND_STREAM_END:
					wantError(t, e, protowsv1.Kind_KIND_STREAM_END, protows.CodeCanceled)
					gotStream = true
				case e.GetId() == 2 && e.GetKind() == protowsv1.Kind_KIND_STREAM_MESSAGE && !gotStream:
				default:
					t.Fatalf("unexpected %v", e)
				}
			}
			// A cancel for an unknown id is ignored; the id is free again.
			cl.send(&protowsv1.Envelope{Id: 42, Kind: protowsv1.Kind_KIND_CANCEL})
			if e := cl.call(1, testservice.EchoMethod, &testv1.EchoRequest{Text: fmt.Sprint("again")}); e.GetKind() != protowsv1.Kind_KIND_REPLY {
				t.Fatalf("reuse of a cancelled id: %v", e)
			}
		})
	}
}

const metadataMethod = "/md.v1.MD/Echo"

// TestMetadata checks that request metadata reaches the handler and reply
// metadata reaches the client.
func TestMetadata(t *testing.T) {
	t.Parallel()
	for _, c := range codecs {
		t.Run(c.Name(), func(t *testing.T) {
			cfg := transport.Config{ConnMetadata: func(r *http.Request) map[string]string {
				return map[string]string{"user-agent": r.UserAgent()}
			}}
			ts := startServer(t, cfg, func(r *router.Router) {
				err := router.HandleUnary(r, metadataMethod, func(ctx context.Context, req *testv1.EchoRequest) (*testv1.EchoResponse, error) {
					call, ok := transport.CallFromContext(ctx)
					if !ok {
						return nil, protows.Errorf(protows.CodeInternal, "no call")
					}
					call.SetReplyMetadata("seen-trace", call.Metadata()["trace"])
					call.SetReplyMetadata("seen-ua", call.Conn().Metadata()["user-agent"])
					return &testv1.EchoResponse{Text: call.Method()}, nil
				})
				if err != nil {
					t.Fatal(err)
				}
			})
			cl := dial(t, ts.url, c, http.Header{"User-Agent": {"tester/1"}})
			e := cl.request(1, metadataMethod, &testv1.EchoRequest{})
			e.Metadata = map[string]string{"trace": "abc"}
			cl.send(e)
			r := cl.recv()
			var res testv1.EchoResponse
			cl.decode(r, &res)
			if r.GetKind() != protowsv1.Kind_KIND_REPLY || r.GetMetadata()["seen-trace"] != "abc" || r.GetMetadata()["seen-ua"] != "tester/1" || res.GetText() != metadataMethod {
				t.Fatalf("reply %v", r)
			}
		})
	}
}

// TestBatching sends a frame of 1024 PINGs (the most a frame may hold) and
// checks that the 1024 PONGs come back in order, batched into few frames:
// the reader queues answers up to the back-pressure threshold (512
// envelopes, half the queue), so they leave in a batch or two.
func TestBatching(t *testing.T) {
	t.Parallel()
	for _, c := range codecs {
		t.Run(c.Name(), func(t *testing.T) {
			t.Parallel()
			ts := startServer(t, transport.Config{RateLimit: -1})
			cl := dial(t, ts.url, c, nil)
			envs := make([]*protowsv1.Envelope, 1024)
			for i := range envs {
				envs[i] = &protowsv1.Envelope{Id: uint32(i + 1), Kind: protowsv1.Kind_KIND_PING}
			}
			cl.send(envs...)
			frames := 0
			for want := uint32(1); want <= 1024; {
				_ = cl.ws.SetReadDeadline(time.Now().Add(5 * time.Second))
				_, b, err := cl.ws.ReadMessage()
				if err != nil {
					t.Fatal(err)
				}
				frames++
				got, err := c.DecodeFrame(b)
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range got {
					if e.GetKind() != protowsv1.Kind_KIND_PONG || e.GetId() != want {
						t.Fatalf("want PONG %d, got %v", want, e)
					}
					want++
				}
			}
			// The writer is woken once the whole incoming frame was
			// processed, or when the answers reach the back-pressure
			// threshold, half the queue: a few batches of hundreds.
			if frames > 4 {
				t.Fatalf("1024 pongs took %d frames, want at most 4 (batches of up to 512)", frames)
			}
			t.Logf("1024 pongs in %d frames", frames)
		})
	}
}
