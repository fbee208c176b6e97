package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/protows/protows"
	"github.com/protows/protows/client"
	"github.com/protows/protows/codec"
	testv1 "github.com/protows/protows/gen/go/protows/test/v1"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	echoMethod  = "/protows.test.v1.TestService/Echo"
	countMethod = "/protows.test.v1.TestService/Count"
	sleepMethod = "/protows.test.v1.TestService/Sleep"
)

// codecs are the two codecs every protocol test runs with.
var codecs = []codec.Codec{codec.Proto(), codec.JSON()}

// fastOptions make reconnection quick enough for tests.
func fastOptions(states chan<- stateChange) []client.Option {
	opts := []client.Option{
		client.WithBackoff(client.Backoff{Initial: 20 * time.Millisecond, Max: 100 * time.Millisecond}),
		client.WithDialTimeout(2 * time.Second),
	}
	if states != nil {
		opts = append(opts, client.WithStateFunc(func(s client.State, err error) {
			select {
			case states <- stateChange{s, err}:
			default:
			}
		}))
	}
	return opts
}

type stateChange struct {
	state client.State
	err   error
}

// waitState waits for want on states, skipping others.
func waitState(t *testing.T, states <-chan stateChange, want client.State) stateChange {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case sc := <-states:
			if sc.state == want {
				return sc
			}
		case <-timeout:
			t.Fatalf("state %v did not come", want)
			return stateChange{}
		}
	}
}

func dial(t *testing.T, url string, opts ...client.Option) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, url, opts...)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// forCodecs runs f for each codec, in parallel subtests.
func forCodecs(t *testing.T, f func(t *testing.T, c codec.Codec)) {
	for _, c := range codecs {
		t.Run(c.Name(), func(t *testing.T) {
			t.Parallel()
			f(t, c)
		})
	}
}

func TestUnaryEcho(t *testing.T) {
	t.Parallel()
	forCodecs(t, func(t *testing.T, cd codec.Codec) {
		reqs := make(chan *protowsv1.Envelope, 1)
		fs := newFakeServer(t, func(fc *fakeConn) {
			fc.serve(func(env *protowsv1.Envelope) {
				reqs <- env
				fc.echo(env)
			})
		})
		c := dial(t, fs.url, client.WithCodec(cd))
		replyMD := map[string]string{"stale": "x"}
		res, err := client.CallUnary[testv1.EchoResponse](testCtx(t), c, echoMethod,
			&testv1.EchoRequest{Text: "hi"}, client.WithMetadata(map[string]string{"trace": "t1"}),
			client.ReplyMetadata(&replyMD))
		if err != nil {
			t.Fatal(err)
		}
		if res.GetText() != "hi" {
			t.Errorf("text = %q, want hi", res.GetText())
		}
		// The fake echoes the request's metadata in the REPLY.
		if fmt.Sprint(replyMD) != "map[trace:t1]" {
			t.Errorf("reply metadata = %v, want map[trace:t1]", replyMD)
		}
		env := <-reqs
		if env.GetMetadata()["trace"] != "t1" {
			t.Errorf("metadata = %v", env.GetMetadata())
		}
		// Section 3.2: the binary codec names the method by id only, the
		// text codec by name only.
		if cd.Binary() {
			if env.GetMethodId() != protows.MethodID(echoMethod) || env.GetMethod() != "" {
				t.Errorf("proto request names method as id %#x name %q", env.GetMethodId(), env.GetMethod())
			}
		} else if env.GetMethod() != echoMethod || env.GetMethodId() != 0 {
			t.Errorf("json request names method as id %#x name %q", env.GetMethodId(), env.GetMethod())
		}
		if env.GetId() == 0 {
			t.Error("request id 0")
		}
	})
}

