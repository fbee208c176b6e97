package hub

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/protows/protows/codec"
)

// slowStream is a member's stream whose Send takes delay: the hub's
// receive delivers a remote broadcast to it on the broker's goroutine, so
// the node falls behind on its broker's messages, as an overloaded node
// does.
type slowStream struct {
	delay atomic.Int64 // nanoseconds
	got   atomic.Int64
}

func (s *slowStream) Send(*msg) error {
	time.Sleep(time.Duration(s.delay.Load()))
	s.got.Add(1)
	return nil
}

// logRecorder keeps the messages logged.
type logRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	r.msgs = append(r.msgs, rec.Message)
	r.mu.Unlock()
	return nil
}
func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *logRecorder) WithGroup(string) slog.Handler      { return r }

func (r *logRecorder) count(msg string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, m := range r.msgs {
		if m == msg {
			n++
		}
	}
	return n
}

const (
	logStopped = "protows hub: node stopped answering, dropping its members"
	logBehind  = "protows hub: behind on other nodes' messages, not taking nodes for dead while theirs may be waiting"
)

// livenessHubs starts hubs on brokers with the default heartbeat and TTL
// (1 s, 5 s): synctest makes them take no time. The first hub logs to rec
// and counts with met.
func livenessHubs(t *testing.T, bs []Broker, rec *logRecorder, met *recMetrics) []*Hub[*msg] {
	t.Helper()
	var hubs []*Hub[*msg]
	for i, b := range bs {
		cfg := Config[*msg]{Broker: b, Node: "n" + string(rune('1'+i))}
		if i == 0 {
			cfg.Logger, cfg.Metrics = slog.New(rec), met
			cfg.Presence = func(ev PresenceEvent) (*msg, bool) {
				if ev.Joined {
					return nil, false
				}
				return &msg{Subject: ev.Member.ConnID + " left"}, true
			}
		}
		hubs = append(hubs, newHub(t, cfg))
	}
	for _, h := range hubs {
		waitFor(t, func() bool { return len(h.Nodes()) == len(hubs)-1 })
	}
	return hubs
}

// joinSlow makes s a member of room on h until the test ends.
func joinSlow(t *testing.T, h *Hub[*msg], room string, s *slowStream) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	m := fakeMember(t, ctx, h, room, s, "slow")
	done := make(chan struct{})
	go func() { defer close(done); _ = h.join(ctx, m) }()
	t.Cleanup(func() { s.delay.Store(0); cancel(); <-done })
	waitFor(t, func() bool { return hasMember(h.Members(room), m.info.ID()) })
}

func TestBusyNodeKeepsLivePeers(t *testing.T) {
	t.Parallel()
	synctest.Test(t, testBusyNodeKeepsLivePeers)
}

// testBusyNodeKeepsLivePeers: n1 takes 7 s to deliver each of n2's
// broadcasts, more than the 5 s TTL, while n2's heartbeats wait behind
// them. n1 must not drop n2's member, nor show its own members a gap.
func testBusyNodeKeepsLivePeers(t *testing.T) {
	rec, met := &logRecorder{}, newRecMetrics()
	hubs := livenessHubs(t, memoryBrokers(2), rec, met)
	// The slow member is in a room of its own: a goroutine waiting for
	// the room's lock, which its Send holds, would stop synctest's clock.
	a := newFake("a", codec.Proto())
	joinFake(t, hubs[0], "busy", a, 1)
	p := newFake("p", codec.Proto())
	joinFake(t, hubs[0], "r", p, 1)
	joinFake(t, hubs[1], "r", newFake("x", codec.Proto()), 1)
	slow := &slowStream{}
	joinSlow(t, hubs[0], "busy", slow)
	waitFor(t, func() bool { return len(hubs[0].Members("r")) == 2 })

	slow.delay.Store(int64(7 * time.Second))
	const n = 8
	for i := range n {
		if err := hubs[1].Broadcast(context.Background(), "busy", &msg{ExpiresAt: int64(i + 1)}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
	}
	// n1 needs 56 s for them; meanwhile n2 sends 56 heartbeats.
	start := time.Now()
	for slow.got.Load() < n {
		time.Sleep(100 * time.Millisecond)
	}
	if d := time.Since(start); d < 40*time.Second {
		t.Fatalf("the slow member took %v, not slow enough to test anything", d)
	}
	slow.delay.Store(0)
	time.Sleep(3 * time.Second) // the heartbeats queued behind are handled

	if got := rec.count(logBehind); got == 0 {
		t.Error("n1 did not log that it was behind: the test did not slow it past the TTL")
	}
	if got := rec.count(logStopped); got != 0 {
		t.Errorf("n1 logged %q %d times", logStopped, got)
	}
	if !slices.Contains(hubs[0].Nodes(), "n2") || len(hubs[0].Members("r")) != 2 {
		t.Errorf("n1 knows nodes %v and members %v", hubs[0].Nodes(), hubs[0].Members("r"))
	}
	if ms, _ := p.messages(t); len(ms) != 0 {
		t.Errorf("p got presence messages %v", ms)
	}
	ms, seqs := a.messages(t)
	if len(ms) != n {
		t.Fatalf("a got %d broadcasts, want %d", len(ms), n)
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] != seqs[i-1]+1 {
			t.Errorf("a saw a gap: seqs %v", seqs)
			break
		}
	}
	if gaps := met.get(func(m *recMetrics) int { return len(m.gaps) }); gaps != 0 {
		t.Errorf("n1 counted %d gaps", gaps)
	}
}

