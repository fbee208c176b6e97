package client_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/protows/protows"
	"github.com/protows/protows/client"
	"github.com/protows/protows/codec"
	"github.com/protows/protows/dedupe"
	testv1 "github.com/protows/protows/gen/go/protows/test/v1"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"github.com/protows/protows/internal/faultproxy"
	"github.com/protows/protows/internal/testservice"
	"github.com/protows/protows/router"
	"github.com/protows/protows/transport"
	"google.golang.org/protobuf/proto"
)

// onceServer serves TestService and counts the runs of the Echo handler
// per request text; each Echo reply says which run produced it, so that a
// client can tell the first run's reply from another's.
type onceServer struct {
	url   string
	addr  string
	srv   *transport.Server
	hs    *http.Server
	done  chan struct{}
	mu    sync.Mutex
	runs  map[string]int
	total atomic.Int64
	// slowEvery > 0 makes every slowEvery-th run sleep up to 1 ms.
	slowEvery int64
	// metrics counts the calls that ended on the server, whether their
	// handler ran or their outcome came from the window.
	metrics *recMetrics
}

func startOnce(t testing.TB, cfg transport.Config, auth *testservice.TokenIssuer) *onceServer {
	t.Helper()
	s := &onceServer{runs: make(map[string]int), done: make(chan struct{}), metrics: newRecMetrics()}
	count := func(next router.HandlerFunc) router.HandlerFunc {
		return func(ctx context.Context, call *router.Call) (proto.Message, error) {
			if s.slowEvery > 0 && s.total.Load()%s.slowEvery == 0 {
				time.Sleep(time.Duration(rand.Int64N(int64(time.Millisecond))))
			}
			res, err := next(ctx, call)
			if req, ok := call.Request.(*testv1.FailRequest); ok {
				s.mu.Lock()
				s.runs["fail:"+req.GetMessage()]++
				s.mu.Unlock()
			}
			if req, ok := call.Request.(*testv1.EchoRequest); ok && err == nil {
				s.mu.Lock()
				s.runs[req.GetText()]++
				n := s.runs[req.GetText()]
				s.mu.Unlock()
				s.total.Add(1)
				res.(*testv1.EchoResponse).Text = fmt.Sprintf("%s#%d", req.GetText(), n)
			}
			return res, err
		}
	}
	r := router.New(router.WithLogger(slog.New(slog.DiscardHandler)), router.WithInterceptors(count))
	if err := testservice.Register(r); err != nil {
		t.Fatal(err)
	}
	cfg.Logger = slog.New(slog.DiscardHandler)
	cfg.Metrics = s.metrics
	if auth != nil {
		cfg.Authenticator = auth.Authenticator()
	}
	s.srv = transport.NewServer(r, cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	s.url = "ws://" + s.addr + "/"
	s.hs = &http.Server{Handler: s.srv, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		defer close(s.done)
		_ = s.hs.Serve(ln)
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.hs.Shutdown(ctx)
		_ = s.srv.Shutdown(ctx)
		<-s.done
	})
	return s
}

func (s *onceServer) runsOf(text string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.runs[text]
}

func newProxy(t testing.TB, target string) *faultproxy.Proxy {
	t.Helper()
	p, err := faultproxy.New(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// waitRTT waits for the first heartbeat round trip, so that nothing else
// is on its way from the server.
func waitRTT(t testing.TB, c *client.Client) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); c.RTT() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no heartbeat round trip")
		}
	}
}

func echoOnce(ctx context.Context, c *client.Client, text string, opts ...client.CallOption) (string, error) {
	res, err := client.CallUnary[testv1.EchoResponse](ctx, c, echoMethod, &testv1.EchoRequest{Text: text},
		append([]client.CallOption{client.ExactlyOnce()}, opts...)...)
	return res.GetText(), err
}

