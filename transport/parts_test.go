package transport_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/protows/protows/codec"
	testv1 "github.com/protows/protows/gen/go/protows/test/v1"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"github.com/protows/protows/router"
	"github.com/protows/protows/transport"
)

const partsMethod = "/parts.v1.Parts/Watch"

// TestEnqueueParts queues envelopes held in parts around one shared payload
// (as a broadcast does), in bursts that the writer batches into frames and
// one at a time, and checks that the client decodes each intact and that
// the shared payload was not modified.
func TestEnqueueParts(t *testing.T) {
	t.Parallel()
	const burst = 20
	for _, c := range codecs {
		t.Run(c.Name(), func(t *testing.T) {
			for _, size := range []int{10, 5000, 100 << 10} {
				pad := bytes.Repeat([]byte{'z'}, size)
				payload, err := c.AppendPayload(nil, &testv1.EchoResponse{Padding: pad})
				if err != nil {
					t.Fatal(err)
				}
				shared := bytes.Clone(payload)
				ts := startServer(t, transport.Config{MaxQueueBytes: -1}, func(r *router.Router) {
					err := router.HandleServerStream(r, partsMethod, func(ctx context.Context, _ *testv1.CountRequest, _ router.Stream[*testv1.EchoResponse]) error {
						call, _ := transport.CallFromContext(ctx)
						for seq := uint64(1); seq <= burst; seq++ {
							elem, err := c.AppendEnvelope(nil, &protowsv1.Envelope{
								Id: call.ID(), Kind: protowsv1.Kind_KIND_STREAM_MESSAGE, Payload: shared, Seq: seq,
							})
							if err != nil {
								return err
							}
							// Cut the element around the payload, wherever
							// the codec put it.
							at := bytes.Index(elem, shared)
							p := codec.Parts{Head: elem[:at], Body: shared, Tail: elem[at+len(shared):]}
							if err := call.EnqueueParts(p); err != nil {
								return err
							}
						}
						return nil
					})
					if err != nil {
						t.Fatal(err)
					}
				})
				cl := dial(t, ts.url, c, nil)
				for id := uint32(1); id <= 2; id++ {
					cl.send(cl.request(id, partsMethod, &testv1.CountRequest{}))
				}
				got := map[uint32]uint64{}
				for ended := 0; ended < 2; {
					e := cl.recv()
					switch e.GetKind() {
					case protowsv1.Kind_KIND_STREAM_MESSAGE:
						var res testv1.EchoResponse
						cl.decode(e, &res)
						if !bytes.Equal(res.GetPadding(), pad) {
							t.Fatalf("call %d seq %d: padding of %d bytes, want %d", e.GetId(), e.GetSeq(), len(res.GetPadding()), size)
						}
						if e.GetSeq() != got[e.GetId()]+1 {
							t.Fatalf("call %d: seq %d after %d", e.GetId(), e.GetSeq(), got[e.GetId()])
						}
						got[e.GetId()] = e.GetSeq()
					case protowsv1.Kind_KIND_STREAM_END:
						if got[e.GetId()] != burst {
							t.Fatalf("call %d ended after %d messages, want %d", e.GetId(), got[e.GetId()], burst)
						}
						ended++
					default:
						t.Fatalf("unexpected %v", e.GetKind())
					}
				}
				if !bytes.Equal(shared, payload) {
					t.Error("the shared payload was modified")
				}
			}
		})
	}
}
