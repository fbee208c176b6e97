package client_test

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/protows/protows/client"
	"github.com/protows/protows/codec"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"github.com/protows/protows/internal/memnet"
)

// fakeServer is a scriptable protows server for fault tests: each accepted
// connection is handed to handle, which speaks the protocol by hand. It
// runs on loopback TCP, or on an in-memory network (newMemFake) for tests
// in a testing/synctest bubble.
type fakeServer struct {
	t          *testing.T
	srv        *httptest.Server   // on TCP
	mem        *memnet.HTTPServer // in memory
	url        string
	handshakes atomic.Int32 // HTTP requests, upgraded or not
	accepted   atomic.Int32 // upgraded connections
	handle     func(fc *fakeConn)
	// reject, when set, may refuse a handshake with an HTTP status.
	reject func(r *http.Request) (status int, body string)

	mu     sync.Mutex
	closed bool
	conns  []*websocket.Conn
	wg     sync.WaitGroup
}

// The networks a fakeServer runs on.
const (
	onTCP = iota
	onTLS
	inMemory
)

func newFakeServer(t *testing.T, handle func(fc *fakeConn)) *fakeServer {
	t.Helper()
	return newRejectingServer(t, nil, handle)
}

// newRejectingServer is newFakeServer with a reject function.
func newRejectingServer(t *testing.T, reject func(r *http.Request) (int, string), handle func(fc *fakeConn)) *fakeServer {
	t.Helper()
	return startFake(t, reject, handle, onTCP)
}

// newMemFake is newRejectingServer on an in-memory network; call it in a
// synctest bubble, and dial it with fs.dial.
func newMemFake(t *testing.T, reject func(r *http.Request) (int, string), handle func(fc *fakeConn)) *fakeServer {
	t.Helper()
	return startFake(t, reject, handle, inMemory)
}

// startFake starts a fakeServer on network (onTCP, onTLS or inMemory).
func startFake(t *testing.T, reject func(r *http.Request) (int, string), handle func(fc *fakeConn), network int) *fakeServer {
	t.Helper()
	fs := &fakeServer{t: t, handle: handle, reject: reject}
	up := websocket.Upgrader{
		Subprotocols: []string{codec.ProtoName, codec.JSONName},
		CheckOrigin:  func(*http.Request) bool { return true },
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fs.handshakes.Add(1)
		if fs.reject != nil {
			if status, body := fs.reject(r); status != 0 {
				http.Error(w, body, status)
				return
			}
		}
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		fs.mu.Lock()
		if fs.closed {
			fs.mu.Unlock()
			ws.Close()
			return
		}
		fs.wg.Add(1)
		fs.conns = append(fs.conns, ws)
		fs.mu.Unlock()
		defer fs.wg.Done()
		defer ws.Close()
		c, _ := codec.DefaultRegistry().Lookup(ws.Subprotocol())
		fc := &fakeConn{ws: ws, codec: c, req: r, n: int(fs.accepted.Add(1))}
		fs.handle(fc)
	})
	switch network {
	case inMemory:
		fs.mem = memnet.NewHTTPServer(h)
		fs.url = fs.mem.WebSocketURL()
	case onTLS:
		fs.srv = httptest.NewTLSServer(h)
		fs.url = "ws" + strings.TrimPrefix(fs.srv.URL, "http")
	default:
		fs.srv = httptest.NewServer(h)
		fs.url = "ws" + strings.TrimPrefix(fs.srv.URL, "http")
	}
	t.Cleanup(fs.close)
	return fs
}

// dial connects a client to fs, on fs's network.
func (fs *fakeServer) dial(t *testing.T, opts ...client.Option) *client.Client {
	t.Helper()
	if fs.mem != nil {
		opts = append(opts, client.WithNetDial(fs.mem.Listener.DialContext))
	}
	return dial(t, fs.url, opts...)
}

func (fs *fakeServer) close() {
	fs.mu.Lock()
	fs.closed = true
	for _, ws := range fs.conns {
		ws.Close()
	}
	fs.mu.Unlock()
	if fs.mem != nil {
		fs.mem.Close()
	} else {
		fs.srv.Close()
	}
	fs.wg.Wait()
}

// fakeConn is one server-side connection of a fakeServer.
type fakeConn struct {
	ws    *websocket.Conn
	codec codec.Codec
	req   *http.Request
	n     int // 1 for the first connection of the server
	wmu   sync.Mutex
}

// read returns the envelopes of the next frame.
func (fc *fakeConn) read() ([]*protowsv1.Envelope, error) {
	mt, data, err := fc.ws.ReadMessage()
	if err != nil {
		return nil, err
	}
	if (mt == websocket.BinaryMessage) != fc.codec.Binary() {
		return nil, errors.New("fake: wrong message type")
	}
	return fc.codec.DecodeFrame(data)
}

// write sends envs as one frame.
func (fc *fakeConn) write(envs ...*protowsv1.Envelope) error {
	frame, err := codec.MarshalFrame(fc.codec, envs...)
	if err != nil {
		return err
	}
	mt := websocket.TextMessage
	if fc.codec.Binary() {
		mt = websocket.BinaryMessage
	}
	fc.wmu.Lock()
	defer fc.wmu.Unlock()
	return fc.ws.WriteMessage(mt, frame)
}

// closeWith sends a close frame with code and closes the socket.
func (fc *fakeConn) closeWith(code int, reason string) {
	fc.wmu.Lock()
	defer fc.wmu.Unlock()
	fc.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(time.Second))
	fc.ws.Close()
}

