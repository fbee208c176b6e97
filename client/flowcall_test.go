package client_test

// Client-streaming and bidirectional calls through the generated client
// of the test service, against the real server, in both codecs.

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/protows/protows"
	"github.com/protows/protows/client"
	"github.com/protows/protows/codec"
	testv1 "github.com/protows/protows/gen/go/protows/test/v1"
	"github.com/protows/protows/transport"
	"google.golang.org/protobuf/types/known/durationpb"
)

func TestClientStreamSum(t *testing.T) {
	forCodecs(t, func(t *testing.T, cd codec.Codec) {
		srv := startReal(t, "127.0.0.1:0", transport.Config{RateLimit: -1}, nil)
		tc := testv1.NewTestServiceClient(dial(t, srv.url, client.WithCodec(cd)))
		ctx := testCtx(t)

		// Far more messages than the server's window: credit comes back as
		// the handler reads.
		s, err := tc.Sum(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for i := 1; i <= 1000; i++ {
			if err := s.Send(&testv1.SumRequest{N: int64(i)}); err != nil {
				t.Fatalf("Send %d: %v", i, err)
			}
		}
		res, err := s.CloseAndReceive()
		if err != nil || res.GetSum() != 500500 || res.GetCount() != 1000 {
			t.Fatalf("Sum: %v, %v", res, err)
		}

		// No message at all.
		s, err = tc.Sum(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if res, err = s.CloseAndReceive(); err != nil || res.GetCount() != 0 {
			t.Fatalf("empty Sum: %v, %v", res, err)
		}

		// The handler fails: Send reports io.EOF once the call ended, and
		// CloseAndReceive the server's error.
		s, err = tc.Sum(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Send(&testv1.SumRequest{FailCode: uint32(protows.CodeAborted)}); err != nil {
			t.Fatal(err)
		}
		sendEOF(t, func() error { return s.Send(&testv1.SumRequest{N: 1}) })
		if _, err := s.CloseAndReceive(); protows.CodeOf(err) != protows.CodeAborted {
			t.Fatalf("CloseAndReceive: %v, want aborted", err)
		}

		// The handler replies early: the rest is not read.
		s, err = tc.Sum(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_ = s.Send(&testv1.SumRequest{N: 7, Stop: true})
		sendEOF(t, func() error { return s.Send(&testv1.SumRequest{N: 1}) })
		if res, err := s.CloseAndReceive(); err != nil || res.GetSum() != 7 {
			t.Fatalf("early reply: %v, %v", res, err)
		}
	})
}

// sendEOF calls send until it returns io.EOF (the call ended), failing on
// any other error or when it never does.
func sendEOF(t *testing.T, send func() error) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		err := send()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatalf("Send: %v, want io.EOF", err)
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("Send never reported the end of the call")
}

func TestBidiEcho(t *testing.T) {
	forCodecs(t, func(t *testing.T, cd codec.Codec) {
		srv := startReal(t, "127.0.0.1:0", transport.Config{RateLimit: -1}, nil)
		tc := testv1.NewTestServiceClient(dial(t, srv.url, client.WithCodec(cd), client.WithStreamBuffer(16)))
		ctx := testCtx(t)
		b, err := tc.EchoStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		const n = 2000
		sendErr := make(chan error, 1)
		go func() {
			for i := range n {
				if err := b.Send(&testv1.EchoStreamRequest{Text: string(rune('a' + i%26))}); err != nil {
					sendErr <- err
					return
				}
			}
			sendErr <- b.CloseSend()
		}()
		for i := range n {
			m, err := b.Receive()
			if err != nil {
				t.Fatalf("Receive %d: %v", i, err)
			}
			if m.GetN() != uint32(i+1) || m.GetText() != string(rune('a'+i%26)) {
				t.Fatalf("echo %d: %v", i, m)
			}
		}
		if _, err := b.Receive(); !errors.Is(err, io.EOF) {
			t.Fatalf("after the echoes: %v, want io.EOF", err)
		}
		if err := <-sendErr; err != nil {
			t.Fatal(err)
		}

		// The server ends the stream with an error.
		b, err = tc.EchoStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_ = b.Send(&testv1.EchoStreamRequest{Text: "x"})
		_ = b.Send(&testv1.EchoStreamRequest{FailCode: uint32(protows.CodeDataLoss)})
		if m, err := b.Receive(); err != nil || m.GetText() != "x" {
			t.Fatalf("first echo: %v, %v", m, err)
		}
		if _, err := b.Receive(); protows.CodeOf(err) != protows.CodeDataLoss {
			t.Fatalf("Receive: %v, want data_loss", err)
		}
		sendEOF(t, func() error { return b.Send(&testv1.EchoStreamRequest{}) })
	})
}

// TestBidiSlowReader: a bidirectional call whose reader does not read
// stops the server after the client's window, holds no more than it, and
// leaves the connection's other calls alone; reading resumes it.
func TestBidiSlowReader(t *testing.T) {
	srv := startReal(t, "127.0.0.1:0", transport.Config{}, nil)
	c := dial(t, srv.url, client.WithStreamBuffer(8))
	tc := testv1.NewTestServiceClient(c)
	ctx := testCtx(t)
	b, err := tc.EchoStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Send(&testv1.EchoStreamRequest{Text: "x", Repeat: 500}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the server sends its window's worth
	var worst time.Duration
	for range 50 {
		start := time.Now()
		if _, err := tc.Echo(ctx, &testv1.EchoRequest{Text: "y"}); err != nil {
			t.Fatal(err)
		}
		worst = max(worst, time.Since(start))
	}
	t.Logf("echo beside an unread bidirectional stream: worst %v", worst)
	if worst > 200*time.Millisecond {
		t.Errorf("echo took %v beside an unread stream", worst)
	}
	for i := range 500 {
		m, err := b.Receive()
		if err != nil || m.GetN() != uint32(i+1) {
			t.Fatalf("echo %d: %v, %v", i, m, err)
		}
	}
	_ = b.CloseSend()
	if _, err := b.Receive(); !errors.Is(err, io.EOF) {
		t.Fatalf("end: %v", err)
	}
}

// TestStreamsNotResumed: a client stream and a bidirectional call whose
// connection drops end with unavailable wrapping ErrConnectionLost, while
// the client reconnects; the next call works.
func TestStreamsNotResumed(t *testing.T) {
	srv := startReal(t, "127.0.0.1:0", transport.Config{}, nil)
	proxy := newCutProxy(t, srv.addr)
	states := make(chan stateChange, 16)
	c := dial(t, "ws://"+proxy.addr()+"/ws", fastOptions(states)...)
	tc := testv1.NewTestServiceClient(c)
	ctx := testCtx(t)
	sum, err := tc.Sum(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := sum.Send(&testv1.SumRequest{N: 1}); err != nil {
		t.Fatal(err)
	}
	b, err := tc.EchoStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = b.Send(&testv1.EchoStreamRequest{Text: "x"})
	if _, err := b.Receive(); err != nil {
		t.Fatal(err)
	}
	proxy.cut()
	if _, err := b.Receive(); protows.CodeOf(err) != protows.CodeUnavailable || !errors.Is(err, client.ErrConnectionLost) {
		t.Errorf("bidi Receive after the drop: %v", err)
	}
	sendEOF(t, func() error { return b.Send(&testv1.EchoStreamRequest{}) })
	if _, err := sum.CloseAndReceive(); protows.CodeOf(err) != protows.CodeUnavailable || !errors.Is(err, client.ErrConnectionLost) {
		t.Errorf("CloseAndReceive after the drop: %v", err)
	}
	waitState(t, states, client.StateConnected)
	s, err := tc.Sum(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Send(&testv1.SumRequest{N: 2})
	if res, err := s.CloseAndReceive(); err != nil || res.GetSum() != 2 {
		t.Errorf("after the reconnect: %v, %v", res, err)
	}
}

// TestFlowCallCancel: a context that ends, and Close, cancel the call on
// both sides; a deadline gives deadline_exceeded.
func TestFlowCallCancel(t *testing.T) {
	srv := startReal(t, "127.0.0.1:0", transport.Config{}, nil)
	tc := testv1.NewTestServiceClient(dial(t, srv.url))

	ctx, cancel := context.WithTimeout(testCtx(t), 100*time.Millisecond)
	defer cancel()
	s, err := tc.Sum(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Send(&testv1.SumRequest{N: 1, Delay: durationpb.New(time.Minute)})
	if _, err := s.CloseAndReceive(); protows.CodeOf(err) != protows.CodeDeadlineExceeded {
		t.Errorf("CloseAndReceive past the deadline: %v", err)
	}

	ctx2, cancel2 := context.WithCancel(testCtx(t))
	b, err := tc.EchoStream(ctx2)
	if err != nil {
		t.Fatal(err)
	}
	cancel2()
	if _, err := b.Receive(); protows.CodeOf(err) != protows.CodeCanceled {
		t.Errorf("Receive after cancel: %v", err)
	}

	b, err = tc.EchoStream(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	_ = b.Close()
	if _, err := b.Receive(); protows.CodeOf(err) != protows.CodeCanceled {
		t.Errorf("Receive after Close: %v", err)
	}
	// The server saw the cancellations: its handlers ended.
	deadline := time.Now().Add(5 * time.Second)
	for srv.running.Load() != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := srv.running.Load(); n != 0 {
		t.Errorf("%d handlers still run", n)
	}
}

// TestFlowCallLimits: a message over the size limit is refused by Send and
// the call goes on; an unknown method ends the call with unimplemented.
func TestFlowCallLimits(t *testing.T) {
	srv := startReal(t, "127.0.0.1:0", transport.Config{}, nil)
	c := dial(t, srv.url, client.WithMaxMessageSize(1024))
	tc := testv1.NewTestServiceClient(c)
	ctx := testCtx(t)
	b, err := tc.EchoStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Send(&testv1.EchoStreamRequest{Padding: make([]byte, 2048)}); protows.CodeOf(err) != protows.CodeResourceExhausted {
		t.Errorf("Send of 2 KiB with a 1 KiB limit: %v", err)
	}
	if err := b.Send(&testv1.EchoStreamRequest{Text: "ok"}); err != nil {
		t.Fatal(err)
	}
	if m, err := b.Receive(); err != nil || m.GetText() != "ok" {
		t.Fatalf("after a refused Send: %v, %v", m, err)
	}
	_ = b.CloseSend()

	s, err := client.CallClientStream[testv1.SumRequest, testv1.SumResponse](ctx, c, "/protows.test.v1.TestService/Nope")
	if err != nil {
		t.Fatal(err)
	}
	sendEOF(t, func() error { return s.Send(&testv1.SumRequest{}) })
	if _, err := s.CloseAndReceive(); protows.CodeOf(err) != protows.CodeUnimplemented {
		t.Errorf("unknown method: %v", err)
	}
}

// TestFlowCallsConcurrent: many client streams and bidirectional calls at
// once on one connection, each with its own credit.
func TestFlowCallsConcurrent(t *testing.T) {
	srv := startReal(t, "127.0.0.1:0", transport.Config{RateLimit: -1}, nil)
	tc := testv1.NewTestServiceClient(dial(t, srv.url))
	ctx := testCtx(t)
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 20 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			s, err := tc.Sum(ctx)
			if err != nil {
				errs <- err
				return
			}
			for range 100 {
				if err := s.Send(&testv1.SumRequest{N: int64(i)}); err != nil {
					errs <- err
					return
				}
			}
			res, err := s.CloseAndReceive()
			if err == nil && res.GetSum() != int64(100*i) {
				err = errors.New("wrong sum")
			}
			if err != nil {
				errs <- err
			}
		}()
		go func() {
			defer wg.Done()
			b, err := tc.EchoStream(ctx)
			if err != nil {
				errs <- err
				return
			}
			for range 50 {
				if err := b.Send(&testv1.EchoStreamRequest{Text: "z", Repeat: 2}); err != nil {
					errs <- err
					return
				}
				for range 2 {
					if _, err := b.Receive(); err != nil {
						errs <- err
						return
					}
				}
			}
			_ = b.CloseSend()
			if _, err := b.Receive(); !errors.Is(err, io.EOF) {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
