package client_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/protows/protows"
	"github.com/protows/protows/client"
	"github.com/protows/protows/codec"
	testv1 "github.com/protows/protows/gen/go/protows/test/v1"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"github.com/protows/protows/transport"
	"google.golang.org/protobuf/proto"
)

// tagger records the order in which interceptors run, sets a metadata
// entry on every call, and counts the messages of streams.
type tagger struct {
	name  string
	mu    *sync.Mutex
	trace *[]string
}

func (tg tagger) add(s string) {
	tg.mu.Lock()
	*tg.trace = append(*tg.trace, s)
	tg.mu.Unlock()
}

func (tg tagger) WrapUnary(next client.UnaryFunc) client.UnaryFunc {
	return func(ctx context.Context, call *client.Call) (proto.Message, error) {
		tg.add(tg.name + ">" + call.Method)
		call.SetMetadata("x-"+tg.name, "1")
		res, err := next(ctx, call)
		tg.add("<" + tg.name + " " + protows.CodeOf(err).String())
		return res, err
	}
}

func (tg tagger) WrapStream(next client.StreamFunc) client.StreamFunc {
	return func(ctx context.Context, call *client.Call) (client.Stream, error) {
		tg.add(tg.name + ">" + call.Method)
		call.SetMetadata("x-"+tg.name, "1")
		s, err := next(ctx, call)
		if err != nil {
			return nil, err
		}
		return &countingStream{Stream: s, tg: tg}, nil
	}
}

type countingStream struct {
	client.Stream
	tg tagger
	n  int
}

func (s *countingStream) Receive() bool {
	if s.Stream.Receive() {
		s.n++
		return true
	}
	s.tg.add("<" + s.tg.name + " " + protows.CodeOf(s.Err()).String())
	return false
}

// TestInterceptors: interceptors run outermost first around unary calls and
// streams, the metadata they set reaches the server next to the caller's
// (whose map is not modified), and a stream wrapper sees every message and
// the end.
func TestInterceptors(t *testing.T) {
	t.Parallel()
	forCodecs(t, func(t *testing.T, cd codec.Codec) {
		seen := make(chan map[string]string, 4)
		fs := newFakeServer(t, func(fc *fakeConn) {
			fc.serve(func(env *protowsv1.Envelope) {
				if env.GetKind() != protowsv1.Kind_KIND_REQUEST {
					return
				}
				seen <- env.GetMetadata()
				if env.GetMethod() == countMethod || env.GetMethodId() == protows.MethodID(countMethod) {
					var envs []*protowsv1.Envelope
					for n := uint32(1); n <= 3; n++ {
						p, _ := fc.codec.AppendPayload(nil, &testv1.CountResponse{N: n})
						envs = append(envs, &protowsv1.Envelope{Id: env.GetId(), Kind: protowsv1.Kind_KIND_STREAM_MESSAGE, Payload: p})
					}
					fc.write(append(envs, &protowsv1.Envelope{Id: env.GetId(), Kind: protowsv1.Kind_KIND_STREAM_END,
						Error: &protowsv1.Error{Code: protowsv1.Code_CODE_ABORTED, Message: "done"}})...)
					return
				}
				fc.echo(env)
			})
		})
		var mu sync.Mutex
		var trace []string
		c := dial(t, fs.url, client.WithCodec(cd), client.WithInterceptors(
			tagger{"a", &mu, &trace}, tagger{"b", &mu, &trace}))

		own := map[string]string{"caller": "yes"}
		var reply map[string]string
		res, err := client.CallUnary[testv1.EchoResponse](testCtx(t), c, echoMethod, &testv1.EchoRequest{Text: "hi"},
			client.WithMetadata(own), client.ReplyMetadata(&reply))
		if err != nil || res.GetText() != "hi" {
			t.Fatalf("CallUnary = %v, %v", res, err)
		}
		want := map[string]string{"caller": "yes", "x-a": "1", "x-b": "1"}
		if md := <-seen; !equalMD(md, want) {
			t.Errorf("server saw metadata %v, want %v", md, want)
		}
		if !equalMD(reply, want) {
			t.Errorf("reply metadata %v, want %v", reply, want)
		}
		if len(own) != 1 {
			t.Errorf("the caller's metadata map was modified: %v", own)
		}

		st, err := client.CallServerStream[testv1.CountResponse](testCtx(t), c, countMethod, &testv1.CountRequest{})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for st.Receive() {
			n++
			if st.Msg().GetN() != uint32(n) {
				t.Errorf("message %d: n = %d", n, st.Msg().GetN())
			}
		}
		if n != 3 || protows.CodeOf(st.Err()) != protows.CodeAborted {
			t.Errorf("stream: %d messages, err %v", n, st.Err())
		}
		if md := <-seen; !equalMD(md, map[string]string{"x-a": "1", "x-b": "1"}) {
			t.Errorf("stream request metadata %v", md)
		}
		mu.Lock()
		got := strings.Join(trace, " ")
		mu.Unlock()
		wantTrace := "a>" + echoMethod + " b>" + echoMethod + " <b ok <a ok " +
			"a>" + countMethod + " b>" + countMethod + " <b aborted <a aborted"
		if got != wantTrace {
			t.Errorf("trace:\n%s\nwant:\n%s", got, wantTrace)
		}
	})
}

