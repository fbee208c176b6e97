package client_test

// Room sequence numbers (docs/PROTOCOL.md, section 3.5): Seq exposes them and
// Gap reports a skip, against a scripted fake server and against the real
// hub on the real transport.

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/protows/protows/client"
	"github.com/protows/protows/codec"
	testv1 "github.com/protows/protows/gen/go/protows/test/v1"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"github.com/protows/protows/hub"
	"github.com/protows/protows/router"
	"github.com/protows/protows/transport"
)

// readSeqs reads n messages and renders each as "N:seq", with "(gap)" when
// Gap is true.
func readSeqs(t *testing.T, st *client.ServerStream[testv1.CountResponse], n int) []string {
	t.Helper()
	var got []string
	for range n {
		if !st.Receive() {
			t.Fatalf("stream ended after %v: %v", got, st.Err())
		}
		s := fmt.Sprintf("%d:%d", st.Msg().GetN(), st.Seq())
		if st.Gap() {
			s += "(gap)"
		}
		got = append(got, s)
	}
	return got
}

// TestSeqGap: a seq that skips ahead or goes back is a gap on that message;
// 0 (not sequenced) neither starts nor hides one; the first number of a
// stream may be anything; after a re-open the numbers start afresh and the
// re-open itself is the gap.
func TestSeqGap(t *testing.T) {
	t.Parallel()
	// seqs[i] is the seq of message i+1 of the first connection's stream.
	seqs := []uint64{5, 6, 0, 7, 9, 10, 10, 4, 5}
	want := []string{"1:5", "2:6", "3:0", "4:7", "5:9(gap)", "6:10", "7:10", "8:4(gap)", "9:5"}
	// After the drop the new stream numbers from 11, which follows 10 but
	// is not comparable with it.
	wantAfter := []string{"1:11(gap)", "2:12", "3:0", "4:14(gap)"}
	forCodecs(t, func(t *testing.T, cd codec.Codec) {
		fs := newFakeServer(t, func(fc *fakeConn) {
			fc.serve(func(env *protowsv1.Envelope) {
				if env.GetKind() != protowsv1.Kind_KIND_REQUEST {
					return
				}
				list := seqs
				if fc.n > 1 {
					list = []uint64{11, 12, 0, 14}
				}
				var envs []*protowsv1.Envelope
				for i, seq := range list {
					p, _ := fc.codec.AppendPayload(nil, &testv1.CountResponse{N: uint32(i + 1)})
					envs = append(envs, &protowsv1.Envelope{Id: env.GetId(), Kind: protowsv1.Kind_KIND_STREAM_MESSAGE, Payload: p, Seq: seq})
				}
				fc.write(envs...)
				if fc.n == 1 {
					fc.drop()
				}
			})
		})
		c := dial(t, fs.url, append(fastOptions(nil), client.WithCodec(cd))...)
		st, err := client.CallServerStream[testv1.CountResponse](testCtx(t), c, countMethod, &testv1.CountRequest{})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if got := readSeqs(t, st, len(want)); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("first stream: read %v, want %v", got, want)
		}
		if got := readSeqs(t, st, len(wantAfter)); fmt.Sprint(got) != fmt.Sprint(wantAfter) {
			t.Errorf("after the re-open: read %v, want %v", got, wantAfter)
		}
	})
}

// TestSeqGapAfterServerEnd: a stream the server ends with unavailable is
// re-opened on the same connection; the re-open is a gap even when the new
// numbers happen to follow the old ones.
func TestSeqGapAfterServerEnd(t *testing.T) {
	t.Parallel()
	var opens atomic.Int32
	fs := newFakeServer(t, func(fc *fakeConn) {
		fc.serve(func(env *protowsv1.Envelope) {
			if env.GetKind() != protowsv1.Kind_KIND_REQUEST {
				return
			}
			msg := func(n uint32, seq uint64) *protowsv1.Envelope {
				p, _ := fc.codec.AppendPayload(nil, &testv1.CountResponse{N: n})
				return &protowsv1.Envelope{Id: env.GetId(), Kind: protowsv1.Kind_KIND_STREAM_MESSAGE, Payload: p, Seq: seq}
			}
			if opens.Add(1) == 1 {
				fc.write(msg(1, 1), msg(2, 2), &protowsv1.Envelope{Id: env.GetId(), Kind: protowsv1.Kind_KIND_STREAM_END,
					Error: &protowsv1.Error{Code: protowsv1.Code_CODE_UNAVAILABLE, Message: "draining"}})
				return
			}
			fc.write(msg(1, 3), msg(2, 4), &protowsv1.Envelope{Id: env.GetId(), Kind: protowsv1.Kind_KIND_STREAM_END})
		})
	})
	c := dial(t, fs.url, fastOptions(nil)...)
	st, err := client.CallServerStream[testv1.CountResponse](testCtx(t), c, countMethod, &testv1.CountRequest{})
	if err != nil {
		t.Fatal(err)
	}
	got := readSeqs(t, st, 4)
	if want := "[1:1 2:2 1:3(gap) 2:4]"; fmt.Sprint(got) != want {
		t.Errorf("read %v, want %v", got, want)
	}
	if st.Receive() || st.Err() != nil || st.Seq() != 0 || st.Gap() {
		t.Errorf("after the end: Receive true or Err() = %v, Seq %d, Gap %v", st.Err(), st.Seq(), st.Gap())
	}
}

