package client_test

// Tests against the real server (transport, router and the test service),
// in process. The client package itself never imports them.

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/protows/protows"
	"github.com/protows/protows/client"
	"github.com/protows/protows/codec"
	testv1 "github.com/protows/protows/gen/go/protows/test/v1"
	"github.com/protows/protows/internal/memnet"
	"github.com/protows/protows/internal/testservice"
	"github.com/protows/protows/router"
	"github.com/protows/protows/transport"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

const (
	failMethod   = "/protows.test.v1.TestService/Fail"
	whoamiMethod = "/protows.test.v1.TestService/Whoami"
)

// recMetrics records what the server saw, for assertions on its side.
type recMetrics struct {
	transport.NopMetrics
	mu       sync.Mutex
	closes   []int
	outcomes map[string][]string // method -> outcomes
	dropped  atomic.Int32
	changed  chan struct{} // gets a value after each record
}

func newRecMetrics() *recMetrics { return &recMetrics{changed: make(chan struct{}, 1)} }

func (m *recMetrics) notify() {
	select {
	case m.changed <- struct{}{}:
	default:
	}
}

func (m *recMetrics) ConnClosed(_ string, code int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closes = append(m.closes, code)
	m.notify()
}

func (m *recMetrics) CallDone(method, outcome string, _ time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.outcomes == nil {
		m.outcomes = make(map[string][]string)
	}
	m.outcomes[method] = append(m.outcomes[method], outcome)
	m.notify()
}

func (m *recMetrics) SendQueueDropped() {
	m.dropped.Add(1)
	m.notify()
}

// waitFor waits until cond holds, checking it again after each record.
func (m *recMetrics) waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for !cond() {
		select {
		case <-m.changed:
		case <-timeout:
			t.Fatalf("the server never recorded %s", what)
		}
	}
}

func (m *recMetrics) closeCodes() []int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]int(nil), m.closes...)
}

func (m *recMetrics) outcomesOf(method string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.outcomes[method]...)
}

// realServer is the test service on the real transport, on loopback or on
// an in-memory network (startMemReal).
type realServer struct {
	addr       string
	mem        *memAddr // nil on loopback
	url        string
	ws         *transport.Server
	hs         *http.Server
	served     chan error
	handshakes atomic.Int32
	metrics    *recMetrics
	running    atomic.Int32 // calls whose handler runs
	stopped    bool
}

// startReal starts a server on addr ("127.0.0.1:0" for any port). A nil
// issuer serves anonymous connections.
func startReal(t testing.TB, addr string, cfg transport.Config, issuer *testservice.TokenIssuer) *realServer {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return serveReal(t, ln, nil, cfg, issuer)
}

// memAddr is an address of the in-memory network that servers take over
// in turn, as a restarted server takes its predecessor's port.
type memAddr struct {
	ln atomic.Pointer[memnet.Listener]
}

// DialContext connects to the server at a, if any.
func (a *memAddr) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	if ln := a.ln.Load(); ln != nil {
		return ln.DialContext(ctx, network, addr)
	}
	return nil, &net.OpError{Op: "dial", Net: network, Err: syscall.ECONNREFUSED}
}

// startMemReal is startReal on the in-memory address at (a new one when
// nil), for tests in a synctest bubble; dial it with s.dial.
func startMemReal(t testing.TB, at *memAddr, cfg transport.Config, issuer *testservice.TokenIssuer) *realServer {
	t.Helper()
	if at == nil {
		at = new(memAddr)
	}
	ln := memnet.Listen()
	at.ln.Store(ln)
	return serveReal(t, ln, at, cfg, issuer)
}

// dial connects a client to s, on s's network.
func (s *realServer) dial(t *testing.T, opts ...client.Option) *client.Client {
	t.Helper()
	if s.mem != nil {
		opts = append(opts, client.WithNetDial(s.mem.DialContext))
	}
	return dial(t, s.url, opts...)
}

