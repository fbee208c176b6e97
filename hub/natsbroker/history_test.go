package natsbroker_test

// Room history in NATS JetStream (NewHistory), with the Go client: a member
// resumes after its node restarted, or while JetStream is out of reach.
// TestJetStreamNodeKilled (nodeproc_test.go) kills a node process.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	protows "github.com/protows/protows"
	"github.com/protows/protows/client"
	"github.com/protows/protows/codec"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"github.com/protows/protows/hub"
	"github.com/protows/protows/hub/internal/hubtest"
	"github.com/protows/protows/hub/natsbroker"
	"github.com/protows/protows/router"
	"github.com/protows/protows/transport"
)

// startJetStream runs an embedded NATS server with JetStream on loopback,
// keeping its files in dir; port 0 picks one.
func startJetStream(t testing.TB, port int, dir string) *natsserver.Server {
	t.Helper()
	if port == 0 {
		port = -1
	}
	s, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: port, NoLog: true, NoSigs: true,
		JetStream: true, StoreDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(5 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	return s
}

// jsNode is a protows server whose hub keeps history in JetStream.
type jsNode struct {
	name  string
	nc    *nats.Conn
	hub   *hub.Hub[*Msg]
	addr  string // host:port of its WebSocket server
	close func()
}

func startJSNode(t *testing.T, natsURL, name string, cfg natsbroker.HistoryConfig) *jsNode {
	t.Helper()
	nc, err := nats.Connect(natsURL, nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond),
		nats.ReconnectJitter(0, 0), nats.Name(name),
		nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Stream == "" {
		cfg.Stream = "ROOMS"
	}
	h, err := hub.New(hub.Config[*Msg]{
		Broker:            natsbroker.New(nc, natsbroker.Config{Subject: "test.rooms"}),
		History:           natsbroker.NewHistory(nc, cfg),
		Node:              name,
		Logger:            slog.New(slog.DiscardHandler),
		HeartbeatInterval: 25 * time.Millisecond,
		PresenceTTL:       time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	r := router.New(router.WithLogger(slog.New(slog.DiscardHandler)))
	if err := router.HandleServerStream(r, hubtest.WatchMethod,
		func(ctx context.Context, req *protowsv1.AuthenticateRequest, s router.Stream[*Msg]) error {
			return h.Join(ctx, req.GetToken(), s)
		}); err != nil {
		t.Fatal(err)
	}
	srv := transport.NewServer(r, transport.Config{Logger: slog.New(slog.DiscardHandler)})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = hs.Serve(ln)
	}()
	var once sync.Once
	n := &jsNode{name: name, nc: nc, hub: h, addr: ln.Addr().String()}
	n.close = func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = h.Close()
			nc.Close()
			_ = hs.Shutdown(ctx)
			_ = srv.Shutdown(ctx)
			<-served
		})
	}
	t.Cleanup(n.close)
	return n
}

