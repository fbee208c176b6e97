package client_test

// Resumable room streams (docs/PROTOCOL.md, section 14) against the real
// hub with history on the real transport: the client keeps the stream's
// position and re-opens it from there; the server replays what was missed.

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/protows/protows/client"
	"github.com/protows/protows/codec"
	testv1 "github.com/protows/protows/gen/go/protows/test/v1"
	"github.com/protows/protows/hub"
)

// positions records what OnPosition reports.
type positions struct {
	mu  sync.Mutex
	got []client.StreamPosition
}

func (p *positions) option() client.CallOption {
	return client.OnPosition(func(sp client.StreamPosition) {
		p.mu.Lock()
		p.got = append(p.got, sp)
		p.mu.Unlock()
	})
}

func (p *positions) list() []client.StreamPosition {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]client.StreamPosition(nil), p.got...)
}

// readRoom reads n messages and checks that they are the broadcasts
// numbered from..from+n-1, in order, once each, with consecutive Seq.
// It returns the Seq of the last one.
func readRoom(t *testing.T, st *client.ServerStream[testv1.CountResponse], from uint32, n int, lastSeq uint64) uint64 {
	t.Helper()
	for i := range n {
		if !st.Receive() {
			t.Fatalf("stream ended after %d of %d messages: %v", i, n, st.Err())
		}
		want := from + uint32(i)
		if got := st.Msg().GetN(); got != want {
			t.Fatalf("message %d of %d: N=%d, want %d (seq %d)", i, n, got, want, st.Seq())
		}
		if lastSeq != 0 && st.Seq() != lastSeq+1 {
			t.Fatalf("message N=%d: seq %d after %d", want, st.Seq(), lastSeq)
		}
		if st.Gap() {
			t.Fatalf("message N=%d: Gap", want)
		}
		lastSeq = st.Seq()
	}
	return lastSeq
}

func broadcastRange(t *testing.T, ctx context.Context, h *hub.Hub[*testv1.CountResponse], room string, from, to uint32) {
	t.Helper()
	for n := from; n <= to; n++ {
		if err := h.Broadcast(ctx, room, &testv1.CountResponse{N: n}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestResumeRecoversAfterCut: a member whose link is cut (no close frame)
// while 1,000 messages are broadcast reconnects and gets all 1,000, in
// order, once each, with the next Seq, marked recovered; then the live
// messages follow.
func TestResumeRecoversAfterCut(t *testing.T) {
	forCodecs(t, func(t *testing.T, cd codec.Codec) {
		rs := startRoomServerWith(t, hub.Config[*testv1.CountResponse]{
			History: hub.NewMemoryHistory(hub.HistoryLimits{Messages: 2000}),
		})
		c := dial(t, rs.url, append(fastOptions(nil), client.WithCodec(cd))...)
		ctx := testCtx(t)
		var pos positions
		st, err := client.CallServerStream[testv1.CountResponse](ctx, c, watchMethod, &testv1.EchoRequest{Text: "lobby"}, pos.option())
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		members := rs.waitMembers(t, "lobby", 1)
		broadcastRange(t, ctx, rs.hub, "lobby", 1, 5)
		last := readRoom(t, st, 1, 5, 0)
		if p := st.Position(); p.Epoch == "" || p.Offset != last {
			t.Fatalf("Position() = %+v after seq %d", p, last)
		}

		rs.proxy.refuse(true)
		rs.proxy.cut()
		rs.waitMembers(t, "lobby", 0)
		broadcastRange(t, ctx, rs.hub, "lobby", 6, 1005)
		rs.proxy.refuse(false)
		rs.waitRejoin(t, "lobby", members[0].ConnID)

		if !st.Receive() {
			t.Fatalf("stream ended: %v", st.Err())
		}
		sp, ok := st.Resumed()
		if !ok || sp.Recovery != client.Recovered || sp.Replayed() != 1000 || sp.Offset != last || st.Gap() {
			t.Fatalf("first message after the cut: Resumed() = %+v, %v; Gap %v; want recovered, 1000 replayed from %d", sp, ok, st.Gap(), last)
		}
		if st.Msg().GetN() != 6 || st.Seq() != last+1 {
			t.Fatalf("first message after the cut: N=%d seq %d, want 6, %d", st.Msg().GetN(), st.Seq(), last+1)
		}
		last = readRoom(t, st, 7, 999, st.Seq())
		broadcastRange(t, ctx, rs.hub, "lobby", 1006, 1006)
		readRoom(t, st, 1006, 1, last)
		got := pos.list()
		if len(got) != 2 || got[0].Recovery != client.NotResumed || got[1].Recovery != client.Recovered || got[1].Replayed() != 1000 {
			t.Errorf("OnPosition saw %+v, want a fresh start then 1000 recovered", got)
		}
	})
}

// TestJoinWithHistory: a first join asks for the latest messages, which
// come before the live ones.
func TestJoinWithHistory(t *testing.T) {
	forCodecs(t, func(t *testing.T, cd codec.Codec) {
		rs := startRoomServerWith(t, hub.Config[*testv1.CountResponse]{History: hub.NewMemoryHistory(hub.HistoryLimits{})})
		ctx := testCtx(t)
		broadcastRange(t, ctx, rs.hub, "lobby", 1, 80)
		c := dial(t, rs.url, append(fastOptions(nil), client.WithCodec(cd))...)
		st, err := client.CallServerStream[testv1.CountResponse](ctx, c, watchMethod, &testv1.EchoRequest{Text: "lobby"}, client.WithHistory(50))
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		rs.waitMembers(t, "lobby", 1)
		broadcastRange(t, ctx, rs.hub, "lobby", 81, 82)
		if !st.Receive() {
			t.Fatal(st.Err())
		}
		sp, ok := st.Resumed()
		if !ok || sp.Recovery != client.NotResumed || sp.Replayed() != 50 || st.Msg().GetN() != 31 || st.Gap() {
			t.Fatalf("first message: N=%d, Resumed() = %+v, %v, Gap %v; want N=31, 50 replayed", st.Msg().GetN(), sp, ok, st.Gap())
		}
		readRoom(t, st, 32, 51, st.Seq())
		if _, ok := st.Resumed(); ok {
			t.Error("Resumed() true on a later message")
		}
	})
}

func ExampleWithHistory() {
	ctx := context.Background()
	c, err := client.Dial(ctx, "ws://127.0.0.1:8080/ws")
	if err != nil {
		return
	}
	defer c.Close()
	// The latest 50 messages of the room first, then the live ones; after
	// a reconnection, what was missed, if the room's history still has it.
	st, err := client.CallServerStream[testv1.CountResponse](ctx, c, watchMethod, &testv1.EchoRequest{Text: "lobby"},
		client.WithHistory(50))
	if err != nil {
		return
	}
	for st.Receive() {
		if sp, ok := st.Resumed(); ok && sp.Recovery == client.Recovered {
			fmt.Printf("recovered %d messages\n", sp.Replayed())
		}
		if st.Gap() {
			fmt.Println("messages were lost: reload")
		}
		fmt.Println(st.Msg().GetN())
	}
}