// TestExactlyOnceReplyLost cuts the connection after the handler ran but
// before its reply reached the client: the client sends the call again on
// the next connection, with the same key, and gets the first run's reply;
// the handler ran once.
func TestExactlyOnceReplyLost(t *testing.T) {
	forCodecs(t, func(t *testing.T, cd codec.Codec) {
		srv := startOnce(t, transport.Config{}, nil)
		px := newProxy(t, srv.addr)
		c := dial(t, px.URL("/"), append(fastOptions(nil), client.WithCodec(cd))...)
		waitRTT(t, c)
		px.DropNextReply()
		got, err := echoOnce(testCtx(t), c, "pay 10")
		if err != nil {
			t.Fatal(err)
		}
		if got != "pay 10#1" || srv.runsOf("pay 10") != 1 {
			t.Errorf("reply %q, handler ran %d times; want the first run's reply and one run", got, srv.runsOf("pay 10"))
		}
		if px.Dropped() != 1 || px.Accepted() != 2 {
			t.Errorf("%d drops, %d connections; want the reply dropped and a second connection", px.Dropped(), px.Accepted())
		}
		// The server records a call just after it answered it.
		srv.metrics.waitFor(t, "two sends of Echo", func() bool { return len(srv.metrics.outcomesOf(echoMethod)) >= 2 })
		if got := srv.metrics.outcomesOf(echoMethod); len(got) != 2 {
			t.Errorf("the server answered %d sends (%v), want 2", len(got), got)
		}
		// Without a key, the same loss fails the call: its outcome is
		// unknown.
		waitRTT(t, c)
		time.Sleep(20 * time.Millisecond) // the new connection's first PONG
		px.DropNextReply()
		_, err = client.CallUnary[testv1.EchoResponse](testCtx(t), c, echoMethod, &testv1.EchoRequest{Text: "plain"})
		if !errors.Is(err, client.ErrConnectionLost) || srv.runsOf("plain") != 1 {
			t.Errorf("plain call: %v, %d runs; want connection lost after one run", err, srv.runsOf("plain"))
		}
	})
}

// TestExactlyOnceWhileDisconnected: calls made while the client is
// disconnected wait in the outbox and are sent, in the order they were
// made, once it is connected again.
func TestExactlyOnceWhileDisconnected(t *testing.T) {
	srv := startOnce(t, transport.Config{}, nil)
	px := newProxy(t, srv.addr)
	states := make(chan stateChange, 64)
	c := dial(t, px.URL("/"), append(fastOptions(states), client.WithBackoff(client.Backoff{Initial: 300 * time.Millisecond, Max: 300 * time.Millisecond}))...)
	px.CutAll()
	waitState(t, states, client.StateReconnecting)
	const n = 5
	var wg sync.WaitGroup
	replies := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			replies[i], errs[i] = echoOnce(testCtx(t), c, fmt.Sprintf("offline %d", i))
		}()
		time.Sleep(5 * time.Millisecond) // make the calls in a known order
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || replies[i] != fmt.Sprintf("offline %d#1", i) {
			t.Errorf("call %d: %q, %v", i, replies[i], errs[i])
		}
	}
	if got := srv.total.Load(); got != n {
		t.Errorf("%d handler runs, want %d", got, n)
	}
}

// newKeyForm is the form of the keys the client makes: 128 random bits,
// base64url without padding.
var newKeyForm = regexp.MustCompile(`^[A-Za-z0-9_-]{22}$`)

