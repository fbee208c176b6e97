package hub

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/protows/protows/codec"
	"github.com/protows/protows/transport"
)

// TestBroadcastEnvelopePerMember: members of both codecs and of several
// call ids, in an order that alternates them, each get every broadcast
// with their own call id and the room's sequence numbers; members of the
// same codec and call id are queued one shared envelope (the writers only
// read it), not one each.
func TestBroadcastEnvelopePerMember(t *testing.T) {
	t.Parallel()
	h := newHub(t, Config[*msg]{})
	members := []struct {
		codec codec.Codec
		id    uint32
	}{
		{codec.Proto(), 1}, {codec.JSON(), 1}, {codec.Proto(), 1}, {codec.Proto(), 3},
		{codec.JSON(), 1}, {codec.JSON(), 5}, {codec.Proto(), 3}, {codec.Proto(), 1},
	}
	conns := make([]*fakeConn, len(members))
	for i, m := range members {
		conns[i] = newFake(fmt.Sprint(i), m.codec)
		j := joinFake(t, h, "r", conns[i], m.id)
		t.Cleanup(func() { j.cancel(); _ = j.end(t) })
	}
	const n = 3
	for k := range n {
		if err := h.Broadcast(context.Background(), "r", &msg{Subject: fmt.Sprint("m", k)}); err != nil {
			t.Fatal(err)
		}
	}
	for i, f := range conns {
		f.waitCount(t, n)
		envs := f.received(t)
		if len(envs) != n {
			t.Fatalf("member %d: %d envelopes, want %d", i, len(envs), n)
		}
		ms, seqs := f.messages(t)
		for k, e := range envs {
			if e.GetId() != members[i].id || seqs[k] != uint64(k+1) || ms[k].GetSubject() != fmt.Sprint("m", k) {
				t.Errorf("member %d, message %d: id %d seq %d %q, want id %d seq %d %q",
					i, k, e.GetId(), seqs[k], ms[k].GetSubject(), members[i].id, k+1, fmt.Sprint("m", k))
			}
		}
	}
	// Members 0 and 2 (Protobuf, call 1) share their envelopes' heads, as
	// do 3 and 6 (Protobuf, call 3): the JSON members between them do not
	// evict theirs.
	head := func(f *fakeConn, k int) *byte {
		f.mu.Lock()
		defer f.mu.Unlock()
		return &f.elems[k].Head[0]
	}
	for k := range n {
		if head(conns[0], k) != head(conns[2], k) || head(conns[3], k) != head(conns[6], k) {
			t.Errorf("message %d: members of the same codec and call id, one after the other in it, were queued envelopes of their own", k)
		}
		if head(conns[0], k) == head(conns[3], k) {
			t.Errorf("message %d: members 0 and 3 (call ids 1 and 3) share an envelope head", k)
		}
	}
}

// endedCall is a stream whose call ended: it refuses every envelope with
// transport.ErrCallEnded, as transport.Call does after its STREAM_END was
// decided, and counts how often it was asked.
type endedCall struct {
	fakeCall
	asked *atomic.Int32
}

func (c endedCall) EnqueueParts(codec.Parts) error {
	c.asked.Add(1)
	return transport.ErrCallEnded
}

// TestEndedCallAskedOnce: a member whose call ended, while its Join's
// context has not (yet) been cancelled, is refused the next broadcast by
// the call itself; that ends the membership (Join returns the refusal),
// counts one drop, and the member is not asked again, while the other
// members get every broadcast.
func TestEndedCallAskedOnce(t *testing.T) {
	t.Parallel()
	rec := newRecMetrics()
	h := newHub(t, Config[*msg]{Metrics: rec})
	live := newFake("live", codec.Proto())
	jl := joinFake(t, h, "r", live, 1)
	t.Cleanup(func() { jl.cancel(); _ = jl.end(t) })

	var asked atomic.Int32
	gone := newFake("gone", codec.Proto())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := fakeMember(t, ctx, h, "r", endedCall{gone.call(1), &asked}, gone.id)
	errc := make(chan error, 1)
	go func() { errc <- h.join(ctx, m) }()
	waitFor(t, func() bool { return hasMember(h.Members("r"), m.info.ID()) })

	const n = 5
	for k := range n {
		if err := h.Broadcast(context.Background(), "r", &msg{Subject: fmt.Sprint(k)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := (&joined{err: errc, id: m.info.ID()}).end(t); !errors.Is(err, transport.ErrCallEnded) {
		t.Errorf("Join of the ended call returned %v, want ErrCallEnded", err)
	}
	if got := asked.Load(); got != 1 {
		t.Errorf("the ended call was asked to queue %d envelopes, want 1", got)
	}
	live.waitCount(t, n)
	if got := len(live.received(t)); got != n {
		t.Errorf("the live member got %d messages, want %d", got, n)
	}
	if got := rec.get(func(m *recMetrics) int { return m.dropped["closed"] }); got != 1 {
		t.Errorf("%d drops counted as closed, want 1", got)
	}
}