func TestUnaryServerError(t *testing.T) {
	t.Parallel()
	forCodecs(t, func(t *testing.T, cd codec.Codec) {
		fs := newFakeServer(t, func(fc *fakeConn) {
			fc.serve(func(env *protowsv1.Envelope) {
				fc.write(&protowsv1.Envelope{Id: env.GetId(), Kind: protowsv1.Kind_KIND_ERROR,
					Error: &protowsv1.Error{Code: protowsv1.Code_CODE_NOT_FOUND, Message: "no such thing"}})
			})
		})
		c := dial(t, fs.url, client.WithCodec(cd))
		_, err := client.CallUnary[testv1.EchoResponse](testCtx(t), c, echoMethod, &testv1.EchoRequest{})
		var perr *protows.Error
		if !errors.As(err, &perr) || perr.Code() != protows.CodeNotFound || perr.Message() != "no such thing" {
			t.Fatalf("err = %v, want not_found: no such thing", err)
		}
	})
}

func TestUnaryBadInput(t *testing.T) {
	t.Parallel()
	fs := newFakeServer(t, func(fc *fakeConn) { fc.serve(fc.echo) })
	c := dial(t, fs.url)
	_, err := client.CallUnary[testv1.EchoResponse](testCtx(t), c, "Echo", &testv1.EchoRequest{})
	if protows.CodeOf(err) != protows.CodeInvalidArgument {
		t.Errorf("bad method name: err = %v, want invalid_argument", err)
	}
	_, err = client.CallUnary[struct{}](testCtx(t), c, echoMethod, &testv1.EchoRequest{})
	if protows.CodeOf(err) != protows.CodeInternal {
		t.Errorf("non-proto response type: err = %v, want internal", err)
	}
	_, err = client.CallUnary[testv1.EchoResponse](testCtx(t), c, echoMethod,
		&testv1.EchoRequest{Padding: make([]byte, 2<<20)})
	if protows.CodeOf(err) != protows.CodeResourceExhausted {
		t.Errorf("oversized request: err = %v, want resource_exhausted", err)
	}
	// The connection survives all three.
	if _, err := client.CallUnary[testv1.EchoResponse](testCtx(t), c, echoMethod, &testv1.EchoRequest{}); err != nil {
		t.Errorf("call after bad input: %v", err)
	}
}

// TestDeadlineSendsCancel: a server slower than the call's deadline. The
// call returns deadline_exceeded on time and the server gets a CANCEL for
// the call's id; a cancelled context gives canceled likewise.
func TestDeadlineSendsCancel(t *testing.T) {
	t.Parallel()
	forCodecs(t, func(t *testing.T, cd codec.Codec) {
		synctest.Test(t, func(t *testing.T) { testDeadlineSendsCancel(t, cd) })
	})
}

func testDeadlineSendsCancel(t *testing.T, cd codec.Codec) {
	reqs := make(chan uint32, 2)
	cancels := make(chan uint32, 2)
	fs := newMemFake(t, nil, func(fc *fakeConn) {
		fc.serve(func(env *protowsv1.Envelope) {
			switch env.GetKind() {
			case protowsv1.Kind_KIND_REQUEST:
				reqs <- env.GetId() // and never answer
			case protowsv1.Kind_KIND_CANCEL:
				cancels <- env.GetId()
				// A late reply for a cancelled call is discarded.
				fc.write(&protowsv1.Envelope{Id: env.GetId(), Kind: protowsv1.Kind_KIND_REPLY})
			}
		})
	})
	c := fs.dial(t, client.WithCodec(cd))

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := client.CallUnary[testv1.SleepResponse](ctx, c, sleepMethod, &testv1.SleepRequest{})
	if protows.CodeOf(err) != protows.CodeDeadlineExceeded {
		t.Fatalf("err = %v, want deadline_exceeded", err)
	}
	if d := time.Since(start); d != 100*time.Millisecond {
		t.Errorf("call returned after %v, want at its deadline, 100ms", d)
	}
	if id, cid := <-reqs, <-cancels; id != cid {
		t.Errorf("CANCEL for id %d, request had id %d", cid, id)
	}

	ctx, cancel = context.WithCancel(context.Background())
	go func() { <-reqs; cancel() }()
	_, err = client.CallUnary[testv1.SleepResponse](ctx, c, sleepMethod, &testv1.SleepRequest{})
	if protows.CodeOf(err) != protows.CodeCanceled {
		t.Fatalf("err = %v, want canceled", err)
	}
	<-cancels
	// The connection is fine afterwards.
	if c.State() != client.StateConnected {
		t.Errorf("state = %v", c.State())
	}
}

