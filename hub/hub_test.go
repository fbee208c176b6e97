package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"

	protows "github.com/protows/protows"
	"github.com/protows/protows/codec"
	"github.com/protows/protows/transport"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newHub(t *testing.T, cfg Config[*msg]) *Hub[*msg] {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

func TestBroadcastEncodesOncePerCodec(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		proto, json  int
		wantPerBcast int64
		withBroker   bool
	}{
		{name: "both codecs", proto: 20, json: 20, wantPerBcast: 2},
		{name: "proto only", proto: 30, wantPerBcast: 1},
		{name: "json only", json: 30, wantPerBcast: 1},
		// With other nodes the Protobuf encoding goes to the broker
		// too, and is the same one the Protobuf members get.
		{name: "both codecs, broker", proto: 10, json: 10, withBroker: true, wantPerBcast: 2},
		{name: "json only, broker", json: 10, withBroker: true, wantPerBcast: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				cfg := Config[*msg]{}
				if tt.withBroker {
					cfg.Broker = NewMemoryNetwork().Broker()
				}
				h := newHub(t, cfg)
				var fakes []*fakeConn
				var joins []*joined
				for i := 0; i < tt.proto+tt.json; i++ {
					c := codec.Proto()
					if i >= tt.proto {
						c = codec.JSON()
					}
					f := newFake(fmt.Sprintf("c%d", i), c)
					fakes = append(fakes, f)
					joins = append(joins, joinFake(t, h, "lobby", f, uint32(i+1)))
				}
				const n = 5
				before := h.marshals.Load()
				for i := 1; i <= n; i++ {
					if err := h.Broadcast(context.Background(), "lobby", &msg{Subject: "pub", ExpiresAt: int64(i)}); err != nil {
						t.Fatal(err)
					}
				}
				if got := h.marshals.Load() - before; got != n*tt.wantPerBcast {
					t.Errorf("%d payload encodings for %d broadcasts to %d members, want %d", got, n, len(fakes), n*tt.wantPerBcast)
				}
				for i, f := range fakes {
					envs := f.received(t)
					ms, seqs := f.messages(t)
					if len(ms) != n {
						t.Fatalf("%s got %d messages, want %d", f.id, len(ms), n)
					}
					for k := range ms {
						if envs[k].GetId() != uint32(i+1) {
							t.Errorf("%s: envelope id %d, want the call id %d", f.id, envs[k].GetId(), i+1)
						}
						if ms[k].GetExpiresAt() != int64(k+1) || seqs[k] != uint64(k+1) {
							t.Errorf("%s: message %d is #%d with seq %d, want #%d seq %d", f.id, k, ms[k].GetExpiresAt(), seqs[k], k+1, k+1)
						}
					}
				}
				for _, j := range joins {
					j.cancel()
					if err := j.end(t); !errors.Is(err, context.Canceled) {
						t.Errorf("Join returned %v, want context.Canceled", err)
					}
				}
			})
		})
	}
}

func TestSlowMemberIsDroppedAndBroadcastGoesOn(t *testing.T) {
	t.Parallel()
	synctest.Test(t, testSlowMemberIsDroppedAndBroadcastGoesOn)
}

func testSlowMemberIsDroppedAndBroadcastGoesOn(t *testing.T) {
	h := newHub(t, Config[*msg]{})
	slow := newFake("slow", codec.Proto())
	slow.limit = 3
	fast := []*fakeConn{newFake("a", codec.Proto()), newFake("b", codec.JSON())}
	js := joinFake(t, h, "r", slow, 1)
	for i, f := range fast {
		joinFake(t, h, "r", f, uint32(i+1))
	}
	const n = 50
	for i := 1; i <= n; i++ {
		if err := h.Broadcast(context.Background(), "r", &msg{ExpiresAt: int64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := js.end(t); !errors.Is(err, transport.ErrSlowConsumer) {
		t.Fatalf("slow member's Join returned %v, want ErrSlowConsumer", err)
	}
	if hasMember(h.Members("r"), js.id) {
		t.Error("the dropped member is still listed")
	}
	for _, f := range fast {
		ms, seqs := f.messages(t)
		if len(ms) != n {
			t.Errorf("%s got %d of %d broadcasts", f.id, len(ms), n)
		}
		for k := range seqs {
			if seqs[k] != uint64(k+1) {
				t.Fatalf("%s: seq %d at %d", f.id, seqs[k], k)
			}
		}
	}
	if got, _ := slow.messages(t); len(got) != 3 {
		t.Errorf("slow member got %d messages, want the 3 that fit", len(got))
	}
}

func TestJoinEnds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		end   func(h *Hub[*msg], j *joined)
		check func(error) bool
	}{
		{"leave", func(h *Hub[*msg], j *joined) {
			if n := h.Leave("r", "c"); n != 1 {
				panic(fmt.Sprint("Leave ended ", n))
			}
		}, func(err error) bool { return err == nil }},
		{"call cancelled or connection closed", func(_ *Hub[*msg], j *joined) { j.cancel() },
			func(err error) bool { return errors.Is(err, context.Canceled) }},
		{"hub closed", func(h *Hub[*msg], _ *joined) { _ = h.Close() },
			func(err error) bool {
				return protows.CodeOf(err) == protows.CodeUnavailable && errors.Is(err, ErrClosed)
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				h := newHub(t, Config[*msg]{})
				other := joinFake(t, h, "other", newFake("c", codec.Proto()), 2)
				j := joinFake(t, h, "r", newFake("c", codec.Proto()), 1)
				tt.end(h, j)
				if err := j.end(t); !tt.check(err) {
					t.Fatalf("Join returned %v", err)
				}
				if ms := h.Members("r"); len(ms) != 0 {
					t.Errorf("members after the end: %v", ms)
				}
				other.cancel()
				_ = other.end(t)
			})
		})
	}
}

