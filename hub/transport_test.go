package hub_test

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	protows "github.com/protows/protows"
	"github.com/protows/protows/client"
	"github.com/protows/protows/codec"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"github.com/protows/protows/hub"
	"github.com/protows/protows/hub/internal/hubtest"
	"github.com/protows/protows/router"
	"github.com/protows/protows/transport"
	"google.golang.org/protobuf/proto"
)

type Msg = hubtest.Msg

func newHub(t *testing.T, cfg hub.Config[*Msg]) *hub.Hub[*Msg] {
	t.Helper()
	cfg.Logger = slog.New(slog.DiscardHandler)
	h, err := hub.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

// TestOverWebSocket runs rooms behind a real server: typed stream messages
// with the call's id and the room's sequence, one encoding per codec,
// Leave from a unary handler, and a closed connection leaving its rooms.
func TestOverWebSocket(t *testing.T) {
	t.Parallel()
	h := newHub(t, hub.Config[*Msg]{})
	url := hubtest.Serve(t, h, transport.Config{})
	var clients []*hubtest.Client
	for i, c := range []codec.Codec{codec.Proto(), codec.JSON(), codec.Proto(), codec.JSON()} {
		cl := hubtest.Dial(t, url, c)
		cl.Watch(uint32(10+i), "lobby")
		clients = append(clients, cl)
	}
	hubtest.WaitMembers(t, h, "lobby", len(clients))
	before := h.Marshals()
	const n = 20
	for k := 1; k <= n; k++ {
		if err := h.Broadcast(context.Background(), "lobby", &Msg{Subject: "hi", ExpiresAt: int64(k)}); err != nil {
			t.Fatal(err)
		}
	}
	if got := h.Marshals() - before; got != 2*n {
		t.Errorf("%d encodings for %d broadcasts to members of 2 codecs, want %d", got, n, 2*n)
	}
	for i, cl := range clients {
		for k := 1; k <= n; k++ {
			e, m := cl.NextMsg()
			if e.GetId() != uint32(10+i) || e.GetSeq() != uint64(k) || m.GetExpiresAt() != int64(k) || m.GetSubject() != "hi" {
				t.Fatalf("client %d: got id %d seq %d %v, want id %d seq %d #%d", i, e.GetId(), e.GetSeq(), m, 10+i, k, k)
			}
		}
	}

	// Leave from a unary handler ends the stream successfully.
	clients[0].Leave(99, "lobby")
	ended, replied := false, false
	for !ended || !replied {
		e, err := clients[0].Next(5 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case e.GetId() == 10 && e.GetKind() == protowsv1.Kind_KIND_STREAM_END:
			if e.GetError() != nil {
				t.Errorf("stream ended with %v", e.GetError())
			}
			ended = true
		case e.GetId() == 99 && e.GetKind() == protowsv1.Kind_KIND_REPLY:
			replied = true
		default:
			t.Fatalf("unexpected %v", e)
		}
	}
	hubtest.WaitMembers(t, h, "lobby", 3)

	// Join from a unary handler is refused, and joins nothing.
	clients[2].Call(98, hubtest.BadJoinMethod, "lobby")
	if e, err := clients[2].Next(5 * time.Second); err != nil || e.GetKind() != protowsv1.Kind_KIND_ERROR || e.GetId() != 98 {
		t.Fatalf("Join from a unary handler: %v %v, want ERROR", e, err)
	}
	hubtest.WaitMembers(t, h, "lobby", 3)

	// A connection that closes leaves its rooms.
	_ = clients[1].Raw().Close()
	hubtest.WaitMembers(t, h, "lobby", 2)
}

// TestSlowMemberGets4008 fills the send queue of a member that does not
// read: it is closed with 4008 and removed, while the member that reads
// gets every broadcast.
func TestSlowMemberGets4008(t *testing.T) {
	t.Parallel()
	h := newHub(t, hub.Config[*Msg]{})
	url := hubtest.Serve(t, h, transport.Config{SendQueue: 8, WriteTimeout: 5 * time.Second})
	slow := hubtest.Dial(t, url, codec.Proto())
	slow.Watch(1, "r")
	fast := hubtest.Dial(t, url, codec.Proto())
	fast.Watch(1, "r")
	hubtest.WaitMembers(t, h, "r", 2)

	// The fast member reads each broadcast before the next is sent, so
	// only the slow one falls behind: its socket buffers fill, then its
	// send queue.
	big := strings.Repeat("x", 32<<10)
	const max = 2000 // 64 MiB: far more than loopback socket buffers hold
	k := int64(0)
	for len(h.Members("r")) == 2 {
		if k++; k > max {
			t.Fatalf("the slow member was not dropped after %d broadcasts", max)
		}
		if err := h.Broadcast(context.Background(), "r", &Msg{Subject: big, ExpiresAt: k}); err != nil {
			t.Fatal(err)
		}
		if _, m := fast.NextMsg(); m.GetExpiresAt() != k {
			t.Fatalf("fast member got #%d, want #%d", m.GetExpiresAt(), k)
		}
	}
	// The broadcast goes on for the others.
	for i := 1; i <= 5; i++ {
		k++
		if err := h.Broadcast(context.Background(), "r", &Msg{ExpiresAt: k}); err != nil {
			t.Fatal(err)
		}
		if e, m := fast.NextMsg(); m.GetExpiresAt() != k || e.GetSeq() != uint64(k) {
			t.Fatalf("fast member got #%d seq %d, want #%d", m.GetExpiresAt(), e.GetSeq(), k)
		}
	}
	t.Logf("slow member dropped after %d broadcasts of 32 KiB", k-5)
	if code := slow.CloseCode(); code != 4008 {
		t.Fatalf("slow member closed with %d, want 4008", code)
	}
}

// TestGoClientSlowReaderDropped: a Go client grants its room stream a
// window; a reader that takes nothing has its membership ended with
// resource_exhausted once the window is used up, while its connection and
// the room's other members go on.
func TestGoClientSlowReaderDropped(t *testing.T) {
	h := newHub(t, hub.Config[*Msg]{})
	url := hubtest.Serve(t, h, transport.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := client.Dial(ctx, url, client.WithStreamBuffer(4), client.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	st, err := client.CallServerStream[Msg](ctx, cl, hubtest.WatchMethod, &protowsv1.AuthenticateRequest{Token: "r"}, client.NoResubscribe())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	fast := hubtest.Dial(t, url, codec.Proto())
	fast.Watch(1, "r")
	hubtest.WaitMembers(t, h, "r", 2)
	for k := int64(1); k <= 10; k++ {
		if err := h.Broadcast(ctx, "r", &Msg{ExpiresAt: k}); err != nil {
			t.Fatal(err)
		}
		if _, m := fast.NextMsg(); m.GetExpiresAt() != k {
			t.Fatalf("fast member got #%d, want #%d", m.GetExpiresAt(), k)
		}
	}
	hubtest.WaitMembers(t, h, "r", 1)
	n := 0
	for st.Receive() {
		n++
	}
	if n != 4 || protows.CodeOf(st.Err()) != protows.CodeResourceExhausted {
		t.Fatalf("%d messages, then %v; want the window of 4, then resource_exhausted", n, st.Err())
	}
	// The connection is fine.
	st2, err := client.CallServerStream[Msg](ctx, cl, hubtest.WatchMethod, &protowsv1.AuthenticateRequest{Token: "r2"})
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	hubtest.WaitMembers(t, h, "r2", 1)
	if err := h.Broadcast(ctx, "r2", &Msg{ExpiresAt: 99}); err != nil {
		t.Fatal(err)
	}
	if !st2.Receive() || st2.Msg().GetExpiresAt() != 99 {
		t.Fatalf("the connection's next stream: %v", st2.Err())
	}
}

// TestGoClientReceivesTypedBroadcasts subscribes with the Go client: room
// broadcasts arrive as typed messages of a server stream.
func TestGoClientReceivesTypedBroadcasts(t *testing.T) {
	t.Parallel()
	h := newHub(t, hub.Config[*Msg]{})
	url := hubtest.Serve(t, h, transport.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, c := range []codec.Codec{codec.Proto(), codec.JSON()} {
		t.Run(c.Name(), func(t *testing.T) {
			cl, err := client.Dial(ctx, url, client.WithCodec(c), client.WithLogger(slog.New(slog.DiscardHandler)))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			room := "room-" + c.Name()
			st, err := client.CallServerStream[Msg](ctx, cl, hubtest.WatchMethod, &protowsv1.AuthenticateRequest{Token: room})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			hubtest.WaitMembers(t, h, room, 1)
			for k := int64(1); k <= 3; k++ {
				if err := h.Broadcast(ctx, room, &Msg{Subject: "typed", ExpiresAt: k}); err != nil {
					t.Fatal(err)
				}
			}
			for k := int64(1); k <= 3; k++ {
				if !st.Receive() {
					t.Fatalf("stream ended: %v", st.Err())
				}
				if m := st.Msg(); m.GetSubject() != "typed" || m.GetExpiresAt() != k {
					t.Fatalf("got %v, want #%d", m, k)
				}
			}
		})
	}
}

// countingStream is a stream wrapper of an interceptor: it has Send only.
type countingStream struct {
	s router.Stream[proto.Message]
	n *atomic.Int64
}

func (c countingStream) Send(m proto.Message) error { c.n.Add(1); return c.s.Send(m) }

// TestInterceptorWrappedStream checks that a member whose stream an
// interceptor wrapped gets the room's messages through the wrapper's Send
// (without sequence numbers), as router.Stream documents; Attach, which
// cannot detach such a call, waits like Join, and Leave ends the stream.
func TestInterceptorWrappedStream(t *testing.T) {
	t.Parallel()
	t.Run("join", func(t *testing.T) { t.Parallel(); testInterceptorWrappedStream(t, hubtest.WatchMethod) })
	t.Run("attach", func(t *testing.T) { t.Parallel(); testInterceptorWrappedStream(t, hubtest.AttachMethod) })
}

func testInterceptorWrappedStream(t *testing.T, method string) {
	h := newHub(t, hub.Config[*Msg]{})
	var sends atomic.Int64
	wrap := func(next router.HandlerFunc) router.HandlerFunc {
		return func(ctx context.Context, call *router.Call) (proto.Message, error) {
			if call.Stream != nil {
				call.Stream = countingStream{call.Stream, &sends}
			}
			return next(ctx, call)
		}
	}
	url := hubtest.Serve(t, h, transport.Config{}, router.WithInterceptors(wrap))
	cl := hubtest.Dial(t, url, codec.JSON())
	cl.Call(5, method, "r")
	hubtest.WaitMembers(t, h, "r", 1)
	const n = 3
	for k := 1; k <= n; k++ {
		if err := h.Broadcast(context.Background(), "r", &Msg{ExpiresAt: int64(k)}); err != nil {
			t.Fatal(err)
		}
	}
	for k := 1; k <= n; k++ {
		if e, m := cl.NextMsg(); e.GetId() != 5 || e.GetSeq() != 0 || m.GetExpiresAt() != int64(k) {
			t.Fatalf("got id %d seq %d #%d, want id 5 seq 0 #%d", e.GetId(), e.GetSeq(), m.GetExpiresAt(), k)
		}
	}
	if got := sends.Load(); got != n {
		t.Errorf("the wrapper's Send ran %d times, want %d", got, n)
	}
	if ms := h.Members("r"); ms[0].CallID != 5 {
		t.Errorf("member %+v, want call 5", ms[0])
	}
	cl.Leave(6, "r")
	if code := streamEnd(t, cl, 5); code != protows.CodeOK {
		t.Errorf("after Leave the stream ended with %v, want ok", code)
	}
	hubtest.WaitMembers(t, h, "r", 0)
}
