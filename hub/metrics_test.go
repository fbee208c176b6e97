package hub

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/protows/protows/codec"
	"github.com/protows/protows/transport"
)

// recMetrics records what a hub measures.
type recMetrics struct {
	mu         sync.Mutex
	joined     int
	left       int
	broadcasts map[string]int // kind/origin
	delivered  int
	dropped    map[string]int
	gaps       []uint64
	published  map[string]int // kind, with "!" after it for errors
}

var _ Metrics = (*recMetrics)(nil)

func newRecMetrics() *recMetrics {
	return &recMetrics{broadcasts: map[string]int{}, dropped: map[string]int{}, published: map[string]int{}}
}

func (m *recMetrics) MemberJoined() { m.mu.Lock(); m.joined++; m.mu.Unlock() }
func (m *recMetrics) MemberLeft()   { m.mu.Lock(); m.left++; m.mu.Unlock() }
func (m *recMetrics) Broadcast(kind, origin string) {
	m.mu.Lock()
	m.broadcasts[kind+"/"+origin]++
	m.mu.Unlock()
}
func (m *recMetrics) Delivered(n int)       { m.mu.Lock(); m.delivered += n; m.mu.Unlock() }
func (m *recMetrics) Dropped(reason string) { m.mu.Lock(); m.dropped[reason]++; m.mu.Unlock() }
func (m *recMetrics) Gap(missed uint64)     { m.mu.Lock(); m.gaps = append(m.gaps, missed); m.mu.Unlock() }
func (m *recMetrics) Published(kind string, d time.Duration, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		kind += "!"
	}
	m.published[kind]++
}

func (m *recMetrics) get(f func(*recMetrics) int) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return f(m)
}

// TestMetricsOfOneNode: members, broadcasts, deliveries and a slow
// consumer's drop.
func TestMetricsOfOneNode(t *testing.T) {
	t.Parallel()
	m := newRecMetrics()
	h := newHub(t, Config[*msg]{Metrics: m})
	slow := newFake("slow", codec.Proto())
	slow.limit = 3
	js := joinFake(t, h, "r", slow, 1)
	a, b := newFake("a", codec.Proto()), newFake("b", codec.JSON())
	joinFake(t, h, "r", a, 1)
	joinFake(t, h, "r", b, 1)
	if got := m.get(func(m *recMetrics) int { return m.joined }); got != 3 {
		t.Errorf("joined %d, want 3", got)
	}
	const n = 50
	for i := 1; i <= n; i++ {
		if err := h.Broadcast(context.Background(), "r", &msg{ExpiresAt: int64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := js.end(t); !errors.Is(err, transport.ErrSlowConsumer) {
		t.Fatalf("slow member: %v", err)
	}
	if err := h.SendTo(context.Background(), h.Node()+"/a", &msg{}); err != nil {
		t.Fatal(err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	// The slow member took 3, then overflowed once and was dropped.
	if m.delivered != 2*n+3+1 {
		t.Errorf("delivered %d, want %d", m.delivered, 2*n+3+1)
	}
	if m.dropped["slow_consumer"] != 1 || len(m.dropped) != 1 {
		t.Errorf("dropped %v, want one slow_consumer", m.dropped)
	}
	if m.broadcasts["room/local"] != n || m.broadcasts["direct/local"] != 1 {
		t.Errorf("broadcasts %v", m.broadcasts)
	}
	if m.left != 1 {
		t.Errorf("left %d, want 1", m.left)
	}
}

// TestMetricsOfACluster: broadcasts from another node, a lost one counted
// as a gap of one message, and the broker's publishes and their errors.
func TestMetricsOfACluster(t *testing.T) {
	t.Parallel()
	synctest.Test(t, testMetricsOfACluster)
}

func testMetricsOfACluster(t *testing.T) {
	bs := memoryBrokers(2)
	lossy := &crashable{Broker: bs[0]}
	ms := []*recMetrics{newRecMetrics(), newRecMetrics()}
	var hubs []*Hub[*msg]
	for i, b := range []Broker{lossy, bs[1]} {
		hubs = append(hubs, newHub(t, Config[*msg]{
			Logger: slog.New(slog.DiscardHandler), Broker: b, Node: []string{"n1", "n2"}[i],
			HeartbeatInterval: 20 * time.Millisecond, PresenceTTL: 2 * time.Second, Metrics: ms[i],
		}))
	}
	for _, h := range hubs {
		waitFor(t, func() bool { return len(h.Nodes()) == 1 })
	}
	f := newFake("f", codec.Proto())
	joinFake(t, hubs[1], "r", f, 1)
	waitFor(t, func() bool { return len(hubs[0].Members("r")) == 1 })
	lossy.dropNth = lossy.count.Load() + 2 // the second broadcast is lost
	for i := 1; i <= 3; i++ {
		if err := hubs[0].Broadcast(context.Background(), "r", &msg{ExpiresAt: int64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	f.waitCount(t, 2)
	waitFor(t, func() bool {
		return ms[1].get(func(m *recMetrics) int { return m.broadcasts["room/remote"] }) == 2
	})
	ms[1].mu.Lock()
	ones := 0
	for _, g := range ms[1].gaps {
		if g == 1 {
			ones++
		}
	}
	if ones != 1 || ms[1].delivered != 2 {
		t.Errorf("receiver: gaps %v, delivered %d; want one gap of 1 message and 2 deliveries", ms[1].gaps, ms[1].delivered)
	}
	ms[1].mu.Unlock()

	lossy.dead.Store(true)
	if err := hubs[0].Broadcast(context.Background(), "r", &msg{}); err == nil {
		t.Fatal("a broadcast through a dead broker succeeded")
	}
	ms[0].mu.Lock()
	defer ms[0].mu.Unlock()
	if ms[0].published["broadcast"] != 3 || ms[0].published["broadcast!"] != 1 || ms[0].published["sync"] == 0 {
		t.Errorf("sender's publishes: %v", ms[0].published)
	}
}
