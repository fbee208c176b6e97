package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/protows/protows"
	"github.com/protows/protows/client"
	"github.com/protows/protows/codec"
	testv1 "github.com/protows/protows/gen/go/protows/test/v1"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
)

// streamServer answers Count requests with an endless stream, one message
// every tick, numbered from 1 on each connection, and echoes other
// requests. after, when set, runs in the connection's goroutine once the
// stream sent sendBefore messages (0: never).
func streamServer(t *testing.T, sendBefore int, after func(fc *fakeConn)) *fakeServer {
	return newFakeServer(t, streamHandler(sendBefore, after))
}

// streamHandler is the connection handler of streamServer.
func streamHandler(sendBefore int, after func(fc *fakeConn)) func(fc *fakeConn) {
	return func(fc *fakeConn) {
		streamID := make(chan uint32, 1)
		done := make(chan struct{})
		go func() {
			defer close(done)
			fc.serve(func(env *protowsv1.Envelope) {
				if env.GetKind() != protowsv1.Kind_KIND_REQUEST {
					return
				}
				if env.GetMethodId() == protows.MethodID(countMethod) || env.GetMethod() == countMethod {
					streamID <- env.GetId()
					return
				}
				fc.echo(env)
			})
		}()
		var id uint32
		select {
		case id = <-streamID:
		case <-done:
			return
		}
		for n := uint32(1); ; n++ {
			p, _ := fc.codec.AppendPayload(nil, &testv1.CountResponse{N: n})
			if fc.write(&protowsv1.Envelope{Id: id, Kind: protowsv1.Kind_KIND_STREAM_MESSAGE, Payload: p}) != nil {
				break
			}
			if int(n) == sendBefore && after != nil && fc.n == 1 {
				after(fc)
				break
			}
			select {
			case <-done:
			case <-time.After(5 * time.Millisecond):
				continue
			}
			break
		}
		<-done
	}
}

// readUntilGap reads the stream until the first message after a
// re-open and returns the numbers read before it and the message's number.
func readUntilGap(t *testing.T, st *client.ServerStream[testv1.CountResponse]) (before []uint32, first uint32) {
	t.Helper()
	for st.Receive() {
		if st.Gap() {
			return before, st.Msg().GetN()
		}
		before = append(before, st.Msg().GetN())
	}
	t.Fatalf("stream ended without a gap: %v", st.Err())
	return nil, 0
}

// TestResubscribe covers the server going away under an open stream in the
// ways the close-code table allows: a crash (no close frame), a restart
// (1001), a slow-consumer close (4008) and a token that expired (4009). In
// each, the stream is re-opened on the next connection and the reader sees
// no error, only Gap on the first message of the new connection.
func TestResubscribe(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		end  func(fc *fakeConn)
	}{
		{"crash", (*fakeConn).drop},
		{"restart 1001", func(fc *fakeConn) { fc.closeWith(1001, "restarting") }},
		{"slow consumer 4008", func(fc *fakeConn) { fc.closeWith(4008, "send queue full") }},
		{"internal 1011", func(fc *fakeConn) { fc.closeWith(1011, "oops") }},
	}
	for _, tt := range tests {
		forCodecs(t, func(t *testing.T, cd codec.Codec) {
			t.Run(tt.name, func(t *testing.T) {
				fs := streamServer(t, 3, tt.end)
				states := make(chan stateChange, 16)
				c := dial(t, fs.url, append(fastOptions(states), client.WithCodec(cd))...)
				st, err := client.CallServerStream[testv1.CountResponse](testCtx(t), c, countMethod, &testv1.CountRequest{})
				if err != nil {
					t.Fatal(err)
				}
				before, first := readUntilGap(t, st)
				if fmt.Sprint(before) != "[1 2 3]" || first != 1 {
					t.Errorf("read %v, then %d after the gap; want [1 2 3] then 1", before, first)
				}
				waitState(t, states, client.StateReconnecting)
				// Messages after the first of the new connection have no gap.
				if !st.Receive() || st.Gap() || st.Msg().GetN() != 2 {
					t.Errorf("second message after reconnect: n=%d gap=%v err=%v", st.Msg().GetN(), st.Gap(), st.Err())
				}
				if n := fs.accepted.Load(); n != 2 {
					t.Errorf("%d connections, want 2", n)
				}
				st.Close()
			})
		})
	}
}

