package router_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	protows "github.com/protows/protows"
	testv1 "github.com/protows/protows/gen/go/protows/test/v1"
	"github.com/protows/protows/router"
	"github.com/protows/protows/transport"
	"google.golang.org/protobuf/proto"
)

const echo = "/protows.test.v1.TestService/Echo"

func echoFn(_ context.Context, req *testv1.EchoRequest) (*testv1.EchoResponse, error) {
	return &testv1.EchoResponse{Text: req.GetText()}, nil
}

// colliding returns two distinct valid method names with the same id.
func colliding(t *testing.T) (string, string) {
	// Sequential names rarely collide under FNV-1a (a varying tail maps
	// almost injectively), so pseudo-random ones are used: a birthday
	// search needs some 80,000 of them.
	seen := make(map[uint32]string)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 2_000_000; i++ {
		name := fmt.Sprintf("/c.S/M%016x", rng.Uint64())
		id := protows.MethodID(name)
		if prev, ok := seen[id]; ok {
			return prev, name
		}
		seen[id] = name
	}
	t.Fatal("no collision found")
	return "", ""
}

// zeroID returns a valid method name whose id is 0. FNV-1a steps are
// invertible, so the last two bytes are solved backwards from 0.
func zeroID(t *testing.T) string {
	const prime, primeInv = 16777619, 899433627 // primeInv*prime == 1 mod 2^32
	p, pinv := uint32(prime), uint32(primeInv)
	if p*pinv != 1 {
		t.Fatal("bad inverse")
	}
	targets := make(map[uint32][2]byte)
	for b1 := byte('a'); b1 <= 'z'; b1++ {
		for b2 := byte('a'); b2 <= 'z'; b2++ {
			// h(prefix+b1+b2) == 0  <=>  h(prefix) == (b2 * p^-1) XOR b1.
			targets[(uint32(b2)*primeInv)^uint32(b1)] = [2]byte{b1, b2}
		}
	}
	// Hash the fixed start once and each counter's digits by hand (FNV-1a
	// steps), so that the search stays fast under -race.
	const start = "/z.S/M"
	h0 := protows.MethodID(start)
	var buf []byte
	for i := uint64(0); i < 50_000_000; i++ {
		buf = strconv.AppendUint(buf[:0], i, 36)
		h := h0
		for _, b := range buf {
			h = (h ^ uint32(b)) * p
		}
		if bb, ok := targets[h]; ok {
			name := start + string(buf) + string(bb[:])
			if protows.MethodID(name) != 0 {
				t.Fatalf("%s has id %#x", name, protows.MethodID(name))
			}
			return name
		}
	}
	t.Fatal("no name with id 0 found")
	return ""
}

func TestRegistrationErrors(t *testing.T) {
	t.Parallel()
	a, b := colliding(t)
	zero := zeroID(t)
	r := router.New()
	if err := router.HandleUnary(r, echo, echoFn); err != nil {
		t.Fatal(err)
	}
	if err := router.HandleUnary(r, a, echoFn); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		err  error
		reg  func() error
	}{
		{"duplicate", router.ErrDuplicate, func() error { return router.HandleUnary(r, echo, echoFn) }},
		{"collision", router.ErrIDCollision, func() error { return router.HandleUnary(r, b, echoFn) }},
		{"id 0", router.ErrIDCollision, func() error { return router.HandleUnary(r, zero, echoFn) }},
		{"no slash", router.ErrInvalidMethod, func() error { return router.HandleUnary(r, "a.S/M", echoFn) }},
		{"no method", router.ErrInvalidMethod, func() error { return router.HandleUnary(r, "/a.S/", echoFn) }},
		{"extra part", router.ErrInvalidMethod, func() error { return router.HandleUnary(r, "/a.S/M/x", echoFn) }},
		{"reserved", router.ErrReserved, func() error {
			return router.HandleUnary(r, transport.AuthenticateMethod, echoFn)
		}},
		{"request not a message", router.ErrNotProtoMessage, func() error {
			return router.HandleUnary(r, "/a.S/M", func(context.Context, *string) (*testv1.EchoResponse, error) { return nil, nil })
		}},
		{"response not a message", router.ErrNotProtoMessage, func() error {
			return router.HandleServerStream(r, "/a.S/N", func(context.Context, *testv1.EchoRequest, router.Stream[*int]) error { return nil })
		}},
	} {
		if err := tc.reg(); !errors.Is(err, tc.err) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.err)
		}
	}
	if len(r.Methods()) != 2 {
		t.Fatalf("methods %v", r.Methods())
	}
}

func serve(t *testing.T, r *router.Router, method string, req proto.Message) (proto.Message, error) {
	t.Helper()
	m, ok := r.Lookup(protows.MethodID(method))
	if !ok {
		t.Fatalf("%s not found", method)
	}
	return m.Serve(context.Background(), nil, req)
}

