package hub

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/protows/protows/codec"
	"google.golang.org/protobuf/encoding/protowire"
)

// discardCall is a stream call that counts and forgets.
type discardCall struct {
	codec codec.Codec
	n     atomic.Int64
}

func (d *discardCall) ID() uint32                     { return 1 }
func (d *discardCall) Codec() codec.Codec             { return d.codec }
func (d *discardCall) EnqueueParts(codec.Parts) error { d.n.Add(1); return nil }
func (d *discardCall) Send(*msg) error                { d.n.Add(1); return nil }

// BenchmarkBroadcast measures one broadcast to a room of 1000 members, half
// on each codec: two payload encodings, then 1000 envelope elements; with
// history=memory the room keeps a history in memory (the message stored,
// offsets checked per member), whose cost per delivery is the difference.
func BenchmarkBroadcast(b *testing.B) {
	for _, bc := range []struct {
		members int
		history bool
	}{{100, false}, {100, true}, {1000, false}, {1000, true}} {
		name := fmt.Sprintf("members=%d/history=off", bc.members)
		if bc.history {
			name = fmt.Sprintf("members=%d/history=memory", bc.members)
		}
		members := bc.members
		b.Run(name, func(b *testing.B) {
			joined := make(chan struct{}, members)
			cfg := Config[*msg]{
				Logger: slog.New(slog.DiscardHandler),
				// No presence messages: the hook only counts the joins.
				Presence: func(ev PresenceEvent) (*msg, bool) {
					if ev.Joined {
						joined <- struct{}{}
					}
					return nil, false
				},
			}
			if bc.history {
				cfg.History = NewMemoryHistory(HistoryLimits{})
			}
			h, err := New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer h.Close()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan struct{}, members)
			for i := range members {
				c := codec.Proto()
				if i%2 == 1 {
					c = codec.JSON()
				}
				m := fakeMember(b, ctx, h, "r", &discardCall{codec: c}, fmt.Sprint(i))
				go func() { _ = h.join(ctx, m); done <- struct{}{} }()
			}
			for range members {
				<-joined
			}
			m := &msg{Subject: "a chat message of a typical length, say eighty bytes or so..", ExpiresAt: 1795000000}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if err := h.Broadcast(ctx, "r", m); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(members), "ns/member")
			cancel()
			for range members {
				<-done
			}
		})
	}
}

// discardBroker is a Broker that takes every message and delivers none.
type discardBroker struct{ n atomic.Int64 }

func (d *discardBroker) Open(context.Context, string, func([]byte)) error { return nil }
func (d *discardBroker) Publish(context.Context, []byte) error            { d.n.Add(1); return nil }
func (d *discardBroker) Close() error                                     { return nil }

// BenchmarkPublish measures what a broadcast costs on the way to the other
// nodes: the payload's encoding and the broker message around it (no local
// members).
func BenchmarkPublish(b *testing.B) {
	h, err := New(Config[*msg]{Logger: slog.New(slog.DiscardHandler), Broker: &discardBroker{}})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	ctx := context.Background()
	m := &msg{Subject: "a chat message of a typical length, say eighty bytes or so..", ExpiresAt: 1795000000}
	b.ReportAllocs()
	for b.Loop() {
		if err := h.Broadcast(ctx, "r", m); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReceive measures a broadcast arriving from another node, to a
// room with no members and with 100 (Protobuf) on this node: the broker
// message's decoding, the peer's sequence tracking and the delivery.
func BenchmarkReceive(b *testing.B) {
	for _, members := range []int{0, 100} {
		b.Run(fmt.Sprintf("members=%d", members), func(b *testing.B) {
			joined := make(chan struct{}, members)
			h, err := New(Config[*msg]{
				Logger: slog.New(slog.DiscardHandler), Broker: &discardBroker{},
				// No presence messages: the hook only counts the joins.
				Presence: func(ev PresenceEvent) (*msg, bool) {
					if ev.Joined {
						joined <- struct{}{}
					}
					return nil, false
				},
			})
			if err != nil {
				b.Fatal(err)
			}
			defer h.Close()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan struct{}, members)
			for i := range members {
				m := fakeMember(b, ctx, h, "r", &discardCall{codec: codec.Proto()}, fmt.Sprint(i))
				go func() { _ = h.join(ctx, m); done <- struct{}{} }()
			}
			for range members {
				<-joined
			}
			payload, err := codec.Proto().AppendPayload(nil, &msg{Subject: "a chat message of a typical length, say eighty bytes or so..", ExpiresAt: 1795000000})
			if err != nil {
				b.Fatal(err)
			}
			// The frozen encoding of a broadcast, then a seq field of
			// its own for each message: the last one counts.
			base := goldenBroadcast(b, payload)
			buf := slices.Clone(base)
			seq := uint64(0)
			b.ReportAllocs()
			for b.Loop() {
				seq++
				buf = protowire.AppendTag(buf[:len(base)], 4, protowire.VarintType)
				buf = protowire.AppendVarint(buf, seq)
				h.receive(buf)
			}
			b.StopTimer()
			cancel()
			for range members {
				<-done
			}
		})
	}
}