// TestNoResubscribe: a stream opened with NoResubscribe ends with
// unavailable when the connection drops.
func TestNoResubscribe(t *testing.T) {
	t.Parallel()
	fs := streamServer(t, 2, (*fakeConn).drop)
	c := dial(t, fs.url, fastOptions(nil)...)
	st, err := client.CallServerStream[testv1.CountResponse](testCtx(t), c, countMethod, &testv1.CountRequest{}, client.NoResubscribe())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for st.Receive() {
		n++
	}
	if n != 2 || protows.CodeOf(st.Err()) != protows.CodeUnavailable || !errors.Is(st.Err(), client.ErrConnectionLost) {
		t.Errorf("read %d messages, Err() = %v; want 2 and unavailable", n, st.Err())
	}
}

// TestInFlightCalls: when the link drops under calls in flight, a plain call
// fails with unavailable (its outcome is unknown) and an idempotent one is
// sent again on the next connection and succeeds.
func TestInFlightCalls(t *testing.T) {
	t.Parallel()
	forCodecs(t, func(t *testing.T, cd codec.Codec) {
		var requests atomic.Int32
		firstRequest := make(chan struct{})
		fs := newFakeServer(t, func(fc *fakeConn) {
			fc.serve(func(env *protowsv1.Envelope) {
				if env.GetKind() != protowsv1.Kind_KIND_REQUEST {
					return
				}
				// The first connection takes two requests and drops.
				if fc.n == 1 {
					switch requests.Add(1) {
					case 1:
						close(firstRequest)
					case 2:
						fc.drop()
					}
					return
				}
				fc.echo(env)
			})
		})
		states := make(chan stateChange, 16)
		c := dial(t, fs.url, append(fastOptions(states), client.WithCodec(cd))...)
		plain := make(chan error, 1)
		go func() {
			_, err := client.CallUnary[testv1.EchoResponse](testCtx(t), c, echoMethod, &testv1.EchoRequest{Text: "plain"})
			plain <- err
		}()
		<-firstRequest
		res, err := client.CallUnary[testv1.EchoResponse](testCtx(t), c, echoMethod, &testv1.EchoRequest{Text: "again"}, client.Idempotent())
		if err != nil || res.GetText() != "again" {
			t.Errorf("idempotent call: %v, %v", res, err)
		}
		err = <-plain
		if protows.CodeOf(err) != protows.CodeUnavailable || !errors.Is(err, client.ErrConnectionLost) {
			t.Errorf("plain call: err = %v, want unavailable and ErrConnectionLost", err)
		}
		sc := waitState(t, states, client.StateReconnecting)
		if protows.CodeOf(sc.err) != protows.CodeUnavailable {
			t.Errorf("reconnecting because of %v", sc.err)
		}
	})
}

// TestCallWaitsWhileReconnecting: a call made while the client reconnects
// waits for the connection, within its context.
func TestCallWaitsWhileReconnecting(t *testing.T) {
	t.Parallel()
	synctest.Test(t, testCallWaitsWhileReconnecting)
}

func testCallWaitsWhileReconnecting(t *testing.T) {
	release := make(chan struct{})
	var handshakes atomic.Int32
	// The second handshake waits for release.
	fs := newMemFake(t, func(*http.Request) (int, string) {
		if handshakes.Add(1) == 2 {
			<-release
		}
		return 0, ""
	}, func(fc *fakeConn) {
		if fc.n == 1 {
			fc.drop()
			return
		}
		fc.serve(fc.echo)
	})
	states := make(chan stateChange, 16)
	c := fs.dial(t, fastOptions(states)...)
	waitState(t, states, client.StateReconnecting)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := client.CallUnary[testv1.EchoResponse](ctx, c, echoMethod, &testv1.EchoRequest{}); protows.CodeOf(err) != protows.CodeDeadlineExceeded {
		t.Errorf("call while down: %v, want deadline_exceeded", err)
	}
	if d := time.Since(start); d != 50*time.Millisecond {
		t.Errorf("call while down returned after %v, want its deadline, 50ms", d)
	}
	close(release)
	if _, err := client.CallUnary[testv1.EchoResponse](testCtx(t), c, echoMethod, &testv1.EchoRequest{}); err != nil {
		t.Errorf("call after reconnect: %v", err)
	}
}

// TestHalfOpen: a proxy between client and server stops forwarding without
// closing anything. The heartbeat notices within interval + timeout, and
// the client reconnects (through the proxy, which forwards new
// connections) and resubscribes.
func TestHalfOpen(t *testing.T) {
	t.Parallel()
	forCodecs(t, func(t *testing.T, cd codec.Codec) {
		synctest.Test(t, func(t *testing.T) { testHalfOpen(t, cd) })
	})
}

