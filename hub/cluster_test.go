package hub

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/protows/protows/codec"
)

// cluster is three hubs joined by brokers, as three server nodes would be.
func cluster(t *testing.T, brokers []Broker, presence func(PresenceEvent) (*msg, bool)) []*Hub[*msg] {
	return clusterTTL(t, brokers, 2*time.Second, presence)
}

// clusterTTL is cluster with a presence TTL. A short one makes a node that
// falls behind under -race look dead, which is right but not what most
// tests test.
func clusterTTL(t *testing.T, brokers []Broker, ttl time.Duration, presence func(PresenceEvent) (*msg, bool)) []*Hub[*msg] {
	t.Helper()
	var hubs []*Hub[*msg]
	for i, b := range brokers {
		hubs = append(hubs, newHub(t, Config[*msg]{
			Logger:            slog.New(slog.DiscardHandler),
			Broker:            b,
			Node:              fmt.Sprintf("n%d", i+1),
			HeartbeatInterval: 20 * time.Millisecond,
			PresenceTTL:       ttl,
			Presence:          presence,
		}))
	}
	for _, h := range hubs {
		waitFor(t, func() bool { return len(h.Nodes()) == len(hubs)-1 })
	}
	return hubs
}

func memoryBrokers(n int) []Broker {
	net := NewMemoryNetwork()
	var bs []Broker
	for range n {
		bs = append(bs, net.Broker())
	}
	return bs
}

// checkPerPublisherOrder checks that f got every message of every
// publisher exactly once, in the order published, with consecutive room
// sequence numbers.
func checkPerPublisherOrder(t *testing.T, f *fakeConn, publishers []string, n int) {
	t.Helper()
	ms, seqs := f.messages(t)
	if len(ms) != len(publishers)*n {
		t.Fatalf("%s got %d messages, want %d", f.id, len(ms), len(publishers)*n)
	}
	next := map[string]int64{}
	for i, m := range ms {
		if want := next[m.GetSubject()] + 1; m.GetExpiresAt() != want {
			t.Fatalf("%s: from %s got #%d, want #%d (duplicate, loss or reorder)", f.id, m.GetSubject(), m.GetExpiresAt(), want)
		}
		next[m.GetSubject()] = m.GetExpiresAt()
		if i > 0 && seqs[i] != seqs[i-1]+1 {
			t.Fatalf("%s: seq %d after %d", f.id, seqs[i], seqs[i-1])
		}
	}
	for _, p := range publishers {
		if next[p] != int64(n) {
			t.Errorf("%s: %d messages from %s, want %d", f.id, next[p], p, n)
		}
	}
}

func TestClusterBroadcastExactlyOnceInPublisherOrder(t *testing.T) {
	t.Parallel()
	synctest.Test(t, testClusterBroadcastExactlyOnceInPublisherOrder)
}

