package transport_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	protows "github.com/protows/protows"
	"github.com/protows/protows/codec"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"github.com/protows/protows/internal/memnet"
	"github.com/protows/protows/internal/testservice"
	"github.com/protows/protows/router"
	"github.com/protows/protows/transport"
	"google.golang.org/protobuf/proto"
)

// codecs are the codecs every protocol test runs with.
var codecs = []codec.Codec{codec.Proto(), codec.JSON()}

// quietLogger drops logs below errors, so test output stays readable.
func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// testServer is a transport.Server serving TestService on loopback
// (startServer) or on an in-memory network (startMemServer).
type testServer struct {
	*transport.Server
	http *httptest.Server   // on loopback
	mem  *memnet.HTTPServer // in memory
	url  string
}

func startServer(t testing.TB, cfg transport.Config, extra ...func(*router.Router)) *testServer {
	t.Helper()
	return startServerWithPort(t, func(string) transport.Config { return cfg }, extra...)
}

// startServerWithPort is startServer for a configuration that depends on
// the server's port.
func startServerWithPort(t testing.TB, config func(port string) transport.Config, extra ...func(*router.Router)) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := newServer(t, config(strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)), extra...)
	hs := httptest.NewUnstartedServer(srv)
	_ = hs.Listener.Close()
	hs.Listener = ln
	hs.Config.ReadHeaderTimeout = 5 * time.Second
	hs.Start()
	ts := &testServer{Server: srv, http: hs, url: "ws" + strings.TrimPrefix(hs.URL, "http")}
	t.Cleanup(func() {
		ts.shutdown(t)
		hs.Close()
	})
	return ts
}

// startMemServer is startServer on an in-memory network, for tests in a
// testing/synctest bubble: there the server's timers (heartbeats,
// deadlines, the close handshake's grace) run on the bubble's clock, and
// take no time. Dial it with ts.dial.
func startMemServer(t testing.TB, cfg transport.Config, extra ...func(*router.Router)) *testServer {
	t.Helper()
	srv := newServer(t, cfg, extra...)
	hs := memnet.NewHTTPServer(srv)
	ts := &testServer{Server: srv, mem: hs, url: hs.WebSocketURL()}
	t.Cleanup(func() {
		ts.shutdown(t)
		hs.Close()
	})
	return ts
}

func (ts *testServer) shutdown(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ts.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// dial connects a client to ts, on ts's network.
func (ts *testServer) dial(t testing.TB, c codec.Codec, hdr http.Header) *client {
	t.Helper()
	return dialOn(t, ts.dialer(), ts.url, c, hdr)
}

// dialErr is dial without a testing.TB.
func (ts *testServer) dialErr(c codec.Codec, hdr http.Header) (*client, *http.Response, error) {
	return dialWith(ts.dialer(), ts.url, c, hdr)
}

func (ts *testServer) dialer() websocket.Dialer {
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	if ts.mem != nil {
		d.NetDialContext = ts.mem.Listener.DialContext
	}
	return d
}

func newServer(t testing.TB, cfg transport.Config, extra ...func(*router.Router)) *transport.Server {
	t.Helper()
	r := router.New(router.WithLogger(quietLogger()))
	if err := testservice.Register(r); err != nil {
		t.Fatal(err)
	}
	for _, f := range extra {
		f(r)
	}
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	return transport.NewServer(r, cfg)
}

// client is a raw protocol client on gorilla/websocket.
type client struct {
	t       testing.TB
	ws      *websocket.Conn
	c       codec.Codec
	pending []*protowsv1.Envelope
}

func dial(t testing.TB, url string, c codec.Codec, hdr http.Header) *client {
	t.Helper()
	return dialOn(t, websocket.Dialer{HandshakeTimeout: 5 * time.Second}, url, c, hdr)
}

func dialOn(t testing.TB, d websocket.Dialer, url string, c codec.Codec, hdr http.Header) *client {
	t.Helper()
	cl, resp, err := dialWith(d, url, c, hdr)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial: %v (status %d)", err, status)
	}
	cl.t = t
	t.Cleanup(func() { cl.ws.Close() })
	return cl
}

func dialErr(url string, c codec.Codec, hdr http.Header) (*client, *http.Response, error) {
	return dialWith(websocket.Dialer{HandshakeTimeout: 5 * time.Second}, url, c, hdr)
}

func dialWith(d websocket.Dialer, url string, c codec.Codec, hdr http.Header) (*client, *http.Response, error) {
	if c != nil {
		d.Subprotocols = []string{c.Name()}
	}
	ws, resp, err := d.Dial(url, hdr)
	if err != nil {
		return nil, resp, err
	}
	if c == nil {
		c = codec.Proto()
	}
	return &client{ws: ws, c: c}, resp, nil
}