// TestExactlyOnceOrder: a server that reads a connection's requests in
// order (a fake) sees the keyed calls in the order they were made, on the
// first connection and again, with the same keys, on the next one after a
// drop.
func TestExactlyOnceOrder(t *testing.T) {
	forCodecs(t, func(t *testing.T, cd codec.Codec) {
		const n = 20
		type sent struct{ text, key string }
		seen := make(chan []sent, 2)
		fs := newFakeServer(t, func(fc *fakeConn) {
			var got []sent
			fc.serve(func(env *protowsv1.Envelope) {
				if env.GetKind() != protowsv1.Kind_KIND_REQUEST {
					return
				}
				var req testv1.EchoRequest
				if err := fc.codec.UnmarshalPayload(env.GetPayload(), &req); err != nil {
					t.Error(err)
				}
				got = append(got, sent{req.GetText(), env.GetIdempotencyKey()})
				if fc.n > 1 {
					p, _ := fc.codec.AppendPayload(nil, &testv1.EchoResponse{Text: req.GetText()})
					fc.write(&protowsv1.Envelope{Id: env.GetId(), Kind: protowsv1.Kind_KIND_REPLY, Payload: p})
				}
				if len(got) == n {
					seen <- got
					if fc.n == 1 {
						fc.drop() // no answer on the first connection
					}
				}
			})
		})
		c := dial(t, fs.url, append(fastOptions(nil), client.WithCodec(cd))...)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := echoOnce(testCtx(t), c, fmt.Sprint(i)); err != nil {
					t.Error(err)
				}
			}()
			// The next call is made once this one is in the outbox.
			for client.OutboxLen(c) < i+1 {
				time.Sleep(50 * time.Microsecond)
			}
		}
		wg.Wait()
		first, second := <-seen, <-seen
		for i := range n {
			if first[i].text != fmt.Sprint(i) || second[i].text != fmt.Sprint(i) {
				t.Fatalf("order on the first connection %v, on the second %v", first, second)
			}
			if first[i].key == "" || second[i].key != first[i].key {
				t.Errorf("call %d: key %q, then %q", i, first[i].key, second[i].key)
			}
			if !newKeyForm.MatchString(first[i].key) {
				t.Errorf("call %d: key %q is not 128 bits of base64url (22 characters)", i, first[i].key)
			}
		}
		keys := make(map[string]bool)
		for _, s := range first {
			keys[s.key] = true
		}
		if len(keys) != n {
			t.Errorf("%d distinct keys for %d calls", len(keys), n)
		}
	})
}