func serveReal(t testing.TB, ln net.Listener, mem *memAddr, cfg transport.Config, issuer *testservice.TokenIssuer) *realServer {
	t.Helper()
	s := &realServer{mem: mem, metrics: newRecMetrics(), served: make(chan error, 1)}
	// Count the calls running, so that tests can wait for a call to
	// have started on the server.
	running := func(next router.HandlerFunc) router.HandlerFunc {
		return func(ctx context.Context, call *router.Call) (proto.Message, error) {
			s.running.Add(1)
			defer s.running.Add(-1)
			return next(ctx, call)
		}
	}
	r := router.New(router.WithLogger(slog.New(slog.DiscardHandler)), router.WithInterceptors(running))
	if err := testservice.Register(r); err != nil {
		t.Fatal(err)
	}
	cfg.Logger = slog.New(slog.DiscardHandler)
	cfg.Metrics = s.metrics
	if issuer != nil {
		cfg.Authenticator = issuer.Authenticator()
	}
	s.ws = transport.NewServer(r, cfg)
	s.addr = ln.Addr().String()
	s.url = "ws://" + s.addr + "/ws"
	mux := http.NewServeMux()
	mux.Handle("/ws", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.handshakes.Add(1)
		s.ws.ServeHTTP(w, r)
	}))
	s.hs = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { s.served <- s.hs.Serve(ln) }()
	t.Cleanup(func() { s.stop(t) })
	return s
}

// stop shuts the server down gracefully: running calls finish, then every
// connection closes with 1001.
func (s *realServer) stop(t testing.TB) {
	t.Helper()
	if err := s.shutdown(5 * time.Second); err != nil {
		t.Errorf("server shutdown: %v", err)
	}
}

// stopWithin shuts the server down, dropping the connections still busy
// after d.
func (s *realServer) stopWithin(t testing.TB, d time.Duration) {
	t.Helper()
	if err := s.shutdown(d); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("server shutdown: %v", err)
	}
}

func (s *realServer) shutdown(d time.Duration) error {
	if s.stopped {
		return nil
	}
	s.stopped = true
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	s.hs.Shutdown(ctx)
	err := s.ws.Shutdown(ctx)
	<-s.served
	return err
}

func TestRealCalls(t *testing.T) {
	t.Parallel()
	forCodecs(t, func(t *testing.T, cd codec.Codec) {
		srv := startReal(t, "127.0.0.1:0", transport.Config{}, nil)
		c := dial(t, srv.url, client.WithCodec(cd))
		ctx := testCtx(t)

		res, err := client.CallUnary[testv1.EchoResponse](ctx, c, echoMethod, &testv1.EchoRequest{Text: "héllo <&>"})
		if err != nil || res.GetText() != "héllo <&>" {
			t.Errorf("Echo: %v, %v", res, err)
		}
		_, err = client.CallUnary[testv1.FailResponse](ctx, c, failMethod,
			&testv1.FailRequest{Code: uint32(protows.CodeAlreadyExists), Message: "dup"})
		if protows.CodeOf(err) != protows.CodeAlreadyExists {
			t.Errorf("Fail: %v", err)
		}
		_, err = client.CallUnary[testv1.EchoResponse](ctx, c, "/protows.test.v1.TestService/Nope", &testv1.EchoRequest{})
		if protows.CodeOf(err) != protows.CodeUnimplemented {
			t.Errorf("unknown method: %v", err)
		}
		who, err := client.CallUnary[testv1.WhoamiResponse](ctx, c, whoamiMethod, &testv1.WhoamiRequest{})
		if err != nil || who.GetSubprotocol() != cd.Name() || who.GetSubject() != "" {
			t.Errorf("Whoami: %v, %v", who, err)
		}
		st, err := client.CallServerStream[testv1.CountResponse](ctx, c, countMethod,
			&testv1.CountRequest{Count: 50, FailCode: uint32(protows.CodeDataLoss)})
		if err != nil {
			t.Fatal(err)
		}
		n := uint32(0)
		for st.Receive() {
			n++
			if st.Msg().GetN() != n {
				t.Fatalf("message %d is %d", n, st.Msg().GetN())
			}
		}
		if n != 50 || protows.CodeOf(st.Err()) != protows.CodeDataLoss {
			t.Errorf("Count: %d messages, Err() = %v", n, st.Err())
		}
		// Many concurrent calls share the connection (and get batched).
		var wg sync.WaitGroup
		errs := make(chan error, 200)
		for i := range 200 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				text := string(rune('a' + i%26))
				res, err := client.CallUnary[testv1.EchoResponse](ctx, c, echoMethod, &testv1.EchoRequest{Text: text})
				if err == nil && res.GetText() != text {
					err = errors.New("wrong reply " + res.GetText())
				}
				if err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if rtt := c.RTT(); rtt <= 0 {
			t.Errorf("RTT = %v", rtt)
		}
	})
}