func TestRefusals(t *testing.T) {
	t.Parallel()
	h := newHub(t, Config[*msg]{})
	_ = h.Close()
	err := h.Join(context.Background(), "r", fakeStream(func(*msg) error { return nil }))
	if protows.CodeOf(err) != protows.CodeUnavailable {
		t.Fatalf("Join after Close: %v", err)
	}
	if err := h.Broadcast(context.Background(), "r", &msg{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Broadcast after Close: %v", err)
	}
	for _, bad := range []string{"", strings.Repeat("r", MaxRoomLen+1), "\xff"} {
		if err := h.Join(context.Background(), bad, nil); protows.CodeOf(err) != protows.CodeInvalidArgument {
			t.Errorf("Join of room %.20q: %v, want invalid_argument", bad, err)
		}
		if err := newHub(t, Config[*msg]{}).Broadcast(context.Background(), bad, &msg{}); protows.CodeOf(err) != protows.CodeInvalidArgument {
			t.Errorf("Broadcast to room %.20q: %v, want invalid_argument", bad, err)
		}
	}
}

func TestPresenceEvents(t *testing.T) {
	t.Parallel()
	synctest.Test(t, testPresenceEvents)
}

func testPresenceEvents(t *testing.T) {
	h := newHub(t, Config[*msg]{Presence: func(ev PresenceEvent) (*msg, bool) {
		verb := "left"
		if ev.Joined {
			verb = "joined"
		}
		return &msg{Subject: ev.Member.Subject + " " + verb}, true
	}})
	a, b := newFake("a", codec.JSON()), newFake("b", codec.Proto())
	joinFake(t, h, "r", a, 1)
	jb := joinFake(t, h, "r", b, 1)
	if ms := h.Members("r"); len(ms) != 2 || ms[0].ConnID != "a" || ms[1].ConnID != "b" || ms[1].Subject != "user-b" {
		t.Fatalf("members %+v", ms)
	}
	if err := h.Broadcast(context.Background(), "r", &msg{Subject: "hello"}); err != nil {
		t.Fatal(err)
	}
	jb.cancel()
	_ = jb.end(t)
	a.waitCount(t, 4)
	ms, seqs := a.messages(t)
	want := []string{"user-a joined", "user-b joined", "hello", "user-b left"}
	for i, w := range want {
		if ms[i].GetSubject() != w || seqs[i] != uint64(i+1) {
			t.Errorf("message %d: %q seq %d, want %q seq %d", i, ms[i].GetSubject(), seqs[i], w, i+1)
		}
	}
}

func TestSendTo(t *testing.T) {
	t.Parallel()
	synctest.Test(t, testSendTo)
}

func testSendTo(t *testing.T) {
	h := newHub(t, Config[*msg]{})
	a, b := newFake("a", codec.Proto()), newFake("b", codec.Proto())
	ja1 := joinFake(t, h, "r1", a, 1)
	joinFake(t, h, "r2", a, 2)
	joinFake(t, h, "r1", b, 1)
	ctx := context.Background()
	if err := h.SendTo(ctx, ja1.id, &msg{Subject: "to a#1"}); err != nil {
		t.Fatal(err)
	}
	if err := h.SendTo(ctx, h.Node()+"/a", &msg{Subject: "to a"}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{h.Node() + "/nobody", "other/a", "garbage", h.Node() + "/a#x", h.Node() + "/a#9"} {
		if err := h.SendTo(ctx, bad, &msg{}); !errors.Is(err, ErrUnknownMember) {
			t.Errorf("SendTo(%q): %v, want ErrUnknownMember", bad, err)
		}
	}
	envs := a.received(t)
	if len(envs) != 3 {
		t.Fatalf("a got %d messages, want 3 (one to its call 1, one to each of its calls)", len(envs))
	}
	calls := map[uint32]int{}
	for _, e := range envs {
		if e.GetSeq() != 0 {
			t.Errorf("direct message with seq %d, want 0", e.GetSeq())
		}
		calls[e.GetId()]++
	}
	if calls[1] != 2 || calls[2] != 1 {
		t.Errorf("messages per call %v", calls)
	}
	if n := len(b.received(t)); n != 0 {
		t.Errorf("b got %d direct messages meant for a", n)
	}
}

func TestBroadcastAll(t *testing.T) {
	t.Parallel()
	synctest.Test(t, testBroadcastAll)
}

func testBroadcastAll(t *testing.T) {
	h := newHub(t, Config[*msg]{})
	a, b := newFake("a", codec.Proto()), newFake("b", codec.JSON())
	joinFake(t, h, "r1", a, 1)
	joinFake(t, h, "r2", a, 2)
	joinFake(t, h, "r2", b, 1)
	_ = h.Broadcast(context.Background(), "r2", &msg{Subject: "r2 only"})
	if err := h.BroadcastAll(context.Background(), &msg{Subject: "all"}); err != nil {
		t.Fatal(err)
	}
	seqOf := func(f *fakeConn, call uint32, subject string) uint64 {
		for _, e := range f.received(t) {
			m := &msg{}
			_ = f.codec.UnmarshalPayload(e.GetPayload(), m)
			if e.GetId() == call && m.GetSubject() == subject {
				return e.GetSeq()
			}
		}
		t.Fatalf("%s call %d did not get %q", f.id, call, subject)
		return 0
	}
	if s := seqOf(a, 1, "all"); s != 1 {
		t.Errorf("r1 seq %d, want 1", s)
	}
	if s := seqOf(a, 2, "all"); s != 2 {
		t.Errorf("r2 seq %d, want 2", s)
	}
	if s := seqOf(b, 1, "all"); s != 2 {
		t.Errorf("r2 seq %d, want 2", s)
	}
}

// fakeStream is a router.Stream for handlers tested without a server.
type fakeStream func(*msg) error

func (f fakeStream) Send(m *msg) error { return f(m) }

func TestJoinWithPlainStream(t *testing.T) {
	t.Parallel()
	synctest.Test(t, testJoinWithPlainStream)
}

func testJoinWithPlainStream(t *testing.T) {
	h := newHub(t, Config[*msg]{})
	var mu sync.Mutex
	var got []string
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- h.Join(ctx, "r", fakeStream(func(m *msg) error {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, m.GetSubject())
			return nil
		}))
	}()
	waitFor(t, func() bool { return len(h.Members("r")) == 1 })
	for _, s := range []string{"one", "two"} {
		_ = h.Broadcast(context.Background(), "r", &msg{Subject: s})
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(got) != "[one two]" {
		t.Fatalf("stream got %v", got)
	}
}

// TestJoinWithEnqueuer checks that Join queues encoded envelopes, with
// sequence numbers, on a stream that takes them (as a router handler's
// does), under the stream's call id.
func TestJoinWithEnqueuer(t *testing.T) {
	t.Parallel()
	h := newHub(t, Config[*msg]{})
	f := newFake("f", codec.JSON())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Join(ctx, "r", f.call(7)) }()
	waitFor(t, func() bool { return len(h.Members("r")) == 1 })
	if m := h.Members("r")[0]; m.CallID != 7 || !strings.HasPrefix(m.ConnID, "local-") {
		t.Errorf("member %+v, want call 7 of a local connection", m)
	}
	for _, s := range []string{"one", "two"} {
		if err := h.Broadcast(context.Background(), "r", &msg{Subject: s}); err != nil {
			t.Fatal(err)
		}
	}
	encodings := h.marshals.Load()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	envs := f.received(t)
	ms, seqs := f.messages(t)
	if len(ms) != 2 || ms[0].GetSubject() != "one" || ms[1].GetSubject() != "two" || seqs[0] != 1 || seqs[1] != 2 {
		t.Fatalf("got %v with seqs %v, want one, two with seqs 1, 2", ms, seqs)
	}
	for _, e := range envs {
		if e.GetId() != 7 {
			t.Errorf("envelope id %d, want the stream's call id 7", e.GetId())
		}
	}
	if encodings != 2 {
		t.Errorf("%d payload encodings, want one per broadcast", encodings)
	}
	if err := h.Join(context.Background(), "r", nil); err == nil {
		t.Error("Join without a stream succeeded")
	}
}

func TestNodeNameValidated(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"a/b", "a.b", "a b", "a#b", "a*", "a>"} {
		if _, err := New(Config[*msg]{Node: bad}); err == nil {
			t.Errorf("node %q accepted", bad)
		}
	}
}