func testHalfOpen(t *testing.T, cd codec.Codec) {
	fs := newMemFake(t, nil, streamHandler(0, nil))
	proxy := newMemFreezeProxy(t, fs.mem.Listener)
	const interval, timeout = 100 * time.Millisecond, 200 * time.Millisecond
	states := make(chan stateChange, 16)
	c := proxy.dial(t, "/", append(fastOptions(states),
		client.WithCodec(cd), client.WithHeartbeat(interval, timeout))...)
	st, err := client.CallServerStream[testv1.CountResponse](testCtx(t), c, countMethod, &testv1.CountRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if !st.Receive() {
		t.Fatal(st.Err())
	}
	// Drain the stream in the background while the link is frozen.
	gap := make(chan uint32, 1)
	go func() {
		for st.Receive() {
			if st.Gap() {
				gap <- st.Msg().GetN()
				return
			}
		}
	}()
	proxy.freeze()
	frozen := time.Now()
	sc := waitState(t, states, client.StateReconnecting)
	detected := time.Since(frozen)
	// On the bubble's clock the bounds are exact: the next PING goes
	// out within interval and a tick of the heartbeat (a quarter of the
	// smaller of interval and timeout), and the first tick past its
	// timeout gives up.
	tick := min(interval, timeout) / 4
	if detected <= timeout || detected > interval+timeout+2*tick {
		t.Errorf("detected after %v, want after %v and within %v", detected, timeout, interval+timeout+2*tick)
	}
	if !errors.Is(sc.err, client.ErrConnectionLost) {
		t.Errorf("reconnecting because of %v", sc.err)
	}
	waitState(t, states, client.StateConnected)
	select {
	case n := <-gap:
		if n != 1 {
			t.Errorf("first message after the gap is %d, want 1", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("stream not resubscribed")
	}
	st.Close()
}

// TestCloseCodes checks the client's reaction to each class of close code
// (docs/CLIENTS.md): reconnect or stop, and with which error calls fail when
// it stops. Stopping means no second handshake, ever.
func TestCloseCodes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		code      int
		reconnect bool
		stopCode  protows.Code
	}{
		{1000, false, protows.CodeUnavailable},
		{1001, true, 0},
		{1002, false, protows.CodeInternal},
		{1003, false, protows.CodeInternal},
		{1007, false, protows.CodeInternal},
		{1009, false, protows.CodeInternal},
		{1011, true, 0},
		{1013, true, 0},
		{3000, true, 0},
		{4000, true, 0},
		{4002, true, 0},
		{4008, true, 0},
		{4029, true, 0},
		{4499, true, 0},
		{4501, false, protows.CodeUnauthenticated},
		{4503, false, protows.CodePermissionDenied},
		{4505, false, protows.CodeFailedPrecondition},
		{4999, false, protows.CodeUnavailable},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.code), func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				fs := newMemFake(t, nil, func(fc *fakeConn) {
					if fc.n == 1 {
						fc.closeWith(tt.code, "test")
						return
					}
					fc.serve(fc.echo)
				})
				states := make(chan stateChange, 16)
				c := fs.dial(t, fastOptions(states)...)
				if tt.reconnect {
					waitState(t, states, client.StateReconnecting)
					waitState(t, states, client.StateConnected)
					if _, err := client.CallUnary[testv1.EchoResponse](testCtx(t), c, echoMethod, &testv1.EchoRequest{}); err != nil {
						t.Errorf("call after reconnect: %v", err)
					}
					return
				}
				sc := waitState(t, states, client.StateClosed)
				if protows.CodeOf(sc.err) != tt.stopCode {
					t.Errorf("closed because of %v, want code %v", sc.err, tt.stopCode)
				}
				_, err := client.CallUnary[testv1.EchoResponse](testCtx(t), c, echoMethod, &testv1.EchoRequest{})
				if protows.CodeOf(err) != tt.stopCode {
					t.Errorf("call after stop: err = %v, want code %v", err, tt.stopCode)
				}
				// Many backoff periods later (on the bubble's clock), still
				// one handshake.
				time.Sleep(time.Minute)
				if n := fs.handshakes.Load(); n != 1 {
					t.Errorf("%d handshakes after close %d, want 1", n, tt.code)
				}
			})
		})
	}
}