// TestIdempotencyKeyScope: the same key from two principals names two
// calls; the same key with another request is refused with a clear error.
func TestIdempotencyKeyScope(t *testing.T) {
	issuer, err := testservice.NewTokenIssuer()
	if err != nil {
		t.Fatal(err)
	}
	forCodecs(t, func(t *testing.T, cd codec.Codec) {
		srv := startOnce(t, transport.Config{}, issuer)
		as := func(sub string) *client.Client {
			tok, exp, err := issuer.Mint(sub, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			return dial(t, srv.url, client.WithCodec(cd), client.WithTokenSource(func(context.Context) (string, time.Time, error) {
				return tok, exp, nil
			}))
		}
		alice, bob := as("alice"), as("bob")
		key := client.WithIdempotencyKey("order-42")
		a, err := echoOnce(testCtx(t), alice, "same", key)
		if err != nil {
			t.Fatal(err)
		}
		b, err := echoOnce(testCtx(t), bob, "same", key)
		if err != nil {
			t.Fatal(err)
		}
		if a != "same#1" || b != "same#2" {
			t.Errorf("alice got %q, bob got %q: want two runs", a, b)
		}
		// Alice again, same key, same request: the first outcome.
		if again, err := echoOnce(testCtx(t), alice, "same", key); err != nil || again != "same#1" {
			t.Errorf("alice's second send: %q, %v; want the first outcome", again, err)
		}
		// Alice, same key, another request: refused.
		_, err = echoOnce(testCtx(t), alice, "different", key)
		var perr *protows.Error
		if !errors.As(err, &perr) || perr.Code() != protows.CodeFailedPrecondition || srv.runsOf("different") != 0 {
			t.Fatalf("reused key: %v, %d runs; want failed_precondition and no run", err, srv.runsOf("different"))
		}
		if want := `idempotency key "order-42" was already used with a different request`; !contains(perr.Message(), want) {
			t.Errorf("message %q does not say %q", perr.Message(), want)
		}
		// Malformed keys are refused.
		for _, bad := range []string{"with space", string(make([]byte, 129))} {
			if _, err := echoOnce(testCtx(t), alice, "x", client.WithIdempotencyKey(bad)); protows.CodeOf(err) != protows.CodeInvalidArgument {
				t.Errorf("key %q: %v, want invalid_argument", bad, err)
			}
		}
	})
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// TestExactlyOnceUnderDrops makes many keyed calls while a proxy cuts the
// connections at random: every call is answered, and every handler ran
// exactly once: 10,000 calls in each codec (under a second, about three
// with the race detector; 1,000 with -short).
func TestExactlyOnceUnderDrops(t *testing.T) {
	calls := 10_000
	if testing.Short() {
		calls = 1_000
	}
	forCodecs(t, func(t *testing.T, cd codec.Codec) {
		// No rate limit: the proxy's drops are the faults under test. One
		// call in 8 takes up to a millisecond, so that some connections
		// are cut while a handler runs.
		srv := startOnce(t, transport.Config{RateLimit: -1}, nil)
		srv.slowEvery = 8
		px := newProxy(t, srv.addr)
		c := dial(t, px.URL("/"), client.WithCodec(cd),
			client.WithBackoff(client.Backoff{Initial: 5 * time.Millisecond, Max: 20 * time.Millisecond}))
		px.RandomDrops(40*time.Millisecond, 7)
		px.CutAll()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		start := time.Now()
		var wg sync.WaitGroup
		var failed atomic.Int64
		next := atomic.Int64{}
		for range 64 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := next.Add(1) - 1
					if i >= int64(calls) {
						return
					}
					text := fmt.Sprint("call ", i)
					got, err := echoOnce(ctx, c, text)
					if err != nil || got != text+"#1" {
						if failed.Add(1) < 5 {
							t.Errorf("%s: %q, %v", text, got, err)
						}
					}
				}
			}()
		}
		wg.Wait()
		srv.mu.Lock()
		defer srv.mu.Unlock()
		for text, n := range srv.runs {
			if n != 1 {
				t.Errorf("%q ran %d times", text, n)
			}
		}
		if len(srv.runs) != calls || failed.Load() != 0 {
			t.Errorf("%d calls ran, %d failed; want %d and 0", len(srv.runs), failed.Load(), calls)
		}
		sends := len(srv.metrics.outcomesOf(echoMethod))
		t.Logf("%s: %d calls in %v over %d connections (%d cut); the server answered %d sends, %d from the window",
			cd.Name(), calls, time.Since(start).Round(time.Millisecond), px.Accepted(), px.Dropped(), sends, sends-calls)
		if px.Dropped() < 5 || sends <= calls {
			t.Errorf("%d connections cut, %d sends answered: the faults were not exercised", px.Dropped(), sends)
		}
	})
}

// TestDedupeWindowBounded floods a server with unique keys: the memory
// window stays within its bounds.
func TestDedupeWindowBounded(t *testing.T) {
	store := dedupe.NewMemory(dedupe.MemoryConfig{MaxEntries: 200, MaxBytes: 64 << 10})
	srv := startOnce(t, transport.Config{Dedupe: store}, nil)
	c := dial(t, srv.url)
	var wg sync.WaitGroup
	var maxLen, maxBytes atomic.Int64
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				if _, err := echoOnce(testCtx(t), c, fmt.Sprintf("flood %d %d %s", g, i, make([]byte, 100))); err != nil {
					t.Error(err)
					return
				}
				// Running calls may take the window past its bound by
				// at most the calls in flight (16 here).
				if n := int64(store.Len()); n > maxLen.Load() {
					maxLen.Store(n)
				}
				if b := store.Bytes(); b > maxBytes.Load() {
					maxBytes.Store(b)
				}
			}
		}()
	}
	wg.Wait()
	if store.Len() > 200 || store.Bytes() > 64<<10 {
		t.Errorf("window holds %d keys, %d bytes; bounds 200 and %d", store.Len(), store.Bytes(), 64<<10)
	}
	if maxLen.Load() > 200+16 || maxBytes.Load() > 64<<10+16*1024 {
		t.Errorf("window peaked at %d keys, %d bytes", maxLen.Load(), maxBytes.Load())
	}
	if srv.total.Load() != 16*200 {
		t.Errorf("%d runs, want %d", srv.total.Load(), 16*200)
	}
}