func TestServerStream(t *testing.T) {
	t.Parallel()
	forCodecs(t, func(t *testing.T, cd codec.Codec) {
		fs := newFakeServer(t, func(fc *fakeConn) {
			fc.serve(func(env *protowsv1.Envelope) {
				if env.GetKind() != protowsv1.Kind_KIND_REQUEST {
					return
				}
				var req testv1.CountRequest
				fc.codec.UnmarshalPayload(env.GetPayload(), &req)
				var envs []*protowsv1.Envelope
				for n := uint32(1); n <= req.GetCount(); n++ {
					p, _ := fc.codec.AppendPayload(nil, &testv1.CountResponse{N: n})
					envs = append(envs, &protowsv1.Envelope{Id: env.GetId(), Kind: protowsv1.Kind_KIND_STREAM_MESSAGE, Payload: p})
				}
				end := &protowsv1.Envelope{Id: env.GetId(), Kind: protowsv1.Kind_KIND_STREAM_END}
				if req.GetFailCode() != 0 {
					end.Error = &protowsv1.Error{Code: protowsv1.Code(req.GetFailCode()), Message: "failed"}
				}
				if req.GetCount() == 99 { // refused before the handler starts
					end = &protowsv1.Envelope{Id: env.GetId(), Kind: protowsv1.Kind_KIND_ERROR,
						Error: &protowsv1.Error{Code: protowsv1.Code_CODE_UNIMPLEMENTED}}
					envs = nil
				}
				// One frame: a batch of messages and the end.
				fc.write(append(envs, end)...)
			})
		})
		c := dial(t, fs.url, client.WithCodec(cd))
		tests := []struct {
			name     string
			req      *testv1.CountRequest
			wantN    int
			wantCode protows.Code // 0: Err is nil
		}{
			{"ok", &testv1.CountRequest{Count: 5}, 5, 0},
			{"empty", &testv1.CountRequest{}, 0, 0},
			{"fails after", &testv1.CountRequest{Count: 2, FailCode: uint32(protows.CodeAborted)}, 2, protows.CodeAborted},
			{"refused", &testv1.CountRequest{Count: 99}, 0, protows.CodeUnimplemented},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				st, err := client.CallServerStream[testv1.CountResponse](testCtx(t), c, countMethod, tt.req)
				if err != nil {
					t.Fatal(err)
				}
				n := 0
				for st.Receive() {
					n++
					if got := st.Msg().GetN(); got != uint32(n) {
						t.Errorf("message %d has n = %d", n, got)
					}
					if st.Gap() {
						t.Error("gap without a reconnection")
					}
				}
				if n != tt.wantN {
					t.Errorf("got %d messages, want %d", n, tt.wantN)
				}
				err = st.Err()
				if tt.wantCode == 0 && err != nil || tt.wantCode != 0 && protows.CodeOf(err) != tt.wantCode {
					t.Errorf("Err() = %v, want code %v", err, tt.wantCode)
				}
				st.Close()
			})
		}
	})
}

