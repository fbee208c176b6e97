package hub

import (
	"context"
	"strings"
	"testing"

	"github.com/protows/protows/codec"
	"github.com/protows/protows/transport"
)

// smallCall is a fake stream call whose connection's message size limit
// is max bytes: it refuses larger envelopes, as a transport.Call does.
type smallCall struct {
	fakeCall
	max int
}

func (s smallCall) EnqueueParts(p codec.Parts) error {
	if p.Len() > s.max {
		return transport.ErrMessageTooLarge
	}
	return s.fakeCall.EnqueueParts(p)
}

// TestOversizedBroadcast: a broadcast larger than a member's connection
// sends is missed by that member alone, whose next message shows the gap
// (its seq skips); the membership stays, and members who can take it get
// it.
func TestOversizedBroadcast(t *testing.T) {
	t.Parallel()
	h := newHub(t, Config[*msg]{})
	small, big := newFake("small", codec.Proto()), newFake("big", codec.Proto())
	for _, s := range []Stream[*msg]{smallCall{small.call(1), 200}, big.call(1)} {
		ctx, cancel := context.WithCancel(context.Background())
		m, err := h.newMember(ctx, "r", s)
		if err != nil {
			t.Fatal(err)
		}
		j := &joined{cancel: cancel, err: make(chan error, 1), id: m.info.ID()}
		go func() { j.err <- h.join(ctx, m) }()
		waitFor(t, func() bool { return hasMember(h.Members("r"), j.id) })
		t.Cleanup(func() {
			cancel()
			if err := j.end(t); err != context.Canceled {
				t.Errorf("%s: Join returned %v", j.id, err)
			}
		})
	}
	for _, text := range []string{"one", strings.Repeat("x", 1000), "three"} {
		if err := h.Broadcast(context.Background(), "r", &msg{Subject: text}); err != nil {
			t.Fatal(err)
		}
	}
	big.waitCount(t, 3)
	small.waitCount(t, 2)
	ms, seqs := small.messages(t)
	if len(ms) != 2 || ms[0].GetSubject() != "one" || ms[1].GetSubject() != "three" || seqs[1] != seqs[0]+2 {
		t.Fatalf("the small member got %v with seq %v, want one and three, seq skipping", ms, seqs)
	}
	if len(h.Members("r")) != 2 {
		t.Fatalf("members: %v", h.Members("r"))
	}
}