// TestReconnectDelays: with a jitter source that always returns 0, the
// first attempt after 1001 (at once, with jitter) and after a dropped link
// (backoff) is immediate, while after 1013 and 4029 (overloaded, rate
// limited) it waits at least Initial.
func TestReconnectDelays(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		code  int // 0: drop without a close frame
		delay time.Duration
	}{
		{1001, 0},
		{0, 0},
		{1013, reconnectInitial},
		{4029, reconnectInitial},
	} {
		t.Run(fmt.Sprint(tt.code), func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) { testReconnectDelay(t, tt.code, tt.delay) })
		})
	}
}

// reconnectInitial is the backoff's Initial in TestReconnectDelays.
const reconnectInitial = 400 * time.Millisecond

func testReconnectDelay(t *testing.T, code int, delay time.Duration) {
	fs := newMemFake(t, nil, func(fc *fakeConn) {
		switch {
		case fc.n > 1:
			fc.serve(nil)
		case code == 0:
			fc.drop()
		default:
			fc.closeWith(code, "test")
		}
	})
	states := make(chan stateChange, 16)
	fs.dial(t, client.WithBackoff(client.Backoff{Initial: reconnectInitial}),
		client.WithStateFunc(func(s client.State, err error) { states <- stateChange{s, err} }),
		client.WithRand(func(int64) int64 { return 0 }))
	waitState(t, states, client.StateReconnecting)
	start := time.Now()
	waitState(t, states, client.StateConnected)
	// On the bubble's clock, dialing takes no time.
	if d := time.Since(start); d != delay {
		t.Errorf("reconnected after %v, want %v", d, delay)
	}
}

// TestBackoffGrowsAndResets: with the jitter at its maximum, the delays
// between attempts are the backoff ceilings: they double while connections
// fail at once, and start again from Initial after a connection stayed up
// for ResetAfter.
func TestBackoffGrowsAndResets(t *testing.T) {
	t.Parallel()
	synctest.Test(t, testBackoffGrowsAndResets)
}

func testBackoffGrowsAndResets(t *testing.T) {
	const initial = 100 * time.Millisecond
	var (
		mu    sync.Mutex
		times []time.Time
	)
	dropped := make(chan time.Time, 8)
	fs := newMemFake(t, func(*http.Request) (int, string) {
		mu.Lock()
		times = append(times, time.Now())
		mu.Unlock()
		return 0, ""
	}, func(fc *fakeConn) {
		switch fc.n {
		case 1, 2, 3: // fail at once
		case 4: // healthy for longer than ResetAfter, then fail
			time.Sleep(3 * initial)
		default:
			fc.serve(nil)
			return
		}
		dropped <- time.Now()
		fc.drop()
	})
	states := make(chan stateChange, 16)
	fs.dial(t, client.WithBackoff(client.Backoff{Initial: initial, Max: time.Second, Multiplier: 2, ResetAfter: 2 * initial}),
		client.WithRand(func(n int64) int64 { return n - 1 }),
		client.WithStateFunc(func(s client.State, err error) { states <- stateChange{s, err} }))
	var drops []time.Time
	for range 4 {
		drops = append(drops, <-dropped)
	}
	for range 5 { // the fifth connection is up
		waitState(t, states, client.StateConnected)
	}
	mu.Lock()
	defer mu.Unlock()
	// times[i] is handshake i+1; drops[i] is the end of connection i+1.
	// On the bubble's clock noticing the drop and dialing take no time, so
	// each delay is its ceiling less the jitter source's 1 ns.
	want := []time.Duration{initial, 2 * initial, 4 * initial, initial}
	for i, w := range want {
		if got := times[i+1].Sub(drops[i]); got != w-1 {
			t.Errorf("delay before attempt %d = %v, want %v", i+2, got, w-1)
		}
	}
}

// TestUnauthorizedNeedsNewToken: after 4501 the client asks the token
// source once; the same token again means stop (one handshake in all), a
// different one means reconnect with it.
func TestUnauthorizedNeedsNewToken(t *testing.T) {
	t.Parallel()
	for _, rotate := range []bool{false, true} {
		t.Run(fmt.Sprintf("rotate=%v", rotate), func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) { testUnauthorizedNeedsNewToken(t, rotate) })
		})
	}
}