func testClusterBroadcastExactlyOnceInPublisherOrder(t *testing.T) {
	hubs := cluster(t, memoryBrokers(3), nil)
	var fakes []*fakeConn
	for i, h := range hubs {
		for k, c := range []codec.Codec{codec.Proto(), codec.JSON()} {
			f := newFake(fmt.Sprintf("n%d-c%d", i+1, k), c)
			fakes = append(fakes, f)
			joinFake(t, h, "lobby", f, 1)
		}
	}
	for _, h := range hubs {
		waitFor(t, func() bool { return len(h.Members("lobby")) == len(fakes) })
	}
	const n = 200
	var wg sync.WaitGroup
	var publishers []string
	for i, h := range hubs {
		// Two publishers per node, publishing concurrently.
		for p := range 2 {
			name := fmt.Sprintf("n%d-p%d", i+1, p)
			publishers = append(publishers, name)
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := 1; k <= n; k++ {
					if err := h.Broadcast(context.Background(), "lobby", &msg{Subject: name, ExpiresAt: int64(k)}); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	for _, f := range fakes {
		f.waitCount(t, len(publishers)*n)
		checkPerPublisherOrder(t, f, publishers, n)
	}
}

func TestClusterRemoteProtobufIsNotReencoded(t *testing.T) {
	t.Parallel()
	synctest.Test(t, testClusterRemoteProtobufIsNotReencoded)
}

func testClusterRemoteProtobufIsNotReencoded(t *testing.T) {
	hubs := cluster(t, memoryBrokers(2), nil)
	fp, fj := newFake("p", codec.Proto()), newFake("j", codec.JSON())
	joinFake(t, hubs[1], "r", fp, 1)
	waitFor(t, func() bool { return len(hubs[0].Members("r")) == 1 })
	if err := hubs[0].Broadcast(context.Background(), "r", &msg{Subject: "x"}); err != nil {
		t.Fatal(err)
	}
	fp.waitCount(t, 1)
	if got := hubs[1].marshals.Load(); got != 0 {
		t.Errorf("receiving node encoded %d payloads for Protobuf members, want 0 (it reuses the broker's bytes)", got)
	}
	joinFake(t, hubs[1], "r", fj, 1)
	_ = hubs[0].Broadcast(context.Background(), "r", &msg{Subject: "y"})
	fj.waitCount(t, 1)
	if got := hubs[1].marshals.Load(); got != 1 {
		t.Errorf("receiving node encoded %d payloads, want 1 (JSON)", got)
	}
	if ms, _ := fj.messages(t); ms[0].GetSubject() != "y" {
		t.Errorf("JSON member got %v", ms[0])
	}
}

func TestClusterPresenceAndSendTo(t *testing.T) {
	t.Parallel()
	synctest.Test(t, testClusterPresenceAndSendTo)
}

func testClusterPresenceAndSendTo(t *testing.T) {
	hubs := cluster(t, memoryBrokers(3), func(ev PresenceEvent) (*msg, bool) {
		verb := "left"
		if ev.Joined {
			verb = "joined"
		}
		return &msg{Subject: ev.Member.ConnID + " " + verb}, true
	})
	a, b, c := newFake("a", codec.Proto()), newFake("b", codec.JSON()), newFake("c", codec.Proto())
	joinFake(t, hubs[0], "r", a, 1)
	joinFake(t, hubs[1], "r", b, 1)
	jc := joinFake(t, hubs[2], "r", c, 1)
	for _, h := range hubs {
		waitFor(t, func() bool { return len(h.Members("r")) == 3 })
	}
	ms := hubs[0].Members("r")
	if ms[0].Node != "n1" || ms[1].Node != "n2" || ms[2].Node != "n3" || ms[1].Subject != "user-b" {
		t.Fatalf("members seen from n1: %+v", ms)
	}
	joinFake(t, hubs[2], "other", newFake("d", codec.Proto()), 1)
	waitFor(t, func() bool { return len(hubs[0].Rooms()) == 2 })
	if got := fmt.Sprint(hubs[0].Rooms()); got != "[{other 1} {r 3}]" {
		t.Errorf("rooms seen from n1: %s", got)
	}
	// A member on another node can be sent to directly.
	if err := hubs[0].SendTo(context.Background(), ms[1].ID(), &msg{Subject: "psst"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		got, _ := b.messages(t)
		for _, m := range got {
			if m.GetSubject() == "psst" {
				return true
			}
		}
		return false
	})
	// c leaves: everyone sees it leave.
	jc.cancel()
	_ = jc.end(t)
	for _, h := range hubs {
		waitFor(t, func() bool { return len(h.Members("r")) == 2 })
	}
	waitFor(t, func() bool {
		got, _ := a.messages(t)
		return len(got) > 0 && got[len(got)-1].GetSubject() == "c left"
	})
}

// crashable wraps a broker so a test can cut a node off as a crash would:
// no goodbye, no more heartbeats.
type crashable struct {
	Broker
	dead atomic.Bool
	// dropNth drops the nth message published (1-based), 0 for none.
	dropNth int64
	count   atomic.Int64
}

func (c *crashable) Publish(ctx context.Context, m []byte) error {
	if c.dead.Load() {
		return ErrBrokerClosed
	}
	if n := c.count.Add(1); n == c.dropNth {
		return nil // lost on the way
	}
	return c.Broker.Publish(ctx, m)
}

func TestClusterDeadNodeTakesItsMembers(t *testing.T) {
	t.Parallel()
	synctest.Test(t, testClusterDeadNodeTakesItsMembers)
}

func testClusterDeadNodeTakesItsMembers(t *testing.T) {
	bs := memoryBrokers(3)
	dying := &crashable{Broker: bs[2]}
	bs[2] = dying
	hubs := clusterTTL(t, bs, 500*time.Millisecond, func(ev PresenceEvent) (*msg, bool) {
		if ev.Joined {
			return nil, false
		}
		return &msg{Subject: ev.Member.ConnID + " left"}, true
	})
	a := newFake("a", codec.Proto())
	joinFake(t, hubs[0], "r", a, 1)
	for i, id := range []string{"x", "y"} {
		joinFake(t, hubs[2], "r", newFake(id, codec.Proto()), uint32(i+1))
	}
	waitFor(t, func() bool { return len(hubs[0].Members("r")) == 3 && len(hubs[1].Members("r")) == 3 })
	dying.dead.Store(true)
	for _, h := range hubs[:2] {
		waitFor(t, func() bool { return len(h.Members("r")) == 1 && len(h.Nodes()) == 1 })
	}
	a.waitCount(t, 2)
	ms, _ := a.messages(t)
	left := map[string]bool{}
	for _, m := range ms {
		left[m.GetSubject()] = true
	}
	if !left["x left"] || !left["y left"] {
		t.Errorf("leave events seen: %v", left)
	}
}

func TestClusterLossShowsAsSequenceGap(t *testing.T) {
	t.Parallel()
	synctest.Test(t, testClusterLossShowsAsSequenceGap)
}

func testClusterLossShowsAsSequenceGap(t *testing.T) {
	bs := memoryBrokers(2)
	lossy := &crashable{Broker: bs[0]}
	bs[0] = lossy
	hubs := cluster(t, bs, nil)
	f := newFake("f", codec.Proto())
	joinFake(t, hubs[1], "r", f, 1)
	waitFor(t, func() bool { return len(hubs[0].Members("r")) == 1 })
	// The second broadcast from n1 is lost between the nodes.
	lossy.dropNth = lossy.count.Load() + 2
	for i := 1; i <= 3; i++ {
		if err := hubs[0].Broadcast(context.Background(), "r", &msg{ExpiresAt: int64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	f.waitCount(t, 2)
	ms, seqs := f.messages(t)
	if ms[0].GetExpiresAt() != 1 || ms[1].GetExpiresAt() != 3 {
		t.Fatalf("got messages %v", ms)
	}
	if seqs[1] != seqs[0]+2 {
		t.Errorf("seqs %v: the lost broadcast left no gap", seqs)
	}
}

func TestClusterLateNodeGetsLargeState(t *testing.T) {
	t.Parallel()
	synctest.Test(t, testClusterLateNodeGetsLargeState)
}

func testClusterLateNodeGetsLargeState(t *testing.T) {
	net := NewMemoryNetwork()
	first := cluster(t, []Broker{net.Broker()}, nil)[0]
	const n = 2*stateChunk + 500 // three state messages
	var ms []*member[*msg]
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for i := range n {
		m := fakeMember(t, ctx, first, "big", newFake(fmt.Sprint(i), codec.Proto()).call(1), fmt.Sprint("c", i))
		ms = append(ms, m)
		wg.Add(1)
		go func() { defer wg.Done(); _ = first.join(ctx, m) }()
	}
	waitFor(t, func() bool { return len(first.Members("big")) == n })
	late := newHub(t, Config[*msg]{Broker: net.Broker(), Node: "late", HeartbeatInterval: 20 * time.Millisecond})
	waitFor(t, func() bool { return len(late.Members("big")) == n })
	cancel()
	wg.Wait()
	waitFor(t, func() bool { return len(late.Members("big")) == 0 })
}

func TestClusterRestartedNodeReplacesItsOldSelf(t *testing.T) {
	t.Parallel()
	synctest.Test(t, testClusterRestartedNodeReplacesItsOldSelf)
}

func testClusterRestartedNodeReplacesItsOldSelf(t *testing.T) {
	net := NewMemoryNetwork()
	old := &crashable{Broker: net.Broker()}
	hubs := cluster(t, []Broker{net.Broker(), old}, nil)
	joinFake(t, hubs[1], "r", newFake("a", codec.Proto()), 1)
	waitFor(t, func() bool { return len(hubs[0].Members("r")) == 1 })
	old.dead.Store(true) // crashed: no goodbye
	// The node comes back under the same name before the TTL ran out.
	back := newHub(t, Config[*msg]{Broker: net.Broker(), Node: "n2", HeartbeatInterval: 20 * time.Millisecond})
	joinFake(t, back, "r", newFake("b", codec.Proto()), 1)
	waitFor(t, func() bool {
		ms := hubs[0].Members("r")
		return len(ms) == 1 && ms[0].ConnID == "b"
	})
}
