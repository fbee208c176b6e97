package router_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/protows/protows/client"
	"github.com/protows/protows/codec"
	testv1 "github.com/protows/protows/gen/go/protows/test/v1"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"github.com/protows/protows/router"
	"github.com/protows/protows/transport"
	"google.golang.org/protobuf/proto"
)

// enqueuer is what package hub looks for on a stream (router.Stream).
type enqueuer interface {
	ID() uint32
	Codec() codec.Codec
	EnqueueParts(codec.Parts) error
}

// sendOnly hides every method of a stream but Send, as an interceptor's
// wrapper does.
type sendOnly struct{ s router.Stream[proto.Message] }

func (w sendOnly) Send(m proto.Message) error { return w.s.Send(m) }

// TestStreamEnqueuer checks that the stream of a served call takes encoded
// envelopes for its call, and that a wrapper an interceptor puts in
// Call.Stream hides them, leaving Send.
func TestStreamEnqueuer(t *testing.T) {
	t.Parallel()
	const count = "/protows.test.v1.TestService/Count"
	tests := []struct {
		name         string
		opts         []router.HandlerOption
		wantEnqueuer bool
	}{
		{name: "router's stream", wantEnqueuer: true},
		{name: "wrapped by an interceptor", opts: []router.HandlerOption{router.WithHandlerInterceptors(
			func(next router.HandlerFunc) router.HandlerFunc {
				return func(ctx context.Context, call *router.Call) (proto.Message, error) {
					call.Stream = sendOnly{call.Stream}
					return next(ctx, call)
				}
			})}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := router.New()
			err := router.HandleServerStream(r, count,
				func(ctx context.Context, req *testv1.CountRequest, s router.Stream[*testv1.CountResponse]) error {
					e, ok := s.(enqueuer)
					if ok != tt.wantEnqueuer {
						t.Errorf("stream %T is an enqueuer: %v, want %v", s, ok, tt.wantEnqueuer)
					}
					if !ok {
						return s.Send(&testv1.CountResponse{N: 1})
					}
					call, _ := transport.CallFromContext(ctx)
					if e.ID() != call.ID() || e.Codec() != call.Codec() {
						t.Errorf("stream of call %d codec %s, want call %d codec %s", e.ID(), e.Codec().Name(), call.ID(), call.Codec().Name())
					}
					payload, err := e.Codec().AppendPayload(nil, &testv1.CountResponse{N: 1})
					if err != nil {
						return err
					}
					elem, err := e.Codec().AppendEnvelope(nil, &protowsv1.Envelope{
						Id: e.ID(), Kind: protowsv1.Kind_KIND_STREAM_MESSAGE, Payload: payload, Seq: 7,
					})
					if err != nil {
						return err
					}
					return e.EnqueueParts(codec.Parts{Body: elem})
				}, tt.opts...)
			if err != nil {
				t.Fatal(err)
			}
			srv := transport.NewServer(r, transport.Config{})
			hs := httptest.NewServer(srv)
			defer hs.Close()
			defer func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = srv.Shutdown(ctx)
			}()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c, err := client.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			st, err := client.CallServerStream[testv1.CountResponse](ctx, c, count, &testv1.CountRequest{Count: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if !st.Receive() {
				t.Fatalf("no message: %v", st.Err())
			}
			wantSeq := uint64(0)
			if tt.wantEnqueuer {
				wantSeq = 7 // the envelope the handler encoded itself
			}
			if st.Msg().GetN() != 1 || st.Seq() != wantSeq {
				t.Errorf("got n=%d seq %d, want n=1 seq %d", st.Msg().GetN(), st.Seq(), wantSeq)
			}
			if st.Receive() {
				t.Errorf("a second message %v", st.Msg())
			}
			if err := st.Err(); err != nil {
				t.Errorf("stream ended with %v", err)
			}
		})
	}
}
