// Package memnet is an in-memory network for tests that run in a
// testing/synctest bubble.
//
// A goroutine reading a real socket is never "durably blocked" in the sense
// of testing/synctest, so the fake clock of a bubble cannot advance past it,
// and tests of heartbeats, deadlines and backoff over loopback TCP have to
// sleep for real. memnet's connections block on channels only: created in a
// bubble, a server and its clients run on the bubble's clock, and a test of
// a 25 s heartbeat takes no time.
//
// Unlike net.Pipe, a Conn buffers like a TCP socket: a write returns once
// its bytes fit into the peer's receive buffer (DefaultBufferSize, or
// SetReadBuffer), not once the peer read them, so a peer that stops reading
// pushes back only when that buffer is full. Deadlines, Close and
// CloseWrite behave as on a TCP connection: the peer of a closed Conn
// reads what was sent, then io.EOF. Its writes are discarded rather than
// failed: over TCP the first ones succeed too, until the peer's reset
// comes back, and a test must not depend on when that happens.
//
// Usage, inside synctest.Test:
//
//	srv := memnet.NewHTTPServer(handler)
//	defer srv.Close()
//	d := websocket.Dialer{NetDialContext: srv.Listener.DialContext}
//	ws, _, err := d.Dial(srv.WebSocketURL(), nil)
package memnet

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// DefaultBufferSize is the receive buffer of a new Conn.
const DefaultBufferSize = 64 << 10

// A Listener accepts the connections made by its Dial methods.
type Listener struct {
	addr    *net.TCPAddr
	backlog chan *Conn
	done    chan struct{}
	once    sync.Once
	ports   atomic.Int32
}

var _ net.Listener = (*Listener)(nil)

// Listen returns a new Listener. Its address, 127.0.0.1:1, is only a
// label: Dial ignores the address it is given.
func Listen() *Listener {
	return &Listener{
		addr:    &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1},
		backlog: make(chan *Conn, 128),
		done:    make(chan struct{}),
	}
}

// Accept waits for the next connection.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.backlog:
		return c, nil
	case <-l.done:
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.addr, Err: net.ErrClosed}
	}
}

// Close stops accepting; connections not accepted yet are closed.
func (l *Listener) Close() error {
	first := false
	l.once.Do(func() { close(l.done); first = true })
	if !first {
		return &net.OpError{Op: "close", Net: "tcp", Addr: l.addr, Err: net.ErrClosed}
	}
	for {
		select {
		case c := <-l.backlog:
			c.Close()
		default:
			return nil
		}
	}
}

// Addr returns the listener's address.
func (l *Listener) Addr() net.Addr { return l.addr }

// Dial connects to l. It fails with ECONNREFUSED once l is closed.
func (l *Listener) Dial() (net.Conn, error) {
	return l.DialContext(context.Background(), "tcp", l.addr.String())
}

// DialContext connects to l, whatever network and address say; its
// signature is that of net.Dialer.DialContext, for dialers' hooks
// (websocket.Dialer.NetDialContext, http.Transport.DialContext).
func (l *Listener) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	clientAddr := &net.TCPAddr{IP: l.addr.IP, Port: 40000 + int(l.ports.Add(1))}
	client, server := pipe(clientAddr, l.addr)
	refused := &net.OpError{Op: "dial", Net: "tcp", Addr: l.addr, Err: syscall.ECONNREFUSED}
	select {
	case <-l.done:
		return nil, refused
	default:
	}
	select {
	case l.backlog <- server:
		return client, nil
	case <-l.done:
		return nil, refused
	case <-ctx.Done():
		return nil, &net.OpError{Op: "dial", Net: "tcp", Addr: l.addr, Err: ctx.Err()}
	}
}

// Pipe returns the two ends of a new connection.
func Pipe() (*Conn, *Conn) {
	ip := net.IPv4(127, 0, 0, 1)
	return pipe(&net.TCPAddr{IP: ip, Port: 40000}, &net.TCPAddr{IP: ip, Port: 1})
}

func pipe(a, b *net.TCPAddr) (*Conn, *Conn) {
	ab, ba := newBuffer(), newBuffer()
	return newConn(ba, ab, a, b), newConn(ab, ba, b, a)
}

// buffer is one direction of a connection: the receive buffer of its
// reader.
type buffer struct {
	mu   sync.Mutex
	data []byte
	size int
	eof  bool          // the writer closed: reads drain data, then io.EOF
	gone bool          // the reader closed: writes are discarded
	wake chan struct{} // closed and replaced on every change
}

func newBuffer() *buffer {
	return &buffer{size: DefaultBufferSize, wake: make(chan struct{})}
}

// changed wakes whoever waits for b; b.mu is held.
func (b *buffer) changed() {
	close(b.wake)
	b.wake = make(chan struct{})
}

// A Conn is one end of an in-memory connection. It is safe for concurrent
// use, like a net.TCPConn.
type Conn struct {
	in, out       *buffer
	local, remote *net.TCPAddr
	closed        chan struct{}
	once          sync.Once
	rd, wd        *deadline
}

var _ net.Conn = (*Conn)(nil)

func newConn(in, out *buffer, local, remote *net.TCPAddr) *Conn {
	return &Conn{in: in, out: out, local: local, remote: remote, closed: make(chan struct{}),
		rd: newDeadline(), wd: newDeadline()}
}

func (c *Conn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.local, Addr: c.remote, Err: err}
}