// TestRealMessageSizes: replies of very different sizes one after the
// other, around the sizes the reader's buffer is allocated for (the
// previous message's), each read whole and intact.
func TestRealMessageSizes(t *testing.T) {
	t.Parallel()
	forCodecs(t, func(t *testing.T, cd codec.Codec) {
		srv := startReal(t, "127.0.0.1:0", transport.Config{}, nil)
		c := dial(t, srv.url, client.WithCodec(cd))
		for i, size := range []int{0, 10, 500, 500, 501, 499, 100 << 10, 1, 300 << 10, 300 << 10, 700, 64 << 10} {
			pad := bytes.Repeat([]byte{byte('a' + i)}, size)
			res, err := client.CallUnary[testv1.EchoResponse](testCtx(t), c, echoMethod, &testv1.EchoRequest{Padding: pad})
			if err != nil {
				t.Fatalf("call %d (%d bytes): %v", i, size, err)
			}
			if !bytes.Equal(res.GetPadding(), pad) {
				t.Fatalf("call %d: %d bytes back, want %d", i, len(res.GetPadding()), size)
			}
		}
	})
}

// TestRealSlowReply: a reply slower than the call's deadline. The call
// returns deadline_exceeded at the deadline, and the server's handler is
// cancelled (its outcome is "canceled") instead of running to the end.
func TestRealSlowReply(t *testing.T) {
	t.Parallel()
	forCodecs(t, func(t *testing.T, cd codec.Codec) {
		synctest.Test(t, func(t *testing.T) { testRealSlowReply(t, cd) })
	})
}

func testRealSlowReply(t *testing.T, cd codec.Codec) {
	srv := startMemReal(t, nil, transport.Config{}, nil)
	c := srv.dial(t, client.WithCodec(cd))
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := client.CallUnary[testv1.SleepResponse](ctx, c, sleepMethod,
		&testv1.SleepRequest{Delay: durationpb.New(30 * time.Second)})
	if protows.CodeOf(err) != protows.CodeDeadlineExceeded {
		t.Fatalf("err = %v, want deadline_exceeded", err)
	}
	if d := time.Since(start); d != 150*time.Millisecond {
		t.Errorf("returned after %v, want at the deadline, 150ms", d)
	}
	srv.metrics.waitFor(t, "the outcome of Sleep", func() bool { return len(srv.metrics.outcomesOf(sleepMethod)) > 0 })
	// The request carried the time left (timeout_ms): the server's own
	// deadline and the client's CANCEL end the handler at the same moment,
	// whichever the server sees first.
	if got := srv.metrics.outcomesOf(sleepMethod); len(got) != 1 || got[0] != "canceled" && got[0] != "deadline_exceeded" {
		t.Errorf("server outcomes of Sleep: %v, want [canceled] or [deadline_exceeded]", got)
	}
	// The connection carries on.
	if _, err := client.CallUnary[testv1.EchoResponse](testCtx(t), c, echoMethod, &testv1.EchoRequest{}); err != nil {
		t.Error(err)
	}
}

// TestRealRestart: the server goes away under an open stream (its graceful
// shutdown waits for running calls, so an endless stream makes it drop the
// connection at its deadline) and a new one starts on the same address. The
// client reconnects, and the stream continues with a gap, from 1.
func TestRealRestart(t *testing.T) {
	t.Parallel()
	forCodecs(t, func(t *testing.T, cd codec.Codec) {
		synctest.Test(t, func(t *testing.T) { testRealRestart(t, cd) })
	})
}