func testUnauthorizedNeedsNewToken(t *testing.T, rotate bool) {
	auths := make(chan string, 4)
	fs := newMemFake(t, nil, func(fc *fakeConn) {
		auths <- fc.req.Header.Get("Authorization")
		if fc.n == 1 {
			fc.write(&protowsv1.Envelope{Kind: protowsv1.Kind_KIND_ERROR,
				Error: &protowsv1.Error{Code: protowsv1.Code_CODE_UNAUTHENTICATED, Message: "token revoked"}})
			fc.closeWith(4501, "unauthenticated")
			return
		}
		fc.serve(fc.echo)
	})
	var calls atomic.Int32
	tokens := func(context.Context) (string, time.Time, error) {
		n := calls.Add(1)
		if !rotate {
			n = 1
		}
		return fmt.Sprintf("t%d", n), time.Time{}, nil
	}
	states := make(chan stateChange, 16)
	fs.dial(t, append(fastOptions(states), client.WithTokenSource(tokens))...)
	if got := <-auths; got != "Bearer t1" {
		t.Errorf("first handshake: Authorization %q", got)
	}
	if !rotate {
		sc := waitState(t, states, client.StateClosed)
		if protows.CodeOf(sc.err) != protows.CodeUnauthenticated || !strings.Contains(sc.err.Error(), "token revoked") {
			t.Errorf("closed because of %v", sc.err)
		}
		time.Sleep(time.Minute) // on the bubble's clock
		if n := fs.handshakes.Load(); n != 1 {
			t.Errorf("%d handshakes, want 1", n)
		}
		if n := calls.Load(); n != 2 {
			t.Errorf("token source asked %d times, want 2", n)
		}
		return
	}
	waitState(t, states, client.StateConnected)
	if got := <-auths; got != "Bearer t2" {
		t.Errorf("second handshake: Authorization %q, want Bearer t2", got)
	}
}

// TestStreamUnavailableReopens: a stream that the server refuses or ends
// with unavailable (draining) or canceled (the client did not ask for it:
// shutdown) is opened again after a backoff, on the same connection; with
// NoResubscribe the reader gets the error.
func TestStreamUnavailableReopens(t *testing.T) {
	t.Parallel()
	var opens atomic.Int32
	fs := newFakeServer(t, func(fc *fakeConn) {
		fc.serve(func(env *protowsv1.Envelope) {
			if env.GetKind() != protowsv1.Kind_KIND_REQUEST {
				return
			}
			unavailable := &protowsv1.Error{Code: protowsv1.Code_CODE_UNAVAILABLE, Message: "draining"}
			msg := func(n uint32) *protowsv1.Envelope {
				p, _ := fc.codec.AppendPayload(nil, &testv1.CountResponse{N: n})
				return &protowsv1.Envelope{Id: env.GetId(), Kind: protowsv1.Kind_KIND_STREAM_MESSAGE, Payload: p}
			}
			end := &protowsv1.Envelope{Id: env.GetId(), Kind: protowsv1.Kind_KIND_STREAM_END}
			switch opens.Add(1) {
			case 1:
				fc.write(&protowsv1.Envelope{Id: env.GetId(), Kind: protowsv1.Kind_KIND_ERROR, Error: unavailable})
			case 2:
				// A server shutting down cancels its calls.
				end.Error = &protowsv1.Error{Code: protowsv1.Code_CODE_CANCELED, Message: "context canceled"}
				fc.write(msg(1), msg(2), end)
			case 3:
				fc.write(msg(1), msg(2), msg(3), end)
			default:
				fc.write(&protowsv1.Envelope{Id: env.GetId(), Kind: protowsv1.Kind_KIND_ERROR, Error: unavailable})
			}
		})
	})
	c := dial(t, fs.url, fastOptions(nil)...)
	st, err := client.CallServerStream[testv1.CountResponse](testCtx(t), c, countMethod, &testv1.CountRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for st.Receive() {
		got = append(got, fmt.Sprintf("%d%s", st.Msg().GetN(), map[bool]string{true: "(gap)"}[st.Gap()]))
	}
	if fmt.Sprint(got) != "[1(gap) 2 1(gap) 2 3]" || st.Err() != nil {
		t.Errorf("read %v, Err() = %v; want [1(gap) 2 1(gap) 2 3] and nil", got, st.Err())
	}
	if n := fs.accepted.Load(); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}

	st, err = client.CallServerStream[testv1.CountResponse](testCtx(t), c, countMethod, &testv1.CountRequest{}, client.NoResubscribe())
	if err != nil {
		t.Fatal(err)
	}
	if st.Receive() || protows.CodeOf(st.Err()) != protows.CodeUnavailable {
		t.Errorf("NoResubscribe: Err() = %v, want unavailable", st.Err())
	}
}