// Read reads what the peer wrote, waiting for it.
func (c *Conn) Read(p []byte) (int, error) {
	for {
		if isClosed(c.closed) {
			return 0, c.opError("read", net.ErrClosed)
		}
		timeout := c.rd.wait()
		if isClosed(timeout) {
			return 0, c.opError("read", os.ErrDeadlineExceeded)
		}
		b := c.in
		b.mu.Lock()
		if len(b.data) > 0 || len(p) == 0 {
			n := copy(p, b.data)
			b.data = b.data[n:]
			if len(b.data) == 0 {
				b.data = nil
			}
			b.changed()
			b.mu.Unlock()
			return n, nil
		}
		if b.eof {
			b.mu.Unlock()
			return 0, io.EOF
		}
		wake := b.wake
		b.mu.Unlock()
		select {
		case <-wake:
		case <-c.closed:
		case <-timeout:
		}
	}
}

// Write copies p into the peer's receive buffer, waiting while it is full.
func (c *Conn) Write(p []byte) (int, error) {
	n := 0
	for {
		if isClosed(c.closed) {
			return n, c.opError("write", net.ErrClosed)
		}
		timeout := c.wd.wait()
		if isClosed(timeout) {
			return n, c.opError("write", os.ErrDeadlineExceeded)
		}
		b := c.out
		b.mu.Lock()
		switch {
		case b.eof:
			b.mu.Unlock()
			return n, c.opError("write", syscall.EPIPE)
		case b.gone:
			b.mu.Unlock()
			return n + len(p), nil
		}
		if free := b.size - len(b.data); free > 0 || len(p) == 0 {
			k := min(free, len(p))
			b.data = append(b.data, p[:k]...)
			p = p[k:]
			n += k
			b.changed()
			b.mu.Unlock()
			if len(p) == 0 {
				return n, nil
			}
			continue
		}
		wake := b.wake
		b.mu.Unlock()
		select {
		case <-wake:
		case <-c.closed:
		case <-timeout:
		}
	}
}

// Close closes the connection: the peer reads what is buffered, then
// io.EOF, and its writes are discarded.
func (c *Conn) Close() error {
	first := false
	c.once.Do(func() { close(c.closed); first = true })
	if !first {
		return c.opError("close", net.ErrClosed)
	}
	c.in.mu.Lock()
	c.in.gone, c.in.data = true, nil
	c.in.changed()
	c.in.mu.Unlock()
	return c.CloseWrite()
}

// CloseWrite shuts down the writing side: the peer reads what is
// buffered, then io.EOF.
func (c *Conn) CloseWrite() error {
	c.out.mu.Lock()
	c.out.eof = true
	c.out.changed()
	c.out.mu.Unlock()
	return nil
}

// SetReadBuffer sets the size of c's receive buffer: how much the peer
// can write that c has not read yet.
func (c *Conn) SetReadBuffer(n int) error {
	c.in.mu.Lock()
	c.in.size = max(n, 1)
	c.in.changed()
	c.in.mu.Unlock()
	return nil
}

// LocalAddr returns c's address.
func (c *Conn) LocalAddr() net.Addr { return c.local }

// RemoteAddr returns the peer's address.
func (c *Conn) RemoteAddr() net.Addr { return c.remote }

// SetDeadline sets the read and write deadlines.
func (c *Conn) SetDeadline(t time.Time) error {
	c.rd.set(t)
	c.wd.set(t)
	return nil
}

// SetReadDeadline sets the read deadline; zero means none.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.rd.set(t)
	return nil
}

// SetWriteDeadline sets the write deadline; zero means none.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.wd.set(t)
	return nil
}

// deadline is a channel that is closed when a time passes.
type deadline struct {
	mu     sync.Mutex
	timer  *time.Timer
	passed chan struct{}
}

func newDeadline() *deadline { return &deadline{passed: make(chan struct{})} }

func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil && !d.timer.Stop() {
		<-d.passed // the timer fired: its function closes the channel
	}
	d.timer = nil
	passed := isClosed(d.passed)
	if t.IsZero() {
		if passed {
			d.passed = make(chan struct{})
		}
		return
	}
	dur := time.Until(t)
	if dur <= 0 {
		if !passed {
			close(d.passed)
		}
		return
	}
	if passed {
		d.passed = make(chan struct{})
	}
	ch := d.passed
	d.timer = time.AfterFunc(dur, func() { close(ch) })
}

// wait returns the channel closed when the deadline passes.
func (d *deadline) wait() chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.passed
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// An HTTPServer serves an http.Handler on a Listener, like an
// httptest.Server on loopback.
type HTTPServer struct {
	Listener *Listener
	Server   *http.Server
	done     chan struct{}
}

// NewHTTPServer starts serving h on a new Listener.
func NewHTTPServer(h http.Handler) *HTTPServer {
	s := &HTTPServer{Listener: Listen(), Server: &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second},
		done: make(chan struct{})}
	go func() {
		defer close(s.done)
		_ = s.Server.Serve(s.Listener)
	}()
	return s
}

// URL returns the server's http:// base URL.
func (s *HTTPServer) URL() string {
	return "http://" + s.Listener.addr.String()
}

// WebSocketURL returns the server's ws:// base URL.
func (s *HTTPServer) WebSocketURL() string { return "ws" + s.URL()[len("http"):] }

// Client returns an HTTP client that reaches the server whatever the host
// of its URLs.
func (s *HTTPServer) Client() *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: s.Listener.DialContext, DisableKeepAlives: true}}
}

// Close stops the server: the listener and the connections it did not
// hand over (hijack) close, and Close returns once Serve did.
func (s *HTTPServer) Close() {
	_ = s.Server.Close()
	<-s.done
}