// watch opens a stream of room through url with the Go client.
func watch(t *testing.T, ctx context.Context, url string, cd codec.Codec, room string, opts ...client.CallOption) *client.ServerStream[Msg] {
	t.Helper()
	c, err := client.Dial(ctx, url, client.WithCodec(cd),
		client.WithBackoff(client.Backoff{Initial: 10 * time.Millisecond, Max: 50 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	st, err := client.CallServerStream[Msg](ctx, c, hubtest.WatchMethod, &protowsv1.AuthenticateRequest{Token: room}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// msgID names a broadcast: its publisher (Subject) and number (ExpiresAt).
func msgID(m *Msg) string { return fmt.Sprintf("%s#%d", m.GetSubject(), m.GetExpiresAt()) }

// TestJetStreamHistorySurvivesRestart: every node restarts (one at a time
// or all at once: the history is in JetStream); a client resumes in the
// same epoch and recovers what was broadcast while it was away.
func TestJetStreamHistorySurvivesRestart(t *testing.T) {
	ns := startJetStream(t, 0, t.TempDir())
	defer stopNATS(ns)
	a := startJSNode(t, ns.ClientURL(), "a", natsbroker.HistoryConfig{})
	proxy := hubtest.NewProxy(t, a.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st := watch(t, ctx, "ws://"+proxy.Addr()+"/ws", codec.Proto(), "r")
	hubtest.WaitMembers(t, a.hub, "r", 1)
	for k := 1; k <= 3; k++ {
		if err := a.hub.Broadcast(ctx, "r", &Msg{ExpiresAt: int64(k)}); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		if !st.Receive() {
			t.Fatal(st.Err())
		}
	}
	epoch := st.Position().Epoch
	proxy.Refuse(true)
	proxy.Cut()
	a.close()
	a2 := startJSNode(t, ns.ClientURL(), "a", natsbroker.HistoryConfig{})
	for k := 4; k <= 9; k++ {
		if err := a2.hub.Broadcast(ctx, "r", &Msg{ExpiresAt: int64(k)}); err != nil {
			t.Fatal(err)
		}
	}
	proxy.Target(a2.addr)
	proxy.Refuse(false)
	for k := 4; k <= 9; k++ {
		if !st.Receive() {
			t.Fatal(st.Err())
		}
		if st.Msg().GetExpiresAt() != int64(k) || st.Gap() {
			t.Fatalf("got #%d (gap %v), want #%d", st.Msg().GetExpiresAt(), st.Gap(), k)
		}
		if k == 4 {
			sp, ok := st.Resumed()
			if !ok || sp.Recovery != client.Recovered || sp.Replayed() != 6 || sp.Epoch != epoch {
				t.Fatalf("Resumed() = %+v, %v; want 6 recovered in epoch %s", sp, ok, epoch)
			}
		}
	}
}

// TestJetStreamUnavailable: while JetStream cannot be reached a broadcast
// to a room with history fails with an unavailable error and is delivered
// nowhere; a member that resumes then is told RECOVERY_UNAVAILABLE. Once
// NATS is back, broadcasts work again and reach the members.
func TestJetStreamUnavailable(t *testing.T) {
	dir := t.TempDir()
	ns := startJetStream(t, 0, dir)
	port := ns.Addr().(*net.TCPAddr).Port
	a := startJSNode(t, ns.ClientURL(), "a", natsbroker.HistoryConfig{Timeout: 300 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	proxy := hubtest.NewProxy(t, a.addr)
	var mu sync.Mutex
	var positions []client.StreamPosition
	st := watch(t, ctx, "ws://"+proxy.Addr()+"/ws", codec.JSON(), "r", client.OnPosition(func(sp client.StreamPosition) {
		mu.Lock()
		positions = append(positions, sp)
		mu.Unlock()
	}))
	hubtest.WaitMembers(t, a.hub, "r", 1)
	if err := a.hub.Broadcast(ctx, "r", &Msg{ExpiresAt: 1}); err != nil {
		t.Fatal(err)
	}
	if !st.Receive() || st.Msg().GetExpiresAt() != 1 {
		t.Fatalf("first message: %v", st.Err())
	}

	stopNATS(ns)
	// Once nats.go knows the link is down, a broadcast fails at once and
	// is never stored.
	for a.nc.IsConnected() {
		time.Sleep(time.Millisecond)
	}
	err := a.hub.Broadcast(ctx, "r", &Msg{ExpiresAt: 2})
	if !errors.Is(err, hub.ErrHistoryUnavailable) || protows.CodeOf(err) != protows.CodeUnavailable {
		t.Fatalf("Broadcast with JetStream down: %v, want unavailable wrapping ErrHistoryUnavailable", err)
	}
	// A member that comes back meanwhile is told the history is out of
	// reach.
	proxy.Cut()
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(positions)
		mu.Unlock()
		if n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no STREAM_POSITION after the reconnection")
		}
		time.Sleep(5 * time.Millisecond)
	}
	mu.Lock()
	if positions[1].Recovery != client.HistoryUnavailable {
		t.Errorf("resume with JetStream down: %+v, want HistoryUnavailable", positions[1])
	}
	mu.Unlock()

	ns = startJetStream(t, port, dir)
	defer stopNATS(ns)
	// Broadcast until one gets through and reaches the member.
	for k := int64(3); ; k++ {
		if err := a.hub.Broadcast(ctx, "r", &Msg{ExpiresAt: k}); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("Broadcast after NATS came back: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !st.Receive() {
		t.Fatal(st.Err())
	}
	if st.Msg().GetExpiresAt() < 3 || !st.Gap() {
		// #2 failed and was not stored: what follows the outage is a
		// later broadcast, after a resume that could not read the
		// history.
		t.Errorf("after the outage: #%d gap %v, want a message from after it, marked as a gap", st.Msg().GetExpiresAt(), st.Gap())
	}
}

// TestJetStreamStreamDeleted: the history stream is deleted while two
// nodes run, each with a member in the room. Both nodes notice, use the
// stream made anew (a new epoch) and end their members' streams; the
// clients re-open them and are told the epoch changed, then get what is
// broadcast in the new epoch, marked as following a gap.
func TestJetStreamStreamDeleted(t *testing.T) {
	for _, cd := range []codec.Codec{codec.Proto(), codec.JSON()} {
		t.Run(cd.Name(), func(t *testing.T) {
			ns := startJetStream(t, 0, t.TempDir())
			defer stopNATS(ns)
			cfg := natsbroker.HistoryConfig{CheckInterval: 100 * time.Millisecond, Timeout: 2 * time.Second}
			a := startJSNode(t, ns.ClientURL(), "a", cfg)
			b := startJSNode(t, ns.ClientURL(), "b", cfg)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			type watcher struct {
				st        *client.ServerStream[Msg]
				mu        sync.Mutex
				positions []client.StreamPosition
			}
			var ws []*watcher
			for _, n := range []*jsNode{a, b} {
				w := &watcher{}
				joined := make(chan struct{})
				w.st = watch(t, ctx, "ws://"+n.addr+"/ws", cd, "r", client.OnPosition(func(sp client.StreamPosition) {
					w.mu.Lock()
					w.positions = append(w.positions, sp)
					if len(w.positions) == 1 {
						close(joined)
					}
					w.mu.Unlock()
				}))
				// The first position comes once the member is in the room.
				select {
				case <-joined:
				case <-ctx.Done():
					t.Fatalf("%s: no STREAM_POSITION", n.name)
				}
				ws = append(ws, w)
			}
			for k := 1; k <= 3; k++ {
				if err := b.hub.Broadcast(ctx, "r", &Msg{Subject: "b", ExpiresAt: int64(k)}); err != nil {
					t.Fatal(err)
				}
			}
			for _, w := range ws {
				for k := 1; k <= 3; k++ {
					if !w.st.Receive() || w.st.Msg().GetExpiresAt() != int64(k) {
						t.Fatalf("message %d: %v", k, w.st.Err())
					}
				}
			}
			old := ws[0].st.Position().Epoch

			nc, err := nats.Connect(ns.ClientURL())
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			js, err := jetstream.New(nc)
			if err != nil {
				t.Fatal(err)
			}
			if err := js.DeleteStream(ctx, "ROOMS"); err != nil {
				t.Fatal(err)
			}
			// Every member learns it: its stream re-opens and is told the
			// epoch changed, without a message to carry it.
			for i, w := range ws {
				for {
					w.mu.Lock()
					n := len(w.positions)
					var last client.StreamPosition
					if n > 0 {
						last = w.positions[n-1]
					}
					w.mu.Unlock()
					if n >= 2 {
						if n != 2 || last.Recovery != client.EpochChanged || last.Epoch == old || last.Epoch == "" {
							t.Fatalf("member %d: positions %+v, want a second one, epoch changed", i, w.positions)
						}
						break
					}
					if ctx.Err() != nil {
						t.Fatalf("member %d: no new position after the stream was deleted", i)
					}
					time.Sleep(5 * time.Millisecond)
				}
			}
			// Broadcasts work again, in the new epoch, on either node.
			for {
				err := a.hub.Broadcast(ctx, "r", &Msg{Subject: "a", ExpiresAt: 4})
				if err == nil {
					break
				}
				if ctx.Err() != nil {
					t.Fatalf("Broadcast after the stream was made anew: %v", err)
				}
				time.Sleep(10 * time.Millisecond)
			}
			for i, w := range ws {
				if !w.st.Receive() {
					t.Fatalf("member %d: %v", i, w.st.Err())
				}
				sp, ok := w.st.Resumed()
				if m := w.st.Msg(); msgID(m) != "a#4" || !w.st.Gap() || !ok || sp.Recovery != client.EpochChanged {
					t.Errorf("member %d: %s gap %v resumed %+v %v; want a#4 after an epoch change", i, msgID(m), w.st.Gap(), sp, ok)
				}
				if w.st.Position().Epoch == old {
					t.Errorf("member %d: still in epoch %s", i, old)
				}
			}
		})
	}
}
