package hub

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"

	"github.com/protows/protows/codec"
	hubv1 "github.com/protows/protows/gen/go/protows/hub/v1"
)

// recordingBroker is a Broker that keeps what its hub publishes and
// delivers nothing by itself.
type recordingBroker struct {
	mu  sync.Mutex
	out []*hubv1.Message
}

func (b *recordingBroker) Open(context.Context, string, func([]byte)) error { return nil }
func (b *recordingBroker) Close() error                                     { return nil }

func (b *recordingBroker) Publish(_ context.Context, data []byte) error {
	w, err := unmarshalWire(slices.Clone(data))
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.out = append(b.out, w)
	return nil
}

// published returns "kind target" of each message published since the
// last call.
func (b *recordingBroker) published() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, w := range b.out {
		out = append(out, fmt.Sprintf("%v %s", w.GetKind(), w.GetTarget()))
	}
	b.out = nil
	return out
}

// TestReceive feeds a hub ("n1") messages of another node ("n2") and
// checks what it makes of them: members, nodes, requests for the other
// node's state, and gaps in the sequence of a local room.
func TestReceive(t *testing.T) {
	t.Parallel()
	const inc, inc2 = 7, 8
	mem := func(conn string) *hubv1.Member {
		return &hubv1.Member{ConnId: conn, CallId: 1, Room: "r", JoinedAtUnixNano: 1}
	}
	from := func(kind hubv1.Kind, seq uint64, conns ...string) *hubv1.Message {
		w := &hubv1.Message{Kind: kind, Origin: "n2", Incarnation: inc, Seq: seq}
		for _, c := range conns {
			w.Members = append(w.Members, mem(c))
		}
		return w
	}
	with := func(w *hubv1.Message, f func(*hubv1.Message)) *hubv1.Message { f(w); return w }
	const (
		join, leave, state = hubv1.Kind_KIND_JOIN, hubv1.Kind_KIND_LEAVE, hubv1.Kind_KIND_STATE
		syncKind, bye      = hubv1.Kind_KIND_SYNC, hubv1.Kind_KIND_BYE
	)
	tests := []struct {
		name      string
		in        []*hubv1.Message
		members   []string // of room r, other than the local one
		nodes     int
		published []string
		gaps      uint64 // sequence numbers the local room skipped
	}{{
		name:      "join and leave",
		in:        []*hubv1.Message{from(join, 1, "a"), from(join, 2, "b"), from(leave, 3, "a")},
		members:   []string{"n2/b#1"},
		nodes:     1,
		published: []string{"KIND_SYNC n2"}, // a new node's first message is not a state
	}, {
		name:      "duplicates dropped",
		in:        []*hubv1.Message{from(join, 1, "a"), from(join, 1, "b"), from(leave, 1, "a")},
		members:   []string{"n2/a#1"},
		nodes:     1,
		published: []string{"KIND_SYNC n2"},
	}, {
		name:      "a gap",
		in:        []*hubv1.Message{from(join, 1, "a"), from(join, 4, "b")},
		members:   []string{"n2/a#1", "n2/b#1"},
		nodes:     1,
		published: []string{"KIND_SYNC n2", "KIND_SYNC n2"},
		gaps:      1,
	}, {
		name:      "heard from late",
		in:        []*hubv1.Message{from(hubv1.Kind_KIND_HEARTBEAT, 9)},
		nodes:     1,
		published: []string{"KIND_SYNC n2"},
		gaps:      1,
	}, {
		name: "restarted",
		in: []*hubv1.Message{from(join, 1, "a"),
			with(from(join, 1, "b"), func(w *hubv1.Message) { w.Incarnation = inc2 })},
		members:   []string{"n2/b#1"},
		nodes:     1,
		published: []string{"KIND_SYNC n2", "KIND_SYNC n2"},
	}, {
		name: "state in parts",
		in: []*hubv1.Message{
			with(from(state, 1, "a"), func(w *hubv1.Message) { w.More = true }),
			with(from(state, 2, "b"), func(w *hubv1.Message) { w.Part = 1 }),
		},
		members: []string{"n2/a#1", "n2/b#1"},
		nodes:   1,
	}, {
		name: "state replaces",
		in: []*hubv1.Message{from(join, 1, "a"), from(join, 2, "b"),
			from(state, 3, "b", "c")},
		members:   []string{"n2/b#1", "n2/c#1"},
		nodes:     1,
		published: []string{"KIND_SYNC n2"},
	}, {
		name: "state cut by a loss",
		in: []*hubv1.Message{
			with(from(state, 1, "a"), func(w *hubv1.Message) { w.More = true }),
			with(from(state, 3, "b"), func(w *hubv1.Message) { w.Part = 2 }),
		},
		nodes:     1,
		published: []string{"KIND_SYNC n2"},
		gaps:      1,
	}, {
		name:      "goodbye",
		in:        []*hubv1.Message{from(join, 1, "a"), from(bye, 2)},
		nodes:     0,
		published: []string{"KIND_SYNC n2"},
	}, {
		name: "sync of this node and of another",
		in: []*hubv1.Message{
			with(from(syncKind, 1), func(w *hubv1.Message) { w.Target = "n1" }),
			with(from(syncKind, 2), func(w *hubv1.Message) { w.Target = "n3" }),
			from(syncKind, 3),
		},
		nodes:     1,
		published: []string{"KIND_SYNC n2", "KIND_STATE ", "KIND_STATE "},
	}, {
		name: "own messages echoed",
		in:   []*hubv1.Message{with(from(join, 5, "a"), func(w *hubv1.Message) { w.Origin = "n1" })},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &recordingBroker{}
			h := newHub(t, Config[*msg]{Broker: b, Node: "n1", HeartbeatInterval: 1 << 40})
			local := joinFake(t, h, "r", newFake("l", codec.Proto()), 1)
			defer func() { local.cancel(); _ = local.end(t) }()
			h.mu.Lock()
			r := h.rooms["r"]
			h.mu.Unlock()
			b.published() // the hub's own first sync and join
			for _, w := range tt.in {
				h.receive(appendWire(nil, w))
			}
			var members []string
			for _, m := range h.Members("r") {
				if m.Node != h.Node() {
					members = append(members, m.ID())
				}
			}
			sort.Strings(members)
			if fmt.Sprint(members) != fmt.Sprint(tt.members) {
				t.Errorf("members %v, want %v", members, tt.members)
			}
			if n := len(h.Nodes()); n != tt.nodes {
				t.Errorf("%d nodes, want %d", n, tt.nodes)
			}
			if got := b.published(); fmt.Sprint(got) != fmt.Sprint(tt.published) {
				t.Errorf("published %q, want %q", got, tt.published)
			}
			r.mu.Lock()
			gaps := r.seq
			r.mu.Unlock()
			if gaps != tt.gaps {
				t.Errorf("the local room skipped %d numbers, want %d", gaps, tt.gaps)
			}
		})
	}
}