func (cl *client) msgType() int {
	if cl.c.Binary() {
		return websocket.BinaryMessage
	}
	return websocket.TextMessage
}

// send writes envs as one frame.
func (cl *client) send(envs ...*protowsv1.Envelope) {
	cl.t.Helper()
	frame, err := codec.MarshalFrame(cl.c, envs...)
	if err != nil {
		cl.t.Fatal(err)
	}
	cl.sendRaw(cl.msgType(), frame)
}

func (cl *client) sendRaw(mt int, b []byte) {
	cl.t.Helper()
	_ = cl.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if err := cl.ws.WriteMessage(mt, b); err != nil {
		cl.t.Fatalf("write: %v", err)
	}
}

// request builds a REQUEST envelope; JSON clients name the method, Protobuf
// clients send its id, as the protocol recommends.
func (cl *client) request(id uint32, method string, msg proto.Message) *protowsv1.Envelope {
	cl.t.Helper()
	payload, err := cl.c.AppendPayload(nil, msg)
	if err != nil {
		cl.t.Fatal(err)
	}
	e := &protowsv1.Envelope{Id: id, Kind: protowsv1.Kind_KIND_REQUEST, Payload: payload}
	if cl.c.Binary() {
		e.MethodId = protows.MethodID(method)
	} else {
		e.Method = method
	}
	return e
}

// setReadBuffer shrinks the client's receive buffer (a TCP socket's or
// an in-memory connection's), so that a client that does not read pushes
// back on the server soon.
func (cl *client) setReadBuffer(n int) {
	cl.t.Helper()
	rb, ok := cl.ws.NetConn().(interface{ SetReadBuffer(int) error })
	if !ok {
		cl.t.Fatalf("%T has no receive buffer to set", cl.ws.NetConn())
	}
	if err := rb.SetReadBuffer(n); err != nil {
		cl.t.Fatal(err)
	}
}

// recv returns the next envelope, failing the test on a close or timeout.
func (cl *client) recv() *protowsv1.Envelope {
	cl.t.Helper()
	e, err := cl.next(5 * time.Second)
	if err != nil {
		cl.t.Fatalf("recv: %v", err)
	}
	return e
}

func (cl *client) next(timeout time.Duration) (*protowsv1.Envelope, error) {
	for len(cl.pending) == 0 {
		_ = cl.ws.SetReadDeadline(time.Now().Add(timeout))
		mt, b, err := cl.ws.ReadMessage()
		if err != nil {
			return nil, err
		}
		if mt != cl.msgType() {
			return nil, errors.New("server sent the wrong frame type")
		}
		envs, err := cl.c.DecodeFrame(b)
		if err != nil {
			return nil, err
		}
		cl.pending = envs
	}
	e := cl.pending[0]
	cl.pending = cl.pending[1:]
	return e, nil
}

// expectClose reads until the server's close frame and checks its code.
func (cl *client) expectClose(code protows.CloseCode) string {
	cl.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		_, err := cl.next(10 * time.Second)
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) {
			cl.t.Fatalf("want close %d, got %v", code, err)
		}
		if protows.CloseCode(ce.Code) != code {
			cl.t.Fatalf("want close %d, got %d %q", code, ce.Code, ce.Text)
		}
		if len(ce.Text) > 123 {
			cl.t.Fatalf("close reason of %d bytes", len(ce.Text))
		}
		return ce.Text
	}
	cl.t.Fatalf("no close %d in time", code)
	return ""
}

// call sends a unary request and returns the reply or ERROR envelope.
func (cl *client) call(id uint32, method string, req proto.Message) *protowsv1.Envelope {
	cl.t.Helper()
	cl.send(cl.request(id, method, req))
	for {
		e := cl.recv()
		if e.GetId() == id {
			return e
		}
	}
}

// decode unmarshals a payload with the client's codec.
func (cl *client) decode(e *protowsv1.Envelope, m proto.Message) {
	cl.t.Helper()
	if err := cl.c.UnmarshalPayload(e.GetPayload(), m); err != nil {
		cl.t.Fatalf("payload: %v", err)
	}
}

// wantError checks that e is an ERROR with the code.
func wantError(t testing.TB, e *protowsv1.Envelope, kind protowsv1.Kind, code protows.Code) {
	t.Helper()
	if e.GetKind() != kind || protows.Code(e.GetError().GetCode()) != code {
		t.Fatalf("want %v %v, got %v %v %q", kind, code, e.GetKind(), e.GetError().GetCode(), e.GetError().GetMessage())
	}
}