func TestInterceptorsAndErrors(t *testing.T) {
	t.Parallel()
	var trace []string
	tag := func(name string) router.Interceptor {
		return func(next router.HandlerFunc) router.HandlerFunc {
			return func(ctx context.Context, call *router.Call) (proto.Message, error) {
				trace = append(trace, name+">"+call.Method)
				res, err := next(ctx, call)
				trace = append(trace, "<"+name)
				return res, err
			}
		}
	}
	r := router.New(router.WithInterceptors(tag("a"), tag("b")), router.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(router.HandleUnary(r, echo, echoFn, router.WithHandlerInterceptors(tag("h"))))
	must(router.HandleUnary(r, "/t.S/Panic", func(context.Context, *testv1.EchoRequest) (*testv1.EchoResponse, error) {
		panic("boom")
	}))
	must(router.HandleUnary(r, "/t.S/Typed", func(context.Context, *testv1.EchoRequest) (*testv1.EchoResponse, error) {
		return nil, protows.Errorf(protows.CodeNotFound, "no such room")
	}))
	must(router.HandleUnary(r, "/t.S/Nil", func(context.Context, *testv1.EchoRequest) (*testv1.EchoResponse, error) {
		return nil, nil
	}))
	must(router.HandleUnary(r, "/t.S/Slow", func(ctx context.Context, _ *testv1.EchoRequest) (*testv1.EchoResponse, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}, router.WithTimeout(20*time.Millisecond)))

	res, err := serve(t, r, echo, &testv1.EchoRequest{Text: "hi"})
	if err != nil || res.(*testv1.EchoResponse).GetText() != "hi" {
		t.Fatal(res, err)
	}
	if got := strings.Join(trace, " "); got != "a>"+echo+" b>"+echo+" h>"+echo+" <h <b <a" {
		t.Fatalf("order: %s", got)
	}
	for _, tc := range []struct {
		method string
		code   protows.Code
		msg    string
	}{
		{"/t.S/Panic", protows.CodeInternal, "internal error"},
		{"/t.S/Typed", protows.CodeNotFound, "no such room"},
		{"/t.S/Nil", protows.CodeInternal, "handler returned no response and no error"},
		{"/t.S/Slow", protows.CodeDeadlineExceeded, "context deadline exceeded"},
	} {
		_, err := serve(t, r, tc.method, &testv1.EchoRequest{})
		if protows.CodeOf(err) != tc.code || protows.AsError(err).Message() != tc.msg {
			t.Errorf("%s: %v", tc.method, err)
		}
	}
}

func ExampleHandleUnary() {
	r := router.New()
	err := router.HandleUnary(r, "/protows.test.v1.TestService/Echo",
		func(ctx context.Context, req *testv1.EchoRequest) (*testv1.EchoResponse, error) {
			return &testv1.EchoResponse{Text: req.GetText()}, nil
		})
	fmt.Println(err, r.Methods())
	// Output: <nil> [/protows.test.v1.TestService/Echo]
}

func ExampleHandleServerStream() {
	r := router.New()
	err := router.HandleServerStream(r, "/protows.test.v1.TestService/Count",
		func(ctx context.Context, req *testv1.CountRequest, s router.Stream[*testv1.CountResponse]) error {
			for n := uint32(1); n <= req.GetCount(); n++ {
				if err := s.Send(&testv1.CountResponse{N: n}); err != nil {
					return err
				}
			}
			return nil
		})
	fmt.Println(err)
	// Output: <nil>
}

func TestLogCalls(t *testing.T) {
	t.Parallel()
	var buf strings.Builder
	l := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	var debug strings.Builder
	dl := slog.New(slog.NewTextHandler(&debug, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r := router.New(router.WithInterceptors(router.LogCalls(l), router.LogCalls(dl)))
	if err := router.HandleUnary(r, echo, echoFn); err != nil {
		t.Fatal(err)
	}
	if err := router.HandleUnary(r, "/t.S/Typed", func(context.Context, *testv1.EchoRequest) (*testv1.EchoResponse, error) {
		return nil, protows.Errorf(protows.CodeNotFound, "no such room")
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := serve(t, r, echo, &testv1.EchoRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := serve(t, r, "/t.S/Typed", &testv1.EchoRequest{}); err == nil {
		t.Fatal("no error")
	}
	out := buf.String()
	// The success is below the level; the failure is logged with its code.
	if strings.Contains(out, echo) || !strings.Contains(out, "method=/t.S/Typed") || !strings.Contains(out, "code=not_found") || !strings.Contains(out, `err="no such room"`) {
		t.Fatalf("log:\n%s", out)
	}
	// At debug level the success shows, with the code of no error.
	if !strings.Contains(debug.String(), "method="+echo+" code=ok") {
		t.Fatalf("debug log:\n%s", debug.String())
	}
}
