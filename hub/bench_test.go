package hub

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/protows/protows/codec"
)

// discardConn is an endpoint that counts and forgets.
type discardConn struct {
	id    string
	codec codec.Codec
	n     atomic.Int64
}

func (d *discardConn) ID() string                     { return d.id }
func (d *discardConn) Codec() codec.Codec             { return d.codec }
func (d *discardConn) EnqueueParts(codec.Parts) error { d.n.Add(1); return nil }

// BenchmarkBroadcast measures one broadcast to a room of 1000 members, half
// on each codec: two payload encodings, then 1000 envelope elements.
func BenchmarkBroadcast(b *testing.B) {
	for _, members := range []int{100, 1000} {
		b.Run(fmt.Sprintf("members=%d", members), func(b *testing.B) {
			h, err := New(Config[*msg]{Logger: slog.New(slog.DiscardHandler)})
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
				m := &member[*msg]{ctx: ctx, ep: &discardConn{id: fmt.Sprint(i), codec: c}, done: make(chan struct{}),
					info: Member{Node: h.node, ConnID: fmt.Sprint(i), CallID: 1, Room: "r", JoinedAt: time.Now()}}
				go func() { _ = h.join(ctx, m); done <- struct{}{} }()
			}
			for len(h.Members("r")) < members {
				time.Sleep(time.Millisecond)
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