func TestBusyNodeStillDropsDeadPeer(t *testing.T) {
	t.Parallel()
	synctest.Test(t, testBusyNodeStillDropsDeadPeer)
}

// testBusyNodeStillDropsDeadPeer: n1 takes 2 s to deliver each of n2's
// broadcasts, which come once a second, so it falls ever further behind;
// n3 crashes. n1 must drop n3's member within the cap of presenceCap TTLs
// after it handled n3's last message, and keep n2's.
func testBusyNodeStillDropsDeadPeer(t *testing.T) {
	bs := memoryBrokers(3)
	dying := &crashable{Broker: bs[2]}
	bs[2] = dying
	rec, met := &logRecorder{}, newRecMetrics()
	hubs := livenessHubs(t, bs, rec, met)
	a := newFake("a", codec.Proto())
	joinFake(t, hubs[0], "r", a, 1)
	joinFake(t, hubs[1], "r", newFake("x", codec.Proto()), 1)
	joinFake(t, hubs[2], "r", newFake("y", codec.Proto()), 1)
	slow := &slowStream{} // in a room of its own, as above
	joinSlow(t, hubs[0], "busy", slow)
	waitFor(t, func() bool { return len(hubs[0].Members("r")) == 3 })

	slow.delay.Store(int64(2 * time.Second))
	stop := make(chan struct{})
	published := make(chan struct{})
	var stopOnce sync.Once
	halt := func() { stopOnce.Do(func() { close(stop) }); <-published }
	t.Cleanup(halt)
	go func() {
		defer close(published)
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(time.Second):
			}
			if err := hubs[1].Broadcast(context.Background(), "busy", &msg{ExpiresAt: int64(i)}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	time.Sleep(5 * time.Second)
	dying.dead.Store(true)
	// Follow n3 on n1 until n1 drops it: when it last handled n3's
	// message, and when it dropped it.
	var lastSeen time.Time
	deadline := time.Now().Add(time.Minute)
	for {
		hubs[0].mu.Lock()
		p := hubs[0].peers["n3"]
		if p != nil {
			lastSeen = p.lastSeen
		}
		hubs[0].mu.Unlock()
		if p == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("n1 did not drop n3 within a minute")
		}
		time.Sleep(100 * time.Millisecond)
	}
	silent := time.Since(lastSeen)
	bound := presenceCap*DefaultPresenceTTL + DefaultHeartbeatInterval
	if silent > bound || silent < DefaultPresenceTTL {
		t.Errorf("n1 dropped n3 %v after its last message, want within (%v, %v]", silent, DefaultPresenceTTL, bound)
	}
	if b := bs[0].(BacklogBroker).Backlog(); b < 10 {
		t.Errorf("n1's backlog is %d when it dropped n3: it was not busy", b)
	}
	halt()
	slow.delay.Store(0)
	waitFor(t, func() bool { return bs[0].(BacklogBroker).Backlog() == 0 })
	time.Sleep(3 * time.Second)

	if got := rec.count(logStopped); got != 1 {
		t.Errorf("n1 logged %q %d times, want once (for n3)", logStopped, got)
	}
	if !slices.Contains(hubs[0].Nodes(), "n2") || len(hubs[0].Members("r")) != 2 {
		t.Errorf("n1 knows nodes %v and members %v", hubs[0].Nodes(), hubs[0].Members("r"))
	}
	ms, _ := a.messages(t)
	var left []string
	for _, m := range ms {
		if m.GetSubject() != "" {
			left = append(left, m.GetSubject())
		}
	}
	if !slices.Equal(left, []string{"y left"}) {
		t.Errorf("a got presence messages %v, want [y left]", left)
	}
}

func TestBehindNodeDropsDeadPeerOnceCaughtUp(t *testing.T) {
	t.Parallel()
	synctest.Test(t, testBehindNodeDropsDeadPeerOnceCaughtUp)
}

