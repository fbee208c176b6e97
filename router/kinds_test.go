package router_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	protows "github.com/protows/protows"
	"github.com/protows/protows/client"
	testv1 "github.com/protows/protows/gen/go/protows/test/v1"
	"github.com/protows/protows/router"
	"github.com/protows/protows/transport"
	"google.golang.org/protobuf/proto"
)

// kindSeen is what an interceptor saw of one call.
type kindSeen struct {
	server, client, request, stream, receiver bool
	received                                  int
}

// countingReceiver wraps a Receiver, counting the messages it hands on.
type countingReceiver struct {
	r router.Receiver
	n *int
}

func (c countingReceiver) Receive() (proto.Message, error) {
	m, err := c.r.Receive()
	if err == nil {
		*c.n++
	}
	return m, err
}

// TestInterceptorsSeeEveryKind: an interceptor sees the kind of each of
// the four kinds of call, the request of those whose client does not
// stream, and may wrap the Receiver of those whose client does.
func TestInterceptorsSeeEveryKind(t *testing.T) {
	var mu sync.Mutex
	seen := make(map[string]*kindSeen)
	watch := func(next router.HandlerFunc) router.HandlerFunc {
		return func(ctx context.Context, call *router.Call) (proto.Message, error) {
			k := &kindSeen{server: call.ServerStream, client: call.ClientStream, request: call.Request != nil,
				stream: call.Stream != nil, receiver: call.Receiver != nil}
			if call.Receiver != nil {
				call.Receiver = countingReceiver{call.Receiver, &k.received}
			}
			res, err := next(ctx, call)
			mu.Lock()
			seen[call.Method] = k
			mu.Unlock()
			return res, err
		}
	}
	r := router.New(router.WithInterceptors(watch))
	const (
		unary  = "/k.S/Unary"
		server = "/k.S/Server"
		cl     = "/k.S/Client"
		bidi   = "/k.S/Bidi"
	)
	errs := []error{
		router.HandleUnary(r, unary, echoFn),
		router.HandleServerStream(r, server, func(_ context.Context, _ *testv1.CountRequest, s router.Stream[*testv1.CountResponse]) error {
			return s.Send(&testv1.CountResponse{N: 1})
		}),
		router.HandleClientStream(r, cl, func(_ context.Context, s router.ClientStream[*testv1.SumRequest]) (*testv1.SumResponse, error) {
			res := &testv1.SumResponse{}
			for s.Receive() {
				res.Sum += s.Msg().GetN()
			}
			return res, s.Err()
		}),
		router.HandleBidiStream(r, bidi, func(_ context.Context, s router.BidiStream[*testv1.SumRequest, *testv1.SumResponse]) error {
			for {
				m, err := s.Receive()
				if errors.Is(err, io.EOF) {
					return nil
				}
				if err != nil {
					return err
				}
				if err := s.Send(&testv1.SumResponse{Sum: m.GetN()}); err != nil {
					return err
				}
			}
		}),
	}
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	c, ctx := serveRouter(t, r)
	if _, err := client.CallUnary[testv1.EchoResponse](ctx, c, unary, &testv1.EchoRequest{}); err != nil {
		t.Fatal(err)
	}
	st, err := client.CallServerStream[testv1.CountResponse](ctx, c, server, &testv1.CountRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for st.Receive() {
	}
	cs, err := client.CallClientStream[testv1.SumRequest, testv1.SumResponse](ctx, c, cl)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		_ = cs.Send(&testv1.SumRequest{N: 2})
	}
	if res, err := cs.CloseAndReceive(); err != nil || res.GetSum() != 6 {
		t.Fatalf("client stream: %v, %v", res, err)
	}
	bs, err := client.CallBidiStream[testv1.SumRequest, testv1.SumResponse](ctx, c, bidi)
	if err != nil {
		t.Fatal(err)
	}
	_ = bs.Send(&testv1.SumRequest{N: 5})
	if res, err := bs.Receive(); err != nil || res.GetSum() != 5 {
		t.Fatalf("bidi: %v, %v", res, err)
	}
	_ = bs.CloseSend()
	if _, err := bs.Receive(); !errors.Is(err, io.EOF) {
		t.Fatalf("bidi end: %v", err)
	}
	want := map[string]kindSeen{
		unary:  {request: true},
		server: {server: true, request: true, stream: true},
		cl:     {client: true, receiver: true, received: 3},
		bidi:   {server: true, client: true, stream: true, receiver: true, received: 1},
	}
	mu.Lock()
	defer mu.Unlock()
	for m, w := range want {
		if got := seen[m]; got == nil || *got != w {
			t.Errorf("%s: interceptor saw %+v, want %+v", m, got, w)
		}
	}
}

// TestStreamTimeoutClientStream: WithStreamTimeout bounds a client stream
// whose handler waits on Receive; the call ends with deadline_exceeded.
func TestStreamTimeoutClientStream(t *testing.T) {
	r := router.New()
	err := router.HandleClientStream(r, "/k.S/Wait", func(_ context.Context, s router.ClientStream[*testv1.SumRequest]) (*testv1.SumResponse, error) {
		for s.Receive() {
		}
		return nil, s.Err()
	}, router.WithStreamTimeout(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	c, ctx := serveRouter(t, r)
	cs, err := client.CallClientStream[testv1.SumRequest, testv1.SumResponse](ctx, c, "/k.S/Wait")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for {
		if err := cs.Send(&testv1.SumRequest{}); err != nil {
			break
		}
		if time.Since(start) > 5*time.Second {
			t.Fatal("the stream outlived its timeout")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := cs.CloseAndReceive(); protows.CodeOf(err) != protows.CodeDeadlineExceeded {
		t.Errorf("got %v, want deadline_exceeded", err)
	}
}

// serveRouter serves r on loopback and dials it.
func serveRouter(t *testing.T, r *router.Router) (*client.Client, context.Context) {
	t.Helper()
	srv := transport.NewServer(r, transport.Config{Logger: slog.New(slog.DiscardHandler)})
	hs := httptest.NewServer(srv)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	c, err := client.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		_ = srv.Shutdown(sctx)
		hs.Close()
		cancel()
	})
	return c, ctx
}