func testRealRestart(t *testing.T, cd codec.Codec) {
	srv := startMemReal(t, nil, transport.Config{}, nil)
	states := make(chan stateChange, 16)
	c := srv.dial(t, append(fastOptions(states), client.WithCodec(cd))...)
	ctx := testCtx(t)
	st, err := client.CallServerStream[testv1.CountResponse](ctx, c, countMethod,
		&testv1.CountRequest{Interval: durationpb.New(5 * time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3 && st.Receive(); i++ {
	}
	srv.stopWithin(t, 100*time.Millisecond)
	sc := waitState(t, states, client.StateReconnecting)
	if !errors.Is(sc.err, client.ErrConnectionLost) {
		t.Errorf("reconnecting because of %v", sc.err)
	}
	srv2 := startMemReal(t, srv.mem, transport.Config{}, nil)
	_, first := readUntilGap(t, st)
	if first != 1 {
		t.Errorf("first message after the restart is %d, want 1", first)
	}
	if n := srv2.handshakes.Load(); n != 1 {
		t.Errorf("%d handshakes on the new server, want 1", n)
	}
	st.Close()
}

// TestRealShutdown: a graceful shutdown lets the running call finish, then
// closes with 1001; the client reconnects at once to the server that
// replaces it.
func TestRealShutdown(t *testing.T) {
	t.Parallel()
	forCodecs(t, func(t *testing.T, cd codec.Codec) {
		synctest.Test(t, func(t *testing.T) { testRealShutdown(t, cd) })
	})
}

func testRealShutdown(t *testing.T, cd codec.Codec) {
	srv := startMemReal(t, nil, transport.Config{}, nil)
	states := make(chan stateChange, 16)
	c := srv.dial(t, append(fastOptions(states), client.WithCodec(cd))...)
	slow := make(chan error, 1)
	go func() {
		_, err := client.CallUnary[testv1.SleepResponse](testCtx(t), c, sleepMethod,
			&testv1.SleepRequest{Delay: durationpb.New(200 * time.Millisecond)})
		slow <- err
	}()
	synctest.Wait() // the call is sent and its handler sleeps
	if n := srv.running.Load(); n != 1 {
		t.Fatalf("%d calls running on the server, want 1", n)
	}
	srv.stop(t)
	if err := <-slow; err != nil {
		t.Errorf("call running during the shutdown: %v", err)
	}
	sc := waitState(t, states, client.StateReconnecting)
	if !strings.Contains(sc.err.Error(), "1001") {
		t.Errorf("reconnecting because of %v, want close 1001", sc.err)
	}
	if codes := srv.metrics.closeCodes(); len(codes) != 1 || codes[0] != 1001 {
		t.Errorf("server closed with %v, want [1001]", codes)
	}
	startMemReal(t, srv.mem, transport.Config{}, nil)
	waitState(t, states, client.StateConnected)
	if _, err := client.CallUnary[testv1.EchoResponse](testCtx(t), c, echoMethod, &testv1.EchoRequest{}); err != nil {
		t.Error(err)
	}
}

// TestRealHalfOpen: the link to the real server goes silent; the heartbeat
// finds out within interval + timeout and the client reconnects.
func TestRealHalfOpen(t *testing.T) {
	t.Parallel()
	synctest.Test(t, testRealHalfOpen)
}

func testRealHalfOpen(t *testing.T) {
	srv := startMemReal(t, nil, transport.Config{}, nil)
	proxy := newMemFreezeProxy(t, srv.mem.ln.Load())
	const interval, timeout = 100 * time.Millisecond, 150 * time.Millisecond
	states := make(chan stateChange, 16)
	c := proxy.dial(t, "/ws", append(fastOptions(states), client.WithHeartbeat(interval, timeout))...)
	proxy.freeze()
	frozen := time.Now()
	waitState(t, states, client.StateReconnecting)
	// Exact bounds on the bubble's clock, as in TestHalfOpen.
	d, tick := time.Since(frozen), min(interval, timeout)/4
	if d <= timeout || d > interval+timeout+2*tick {
		t.Errorf("detected after %v, want after %v and within %v", d, timeout, interval+timeout+2*tick)
	}
	waitState(t, states, client.StateConnected)
	if _, err := client.CallUnary[testv1.EchoResponse](testCtx(t), c, echoMethod, &testv1.EchoRequest{}); err != nil {
		t.Error(err)
	}
}

// TestRealFrozenLink: the link stops moving (a proxy holds the server's
// bytes) while replies pile up. Replies wait for room in the server's send
// queue (back-pressure, docs/PROTOCOL.md section 4.7) instead of
// overflowing it, so there is no 4008: the server's blocked write misses
// its deadline and the connection drops (1006). When the link moves again,
// the client reconnects and resubscribes. The fake-server test
// TestResubscribe covers a 4008 close frame that arrives.
func TestRealFrozenLink(t *testing.T) {
	t.Parallel()
	synctest.Test(t, testRealFrozenLink)
}

func testRealFrozenLink(t *testing.T) {
	srv := startMemReal(t, nil, transport.Config{SendQueue: 16, WriteTimeout: 200 * time.Millisecond}, nil)
	proxy := newMemFreezeProxy(t, srv.mem.ln.Load())
	c := proxy.dial(t, "/ws", fastOptions(nil)...)
	st, err := client.CallServerStream[testv1.CountResponse](testCtx(t), c, countMethod,
		&testv1.CountRequest{Interval: durationpb.New(time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	if !st.Receive() {
		t.Fatal(st.Err())
	}
	proxy.pause()
	// 100 replies of 64 KiB are more than the socket buffers hold.
	var wg sync.WaitGroup
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client.CallUnary[testv1.EchoResponse](testCtx(t), c, echoMethod, &testv1.EchoRequest{Padding: make([]byte, 64<<10)})
		}()
	}
	srv.metrics.waitFor(t, "the blocked write to time out", func() bool { return len(srv.metrics.closeCodes()) > 0 })
	if d := srv.metrics.dropped.Load(); d != 0 {
		t.Errorf("the server's send queue overflowed %d times: replies should wait", d)
	}
	proxy.resume()
	_, first := readUntilGap(t, st)
	if first != 1 {
		t.Errorf("first message after the gap is %d, want 1", first)
	}
	// The server records the close when the connection's goroutines ended.
	srv.metrics.waitFor(t, "a close", func() bool { return len(srv.metrics.closeCodes()) > 0 })
	codes := srv.metrics.closeCodes()
	t.Logf("server close codes %v", codes)
	if len(codes) == 0 || codes[0] != 1006 {
		t.Errorf("server close codes %v, want 1006 first (the write timed out)", codes)
	}
	st.Close()
	wg.Wait()
}

// tokenSource mints tokens from issuer and counts the calls. fail makes
// the given calls (1-based) fail.
type tokenSource struct {
	issuer *testservice.TokenIssuer
	ttl    time.Duration
	calls  atomic.Int32
	fail   map[int32]bool
}

func (ts *tokenSource) get(context.Context) (string, time.Time, error) {
	n := ts.calls.Add(1)
	if ts.fail[n] {
		return "", time.Time{}, errors.New("token service down")
	}
	tok, exp, err := ts.issuer.Mint("alice", ts.ttl)
	// A JWT's expiry is in whole seconds, truncated.
	return tok, exp.Truncate(time.Second), err
}

// TestRealBadToken: a rejected token is not retried without a new one.
// In the handshake (HTTP 401): Dial fails once. In band (no token in the
// handshake, so the server closes with 4501 after its deadline): the client
// stops. Either way the server sees exactly one handshake.
func TestRealBadToken(t *testing.T) {
	t.Parallel()
	issuer, err := testservice.NewTokenIssuer()
	if err != nil {
		t.Fatal(err)
	}
	t.Run("handshake", func(t *testing.T) {
		srv := startReal(t, "127.0.0.1:0", transport.Config{}, issuer)
		var calls atomic.Int32
		bad := func(context.Context) (string, time.Time, error) {
			calls.Add(1)
			return "not-a-jwt", time.Time{}, nil
		}
		_, err := client.Dial(testCtx(t), srv.url, append(fastOptions(nil), client.WithTokenSource(bad))...)
		if protows.CodeOf(err) != protows.CodeUnauthenticated {
			t.Fatalf("Dial: %v, want unauthenticated", err)
		}
		if n := srv.handshakes.Load(); n != 1 {
			t.Errorf("%d handshakes, want 1", n)
		}
	})
	t.Run("in band 4501", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) { testRealBadTokenInBand(t, issuer) })
	})
}

func testRealBadTokenInBand(t *testing.T, issuer *testservice.TokenIssuer) {
	srv := startMemReal(t, nil, transport.Config{AuthTimeout: 100 * time.Millisecond}, issuer)
	states := make(chan stateChange, 16)
	c := srv.dial(t, fastOptions(states)...)
	sc := waitState(t, states, client.StateClosed)
	if protows.CodeOf(sc.err) != protows.CodeUnauthenticated {
		t.Errorf("closed because of %v", sc.err)
	}
	_, err := client.CallUnary[testv1.EchoResponse](testCtx(t), c, echoMethod, &testv1.EchoRequest{})
	if protows.CodeOf(err) != protows.CodeUnauthenticated {
		t.Errorf("call: %v, want unauthenticated", err)
	}
	time.Sleep(time.Minute) // many backoff ceilings, on the bubble's clock
	if n := srv.handshakes.Load(); n != 1 {
		t.Errorf("%d handshakes, want 1", n)
	}
	if codes := srv.metrics.closeCodes(); len(codes) != 1 || codes[0] != 4501 {
		t.Errorf("server close codes %v, want [4501]", codes)
	}
}

// TestRealTokenRefresh: a token about to expire is replaced in band, on
// the same connection.
func TestRealTokenRefresh(t *testing.T) {
	t.Parallel()
	synctest.Test(t, testRealTokenRefresh)
}

func testRealTokenRefresh(t *testing.T) {
	issuer, err := testservice.NewTokenIssuer()
	if err != nil {
		t.Fatal(err)
	}
	srv := startMemReal(t, nil, transport.Config{}, issuer)
	ts := &tokenSource{issuer: issuer, ttl: 3 * time.Second}
	c := srv.dial(t, append(fastOptions(nil), client.WithTokenSource(ts.get))...)
	before, err := client.CallUnary[testv1.WhoamiResponse](testCtx(t), c, whoamiMethod, &testv1.WhoamiRequest{})
	if err != nil {
		t.Fatal(err)
	}
	// Past 3 s (on the bubble's clock) the first token is dead.
	time.Sleep(3100 * time.Millisecond)
	after, err := client.CallUnary[testv1.WhoamiResponse](testCtx(t), c, whoamiMethod, &testv1.WhoamiRequest{})
	if err != nil || after.GetSubject() != "alice" {
		t.Fatalf("Whoami: %v, %v", after, err)
	}
	if before.GetConnectionId() != after.GetConnectionId() || srv.handshakes.Load() != 1 {
		t.Errorf("connection %s became %s after %d handshakes; want one connection, refreshed in band",
			before.GetConnectionId(), after.GetConnectionId(), srv.handshakes.Load())
	}
	if n := ts.calls.Load(); n < 2 {
		t.Errorf("token source asked %d times, want at least 2", n)
	}
}

// TestRealTokenExpired: when the refresh fails, the server closes with
// 4009 at expiry; the client gets a new token and reconnects with it.
func TestRealTokenExpired(t *testing.T) {
	t.Parallel()
	synctest.Test(t, testRealTokenExpired)
}

func testRealTokenExpired(t *testing.T) {
	issuer, err := testservice.NewTokenIssuer()
	if err != nil {
		t.Fatal(err)
	}
	srv := startMemReal(t, nil, transport.Config{}, issuer)
	ts := &tokenSource{issuer: issuer, ttl: time.Second, fail: map[int32]bool{2: true}}
	states := make(chan stateChange, 16)
	c := srv.dial(t, append(fastOptions(states), client.WithTokenSource(ts.get))...)
	sc := waitState(t, states, client.StateReconnecting)
	t.Logf("reconnecting: %v", sc.err)
	waitState(t, states, client.StateConnected)
	who, err := client.CallUnary[testv1.WhoamiResponse](testCtx(t), c, whoamiMethod, &testv1.WhoamiRequest{})
	if err != nil || who.GetSubject() != "alice" {
		t.Fatalf("Whoami: %v, %v", who, err)
	}
	if codes := srv.metrics.closeCodes(); len(codes) != 1 || codes[0] != 4009 {
		t.Errorf("server close codes %v, want [4009]", codes)
	}
	if n := ts.calls.Load(); n != 3 {
		t.Errorf("token source asked %d times, want 3 (dial, failed refresh, after 4009)", n)
	}
}