// testBehindNodeDropsDeadPeerOnceCaughtUp: n1 takes 18 s over a burst of
// three broadcasts of n2, and n3 crashes as the burst begins. n1 must drop
// n3 once it has caught up (silence: TTL + how far behind it was), well
// before the cap, and keep n2.
func testBehindNodeDropsDeadPeerOnceCaughtUp(t *testing.T) {
	bs := memoryBrokers(3)
	dying := &crashable{Broker: bs[2]}
	bs[2] = dying
	rec, met := &logRecorder{}, newRecMetrics()
	hubs := livenessHubs(t, bs, rec, met)
	joinFake(t, hubs[1], "r", newFake("x", codec.Proto()), 1)
	joinFake(t, hubs[2], "r", newFake("y", codec.Proto()), 1)
	slow := &slowStream{}
	joinSlow(t, hubs[0], "busy", slow)
	waitFor(t, func() bool { return len(hubs[0].Members("r")) == 2 })

	slow.delay.Store(int64(6 * time.Second))
	dying.dead.Store(true)
	for i := range 3 {
		if err := hubs[1].Broadcast(context.Background(), "busy", &msg{ExpiresAt: int64(i + 1)}); err != nil {
			t.Fatal(err)
		}
	}
	var lastSeen time.Time
	for {
		hubs[0].mu.Lock()
		p := hubs[0].peers["n3"]
		if p != nil {
			lastSeen = p.lastSeen
		}
		hubs[0].mu.Unlock()
		if p == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	silent := time.Since(lastSeen)
	if slow.got.Load() != 3 {
		t.Errorf("n1 dropped n3 before it delivered the burst (%d of 3)", slow.got.Load())
	}
	// Caught up about 18 s after n3's last message, dropped at the first
	// tick that finds it a TTL silent up to then.
	if lo, hi := 18*time.Second, 18*time.Second+DefaultPresenceTTL+2*DefaultHeartbeatInterval; silent < lo || silent > hi {
		t.Errorf("n1 dropped n3 %v after its last message, want within [%v, %v]", silent, lo, hi)
	}
	if rec.count(logBehind) == 0 {
		t.Error("n1 did not log that it was behind")
	}
	if got := rec.count(logStopped); got != 1 {
		t.Errorf("n1 logged %q %d times, want once (for n3)", logStopped, got)
	}
	if !slices.Equal(hubs[0].Nodes(), []string{"n2"}) {
		t.Errorf("n1 knows nodes %v, want [n2]", hubs[0].Nodes())
	}
}

// backlogBroker is a BacklogBroker whose backlog a test sets.
type backlogBroker struct {
	Broker
	n int
}

func (b *backlogBroker) Backlog() int { return b.n }

func TestCaughtUp(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	type step struct {
		sec     int    // the heartbeat's time
		backlog int    // the broker's
		handled uint64 // the hub's count
		want    int    // caughtUp's result, in seconds
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"idle", []step{{1, 0, 0, 1}, {2, 0, 0, 2}}},
		{"keeping up", []step{{1, 0, 10, 1}, {2, 3, 12, 1}, {3, 2, 15, 2}, {4, 0, 17, 4}}},
		{"behind then catching up", []step{
			{1, 0, 0, 1},
			{2, 5, 0, 1},  // mark at 2: 5
			{3, 9, 1, 1},  // mark at 3: 10
			{4, 12, 5, 2}, // 5 reached; mark at 4: 17
			{5, 10, 9, 2}, // mark at 5: 19
			{6, 6, 17, 4}, // 10 and 17 reached; mark at 6: 23
			{7, 1, 30, 6}, // 19 and 23 reached
			{8, 0, 31, 8}, // none waiting
		}},
		{"behind from the first tick", []step{{1, 4, 0, 1}, {2, 6, 2, 1}, {3, 3, 4, 1}, {4, 1, 9, 3}}},
		{"marks past the cap are dropped", []step{
			{0, 0, 0, 0},
			{1, 1, 0, 0},  // mark at 1: 1, never reached
			{40, 1, 0, 0}, // the mark at 1 is older than 30 s: dropped; mark at 40: 1
			{41, 5, 1, 40},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &backlogBroker{}
			h := &Hub[*msg]{cfg: Config[*msg]{Broker: b, PresenceTTL: 5 * time.Second}}
			for _, s := range tt.steps {
				b.n = s.backlog
				h.handled.Store(s.handled)
				got := h.caughtUp(at(s.sec))
				if want := at(s.want); !got.Equal(want) {
					t.Fatalf("at %ds: caught up to %v, want %v", s.sec, got.Sub(t0), want.Sub(t0))
				}
			}
			if n := len(h.live.marks); n > presenceCap*5+1 {
				t.Errorf("%d marks kept", n)
			}
		})
	}
}

func TestCaughtUpWithoutBacklog(t *testing.T) {
	t.Parallel()
	h := &Hub[*msg]{cfg: Config[*msg]{Broker: NewMemoryNetwork().Broker(), PresenceTTL: time.Second}}
	h.cfg.Broker = struct{ Broker }{h.cfg.Broker} // hides Backlog
	now := time.Now()
	if got := h.caughtUp(now); !got.Equal(now) {
		t.Errorf("caughtUp = %v, want now", got)
	}
}
