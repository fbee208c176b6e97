package transport_test

import (
	"bytes"
	"context"
	"testing"

	protows "github.com/protows/protows"
	testv1 "github.com/protows/protows/gen/go/protows/test/v1"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"github.com/protows/protows/internal/testservice"
	"github.com/protows/protows/router"
	"github.com/protows/protows/transport"
)

const floodMethod = "/flood.v1.Flood/Big"

// floodMessages bounds the flood: 4000 messages of 8 KiB, 32 MiB, far more
// than loopback socket buffers hold, and far fewer envelopes than the
// count limit of the tests.
const floodMessages = 4000

// registerFlood adds a stream that broadcasts 8 KiB messages to its own
// call (Call.Enqueue, the path of room broadcasts, which never waits) as
// fast as it can.
func registerFlood(t *testing.T) func(*router.Router) {
	return func(r *router.Router) {
		err := router.HandleServerStream(r, floodMethod, func(ctx context.Context, _ *testv1.CountRequest, _ router.Stream[*testv1.EchoResponse]) error {
			call, _ := transport.CallFromContext(ctx)
			payload, err := call.Codec().AppendPayload(nil, &testv1.EchoResponse{Padding: bytes.Repeat([]byte("x"), 8<<10)})
			if err != nil {
				return err
			}
			elem, err := call.Codec().AppendEnvelope(nil, &protowsv1.Envelope{Id: call.ID(), Kind: protowsv1.Kind_KIND_STREAM_MESSAGE, Payload: payload})
			if err != nil {
				return err
			}
			for range floodMessages {
				if err := call.Enqueue(elem); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestSendQueueBytes: a client that stops reading a flood of large
// broadcasts overflows the byte limit of the send queue long before its
// count limit: close 4008.
func TestSendQueueBytes(t *testing.T) {
	t.Parallel()
	for _, c := range codecs {
		t.Run(c.Name(), func(t *testing.T) {
			t.Parallel()
			m := newDropMetrics()
			ts := startServer(t, transport.Config{SendQueue: 1 << 20, MaxQueueBytes: 256 << 10, Metrics: m}, registerFlood(t))
			cl := dial(t, ts.url, c, nil)
			// The client reads nothing until the server gave up on it.
			cl.send(cl.request(1, floodMethod, &testv1.CountRequest{}))
			m.waitDrop(t)
			cl.expectClose(protows.CloseSlowConsumer)
			checkServing(t, ts, c)
		})
	}
}

// TestSendQueueBytesOneLargeEnvelope: an empty queue takes one envelope
// larger than the byte limit; the limit is about backlog, not size.
func TestSendQueueBytesOneLargeEnvelope(t *testing.T) {
	t.Parallel()
	for _, c := range codecs {
		t.Run(c.Name(), func(t *testing.T) {
			t.Parallel()
			ts := startServer(t, transport.Config{MaxQueueBytes: 1024})
			cl := dial(t, ts.url, c, nil)
			pad := bytes.Repeat([]byte("p"), 16<<10)
			for id := uint32(1); id <= 3; id++ {
				e := cl.call(id, testservice.EchoMethod, &testv1.EchoRequest{Padding: pad})
				var res testv1.EchoResponse
				cl.decode(e, &res)
				if e.GetKind() != protowsv1.Kind_KIND_REPLY || !bytes.Equal(res.GetPadding(), pad) {
					t.Fatalf("call %d: %v", id, e.GetKind())
				}
			}
		})
	}
}
