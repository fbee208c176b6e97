package natsdedupe_test

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
	"github.com/protows/protows/client"
	"github.com/protows/protows/codec"
	"github.com/protows/protows/dedupe"
	"github.com/protows/protows/dedupe/natsdedupe"
	testv1 "github.com/protows/protows/gen/go/protows/test/v1"
	"github.com/protows/protows/internal/faultproxy"
	"github.com/protows/protows/internal/testservice"
	"github.com/protows/protows/router"
	"github.com/protows/protows/transport"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// startNATS runs an embedded NATS server with JetStream on loopback.
func startNATS(t *testing.T) *natsserver.Server {
	t.Helper()
	s, err := natsserver.NewServer(&natsserver.Options{
		Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
		JetStream: true, StoreDir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(5 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}

// newStore connects to ns and opens the bucket, as one node does.
func newStore(t *testing.T, ns *natsserver.Server, cfg natsdedupe.Config) (*natsdedupe.Store, *nats.Conn) {
	t.Helper()
	nc, err := nats.Connect(ns.ClientURL(), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := natsdedupe.New(ctx, js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s, nc
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestStoreAcrossNodes(t *testing.T) {
	ns := startNATS(t)
	a, _ := newStore(t, ns, natsdedupe.Config{})
	b, _ := newStore(t, ns, natsdedupe.Config{})
	k := dedupe.Key{Principal: "alice", Method: "/a.B/C", ID: "k 1/é"}
	fp := dedupe.Fingerprint{1}
	if o, err := a.Begin(testCtx(t), k, fp); o != nil || err != nil {
		t.Fatalf("first Begin = %v, %v; want a claim", o, err)
	}
	// Node b waits for node a's run.
	got := make(chan *dedupe.Outcome, 1)
	go func() {
		o, err := b.Begin(testCtx(t), k, fp)
		if err != nil {
			t.Error(err)
		}
		got <- o
	}()
	time.Sleep(50 * time.Millisecond)
	select {
	case o := <-got:
		t.Fatalf("b did not wait: %v", o)
	default:
	}
	want := &dedupe.Outcome{Codec: codec.JSONName, Payload: []byte(`{"text":"x"}`), Metadata: map[string]string{"m": "1"}}
	if err := a.Finish(testCtx(t), k, want); err != nil {
		t.Fatal(err)
	}
	if o := <-got; o == nil || string(o.Payload) != string(want.Payload) || o.Metadata["m"] != "1" || o.Codec != want.Codec {
		t.Fatalf("b got %+v", o)
	}
	// Another request with the key is refused; another principal's key
	// is another call.
	if _, err := b.Begin(testCtx(t), k, dedupe.Fingerprint{2}); !errors.Is(err, dedupe.ErrConflict) {
		t.Errorf("other fingerprint: %v", err)
	}
	other := k
	other.Principal = "bob"
	if o, err := b.Begin(testCtx(t), other, fp); o != nil || err != nil {
		t.Errorf("bob's key: %v, %v; want a claim", o, err)
	}
	b.Finish(testCtx(t), other, nil)

	// Error outcomes keep their details; a released key is claimed again.
	k2 := dedupe.Key{Method: "/a.B/C", ID: "2"}
	a.Begin(testCtx(t), k2, fp)
	a.Finish(testCtx(t), k2, nil)
	if o, err := b.Begin(testCtx(t), k2, fp); o != nil || err != nil {
		t.Fatalf("released key: %v, %v; want a claim", o, err)
	}
	werr := &dedupe.Outcome{Codec: codec.ProtoName, Error: wireErr()}
	b.Finish(testCtx(t), k2, werr)
	if o, err := a.Begin(testCtx(t), k2, fp); err != nil || !proto.Equal(o.Error, werr.Error) {
		t.Errorf("error outcome: %v, %v", o, err)
	}
}

// TestLeaseTakeover: a node that dies with a call running leaves a claim
// that lapses; a send of the call to another node then runs it.
func TestLeaseTakeover(t *testing.T) {
	ns := startNATS(t)
	a, anc := newStore(t, ns, natsdedupe.Config{Lease: 300 * time.Millisecond})
	b, _ := newStore(t, ns, natsdedupe.Config{Lease: 300 * time.Millisecond})
	k := dedupe.Key{Method: "/a.B/C", ID: "k"}
	if o, err := a.Begin(testCtx(t), k, dedupe.Fingerprint{}); o != nil || err != nil {
		t.Fatal(o, err)
	}
	// The lease is refreshed while node a lives.
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	if _, err := b.Begin(ctx, k, dedupe.Fingerprint{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("b did not wait for a live claim: %v", err)
	}
	anc.Close() // node a dies
	start := time.Now()
	if o, err := b.Begin(testCtx(t), k, dedupe.Fingerprint{}); o != nil || err != nil {
		t.Fatalf("after a died: %v, %v; want a claim", o, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took over after %v", d)
	}
	b.Finish(testCtx(t), k, &dedupe.Outcome{})
	a.Finish(testCtx(t), k, &dedupe.Outcome{}) // stale: fails, harmlessly
}

// node is a protows server whose window is the shared bucket.
type node struct {
	addr string
	srv  *transport.Server
	hs   *http.Server
	done chan struct{}
}

type runs struct {
	mu sync.Mutex
	n  map[string]int
}

func (r *runs) count(next router.HandlerFunc) router.HandlerFunc {
	return func(ctx context.Context, call *router.Call) (proto.Message, error) {
		res, err := next(ctx, call)
		if req, ok := call.Request.(*testv1.EchoRequest); ok && err == nil {
			r.mu.Lock()
			r.n[req.GetText()]++
			n := r.n[req.GetText()]
			r.mu.Unlock()
			res.(*testv1.EchoResponse).Text = fmt.Sprintf("%s#%d", req.GetText(), n)
		}
		return res, err
	}
}

func startNode(t *testing.T, store dedupe.Store, r *runs) *node {
	t.Helper()
	rt := router.New(router.WithLogger(slog.New(slog.DiscardHandler)), router.WithInterceptors(r.count))
	if err := testservice.Register(rt); err != nil {
		t.Fatal(err)
	}
	n := &node{srv: transport.NewServer(rt, transport.Config{Dedupe: store, Logger: slog.New(slog.DiscardHandler)}), done: make(chan struct{})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n.addr = ln.Addr().String()
	n.hs = &http.Server{Handler: n.srv, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		defer close(n.done)
		_ = n.hs.Serve(ln)
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = n.hs.Shutdown(ctx)
		_ = n.srv.Shutdown(ctx)
		<-n.done
	})
	return n
}

// TestFailoverExactlyOnce: node a runs a keyed call, but its reply is lost
// with the connection; the client reconnects to node b, which answers the
// call's next send from the shared window. The handler ran once.
func TestFailoverExactlyOnce(t *testing.T) {
	ns := startNATS(t)
	for _, cd := range []codec.Codec{codec.Proto(), codec.JSON()} {
		t.Run(cd.Name(), func(t *testing.T) {
			sa, _ := newStore(t, ns, natsdedupe.Config{Bucket: "failover_" + map[bool]string{true: "p", false: "j"}[cd.Binary()]})
			sb, _ := newStore(t, ns, natsdedupe.Config{Bucket: "failover_" + map[bool]string{true: "p", false: "j"}[cd.Binary()]})
			r := &runs{n: make(map[string]int)}
			a, b := startNode(t, sa, r), startNode(t, sb, r)
			px, err := faultproxy.New(a.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer px.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c, err := client.Dial(ctx, px.URL("/"), client.WithCodec(cd),
				client.WithBackoff(client.Backoff{Initial: 10 * time.Millisecond, Max: 50 * time.Millisecond}))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			for c.RTT() == 0 {
				time.Sleep(time.Millisecond)
			}
			px.Retarget(b.addr) // the next connection reaches node b
			px.DropNextReply()
			res, err := client.CallUnary[testv1.EchoResponse](ctx, c, testservice.EchoMethod,
				&testv1.EchoRequest{Text: "transfer"}, client.ExactlyOnce())
			if err != nil {
				t.Fatal(err)
			}
			r.mu.Lock()
			n := r.n["transfer"]
			r.mu.Unlock()
			if res.GetText() != "transfer#1" || n != 1 {
				t.Errorf("reply %q, %d runs; want the first run's reply and one run", res.GetText(), n)
			}
			if px.Accepted() != 2 || px.Dropped() != 1 {
				t.Errorf("%d connections, %d drops", px.Accepted(), px.Dropped())
			}
		})
	}
}