// TestStreamCancel: ending the stream's context, or Close, sends CANCEL.
func TestStreamCancel(t *testing.T) {
	t.Parallel()
	forCodecs(t, func(t *testing.T, cd codec.Codec) {
		cancels := make(chan uint32, 2)
		opened := make(chan uint32, 2)
		fs := newFakeServer(t, func(fc *fakeConn) {
			fc.serve(func(env *protowsv1.Envelope) {
				switch env.GetKind() {
				case protowsv1.Kind_KIND_REQUEST:
					p, _ := fc.codec.AppendPayload(nil, &testv1.CountResponse{N: 1})
					fc.write(&protowsv1.Envelope{Id: env.GetId(), Kind: protowsv1.Kind_KIND_STREAM_MESSAGE, Payload: p})
					opened <- env.GetId()
				case protowsv1.Kind_KIND_CANCEL:
					cancels <- env.GetId()
				}
			})
		})
		c := dial(t, fs.url, client.WithCodec(cd))

		ctx, cancel := context.WithCancel(context.Background())
		st, err := client.CallServerStream[testv1.CountResponse](ctx, c, countMethod, &testv1.CountRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if !st.Receive() {
			t.Fatalf("no first message: %v", st.Err())
		}
		id := <-opened
		cancel()
		if st.Receive() {
			t.Error("Receive after cancel returned a message")
		}
		if protows.CodeOf(st.Err()) != protows.CodeCanceled {
			t.Errorf("Err() = %v, want canceled", st.Err())
		}
		if got := <-cancels; got != id {
			t.Errorf("CANCEL for %d, want %d", got, id)
		}

		st, err = client.CallServerStream[testv1.CountResponse](testCtx(t), c, countMethod, &testv1.CountRequest{})
		if err != nil {
			t.Fatal(err)
		}
		id = <-opened
		st.Close()
		if got := <-cancels; got != id {
			t.Errorf("CANCEL for %d, want %d", got, id)
		}
		if st.Receive() || st.Err() != nil {
			t.Errorf("after Close: Receive true or Err %v", st.Err())
		}
	})
}

// TestStreamBufferOverflow: a reader that does not keep up loses its stream
// (resource_exhausted, CANCEL sent) and nothing else.
func TestStreamBufferOverflow(t *testing.T) {
	t.Parallel()
	cancels := make(chan uint32, 1)
	fs := newFakeServer(t, func(fc *fakeConn) {
		fc.serve(func(env *protowsv1.Envelope) {
			switch {
			case env.GetKind() == protowsv1.Kind_KIND_CANCEL:
				cancels <- env.GetId()
			case env.GetMethodId() == protows.MethodID(countMethod):
				for n := uint32(1); n <= 10; n++ {
					p, _ := fc.codec.AppendPayload(nil, &testv1.CountResponse{N: n})
					fc.write(&protowsv1.Envelope{Id: env.GetId(), Kind: protowsv1.Kind_KIND_STREAM_MESSAGE, Payload: p})
				}
			default:
				fc.echo(env)
			}
		})
	})
	c := dial(t, fs.url, client.WithStreamBuffer(3))
	st, err := client.CallServerStream[testv1.CountResponse](testCtx(t), c, countMethod, &testv1.CountRequest{})
	if err != nil {
		t.Fatal(err)
	}
	<-cancels
	for st.Receive() {
	}
	if protows.CodeOf(st.Err()) != protows.CodeResourceExhausted {
		t.Errorf("Err() = %v, want resource_exhausted", st.Err())
	}
	if _, err := client.CallUnary[testv1.EchoResponse](testCtx(t), c, echoMethod, &testv1.EchoRequest{}); err != nil {
		t.Errorf("other calls suffer: %v", err)
	}
}

// TestServerPing: the client answers a server's PING with a PONG of the
// same id, and measures the round trip of its own PINGs.
func TestServerPing(t *testing.T) {
	t.Parallel()
	forCodecs(t, func(t *testing.T, cd codec.Codec) {
		synctest.Test(t, func(t *testing.T) { testServerPing(t, cd) })
	})
}

func testServerPing(t *testing.T, cd codec.Codec) {
	const lag = 10 * time.Millisecond // the fake's delay before each PONG
	pong := make(chan uint32, 1)
	fs := newMemFake(t, nil, func(fc *fakeConn) {
		fc.write(&protowsv1.Envelope{Id: 77, Kind: protowsv1.Kind_KIND_PING})
		for {
			envs, err := fc.read()
			if err != nil {
				return
			}
			for _, env := range envs {
				switch env.GetKind() {
				case protowsv1.Kind_KIND_PING:
					time.Sleep(lag)
					fc.write(&protowsv1.Envelope{Id: env.GetId(), Kind: protowsv1.Kind_KIND_PONG})
				case protowsv1.Kind_KIND_PONG:
					pong <- env.GetId()
				}
			}
		}
	})
	c := fs.dial(t, client.WithCodec(cd))
	if id := <-pong; id != 77 {
		t.Errorf("PONG id %d, want 77", id)
	}
	time.Sleep(time.Second) // on the bubble's clock: the client's first PING has had its PONG
	if rtt := c.RTT(); rtt != lag {
		t.Errorf("RTT = %v, want %v", rtt, lag)
	}
}

// TestServerProtocolViolation: an envelope kind a server may not send makes
// the client close with 1002 and connect again.
func TestServerProtocolViolation(t *testing.T) {
	t.Parallel()
	codes := make(chan int, 1)
	fs := newFakeServer(t, func(fc *fakeConn) {
		if fc.n == 1 {
			fc.write(&protowsv1.Envelope{Id: 1, Kind: protowsv1.Kind_KIND_REQUEST})
			for {
				if _, err := fc.read(); err != nil {
					codes <- closeCode(err)
					return
				}
			}
		}
		fc.serve(fc.echo)
	})
	states := make(chan stateChange, 16)
	c := dial(t, fs.url, fastOptions(states)...)
	if code := <-codes; code != 1002 {
		t.Errorf("client closed with %d, want 1002", code)
	}
	waitState(t, states, client.StateReconnecting)
	waitState(t, states, client.StateConnected)
	if _, err := client.CallUnary[testv1.EchoResponse](testCtx(t), c, echoMethod, &testv1.EchoRequest{}); err != nil {
		t.Error(err)
	}
}

func TestOriginAndHeaders(t *testing.T) {
	t.Parallel()
	got := make(chan http.Header, 1)
	fs := newFakeServer(t, func(fc *fakeConn) {
		got <- fc.req.Header
		fc.serve(nil)
	})
	dial(t, fs.url, client.WithOrigin("https://app.example.com"),
		client.WithHeader(http.Header{"User-Agent": {"protows-test"}}))
	h := <-got
	if h.Get("Origin") != "https://app.example.com" || h.Get("User-Agent") != "protows-test" {
		t.Errorf("headers = %v", h)
	}
	if h.Get("Authorization") != "" {
		t.Errorf("anonymous client sent Authorization %q", h.Get("Authorization"))
	}
}

func TestDialErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		status int
		want   protows.Code
	}{
		{"unauthorized", http.StatusUnauthorized, protows.CodeUnauthenticated},
		{"forbidden origin", http.StatusForbidden, protows.CodePermissionDenied},
		{"no common subprotocol", http.StatusBadRequest, protows.CodeFailedPrecondition},
		{"overloaded", http.StatusServiceUnavailable, protows.CodeUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := newRejectingServer(t, func(*http.Request) (int, string) { return tt.status, "refused for the test" },
				func(fc *fakeConn) {})
			_, err := client.Dial(testCtx(t), fs.url)
			if protows.CodeOf(err) != tt.want {
				t.Errorf("err = %v, want code %v", err, tt.want)
			}
			if fs.handshakes.Load() != 1 {
				t.Errorf("%d attempts, want 1", fs.handshakes.Load())
			}
		})
	}
	if _, err := client.Dial(testCtx(t), "http://127.0.0.1:1/"); protows.CodeOf(err) != protows.CodeInvalidArgument {
		t.Errorf("http URL: err = %v", err)
	}
}

