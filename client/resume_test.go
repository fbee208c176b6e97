package client_test

// Resumable room streams (docs/PROTOCOL.md, section 14) against the real
// hub with history on the real transport: the client keeps the stream's
// position and re-opens it from there; the server replays what was missed.

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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

// TestResumeAfterServerRestart: the server restarts with its history in
// memory, so the history is lost: the client's resume gets an explicit
// unrecoverable gap (a new epoch), never a silent loss; the history it
// asked for lets the application start again.
func TestResumeAfterServerRestart(t *testing.T) {
	forCodecs(t, func(t *testing.T, cd codec.Codec) {
		rs := startRoomServerWith(t, hub.Config[*testv1.CountResponse]{History: hub.NewMemoryHistory(hub.HistoryLimits{})})
		c := dial(t, rs.url, append(fastOptions(nil), client.WithCodec(cd))...)
		ctx := testCtx(t)
		st, err := client.CallServerStream[testv1.CountResponse](ctx, c, watchMethod, &testv1.EchoRequest{Text: "lobby"}, client.WithHistory(3))
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		rs.waitMembers(t, "lobby", 1)
		broadcastRange(t, ctx, rs.hub, "lobby", 1, 4)
		readRoom(t, st, 1, 4, 0)
		old := st.Position()

		// A new server (a new process: a new hub, a new memory) takes
		// the old one's place behind the proxy.
		rs2 := startRoomServerWith(t, hub.Config[*testv1.CountResponse]{History: hub.NewMemoryHistory(hub.HistoryLimits{})})
		broadcastRange(t, ctx, rs2.hub, "lobby", 101, 105)
		rs.proxy.refuse(true)
		rs.proxy.cut()
		rs.proxy.retarget(rs2.target)
		rs.proxy.refuse(false)
		if !st.Receive() {
			t.Fatal(st.Err())
		}
		sp, ok := st.Resumed()
		if !ok || sp.Recovery != client.EpochChanged || !sp.Lost() || !st.Gap() || sp.Epoch == old.Epoch {
			t.Fatalf("after the restart: Resumed() = %+v, %v, Gap %v; want an epoch change (from %s) and a gap", sp, ok, st.Gap(), old.Epoch)
		}
		// The latest 3 of the new server's history, then live.
		if st.Msg().GetN() != 103 || sp.Replayed() != 3 {
			t.Fatalf("after the restart: N=%d, %d replayed; want 103, 3", st.Msg().GetN(), sp.Replayed())
		}
		last := readRoom(t, st, 104, 2, st.Seq())
		broadcastRange(t, ctx, rs2.hub, "lobby", 106, 106)
		readRoom(t, st, 106, 1, last)
		if p := st.Position(); p.Epoch != sp.Epoch {
			t.Errorf("Position() = %+v, want the new epoch %s", p, sp.Epoch)
		}
	})
}

// TestResumeTooOld: more was broadcast while the client was away than the
// history keeps: the resume reports the gap (too old); the application
// resynchronizes from the latest messages it asked for.
func TestResumeTooOld(t *testing.T) {
	forCodecs(t, func(t *testing.T, cd codec.Codec) {
		rs := startRoomServerWith(t, hub.Config[*testv1.CountResponse]{History: hub.NewMemoryHistory(hub.HistoryLimits{Messages: 100})})
		c := dial(t, rs.url, append(fastOptions(nil), client.WithCodec(cd))...)
		ctx := testCtx(t)
		st, err := client.CallServerStream[testv1.CountResponse](ctx, c, watchMethod, &testv1.EchoRequest{Text: "lobby"}, client.WithHistory(20))
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		members := rs.waitMembers(t, "lobby", 1)
		broadcastRange(t, ctx, rs.hub, "lobby", 1, 2)
		readRoom(t, st, 1, 2, 0)
		rs.proxy.refuse(true)
		rs.proxy.cut()
		rs.waitMembers(t, "lobby", 0)
		broadcastRange(t, ctx, rs.hub, "lobby", 3, 302)
		rs.proxy.refuse(false)
		rs.waitRejoin(t, "lobby", members[0].ConnID)
		if !st.Receive() {
			t.Fatal(st.Err())
		}
		sp, ok := st.Resumed()
		if !ok || sp.Recovery != client.TooOld || !st.Gap() || st.Msg().GetN() != 283 || sp.Replayed() != 20 {
			t.Fatalf("resume after 300 missed, 100 kept: N=%d Resumed() = %+v, %v, Gap %v; want too old, then the latest 20 (from 283)",
				st.Msg().GetN(), sp, ok, st.Gap())
		}
		readRoom(t, st, 284, 19, st.Seq())
	})
}