func equalMD(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// An interceptor may answer a call itself; a response of the wrong type is
// an internal error, not a panic.
func TestInterceptorShortCircuit(t *testing.T) {
	t.Parallel()
	fs := newFakeServer(t, func(fc *fakeConn) { fc.serve(nil) })
	cached := client.UnaryInterceptorFunc(func(next client.UnaryFunc) client.UnaryFunc {
		return func(ctx context.Context, call *client.Call) (proto.Message, error) {
			if call.Request.(*testv1.EchoRequest).GetText() == "wrong" {
				return &testv1.CountResponse{}, nil
			}
			return &testv1.EchoResponse{Text: "cached"}, nil
		}
	})
	c := dial(t, fs.url, client.WithInterceptors(cached))
	res, err := client.CallUnary[testv1.EchoResponse](testCtx(t), c, echoMethod, &testv1.EchoRequest{})
	if err != nil || res.GetText() != "cached" {
		t.Fatalf("CallUnary = %v, %v", res, err)
	}
	_, err = client.CallUnary[testv1.EchoResponse](testCtx(t), c, echoMethod, &testv1.EchoRequest{Text: "wrong"})
	if protows.CodeOf(err) != protows.CodeInternal || !strings.Contains(err.Error(), "*testv1.CountResponse") {
		t.Errorf("wrong type: %v", err)
	}
}

// The case: a mistyped method on the Protobuf codec, which sends
// only the method's id, comes back naming the method the caller meant, from
// unary calls and streams alike; the server's message is kept as it was.
func TestErrorsNameTheMethod(t *testing.T) {
	t.Parallel()
	srv := startReal(t, "127.0.0.1:0", transport.Config{}, nil)
	c := dial(t, srv.url, client.WithCodec(codec.Proto()))
	const typo = "/protows.test.v1.TestService/Ehco"
	_, err := client.CallUnary[testv1.EchoResponse](testCtx(t), c, typo, &testv1.EchoRequest{})
	var perr *protows.Error
	if !errors.As(err, &perr) || perr.Code() != protows.CodeUnimplemented || perr.Method() != typo ||
		!strings.Contains(err.Error(), typo) || !strings.HasPrefix(perr.Message(), "unknown method with id 0x") {
		t.Errorf("unary: %v (method %q, message %q)", err, perr.Method(), perr.Message())
	}

	st, err := client.CallServerStream[testv1.CountResponse](testCtx(t), c, "/protows.test.v1.TestService/Cuont", &testv1.CountRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for st.Receive() {
		t.Error("a message from an unknown method")
	}
	if !errors.As(st.Err(), &perr) || perr.Code() != protows.CodeUnimplemented || perr.Method() != "/protows.test.v1.TestService/Cuont" {
		t.Errorf("stream: %v", st.Err())
	}

	// The server's own errors keep their message; the name is the client's.
	_, err = client.CallUnary[testv1.FailResponse](testCtx(t), c, "/protows.test.v1.TestService/Fail",
		&testv1.FailRequest{Code: uint32(protows.CodeNotFound), Message: "no such room"})
	if !errors.As(err, &perr) || perr.Message() != "no such room" ||
		err.Error() != "protows: not_found: /protows.test.v1.TestService/Fail: no such room" {
		t.Errorf("server error: %v", err)
	}

	// Local failures name it too: a context that ended.
	ctx, cancel := context.WithCancel(testCtx(t))
	cancel()
	_, err = client.CallUnary[testv1.EchoResponse](ctx, c, echoMethod, &testv1.EchoRequest{})
	if !errors.As(err, &perr) || perr.Code() != protows.CodeCanceled || perr.Method() != echoMethod {
		t.Errorf("cancelled: %v", err)
	}
}

// TestLogCalls: the client's logging interceptor logs the code of every
// call, successes as "ok" at debug level, failures at info level, and a
// stream's end with its message count.
func TestLogCalls(t *testing.T) {
	t.Parallel()
	srv := startReal(t, "127.0.0.1:0", transport.Config{}, nil)
	var buf syncBuffer
	l := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c := dial(t, srv.url, client.WithInterceptors(client.LogCalls(l)))
	if _, err := client.CallUnary[testv1.EchoResponse](testCtx(t), c, echoMethod, &testv1.EchoRequest{}); err != nil {
		t.Fatal(err)
	}
	client.CallUnary[testv1.FailResponse](testCtx(t), c, "/protows.test.v1.TestService/Fail",
		&testv1.FailRequest{Code: uint32(protows.CodeNotFound), Message: "no such room"})
	st, err := client.CallServerStream[testv1.CountResponse](testCtx(t), c, countMethod, &testv1.CountRequest{Count: 3})
	if err != nil {
		t.Fatal(err)
	}
	for st.Receive() {
	}
	st.Close() // logs nothing more: the end was logged
	out := buf.String()
	for _, want := range []string{
		"level=DEBUG msg=\"protows client: call\" method=" + echoMethod + " code=ok",
		"level=INFO msg=\"protows client: call\" method=/protows.test.v1.TestService/Fail code=not_found",
		`err="no such room"`,
		"method=" + countMethod + " code=ok",
		"messages=3",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, countMethod); n != 1 {
		t.Errorf("the stream was logged %d times:\n%s", n, out)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestForeignEndpoint: dialing a URL that answers with a web page puts the
// status and the body's type in the error, not the page.
func TestForeignEndpoint(t *testing.T) {
	t.Parallel()
	page := "<!doctype html><html>" + strings.Repeat("<p>lorem ipsum</p>", 500) + "</html>"
	tests := []struct {
		name   string
		status int
		ctype  string
		body   string
		want   string
	}{
		{"HTML 200", http.StatusOK, "text/html; charset=utf-8", page,
			"handshake refused: not a WebSocket endpoint: HTTP 200 OK (a text/html; charset=utf-8 body)"},
		{"proxy page", http.StatusBadGateway, "text/html", page,
			"handshake refused: HTTP 502 Bad Gateway (a text/html body)"},
		{"long text", http.StatusNotFound, "text/plain", strings.Repeat("é", 300) + "\nsecond line",
			"handshake refused: HTTP 404 Not Found: " + strings.Repeat("é", 100) + "…"},
		{"protows reason", http.StatusForbidden, "text/plain; charset=utf-8", "origin not allowed\n",
			"handshake refused: HTTP 403 Forbidden: origin not allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tt.ctype)
				w.WriteHeader(tt.status)
				w.Write([]byte(tt.body))
			}))
			defer srv.Close()
			_, err := client.Dial(testCtx(t), "ws"+strings.TrimPrefix(srv.URL, "http"))
			if err == nil || !strings.HasSuffix(err.Error(), tt.want) {
				t.Errorf("err = %v\nwant it to end with %q", err, tt.want)
			}
			if err != nil && len(err.Error()) > 300 {
				t.Errorf("the error is %d bytes long", len(err.Error()))
			}
		})
	}
}