func TestClose(t *testing.T) {
	t.Parallel()
	closed := make(chan int, 1)
	fs := newFakeServer(t, func(fc *fakeConn) {
		for {
			if _, err := fc.read(); err != nil {
				closed <- closeCode(err)
				return
			}
		}
	})
	states := make(chan stateChange, 16)
	c := dial(t, fs.url, fastOptions(states)...)
	st, err := client.CallServerStream[testv1.CountResponse](testCtx(t), c, countMethod, &testv1.CountRequest{})
	if err != nil {
		t.Fatal(err)
	}
	inFlight := make(chan error, 1)
	go func() {
		_, err := client.CallUnary[testv1.EchoResponse](testCtx(t), c, echoMethod, &testv1.EchoRequest{})
		inFlight <- err
	}()
	c.Close()
	if err := <-inFlight; !errors.Is(err, client.ErrClosed) || protows.CodeOf(err) != protows.CodeCanceled {
		t.Errorf("call in flight during Close: %v", err)
	}
	if code := <-closed; code != 1000 {
		t.Errorf("server saw close %d, want 1000", code)
	}
	if st.Receive() || !errors.Is(st.Err(), client.ErrClosed) || protows.CodeOf(st.Err()) != protows.CodeCanceled {
		t.Errorf("stream after Close: %v", st.Err())
	}
	_, err = client.CallUnary[testv1.EchoResponse](testCtx(t), c, echoMethod, &testv1.EchoRequest{})
	if !errors.Is(err, client.ErrClosed) {
		t.Errorf("call after Close: %v", err)
	}
	if sc := waitState(t, states, client.StateClosed); sc.err != nil {
		t.Errorf("closed with %v", sc.err)
	}
	c.Close() // again: nothing
}

