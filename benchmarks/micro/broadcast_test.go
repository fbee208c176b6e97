package micro_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/protows/protows/benchmarks/payload"
	"github.com/protows/protows/codec"
	benchv1 "github.com/protows/protows/gen/go/protows/bench/v1"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"github.com/protows/protows/hub"
)

// members is the room size of the broadcast benchmarks.
const members = 1000

// encodeOnce is what a hub broadcast does for the members of one codec:
// encode the payload once, then build each member's STREAM_MESSAGE
// around the shared bytes (emit receives each element).
func encodeOnce(c codec.Codec, msg *benchv1.Sample, n int, emit func([]byte)) error {
	p, err := c.AppendPayload(nil, msg)
	if err != nil {
		return err
	}
	for i := range n {
		elem, err := c.AppendEnvelope(nil, streamMessage(i, p))
		if err != nil {
			return err
		}
		emit(elem)
	}
	return nil
}

// encodePerMember is the naive broadcast: each member's stream encodes
// the message itself, as a loop over router.Stream.Send would.
func encodePerMember(c codec.Codec, msg *benchv1.Sample, n int, emit func([]byte)) error {
	for i := range n {
		p, err := c.AppendPayload(nil, msg)
		if err != nil {
			return err
		}
		elem, err := c.AppendEnvelope(nil, streamMessage(i, p))
		if err != nil {
			return err
		}
		emit(elem)
	}
	return nil
}

func streamMessage(i int, p []byte) *protowsv1.Envelope {
	return &protowsv1.Envelope{Id: uint32(i%64 + 1), Kind: protowsv1.Kind_KIND_STREAM_MESSAGE, Payload: p, Seq: 7}
}

// TestEncodeOnceSameBytes: both ways put the same bytes on the wire, so
// the benchmark compares equal work products. (The Protobuf codec is made
// deterministic here: by default each encoding of the Sample may write its
// map entries in another order.)
func TestEncodeOnceSameBytes(t *testing.T) {
	for _, c := range []codec.Codec{codec.Proto(codec.WithDeterministicPayloads()), codec.JSON()} {
		msg := payload.New(payload.Medium)
		var once, each [][]byte
		if err := encodeOnce(c, msg, 5, func(b []byte) { once = append(once, b) }); err != nil {
			t.Fatal(err)
		}
		if err := encodePerMember(c, msg, 5, func(b []byte) { each = append(each, b) }); err != nil {
			t.Fatal(err)
		}
		if len(once) != 5 || len(each) != 5 {
			t.Fatalf("%s: %d and %d elements, want 5", c.Name(), len(once), len(each))
		}
		for i := range once {
			if !bytes.Equal(once[i], each[i]) {
				t.Errorf("%s: element %d differs", c.Name(), i)
			}
		}
	}
}

// BenchmarkBroadcastEncode measures the encoding work of one broadcast to
// 1000 members of one codec: the payload encoded once and shared (what
// hub.Broadcast does), against encoded for each member. ns/member is the
// figure to compare; the delivery itself (queueing, writing) is not in it.
func BenchmarkBroadcastEncode(b *testing.B) {
	for _, c := range []codec.Codec{codec.Proto(), codec.JSON()} {
		for _, size := range []payload.Size{payload.Small, payload.Medium} {
			for _, way := range []struct {
				name string
				fn   func(codec.Codec, *benchv1.Sample, int, func([]byte)) error
			}{{"once", encodeOnce}, {"per-member", encodePerMember}} {
				b.Run(fmt.Sprintf("%s/%s/%s", c.Name(), size, way.name), func(b *testing.B) {
					msg := payload.New(size)
					var n int
					b.ReportAllocs()
					for b.Loop() {
						if err := way.fn(c, msg, members, func([]byte) { n++ }); err != nil {
							b.Fatal(err)
						}
					}
					b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*members), "ns/member")
				})
			}
		}
	}
}

// encodingStream is an in-memory hub member: a Stream that encodes every
// message it is sent with its codec, as a transport stream would, and
// counts them.
type encodingStream struct {
	c codec.Codec
	n atomic.Int64
}

func (s *encodingStream) Send(m *benchv1.Sample) error {
	p, err := s.c.AppendPayload(nil, m)
	if err != nil {
		return err
	}
	if _, err := s.c.AppendEnvelope(nil, streamMessage(1, p)); err != nil {
		return err
	}
	s.n.Add(1)
	return nil
}

// hubWithStreams makes a hub with n encodingStreams in its room r, and
// returns once they are members. leave ends the memberships.
func hubWithStreams(tb testing.TB, c codec.Codec, n int) (h *hub.Hub[*benchv1.Sample], streams []*encodingStream, leave func()) {
	tb.Helper()
	joined := make(chan struct{}, n)
	h, err := hub.New(hub.Config[*benchv1.Sample]{
		Logger: slog.New(slog.DiscardHandler),
		// No presence messages: the hook only counts the joins.
		Presence: func(ev hub.PresenceEvent) (*benchv1.Sample, bool) {
			if ev.Joined {
				joined <- struct{}{}
			}
			return nil, false
		},
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = h.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	streams = make([]*encodingStream, n)
	done := make(chan struct{}, n)
	for i := range streams {
		streams[i] = &encodingStream{c: c}
		go func() { _ = h.Join(ctx, "r", streams[i]); done <- struct{}{} }()
	}
	timeout := time.After(10 * time.Second)
	for i := range n {
		select {
		case <-joined:
		case <-timeout:
			cancel()
			tb.Fatalf("%d of %d members joined", i, n)
		}
	}
	return h, streams, func() {
		cancel()
		for range n {
			<-done
		}
	}
}

// TestHubBroadcastStreams: every in-memory member gets every broadcast.
func TestHubBroadcastStreams(t *testing.T) {
	h, streams, leave := hubWithStreams(t, codec.Proto(), 20)
	defer leave()
	for range 3 {
		if err := h.Broadcast(context.Background(), "r", payload.New(payload.Small)); err != nil {
			t.Fatal(err)
		}
	}
	for i, s := range streams {
		if got := s.n.Load(); got != 3 {
			t.Errorf("member %d got %d messages, want 3", i, got)
		}
	}
}

// BenchmarkHubBroadcast measures hub.Broadcast to 1000 in-memory members
// (Streams that encode what they are sent, since only members on a
// transport connection share the hub's encoding): the hub's own cost per
// member on top of BenchmarkBroadcastEncode's per-member encoding. The
// encode-once path with in-memory connections is measured inside the hub
// package (go test ./hub -run '^$' -bench Broadcast).
func BenchmarkHubBroadcast(b *testing.B) {
	for _, c := range []codec.Codec{codec.Proto(), codec.JSON()} {
		b.Run(c.Name(), func(b *testing.B) {
			h, _, leave := hubWithStreams(b, c, members)
			defer leave()
			msg := payload.New(payload.Small)
			b.ReportAllocs()
			for b.Loop() {
				if err := h.Broadcast(context.Background(), "r", msg); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*members), "ns/member")
		})
	}
}