// drop closes the socket without a close frame, as a crashed server does.
func (fc *fakeConn) drop() { fc.ws.Close() }

// serve reads until the connection ends, answering PINGs, and hands every
// other envelope to on (which may be nil).
func (fc *fakeConn) serve(on func(env *protowsv1.Envelope)) {
	for {
		envs, err := fc.read()
		if err != nil {
			return
		}
		for _, env := range envs {
			if env.GetKind() == protowsv1.Kind_KIND_PING {
				if fc.write(&protowsv1.Envelope{Id: env.GetId(), Kind: protowsv1.Kind_KIND_PONG}) != nil {
					return
				}
				continue
			}
			if on != nil {
				on(env)
			}
		}
	}
}

// echo answers every REQUEST with a REPLY carrying the request's payload and
// metadata.
func (fc *fakeConn) echo(env *protowsv1.Envelope) {
	if env.GetKind() == protowsv1.Kind_KIND_REQUEST {
		fc.write(&protowsv1.Envelope{Id: env.GetId(), Kind: protowsv1.Kind_KIND_REPLY,
			Payload: env.GetPayload(), Metadata: env.GetMetadata()})
	}
}

// freezeProxy is a proxy that can silently stop forwarding, in both
// directions, while keeping the connections open: a half-open link. It
// runs on loopback TCP (newFreezeProxy) or in memory (newMemFreezeProxy).
type freezeProxy struct {
	ln     net.Listener
	dialUp func() (net.Conn, error) // connects to the target
	mu     sync.Mutex
	conns  []net.Conn
	flags  []*atomic.Bool                   // frozen, one per accepted connection
	gates  []*atomic.Pointer[chan struct{}] // server-to-client pause, one per connection
	wg     sync.WaitGroup
	// refusing: connections accepted are closed at once.
	refusing atomic.Bool
}

func newFreezeProxy(t *testing.T, target string) *freezeProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return startFreezeProxy(t, ln, func() (net.Conn, error) { return net.Dial("tcp", target) })
}

// newMemFreezeProxy is a freezeProxy in front of an in-memory server;
// dial it with p.dial.
func newMemFreezeProxy(t *testing.T, target *memnet.Listener) *freezeProxy {
	t.Helper()
	return startFreezeProxy(t, memnet.Listen(), target.Dial)
}

func startFreezeProxy(t *testing.T, ln net.Listener, dialUp func() (net.Conn, error)) *freezeProxy {
	p := &freezeProxy{ln: ln, dialUp: dialUp}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *freezeProxy) addr() string { return p.ln.Addr().String() }

// dial connects a client to path on the in-memory proxy p.
func (p *freezeProxy) dial(t *testing.T, path string, opts ...client.Option) *client.Client {
	t.Helper()
	return dial(t, "ws://"+p.addr()+path, append(opts, client.WithNetDial(p.ln.(*memnet.Listener).DialContext))...)
}

// retarget sends the connections accepted from now on to target, on
// loopback TCP.
func (p *freezeProxy) retarget(target string) {
	p.mu.Lock()
	p.dialUp = func() (net.Conn, error) { return net.Dial("tcp", target) }
	p.mu.Unlock()
}

func (p *freezeProxy) accept() {
	defer p.wg.Done()
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		if p.refusing.Load() {
			in.Close()
			continue
		}
		p.mu.Lock()
		dialUp := p.dialUp
		p.mu.Unlock()
		out, err := dialUp()
		if err != nil {
			in.Close()
			continue
		}
		// A small receive buffer, so that a paused proxy pushes back on
		// the server quickly.
		if rb, ok := out.(interface{ SetReadBuffer(int) error }); ok {
			rb.SetReadBuffer(16 << 10)
		}
		frozen := new(atomic.Bool)
		gate := new(atomic.Pointer[chan struct{}])
		p.mu.Lock()
		p.conns = append(p.conns, in, out)
		p.flags = append(p.flags, frozen)
		p.gates = append(p.gates, gate)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(in, out, frozen, gate) // server to client
		go p.pipe(out, in, frozen, nil)  // client to server
	}
}

// pipe copies src to dst until src ends; while frozen it reads and
// discards, so that the sender sees no back pressure and no error; while
// its gate is set it stops reading, so that the sender's TCP window fills
// (a slow consumer).
func (p *freezeProxy) pipe(dst, src net.Conn, frozen *atomic.Bool, gate *atomic.Pointer[chan struct{}]) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		if gate != nil {
			if g := gate.Load(); g != nil {
				<-*g
			}
		}
		n, err := src.Read(buf)
		if n > 0 && !frozen.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			dst.Close()
			return
		}
	}
}

// freeze stops forwarding on the connections open now; later connections
// are forwarded normally.
func (p *freezeProxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range p.flags {
		f.Store(true)
	}
}

// pause stops reading from the server on the connections open now, until
// resume.
func (p *freezeProxy) pause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, g := range p.gates {
		ch := make(chan struct{})
		g.Store(&ch)
	}
}

func (p *freezeProxy) resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, g := range p.gates {
		if ch := g.Swap(nil); ch != nil {
			close(*ch)
		}
	}
}

func (p *freezeProxy) close() {
	p.resume()
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// closeCode returns the close code of a read error, 0 for another error.
func closeCode(err error) int {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return 0
}