// TestSeqZeroBeforePosition: a stream with a position, re-opened, may get
// messages outside the room's history (seq 0: a presence event) before the
// new STREAM_POSITION; they are no gap, and the re-open's outcome is told by
// the position: recovered, no gap; an unrecoverable one, a gap on the next
// room message. An outcome newer than the client (a number without a
// name, which the JSON codec reads an unknown name as) is an unrecoverable
// one, in both codecs.
func TestSeqZeroBeforePosition(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name     string
		recovery protowsv1.Recovery
		want     string
	}{
		{"recovered", protowsv1.Recovery_RECOVERY_RECOVERED, "[1:1 2:2 3:0 4:3]"},
		{"epoch changed", protowsv1.Recovery_RECOVERY_EPOCH_CHANGED, "[1:1 2:2 3:0 4:1(gap)]"},
		{"a newer outcome", protowsv1.Recovery(-1), "[1:1 2:2 3:0 4:1(gap)]"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			forCodecs(t, func(t *testing.T, cd codec.Codec) {
				var opens atomic.Int32
				fs := newFakeServer(t, func(fc *fakeConn) {
					fc.serve(func(env *protowsv1.Envelope) {
						if env.GetKind() != protowsv1.Kind_KIND_REQUEST {
							return
						}
						id := env.GetId()
						msg := func(n uint32, seq uint64) *protowsv1.Envelope {
							p, _ := fc.codec.AppendPayload(nil, &testv1.CountResponse{N: n})
							return &protowsv1.Envelope{Id: id, Kind: protowsv1.Kind_KIND_STREAM_MESSAGE, Payload: p, Seq: seq}
						}
						pos := func(epoch string, offset uint64, r protowsv1.Recovery) *protowsv1.Envelope {
							return &protowsv1.Envelope{Id: id, Kind: protowsv1.Kind_KIND_STREAM_POSITION,
								Position: &protowsv1.Position{Epoch: epoch, Offset: offset, Latest: offset, Recovery: r}}
						}
						if opens.Add(1) == 1 {
							fc.write(pos("e1", 0, protowsv1.Recovery_RECOVERY_UNSPECIFIED), msg(1, 1), msg(2, 2),
								&protowsv1.Envelope{Id: id, Kind: protowsv1.Kind_KIND_STREAM_END,
									Error: &protowsv1.Error{Code: protowsv1.Code_CODE_UNAVAILABLE, Message: "draining"}})
							return
						}
						if r := env.GetResume(); r.GetEpoch() != "e1" || r.GetOffset() != 2 {
							t.Errorf("re-open with resume %v, want e1/2", r)
						}
						if tt.recovery == protowsv1.Recovery_RECOVERY_RECOVERED {
							fc.write(msg(3, 0), pos("e1", 2, tt.recovery), msg(4, 3))
							return
						}
						fc.write(msg(3, 0), pos("e2", 0, tt.recovery), msg(4, 1))
					})
				})
				c := dial(t, fs.url, append(fastOptions(nil), client.WithCodec(cd))...)
				st, err := client.CallServerStream[testv1.CountResponse](testCtx(t), c, countMethod, &testv1.CountRequest{})
				if err != nil {
					t.Fatal(err)
				}
				defer st.Close()
				if got := readSeqs(t, st, 4); fmt.Sprint(got) != tt.want {
					t.Errorf("read %v, want %s", got, tt.want)
				}
				sp, ok := st.Resumed()
				if !ok || sp.Lost() != (tt.recovery != protowsv1.Recovery_RECOVERY_RECOVERED) {
					t.Errorf("Resumed() = %+v, %v", sp, ok)
				}
			})
		})
	}
}

// roomServer is a real transport server whose only method,
// /protows.test.v1.Rooms/Watch, joins the room named by the request's text.
type roomServer struct {
	hub     *hub.Hub[*testv1.CountResponse]
	url     string
	proxy   *cutProxy
	changed chan struct{} // gets a value after each join and leave
	target  string        // the server's own address, behind the proxy
}

const watchMethod = "/protows.test.v1.Rooms/Watch"

func startRoomServer(t *testing.T) *roomServer {
	t.Helper()
	return startRoomServerWith(t, hub.Config[*testv1.CountResponse]{})
}

