package hub

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	protows "github.com/protows/protows"
	"github.com/protows/protows/codec"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
)

// appendN appends n entries to room and returns their offsets.
func appendN(t *testing.T, s HistoryStore, room string, n int) []uint64 {
	t.Helper()
	var offs []uint64
	for i := range n {
		e := &Entry{Room: room, Payload: []byte{byte(i)}}
		if err := s.Append(context.Background(), e); err != nil {
			t.Fatal(err)
		}
		offs = append(offs, e.Offset)
	}
	return offs
}

func offsets(es []Entry) []uint64 {
	var out []uint64
	for _, e := range es {
		out = append(out, e.Offset)
	}
	return out
}

func openMemory(t *testing.T, l HistoryLimits) *memoryHistory {
	t.Helper()
	s := NewMemoryHistory(l).(*memoryHistory)
	var delivered []uint64
	if err := s.Open(context.Background(), "n", func(e *Entry) { delivered = append(delivered, e.Offset) }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestMemoryHistoryBounds: a room keeps its latest Messages entries, none
// older than Age; offsets go on counting; reads page by offset.
func TestMemoryHistoryBounds(t *testing.T) {
	now := time.Unix(1000, 0)
	s := openMemory(t, HistoryLimits{Messages: 3, Age: time.Minute})
	s.now = func() time.Time { return now }
	if got := appendN(t, s, "r", 5); !slices.Equal(got, []uint64{1, 2, 3, 4, 5}) {
		t.Fatalf("offsets %v", got)
	}
	tests := []struct {
		name         string
		after        uint64
		limit        int
		first, lates uint64
		want         []uint64
	}{
		{"all kept", 0, 10, 3, 5, []uint64{3, 4, 5}},
		{"after one", 3, 10, 3, 5, []uint64{4, 5}},
		{"limit", 0, 2, 3, 5, []uint64{3, 4}},
		{"after the latest", 5, 10, 3, 5, nil},
		{"no entries asked", 0, 0, 3, 5, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := s.Read(context.Background(), "r", tt.after, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			if p.First != tt.first || p.Latest != tt.lates || !slices.Equal(offsets(p.Entries), tt.want) || p.Epoch != s.epoch {
				t.Errorf("Read(%d, %d) = first %d latest %d %v, want %d %d %v", tt.after, tt.limit, p.First, p.Latest, offsets(p.Entries), tt.first, tt.lates, tt.want)
			}
		})
	}
	// Past the age bound everything leaves; the offsets go on.
	now = now.Add(2 * time.Minute)
	p, err := s.Read(context.Background(), "r", 0, 10)
	if err != nil || len(p.Entries) != 0 || p.First != 6 || p.Latest != 5 {
		t.Fatalf("after the age bound: %+v, %v; want no entry, first 6, latest 5", p, err)
	}
	if got := appendN(t, s, "r", 1); got[0] != 6 {
		t.Fatalf("next offset %d, want 6", got[0])
	}
}

// TestMemoryHistorySkip: a loss from another node makes every room's next
// offset skip one, once.
func TestMemoryHistorySkip(t *testing.T) {
	s := openMemory(t, HistoryLimits{})
	appendN(t, s, "a", 2)
	appendN(t, s, "b", 1)
	s.Skip()
	if got := appendN(t, s, "a", 2); !slices.Equal(got, []uint64{4, 5}) {
		t.Errorf("room a after a skip: %v, want [4 5]", got)
	}
	// b started at 3, the offsets taken in every room before it.
	if got := appendN(t, s, "b", 1)[0]; got != 5 {
		t.Errorf("room b after a skip: %d, want 5", got)
	}
}

// TestMemoryHistoryFirstOffsets: the first room of a new history starts
// at 1; a room met later starts above every offset given out before, in
// any room (docs/PROTOCOL.md, section 14.1), read or appended first.
func TestMemoryHistoryFirstOffsets(t *testing.T) {
	s := openMemory(t, HistoryLimits{})
	if got := appendN(t, s, "a", 2); !slices.Equal(got, []uint64{1, 2}) {
		t.Errorf("first room: %v, want [1 2]", got)
	}
	if got := appendN(t, s, "b", 1); got[0] != 3 {
		t.Errorf("second room starts at %d, want 3", got[0])
	}
	p, err := s.Read(context.Background(), "c", 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if p.Latest != 3 || p.First != 4 {
		t.Errorf("a room read first: latest %d first %d, want 3 and 4", p.Latest, p.First)
	}
	if got := appendN(t, s, "c", 1); got[0] != 4 {
		t.Errorf("its first message at %d, want 4", got[0])
	}
}

// TestMemoryHistoryForget: past its room bound the store forgets the rooms
// whose history is empty; one met again starts above every offset it had,
// so an old position is too old, never taken for a new one.
func TestMemoryHistoryForget(t *testing.T) {
	now := time.Unix(1000, 0)
	s := openMemory(t, HistoryLimits{Age: time.Minute})
	s.now = func() time.Time { return now }
	s.maxRooms = 2
	old := appendN(t, s, "a", 3)
	appendN(t, s, "b", 1)
	now = now.Add(2 * time.Minute) // a and b are empty now
	appendN(t, s, "c", 1)          // the third room: a and b are forgotten
	if _, ok := s.rooms["a"]; ok {
		t.Fatal("room a still known")
	}
	again := appendN(t, s, "a", 1)
	if again[0] <= old[len(old)-1] {
		t.Errorf("room a met again at offset %d, not above its old %d", again[0], old[len(old)-1])
	}
}

// TestMemoryHistoryReadMakesRoom: a position taken in a room without
// messages is followed by the room's first message.
func TestMemoryHistoryReadMakesRoom(t *testing.T) {
	s := openMemory(t, HistoryLimits{})
	appendN(t, s, "other", 7)
	p, err := s.Read(context.Background(), "new", 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, s, "other", 3)
	if got := appendN(t, s, "new", 1); got[0] != p.Latest+1 {
		t.Errorf("first message at %d after a position at %d", got[0], p.Latest)
	}
}

func historyHub(t *testing.T, cfg Config[*msg]) *Hub[*msg] {
	t.Helper()
	if cfg.History == nil {
		cfg.History = NewMemoryHistory(HistoryLimits{})
	}
	return newHub(t, cfg)
}

func bcast(t *testing.T, h *Hub[*msg], room string, from, to int64) {
	t.Helper()
	for k := from; k <= to; k++ {
		if err := h.Broadcast(context.Background(), room, &msg{ExpiresAt: k}); err != nil {
			t.Fatal(err)
		}
	}
}

// joinFrom joins call callID of f to room with the start st, as a REQUEST
// with resume would.
func joinFrom(t *testing.T, h *Hub[*msg], room string, f *fakeConn, callID uint32, st joinStart) *joined {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	m := fakeMember(t, ctx, h, room, f.call(callID), f.id)
	st.positions = true
	m.start = st
	j := &joined{cancel: cancel, err: make(chan error, 1), id: m.info.ID()}
	go func() { j.err <- h.join(ctx, m) }()
	waitFor(t, func() bool { return hasMember(h.Members(room), j.id) })
	t.Cleanup(func() { cancel(); <-j.err })
	return j
}

// stream renders what f was sent: "P(recovery offset/latest)" for a
// STREAM_POSITION, "N@seq" for a message.
func stream(t *testing.T, f *fakeConn) []string {
	t.Helper()
	var out []string
	for _, e := range f.received(t) {
		switch e.GetKind() {
		case protowsv1.Kind_KIND_STREAM_POSITION:
			p := e.GetPosition()
			out = append(out, fmt.Sprintf("P(%s %d/%d)", p.GetRecovery(), p.GetOffset(), p.GetLatest()))
		case protowsv1.Kind_KIND_STREAM_MESSAGE:
			m := &msg{}
			if err := f.codec.UnmarshalPayload(e.GetPayload(), m); err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprintf("%d@%d", m.GetExpiresAt(), e.GetSeq()))
		default:
			out = append(out, e.GetKind().String())
		}
	}
	return out
}

// TestJoinStarts: what a member is sent for each start, in both codecs:
// the position first, then what it asked for and can have, then live.
func TestJoinStarts(t *testing.T) {
	tests := []struct {
		name  string
		start func(epoch string) joinStart
		want  []string
	}{
		{"no resume: live only", func(string) joinStart { return joinStart{} },
			[]string{"11@11"}},
		{"first join", func(string) joinStart { return joinStart{resume: true} },
			[]string{"P(RECOVERY_UNSPECIFIED 10/10)", "11@11"}},
		{"first join with history", func(string) joinStart { return joinStart{resume: true, history: 3} },
			[]string{"P(RECOVERY_UNSPECIFIED 7/10)", "8@8", "9@9", "10@10", "11@11"}},
		{"history beyond what is kept", func(string) joinStart { return joinStart{resume: true, history: 50} },
			[]string{"P(RECOVERY_UNSPECIFIED 3/10)", "4@4", "5@5", "6@6", "7@7", "8@8", "9@9", "10@10", "11@11"}},
		{"resume", func(e string) joinStart { return joinStart{resume: true, epoch: e, offset: 8, history: 2} },
			[]string{"P(RECOVERY_RECOVERED 8/10)", "9@9", "10@10", "11@11"}},
		{"resume at the latest", func(e string) joinStart { return joinStart{resume: true, epoch: e, offset: 10} },
			[]string{"P(RECOVERY_RECOVERED 10/10)", "11@11"}},
		{"resume too old", func(e string) joinStart { return joinStart{resume: true, epoch: e, offset: 2, history: 2} },
			[]string{"P(RECOVERY_TOO_OLD 8/10)", "9@9", "10@10", "11@11"}},
		{"resume just old enough", func(e string) joinStart { return joinStart{resume: true, epoch: e, offset: 3} },
			[]string{"P(RECOVERY_RECOVERED 3/10)", "4@4", "5@5", "6@6", "7@7", "8@8", "9@9", "10@10", "11@11"}},
		{"another epoch", func(string) joinStart { return joinStart{resume: true, epoch: "m-other", offset: 8, history: 1} },
			[]string{"P(RECOVERY_EPOCH_CHANGED 9/10)", "10@10", "11@11"}},
		{"an offset from the future", func(e string) joinStart { return joinStart{resume: true, epoch: e, offset: 99} },
			[]string{"P(RECOVERY_EPOCH_CHANGED 10/10)", "11@11"}},
	}
	for _, cd := range []codec.Codec{codec.Proto(), codec.JSON()} {
		for _, tt := range tests {
			t.Run(cd.Name()+"/"+tt.name, func(t *testing.T) {
				store := NewMemoryHistory(HistoryLimits{Messages: 7})
				h := historyHub(t, Config[*msg]{History: store})
				bcast(t, h, "r", 1, 10)
				epoch := store.(*memoryHistory).epoch
				f := newFake("c1", cd)
				joinFrom(t, h, "r", f, 5, tt.start(epoch))
				waitFor(t, func() bool { return len(f.received(t)) >= len(tt.want)-1 })
				bcast(t, h, "r", 11, 11)
				f.waitCount(t, len(tt.want))
				if got := stream(t, f); !slices.Equal(got, tt.want) {
					t.Errorf("got  %v\nwant %v", got, tt.want)
				}
			})
		}
	}
}

// TestHistoryRoomExtras: in a room with history, what is not part of it
// (presence events, BroadcastAll, SendTo) carries seq 0 and takes no
// offset; rooms HistoryRooms leaves out keep their own numbers.
func TestHistoryRoomExtras(t *testing.T) {
	h := historyHub(t, Config[*msg]{
		HistoryRooms: func(room string) bool { return room != "plain" },
		Presence: func(ev PresenceEvent) (*msg, bool) {
			return &msg{Subject: "presence " + ev.Member.ConnID}, true
		},
	})
	a := newFake("a", codec.Proto())
	joinFrom(t, h, "r", a, 1, joinStart{})
	p := newFake("p", codec.Proto())
	joinFake(t, h, "plain", p, 1)
	bcast(t, h, "r", 1, 1)
	if err := h.BroadcastAll(context.Background(), &msg{ExpiresAt: 100}); err != nil {
		t.Fatal(err)
	}
	if err := h.SendTo(context.Background(), h.Node()+"/a", &msg{ExpiresAt: 200}); err != nil {
		t.Fatal(err)
	}
	bcast(t, h, "r", 2, 2)
	bcast(t, h, "plain", 3, 3)
	a.waitCount(t, 5)
	// a: its own join's presence (seq 0), 1@1, the BroadcastAll (0), the
	// SendTo (0), 2@2.
	ms, seqs := a.messages(t)
	var got []string
	for i, m := range ms {
		got = append(got, fmt.Sprintf("%d@%d", m.GetExpiresAt(), seqs[i]))
	}
	if want := []string{"0@0", "1@1", "100@0", "200@0", "2@2"}; !slices.Equal(got, want) {
		t.Errorf("member of a room with history got %v, want %v", got, want)
	}
	p.waitCount(t, 3)
	_, pseqs := p.messages(t)
	if !slices.Equal(pseqs, []uint64{1, 2, 3}) {
		t.Errorf("member of a room without history: seqs %v, want 1 2 3 (presence, BroadcastAll, broadcast)", pseqs)
	}
}

// TestJoinHistoryPlainStream: a stream that takes no encoded envelopes gets
// the replay through Send, without a position (it cannot carry one).
func TestJoinHistoryPlainStream(t *testing.T) {
	h := historyHub(t, Config[*msg]{})
	bcast(t, h, "r", 1, 5)
	got := make(chan int64, 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- h.Join(ctx, "r", fakeStream(func(m *msg) error { got <- m.GetExpiresAt(); return nil }), WithHistory(2))
	}()
	waitFor(t, func() bool { return len(h.Members("r")) == 1 })
	bcast(t, h, "r", 6, 6)
	for _, want := range []int64{4, 5, 6} {
		select {
		case n := <-got:
			if n != want {
				t.Fatalf("got %d, want %d", n, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no message %d", want)
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Join returned %v", err)
	}
}

// TestHubHistoryQuery: Hub.History pages through a room's history.
func TestHubHistoryQuery(t *testing.T) {
	h := historyHub(t, Config[*msg]{History: NewMemoryHistory(HistoryLimits{Messages: 20}), HistoryRooms: func(r string) bool { return r == "r" }})
	bcast(t, h, "r", 1, 30) // offsets 11 to 30 kept
	tests := []struct {
		name string
		q    HistoryQuery
		want []int64
	}{
		{"latest", HistoryQuery{Limit: 3}, []int64{28, 29, 30}},
		{"after", HistoryQuery{After: 25, Limit: 3}, []int64{26, 27, 28}},
		{"after, to the end", HistoryQuery{After: 28}, []int64{29, 30}},
		{"before", HistoryQuery{Before: 15, Limit: 3}, []int64{12, 13, 14}},
		{"before, from the start", HistoryQuery{Before: 13, Limit: 5}, []int64{11, 12}},
		{"before what is kept", HistoryQuery{Before: 5, Limit: 5}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := h.History(context.Background(), "r", tt.q)
			if err != nil {
				t.Fatal(err)
			}
			var got []int64
			for _, m := range res.Messages {
				if uint64(m.Msg.GetExpiresAt()) != m.Offset {
					t.Errorf("message %d at offset %d", m.Msg.GetExpiresAt(), m.Offset)
				}
				got = append(got, m.Msg.GetExpiresAt())
			}
			if !slices.Equal(got, tt.want) || res.First != 11 || res.Latest != 30 {
				t.Errorf("got %v (first %d, latest %d), want %v (11, 30)", got, res.First, res.Latest, tt.want)
			}
		})
	}
	if _, err := h.History(context.Background(), "other", HistoryQuery{}); protows.CodeOf(err) != protows.CodeFailedPrecondition {
		t.Errorf("History of a room without history: %v, want failed_precondition", err)
	}
}

// TestMemoryHistoryPerNode: with a broker, each node keeps its own memory
// history of every broadcast, with its own epoch and offsets; a loss
// between nodes shows as a skipped offset.
func TestMemoryHistoryPerNode(t *testing.T) {
	net := NewMemoryNetwork()
	sa, sb := NewMemoryHistory(HistoryLimits{}), NewMemoryHistory(HistoryLimits{})
	a := historyHub(t, Config[*msg]{Broker: net.Broker(), Node: "a", History: sa})
	b := historyHub(t, Config[*msg]{Broker: net.Broker(), Node: "b", History: sb})
	waitFor(t, func() bool { return len(a.Nodes()) == 1 && len(b.Nodes()) == 1 })
	f := newFake("f", codec.JSON())
	joinFrom(t, b, "r", f, 1, joinStart{})
	bcast(t, a, "r", 1, 3)
	f.waitCount(t, 3)
	res, err := b.History(context.Background(), "r", HistoryQuery{})
	if err != nil || len(res.Messages) != 3 || res.Epoch == sa.(*memoryHistory).epoch {
		t.Fatalf("b's history: %+v, %v; want 3 messages in b's own epoch", res, err)
	}
	b.hole() // as when messages from a were lost
	bcast(t, a, "r", 4, 4)
	f.waitCount(t, 4)
	if _, seqs := f.messages(t); seqs[3] != seqs[2]+2 {
		t.Errorf("seqs %v: want a skip after the loss", seqs)
	}
}

// stuckCall is a member stream whose client grants no credit: a replay to
// it waits until its context ends.
type stuckCall struct {
	fakeCall
	waiting chan struct{}
}

func (s stuckCall) EnqueuePartsWait(ctx context.Context, _ codec.Parts) error {
	select {
	case s.waiting <- struct{}{}:
	default:
	}
	<-ctx.Done()
	return ctx.Err()
}

func (s stuckCall) SendPosition(context.Context, *protowsv1.Position) error { return nil }

// TestLeaveStopsACatchUp: a member whose replay waits for credit leaves
// when Leave ends its membership, as a live member would.
func TestLeaveStopsACatchUp(t *testing.T) {
	h := historyHub(t, Config[*msg]{})
	bcast(t, h, "r", 1, 5)
	f := newFake("c1", codec.Proto())
	call := stuckCall{fakeCall: f.call(1), waiting: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := fakeMember(t, ctx, h, "r", call, "c1")
	m.start = joinStart{resume: true, history: 5, positions: true}
	done := make(chan error, 1)
	go func() { done <- h.join(ctx, m) }()
	select {
	case <-call.waiting:
	case <-time.After(5 * time.Second):
		t.Fatal("the replay did not start")
	}
	if n := h.Leave("r", "c1"); n != 1 {
		t.Fatalf("Leave ended %d memberships", n)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Join returned %v, want nil after Leave", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Join did not return after Leave")
	}
}
