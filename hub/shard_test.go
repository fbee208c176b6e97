package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/protows/protows/codec"
	"github.com/protows/protows/transport"
)

// shardedRoom joins n fake members (half of each codec) to room "r" of a
// hub made with cfg, with GOMAXPROCS at 4 so that a room of a few
// thousand members is delivered to by several workers. It returns the
// members' connections, their memberships, and end, which waits for
// member i's Join and returns its error (once or many times); at the end
// of the test every membership ends.
func shardedRoom(t *testing.T, cfg Config[*msg], n int, limit func(i int) int) (h *Hub[*msg], conns []*fakeConn, js []*joined, end func(i int) error) {
	t.Helper()
	prev := runtime.GOMAXPROCS(4)
	t.Cleanup(func() { runtime.GOMAXPROCS(prev) })
	if w := min(runtime.GOMAXPROCS(0), n/shardMembers); w < 2 {
		t.Fatalf("%d members make %d delivery workers; the test needs several", n, w)
	}
	joinedCh := make(chan struct{}, n)
	cfg.Logger = slog.New(slog.DiscardHandler)
	cfg.Presence = func(ev PresenceEvent) (*msg, bool) {
		if ev.Joined {
			joinedCh <- struct{}{}
		}
		return nil, false
	}
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	conns = make([]*fakeConn, n)
	js = make([]*joined, n)
	errs := make([]error, n)
	ended := make([]bool, n)
	end = func(i int) error {
		if !ended[i] {
			errs[i], ended[i] = js[i].end(t), true
		}
		return errs[i]
	}
	for i := range n {
		c := codec.Proto()
		if i%2 == 1 {
			c = codec.JSON()
		}
		conns[i] = newFake(strconv.Itoa(i), c)
		if limit != nil {
			conns[i].limit = limit(i)
		}
		ctx, cancel := context.WithCancel(context.Background())
		m := fakeMember(t, ctx, h, "r", conns[i].call(1), conns[i].id)
		js[i] = &joined{cancel: cancel, err: make(chan error, 1), id: m.info.ID()}
		go func() { js[i].err <- h.join(ctx, m) }()
	}
	for range n {
		<-joinedCh
	}
	t.Cleanup(func() {
		for _, j := range js {
			j.cancel()
		}
		for i := range js {
			_ = end(i)
		}
		if err := h.Close(); err != nil {
			t.Error(err)
		}
	})
	return h, conns, js, end
}

// publishAll broadcasts per messages from each of pubs concurrent
// publishers, "p<i>-<k>" in order for each.
func publishAll(t *testing.T, h *Hub[*msg], pubs, per int) {
	t.Helper()
	var wg sync.WaitGroup
	for p := range pubs {
		wg.Go(func() {
			for k := range per {
				if err := h.Broadcast(context.Background(), "r", &msg{Subject: fmt.Sprintf("p%d-%d", p, k)}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// checkOrder checks that f got a run of room messages whose sequence
// numbers follow each other from first, each publisher's in the order it
// published them, and returns how many.
func checkOrder(t *testing.T, f *fakeConn, first uint64) int {
	t.Helper()
	ms, seqs := f.messages(t)
	next := map[string]int{}
	for i, m := range ms {
		if seqs[i] != first+uint64(i) {
			t.Fatalf("member %s: message %d has seq %d, want %d", f.id, i, seqs[i], first+uint64(i))
		}
		p, k, _ := strings.Cut(m.GetSubject(), "-")
		n, _ := strconv.Atoi(k)
		if n < next[p] {
			t.Fatalf("member %s: %s after %s-%d: out of the publisher's order", f.id, m.GetSubject(), p, next[p]-1)
		}
		next[p] = n + 1
	}
	return len(ms)
}

// TestShardedDeliveryOrder: in a room large enough for several delivery
// workers, every member gets every broadcast of concurrent publishers, in
// one sequence with no gap and in each publisher's order, with and
// without history (whose offsets number the messages then).
func TestShardedDeliveryOrder(t *testing.T) {
	for _, history := range []bool{false, true} {
		t.Run(fmt.Sprintf("history=%v", history), func(t *testing.T) {
			var cfg Config[*msg]
			if history {
				cfg.History = NewMemoryHistory(HistoryLimits{})
			}
			const members, pubs, per = 2 * shardMembers, 4, 10
			h, conns, _, _ := shardedRoom(t, cfg, members, nil)
			publishAll(t, h, pubs, per)
			if !h.shards.started.Load() {
				t.Fatal("the delivery workers did not start")
			}
			for _, f := range conns {
				f.waitCount(t, pubs*per)
				if n := checkOrder(t, f, 1); n != pubs*per {
					t.Fatalf("member %s: %d messages, want %d", f.id, n, pubs*per)
				}
			}
		})
	}
}

// TestShardedDeliveryMembersLeave: members that leave, or are dropped as
// slow consumers, while broadcasts are delivered by several workers stop
// getting them after a gapless run; the others get every one, in order.
func TestShardedDeliveryMembersLeave(t *testing.T) {
	const members, pubs, per = 2 * shardMembers, 4, 20
	// Every tenth member holds 30 envelopes, then counts as slow.
	h, conns, js, end := shardedRoom(t, Config[*msg]{}, members, func(i int) int {
		if i%10 == 3 {
			return 30
		}
		return 0
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		publishAll(t, h, pubs, per)
	}()
	// Every seventh member leaves while the broadcasts go on.
	var left []int
	for i := 0; i < members; i += 7 {
		if i%10 != 3 {
			js[i].cancel()
			left = append(left, i)
		}
	}
	<-done
	gone := map[int]bool{}
	for _, i := range left {
		if err := end(i); !errors.Is(err, context.Canceled) {
			t.Errorf("member %d left with %v, want context.Canceled", i, err)
		}
		gone[i] = true
	}
	for i, f := range conns {
		n := checkOrder(t, f, 1)
		switch {
		case i%10 == 3:
			if n != 30 {
				t.Errorf("slow member %d: %d messages, want the 30 it held", i, n)
			}
			if err := end(i); !errors.Is(err, transport.ErrSlowConsumer) {
				t.Errorf("slow member %d ended with %v, want ErrSlowConsumer", i, err)
			}
		case gone[i]:
			if n > pubs*per {
				t.Errorf("member %d that left: %d messages, more than were sent", i, n)
			}
		default:
			if n != pubs*per {
				t.Errorf("member %d: %d messages, want %d", i, n, pubs*per)
			}
		}
	}
}