// startRoomServerWith is startRoomServer with a hub of cfg.
func startRoomServerWith(t *testing.T, cfg hub.Config[*testv1.CountResponse]) *roomServer {
	t.Helper()
	changed := make(chan struct{}, 1)
	cfg.Logger = slog.New(slog.DiscardHandler)
	presence := cfg.Presence
	// The hook tells waitMembers to look; it sends presence messages only
	// if cfg asks for them.
	cfg.Presence = func(ev hub.PresenceEvent) (*testv1.CountResponse, bool) {
		select {
		case changed <- struct{}{}:
		default:
		}
		if presence != nil {
			return presence(ev)
		}
		return nil, false
	}
	h, err := hub.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := router.New(router.WithLogger(slog.New(slog.DiscardHandler)))
	err = router.HandleServerStream(r, watchMethod,
		func(ctx context.Context, req *testv1.EchoRequest, s router.Stream[*testv1.CountResponse]) error {
			return h.Attach(ctx, req.GetText(), s)
		})
	if err != nil {
		t.Fatal(err)
	}
	ws := transport.NewServer(r, transport.Config{Logger: slog.New(slog.DiscardHandler)})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: ws, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan struct{})
	go func() {
		defer close(served)
		hs.Serve(ln)
	}()
	p := newCutProxy(t, ln.Addr().String())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		h.Close()
		hs.Shutdown(ctx)
		ws.Shutdown(ctx)
		<-served
	})
	return &roomServer{hub: h, url: "ws://" + p.addr() + "/ws", proxy: p, changed: changed, target: ln.Addr().String()}
}

// waitMembers waits until room has n members.
func (rs *roomServer) waitMembers(t *testing.T, room string, n int) []hub.Member {
	t.Helper()
	var m []hub.Member
	rs.waitFor(t, func() bool { m = rs.hub.Members(room); return len(m) == n },
		func() string { return fmt.Sprintf("room %s has %d members, want %d", room, len(m), n) })
	return m
}

// waitRejoin waits until room's only member is on another connection than
// oldConn.
func (rs *roomServer) waitRejoin(t *testing.T, room, oldConn string) {
	t.Helper()
	var m []hub.Member
	rs.waitFor(t, func() bool { m = rs.hub.Members(room); return len(m) == 1 && m[0].ConnID != oldConn },
		func() string { return fmt.Sprintf("room %s: members %v, want one on a new connection", room, m) })
}

// waitFor waits until cond holds, checking it after each join and leave.
func (rs *roomServer) waitFor(t *testing.T, cond func() bool, failure func() string) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for !cond() {
		select {
		case <-rs.changed:
		case <-timeout:
			t.Fatal(failure())
		}
	}
}

// TestRealHubSeq: broadcasts of the real hub reach the client with
// consecutive Seq and no gap; a message sent to one member has Seq 0; after
// the link drops, the stream re-joins the room and Gap marks its first
// message.
func TestRealHubSeq(t *testing.T) {
	t.Parallel()
	forCodecs(t, func(t *testing.T, cd codec.Codec) {
		rs := startRoomServer(t)
		c := dial(t, rs.url, append(fastOptions(nil), client.WithCodec(cd))...)
		ctx := testCtx(t)
		st, err := client.CallServerStream[testv1.CountResponse](ctx, c, watchMethod, &testv1.EchoRequest{Text: "lobby"})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		members := rs.waitMembers(t, "lobby", 1)
		broadcast := func(from, to uint32) {
			for n := from; n <= to; n++ {
				if err := rs.hub.Broadcast(ctx, "lobby", &testv1.CountResponse{N: n}); err != nil {
					t.Fatal(err)
				}
			}
		}
		broadcast(1, 3)
		if err := rs.hub.SendTo(ctx, members[0].ID(), &testv1.CountResponse{N: 4}); err != nil {
			t.Fatal(err)
		}
		broadcast(5, 5)
		var seqs []uint64
		for i := range 5 {
			if !st.Receive() {
				t.Fatalf("stream ended: %v", st.Err())
			}
			if st.Msg().GetN() != uint32(i+1) || st.Gap() {
				t.Errorf("message %d: N=%d Gap=%v", i+1, st.Msg().GetN(), st.Gap())
			}
			seqs = append(seqs, st.Seq())
		}
		if seqs[0] == 0 || seqs[1] != seqs[0]+1 || seqs[2] != seqs[0]+2 || seqs[3] != 0 || seqs[4] != seqs[0]+3 {
			t.Errorf("seqs %v: want three consecutive numbers, 0 for SendTo, then the next", seqs)
		}

		// Drop the link: the client re-opens the stream, which joins the
		// room again; the first broadcast it gets is a gap.
		rs.proxy.cut()
		rs.waitRejoin(t, "lobby", members[0].ConnID)
		broadcast(6, 7)
		got := readSeqs(t, st, 2)
		if !strings.HasPrefix(got[0], "6:") || !strings.HasSuffix(got[0], "(gap)") ||
			!strings.HasPrefix(got[1], "7:") || strings.HasSuffix(got[1], "(gap)") {
			t.Errorf("after the drop: read %v, want 6 with a gap, then 7 without", got)
		}
		st.Close()
		if st.Receive() || st.Err() != nil {
			t.Errorf("after Close: Err() = %v", st.Err())
		}
	})
}

// cutProxy is a TCP proxy whose connections can all be cut at once, while
// it goes on accepting new ones.
type cutProxy struct {
	*freezeProxy
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	return &cutProxy{newFreezeProxy(t, target)}
}

// refuse makes the proxy close (on) or keep (off) the connections it
// accepts from now on: the network is down for new connections.
func (p *cutProxy) refuse(on bool) { p.refusing.Store(on) }

// cut closes every connection open now, without a close frame.
func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}