// TestResumeSeam: 100 members resume at once while a publisher
// broadcasts as fast as it can: each gets every message exactly once, in
// order, with consecutive offsets: no duplicate and no hole where the
// replay meets the live messages.
func TestResumeSeam(t *testing.T) {
	const members = 100
	rs := startRoomServerWith(t, hub.Config[*testv1.CountResponse]{History: hub.NewMemoryHistory(hub.HistoryLimits{Messages: 100_000})})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	streams := make([]*client.ServerStream[testv1.CountResponse], members)
	for i := range streams {
		cd := codecs[i%2]
		// Readers may fall far behind a publisher at full speed.
		c := dial(t, rs.url, append(fastOptions(nil), client.WithCodec(cd), client.WithStreamBuffer(1<<20),
			client.WithDialTimeout(20*time.Second))...)
		st, err := client.CallServerStream[testv1.CountResponse](ctx, c, watchMethod, &testv1.EchoRequest{Text: "lobby"})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		streams[i] = st
	}
	rs.waitMembers(t, "lobby", members)

	// The publisher runs until told to stop, then sends a last message.
	stop := make(chan struct{})
	published := make(chan uint32, 1)
	var sent atomic.Uint32
	go func() {
		n := uint32(0)
		defer func() { published <- n }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			n++
			if err := rs.hub.Broadcast(ctx, "lobby", &testv1.CountResponse{N: n}); err != nil {
				t.Error(err)
				return
			}
			sent.Store(n)
			// As fast as it can, but leaving the two cores of a test
			// machine to the handshakes of the members coming back.
			runtime.Gosched()
		}
	}()
	// Every member reads everything from the first message on.
	var wg sync.WaitGroup
	results := make([]error, members)
	resumed := make([]bool, members)
	var final uint32
	var finalOnce sync.Once
	finalC := make(chan struct{})
	for i, st := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var seq uint64
			for want := uint32(1); ; want++ {
				if !st.Receive() {
					results[i] = fmt.Errorf("ended at %d: %v", want, st.Err())
					return
				}
				if sp, ok := st.Resumed(); ok && sp.Recovery == client.Recovered {
					resumed[i] = true
				}
				switch {
				case st.Msg().GetN() != want:
					sp, ok := st.Resumed()
					results[i] = fmt.Errorf("got %d, want %d (seq %d) gap %v resumed %+v %v", st.Msg().GetN(), want, st.Seq(), st.Gap(), sp, ok)
					return
				case seq != 0 && st.Seq() != seq+1:
					results[i] = fmt.Errorf("message %d: seq %d after %d", want, st.Seq(), seq)
					return
				case st.Gap():
					results[i] = fmt.Errorf("message %d: gap", want)
					return
				}
				seq = st.Seq()
				select {
				case <-finalC:
					if want >= final {
						return
					}
				default:
				}
			}
		}()
	}
	time.Sleep(50 * time.Millisecond)
	// All links drop at once, while the publisher goes on; the members
	// come back at once and resume.
	old := make(map[string]bool)
	for _, m := range rs.hub.Members("lobby") {
		old[m.ConnID] = true
	}
	rs.proxy.cut()
	atCut := sent.Load()
	deadline := time.Now().Add(40 * time.Second)
	for n := 0; n < members; n = countNew(rs.hub.Members("lobby"), old) {
		if time.Now().After(deadline) {
			t.Fatalf("%d members back", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	if back := sent.Load(); back <= atCut {
		t.Fatalf("nothing broadcast while the members resumed (%d at the cut, %d after)", atCut, back)
	}
	close(stop)
	final = <-published
	finalOnce.Do(func() { close(finalC) })
	// A last broadcast wakes the members that read the final one
	// before they learnt it was the final one.
	if err := rs.hub.Broadcast(ctx, "lobby", &testv1.CountResponse{N: final + 1}); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for i, err := range results {
		if err != nil {
			t.Errorf("member %d: %v", i, err)
		} else if !resumed[i] {
			t.Errorf("member %d: no recovered resume", i)
		}
	}
	t.Logf("%d members, %d messages each, every one resumed across the cut", members, final)
}

// countNew counts the members on connections not in old.
func countNew(ms []hub.Member, old map[string]bool) int {
	n := 0
	for _, m := range ms {
		if !old[m.ConnID] {
			n++
		}
	}
	return n
}
