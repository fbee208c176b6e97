package transport_test

import (
	"context"
	"sync"
	"testing"
	"time"

	testv1 "github.com/protows/protows/gen/go/protows/test/v1"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"github.com/protows/protows/router"
	"github.com/protows/protows/transport"
)

const subscribeMethod = "/conc.v1.Conc/Subscribe"

// TestConcurrentWriters has many goroutines write through the same
// connections at once: stream sends from handler goroutines and
// broadcasts of one shared encoded envelope to every connection. Run it
// with -race. Each writer's messages must arrive complete and in order.
func TestConcurrentWriters(t *testing.T) {
	t.Parallel()
	const (
		conns       = 4
		senders     = 8 // per connection, through router.Stream
		broadcaster = 8 // goroutines broadcasting to every connection
		perWriter   = 200
	)
	for _, c := range codecs {
		t.Run(c.Name(), func(t *testing.T) {
			var (
				mu   sync.Mutex
				subs []*transport.Conn
				all  = make(chan struct{})
			)
			ts := startServer(t, transport.Config{SendQueue: 1 << 20, RateLimit: -1}, func(r *router.Router) {
				err := router.HandleServerStream(r, subscribeMethod, func(ctx context.Context, _ *testv1.CountRequest, s router.Stream[*testv1.CountResponse]) error {
					conn, _ := transport.ConnFromContext(ctx)
					mu.Lock()
					subs = append(subs, conn)
					if len(subs) == conns {
						close(all)
					}
					mu.Unlock()
					var wg sync.WaitGroup
					for g := range senders {
						wg.Add(1)
						go func() {
							defer wg.Done()
							for i := range perWriter {
								if err := s.Send(&testv1.CountResponse{N: uint32(g*1_000_000 + i)}); err != nil {
									t.Error(err)
									return
								}
							}
						}()
					}
					wg.Wait()
					<-ctx.Done() // the client cancels when it has everything
					return ctx.Err()
				})
				if err != nil {
					t.Fatal(err)
				}
			})
			clients := make([]*client, conns)
			for i := range clients {
				clients[i] = dial(t, ts.url, c, nil)
				clients[i].send(clients[i].request(1, subscribeMethod, &testv1.CountRequest{}))
			}
			select {
			case <-all:
			case <-time.After(5 * time.Second):
				t.Fatal("subscriptions did not start")
			}
			// Broadcast: each goroutine encodes each message once and
			// queues the same bytes on every connection.
			var wg sync.WaitGroup
			for b := range broadcaster {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range perWriter {
						payload, _ := c.AppendPayload(nil, &testv1.CountResponse{N: uint32((senders+b)*1_000_000 + i)})
						elem, err := c.AppendEnvelope(nil, &protowsv1.Envelope{Id: 1, Kind: protowsv1.Kind_KIND_STREAM_MESSAGE, Payload: payload})
						if err != nil {
							t.Error(err)
							return
						}
						for _, conn := range subs {
							if err := conn.Enqueue(elem); err != nil {
								t.Error(err)
								return
							}
						}
					}
				}()
			}
			for _, cl := range clients {
				next := make(map[uint32]uint32)
				for n := 0; n < (senders+broadcaster)*perWriter; n++ {
					e := cl.recv()
					var m testv1.CountResponse
					cl.decode(e, &m)
					w, i := m.GetN()/1_000_000, m.GetN()%1_000_000
					if e.GetKind() != protowsv1.Kind_KIND_STREAM_MESSAGE || i != next[w] {
						t.Fatalf("writer %d: got %d, want %d (%v)", w, i, next[w], e)
					}
					next[w]++
				}
				cl.send(&protowsv1.Envelope{Id: 1, Kind: protowsv1.Kind_KIND_CANCEL})
			}
			wg.Wait()
		})
	}
}