// TestReconnectRefused: after a drop, a refused handshake stops the client
// (401 without a token source, 403, 400: one more handshake in all) or is
// retried with backoff (503).
func TestReconnectRefused(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		status int
		stop   protows.Code // 0: keeps trying
	}{
		{http.StatusUnauthorized, protows.CodeUnauthenticated},
		{http.StatusForbidden, protows.CodePermissionDenied},
		{http.StatusBadRequest, protows.CodeFailedPrecondition},
		{http.StatusServiceUnavailable, 0},
	} {
		t.Run(fmt.Sprint(tt.status), func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) { testReconnectRefused(t, tt.status, tt.stop) })
		})
	}
}

func testReconnectRefused(t *testing.T, status int, stop protows.Code) {
	var n atomic.Int32
	fs := newMemFake(t, func(*http.Request) (int, string) {
		if n.Add(1) > 1 {
			return status, "refused"
		}
		return 0, ""
	}, (*fakeConn).drop)
	const initial = 10 * time.Millisecond
	states := make(chan stateChange, 16)
	fs.dial(t, client.WithBackoff(client.Backoff{Initial: initial, Max: 2 * initial}),
		client.WithStateFunc(func(s client.State, err error) {
			select {
			case states <- stateChange{s, err}:
			default:
			}
		}))
	if stop == 0 {
		// 503 waits at least Initial each time: attempts go on,
		// but at most one per Initial, not a storm.
		const period = time.Second
		time.Sleep(period)
		if got := n.Load(); got < 4 || got > 1+int32(period/initial) {
			t.Errorf("%d handshakes in %v, want the client to keep trying, at most every %v", got, period, initial)
		}
		return
	}
	sc := waitState(t, states, client.StateClosed)
	if protows.CodeOf(sc.err) != stop {
		t.Errorf("closed because of %v, want %v", sc.err, stop)
	}
	time.Sleep(time.Minute) // many backoff ceilings, on the bubble's clock
	if got := n.Load(); got != 2 {
		t.Errorf("%d handshakes, want 2", got)
	}
}

// TestTokenExpiredReconnectsAtOnce: after 4009 the client gets a new token
// and reconnects at once, with jitter below Initial, however many times in a
// row it happens (with the backoff the delays would double: 1x, 2x, 4x).
func TestTokenExpiredReconnectsAtOnce(t *testing.T) {
	t.Parallel()
	synctest.Test(t, testTokenExpiredReconnectsAtOnce)
}

func testTokenExpiredReconnectsAtOnce(t *testing.T) {
	const initial = 300 * time.Millisecond
	var (
		mu    sync.Mutex
		times []time.Time
		auths []string
	)
	fs := newMemFake(t, func(r *http.Request) (int, string) {
		mu.Lock()
		times = append(times, time.Now())
		auths = append(auths, r.Header.Get("Authorization"))
		mu.Unlock()
		return 0, ""
	}, func(fc *fakeConn) {
		if fc.n <= 3 {
			fc.closeWith(4009, "token expired")
			return
		}
		fc.serve(fc.echo)
	})
	var asked atomic.Int32
	states := make(chan stateChange, 32)
	fs.dial(t, client.WithBackoff(client.Backoff{Initial: initial, Max: 10 * initial}),
		client.WithRand(func(n int64) int64 { return n - 1 }), // the jitter at its maximum
		client.WithTokenSource(func(context.Context) (string, time.Time, error) {
			return fmt.Sprintf("t%d", asked.Add(1)), time.Now().Add(time.Hour), nil
		}),
		client.WithStateFunc(func(s client.State, err error) { states <- stateChange{s, err} }))
	for range 4 {
		waitState(t, states, client.StateConnected)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := "[Bearer t1 Bearer t2 Bearer t3 Bearer t4]"; fmt.Sprint(auths) != want {
		t.Errorf("handshakes carried %v, want %v", auths, want)
	}
	for i := 1; i < len(times); i++ {
		// Each delay is the jitter's maximum, 1 ns below Initial (dialing
		// takes no time on the bubble's clock), never the backoff's 2x
		// and 4x.
		if d := times[i].Sub(times[i-1]); d != initial-1 {
			t.Errorf("handshake %d came %v after the previous, want %v", i+1, d, initial-1)
		}
	}
}
