package natsbroker_test

// Measurements of rooms with history (docs/GUARANTEES.md, section 1.8):
//
//	go test ./hub/natsbroker -run '^$' -bench 'HistoryPublish|HistoryFanOut' -benchtime 5000x
//	go test ./hub/natsbroker -run '^$' -bench Recovery -benchtime 20x
//
// BenchmarkHistoryPublish: the latency of one Broadcast, which returns once
// the message is stored (JetStream) or handed to the broker (the in-memory
// network, no history), with no member.
//
// BenchmarkHistoryFanOut: deliveries per second to 100 members of one
// node, from one publisher that broadcasts one message at a time, until
// every member has every message. The members are plain Streams that count
// (no connection): the figure is the hub's and the store's, not a
// network's.
//
// BenchmarkRecovery: the time from a member's reconnection to the last of
// the 1,000 messages it missed, through the Go client on a real server.

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/protows/protows/client"
	"github.com/protows/protows/codec"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"github.com/protows/protows/hub"
	"github.com/protows/protows/hub/internal/hubtest"
	"github.com/protows/protows/hub/natsbroker"
	"github.com/protows/protows/transport"
)

// benchHub is one way to carry a room's broadcasts.
type benchHub struct {
	name string
	// start returns a hub and, for JetStream, the node serving it.
	start func(b *testing.B) *hub.Hub[*Msg]
}

func benchHubs() []benchHub {
	return []benchHub{
		{"memory-broker", func(b *testing.B) *hub.Hub[*Msg] {
			net := hub.NewMemoryNetwork()
			h, err := hub.New(hub.Config[*Msg]{Broker: net.Broker(), Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = h.Close() })
			return h
		}},
		{"memory-history", func(b *testing.B) *hub.Hub[*Msg] {
			net := hub.NewMemoryNetwork()
			h, err := hub.New(hub.Config[*Msg]{Broker: net.Broker(), History: hub.NewMemoryHistory(hub.HistoryLimits{}),
				Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = h.Close() })
			return h
		}},
		{"jetstream", func(b *testing.B) *hub.Hub[*Msg] {
			ns := startJetStream(b, 0, b.TempDir())
			b.Cleanup(func() { stopNATS(ns) })
			n := startJSNodeB(b, ns.ClientURL(), "a")
			return n
		}},
	}
}

// startJSNodeB is startJSNode's hub for a benchmark.
func startJSNodeB(b *testing.B, url, name string) *hub.Hub[*Msg] {
	b.Helper()
	nc, err := natsConnect(url, name)
	if err != nil {
		b.Fatal(err)
	}
	h, err := hub.New(hub.Config[*Msg]{
		Broker:  natsbroker.New(nc, natsbroker.Config{Subject: "bench.rooms"}),
		History: natsbroker.NewHistory(nc, natsbroker.HistoryConfig{Stream: "BENCH"}),
		Node:    name,
		Logger:  slog.New(slog.DiscardHandler),
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = h.Close(); nc.Close() })
	return h
}