// TestTLS: wss with the server's certificate trusted through WithTLSConfig;
// without it the handshake fails verification and Dial says unavailable.
func TestTLS(t *testing.T) {
	t.Parallel()
	fs := startFake(t, nil, func(fc *fakeConn) { fc.serve(fc.echo) }, onTLS)
	if !strings.HasPrefix(fs.url, "wss://") {
		t.Fatalf("url %s", fs.url)
	}
	if _, err := client.Dial(testCtx(t), fs.url); protows.CodeOf(err) != protows.CodeUnavailable {
		t.Errorf("untrusted certificate: err = %v, want unavailable", err)
	}
	cfg := fs.srv.Client().Transport.(*http.Transport).TLSClientConfig
	c := dial(t, fs.url, client.WithTLSConfig(cfg))
	if _, err := client.CallUnary[testv1.EchoResponse](testCtx(t), c, echoMethod, &testv1.EchoRequest{}); err != nil {
		t.Error(err)
	}
}

// TestMaxInFlight: calls beyond the cap wait for a slot instead of reaching
// the server; a waiting call's context still bounds it.
func TestMaxInFlight(t *testing.T) {
	t.Parallel()
	synctest.Test(t, testMaxInFlight)
}

func testMaxInFlight(t *testing.T) {
	reqs := make(chan *protowsv1.Envelope, 4)
	release := make(chan struct{})
	fs := newMemFake(t, nil, func(fc *fakeConn) {
		fc.serve(func(env *protowsv1.Envelope) {
			if env.GetKind() != protowsv1.Kind_KIND_REQUEST {
				return
			}
			reqs <- env
			go func() {
				<-release
				fc.echo(env)
			}()
		})
	})
	c := fs.dial(t, client.WithMaxInFlight(1))
	first := make(chan error, 1)
	go func() {
		_, err := client.CallUnary[testv1.EchoResponse](testCtx(t), c, echoMethod, &testv1.EchoRequest{Text: "1"})
		first <- err
	}()
	<-reqs
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := client.CallUnary[testv1.EchoResponse](ctx, c, echoMethod, &testv1.EchoRequest{}); protows.CodeOf(err) != protows.CodeDeadlineExceeded {
		t.Errorf("call beyond the cap: %v, want deadline_exceeded", err)
	}
	second := make(chan error, 1)
	go func() {
		_, err := client.CallUnary[testv1.EchoResponse](testCtx(t), c, echoMethod, &testv1.EchoRequest{Text: "2"})
		second <- err
	}()
	synctest.Wait() // the second call waits for a slot
	select {
	case env := <-reqs:
		t.Fatalf("request %d reached the server while the cap was reached", env.GetId())
	default:
	}
	close(release)
	if err := <-first; err != nil {
		t.Error(err)
	}
	<-reqs // the second call got the slot
	if err := <-second; err != nil {
		t.Error(err)
	}
}

func TestDialContextEnds(t *testing.T) {
	t.Parallel()
	// A server that accepts TCP but never answers the handshake.
	fs := newRejectingServer(t, func(r *http.Request) (int, string) {
		<-r.Context().Done()
		return http.StatusServiceUnavailable, ""
	}, func(*fakeConn) {})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := client.Dial(ctx, fs.url); protows.CodeOf(err) != protows.CodeDeadlineExceeded {
		t.Errorf("Dial: %v, want deadline_exceeded", err)
	}
}
