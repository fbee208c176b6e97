package hub

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/protows/protows/codec"
)

// TestChaos joins, leaves, broadcasts, sends and reads presence from many
// goroutines on three nodes at once, for the race detector and for lock
// order: it must end, and every node must agree that the rooms are empty.
func TestChaos(t *testing.T) {
	t.Parallel()
	hubs := cluster(t, memoryBrokers(3), func(ev PresenceEvent) (*msg, bool) {
		return &msg{Subject: ev.Member.ConnID}, true
	})
	rooms := []string{"a", "b", "c"}
	stop := time.Now().Add(300 * time.Millisecond)
	var wg sync.WaitGroup
	for g := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			h := hubs[g%len(hubs)]
			for i := 0; time.Now().Before(stop); i++ {
				room := rooms[rng.IntN(len(rooms))]
				switch rng.IntN(6) {
				case 0, 1: // a short membership, ended one way or another
					ctx, cancel := context.WithCancel(context.Background())
					f := newFake(fmt.Sprintf("g%d-%d", g, i), codec.Proto())
					if rng.IntN(2) == 0 {
						f.codec = codec.JSON()
					}
					f.limit = 1 + rng.IntN(20)
					m, err := h.newMember(ctx, room, f.call(1))
					if err != nil {
						t.Error(err) // not Fatal: this is not the test's goroutine
						cancel()
						return
					}
					m.info.ConnID = f.id
					done := make(chan struct{})
					go func() { defer close(done); _ = h.join(ctx, m) }()
					time.Sleep(time.Duration(rng.IntN(2000)) * time.Microsecond)
					if rng.IntN(2) == 0 {
						h.Leave(room, f.id)
					}
					cancel()
					<-done
				case 2:
					_ = h.Broadcast(context.Background(), room, &msg{Subject: "x"})
				case 3:
					_ = h.BroadcastAll(context.Background(), &msg{Subject: "all"})
				case 4:
					if ms := h.Members(room); len(ms) > 0 {
						_ = h.SendTo(context.Background(), ms[rng.IntN(len(ms))].ID(), &msg{Subject: "direct"})
					}
				case 5:
					_ = h.Rooms()
				}
			}
		}()
	}
	wg.Wait()
	for _, h := range hubs {
		waitFor(t, func() bool { return len(h.Rooms()) == 0 })
	}
}