func BenchmarkHistoryPublish(b *testing.B) {
	for _, bh := range benchHubs() {
		b.Run(bh.name, func(b *testing.B) {
			h := bh.start(b)
			m := &Msg{Subject: "a chat message of a typical length, say eighty bytes or so..", ExpiresAt: 1}
			for b.Loop() {
				if err := h.Broadcast(context.Background(), "r", m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// countStream counts what it is sent and signals when it has want.
type countStream struct {
	n    atomic.Int64
	want int64
	done chan struct{}
}

func (c *countStream) Send(*Msg) error {
	if c.n.Add(1) == c.want {
		close(c.done)
	}
	return nil
}

func BenchmarkHistoryFanOut(b *testing.B) {
	const members = 100
	for _, bh := range benchHubs() {
		b.Run(bh.name, func(b *testing.B) {
			h := bh.start(b)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			streams := make([]*countStream, members)
			for i := range streams {
				streams[i] = &countStream{want: int64(b.N), done: make(chan struct{})}
				go func() { _ = h.Join(ctx, "r", streams[i]) }()
			}
			for len(h.Members("r")) < members {
				time.Sleep(time.Millisecond)
			}
			time.Sleep(50 * time.Millisecond) // the members go live
			m := &Msg{Subject: "a chat message of a typical length, say eighty bytes or so..", ExpiresAt: 1}
			b.ResetTimer()
			for range b.N {
				if err := h.Broadcast(ctx, "r", m); err != nil {
					b.Fatal(err)
				}
			}
			for _, s := range streams {
				select {
				case <-s.done:
				case <-time.After(30 * time.Second):
					b.Fatalf("a member got %d of %d", s.n.Load(), b.N)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N*members)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}

// BenchmarkRecovery: each iteration cuts a Go client's link, broadcasts
// 1,000 messages, lets the client back in, and times from then to the
// last of the 1,000.
func BenchmarkRecovery(b *testing.B) {
	const missed = 1000
	for _, bh := range []string{"memory", "jetstream"} {
		b.Run(bh, func(b *testing.B) {
			var h *hub.Hub[*Msg]
			if bh == "memory" {
				var err error
				h, err = hub.New(hub.Config[*Msg]{History: hub.NewMemoryHistory(hub.HistoryLimits{Messages: 2 * missed}),
					Logger: slog.New(slog.DiscardHandler)})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { _ = h.Close() })
			} else {
				ns := startJetStream(b, 0, b.TempDir())
				b.Cleanup(func() { stopNATS(ns) })
				h = startJSNodeB(b, ns.ClientURL(), "a")
			}
			url := hubtest.Serve(b, h, transportConfig())
			proxy := hubtest.NewProxy(b, hostPort(url))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			c, err := client.Dial(ctx, "ws://"+proxy.Addr()+"/", client.WithCodec(codec.Proto()),
				client.WithBackoff(client.Backoff{Initial: time.Millisecond, Max: 2 * time.Millisecond}))
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			// The client resumes from the position the server tells it
			// (STREAM_POSITION), which may come after the member was
			// added: a link cut before it arrives re-opens the stream
			// without one, from the room's latest message, and the
			// messages broadcast meanwhile are never replayed.
			positioned := make(chan struct{})
			var once sync.Once
			st, err := client.CallServerStream[Msg](ctx, c, hubtest.WatchMethod, &protowsv1.AuthenticateRequest{Token: "r"},
				client.OnPosition(func(client.StreamPosition) { once.Do(func() { close(positioned) }) }))
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			select {
			case <-positioned:
			case <-time.After(10 * time.Second):
				b.Fatal("no STREAM_POSITION")
			}
			hubtest.WaitMembers(b, h, "r", 1)
			k := int64(0)
			var total time.Duration
			for b.Loop() {
				proxy.Refuse(true)
				proxy.Cut()
				hubtest.WaitMembers(b, h, "r", 0)
				for range missed {
					k++
					if err := h.Broadcast(ctx, "r", &Msg{ExpiresAt: k}); err != nil {
						b.Fatal(err)
					}
				}
				start := time.Now()
				proxy.Refuse(false)
				// A recovery that never ends fails the run rather than
				// hanging make bench: once (out of hundreds) a loaded
				// machine saw Receive wait with no CPU used.
				watchdog := time.AfterFunc(time.Minute, func() { st.Close() })
				for {
					if !st.Receive() {
						b.Fatalf("recovery %d not caught up after %v: %v (members: %d)", k/missed, time.Since(start), st.Err(), len(h.Members("r")))
					}
					if st.Msg().GetExpiresAt() == k {
						break
					}
				}
				watchdog.Stop()
				total += time.Since(start)
			}
			b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/recovery")
			b.ReportMetric(0, "ns/op")
		})
	}
}

func natsConnect(url, name string) (*nats.Conn, error) {
	return nats.Connect(url, nats.MaxReconnects(-1), nats.Name(name))
}

func transportConfig() transport.Config { return transport.Config{} }

// hostPort returns the host:port of a ws:// URL.
func hostPort(url string) string {
	return strings.TrimSuffix(strings.TrimPrefix(url, "ws://"), "/")
}
