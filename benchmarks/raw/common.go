package raw

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/protows/protows/benchmarks/harness"
	"github.com/protows/protows/codec"
)

// Impl is the implementation name of the raw baselines in results.
const Impl = "gorilla"

// ioTimeout bounds every read and write, so that a stuck peer fails a
// repetition instead of hanging it.
const ioTimeout = 10 * time.Second

// payloadCodec returns the protows codec whose payload encoding the raw
// baseline uses for codec name c (the payload bytes are then exactly those a
// protows envelope carries), and the WebSocket message type that goes with
// it.
func payloadCodec(c string) (codec.Codec, int, error) {
	switch c {
	case harness.CodecProto:
		return codec.Proto(), websocket.BinaryMessage, nil
	case harness.CodecJSON:
		return codec.JSON(), websocket.TextMessage, nil
	}
	return nil, 0, fmt.Errorf("raw: unknown codec %q", c)
}

// upgrader is the server side's: default buffers, as a user of gorilla
// would start with. Load clients send no Origin header, which gorilla's
// default origin check accepts.
var upgrader = websocket.Upgrader{}

// dial opens one client connection with gorilla's defaults.
func dial(ctx context.Context, url string) (*websocket.Conn, error) {
	d := websocket.Dialer{HandshakeTimeout: ioTimeout}
	conn, resp, err := d.DialContext(ctx, url, nil)
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("raw: dial %s: %w", url, err)
	}
	return conn, nil
}

// dialAll opens n connections, closing all of them if one fails.
func dialAll(ctx context.Context, url string, n int) ([]*websocket.Conn, error) {
	conns := make([]*websocket.Conn, 0, n)
	for range n {
		c, err := dial(ctx, url)
		if err != nil {
			closeAll(conns)
			return nil, err
		}
		conns = append(conns, c)
	}
	return conns, nil
}

func closeAll(conns []*websocket.Conn) {
	for _, c := range conns {
		_ = c.Close()
	}
}

// server serves upgraded connections, each in its handler's goroutine,
// and closes them all, waiting for the handlers, on Close.
type server struct {
	serve func(*websocket.Conn)

	mu     sync.Mutex
	conns  map[*websocket.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

var _ harness.Server = (*server)(nil)

func newServer(serve func(*websocket.Conn)) *server {
	return &server{serve: serve, conns: make(map[*websocket.Conn]struct{})}
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // Upgrade has answered with an HTTP error
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = conn.Close()
		return
	}
	s.conns[conn] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, conn)
		s.mu.Unlock()
		_ = conn.Close()
		s.wg.Done()
	}()
	s.serve(conn)
}

// Close closes every connection and waits for their handlers.
func (s *server) Close() error {
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// readUntilClosed reads and discards conn's messages on a goroutine of its
// own, so that the close is noticed, and closes the returned channel once
// reading fails.
func readUntilClosed(conn *websocket.Conn) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if _, _, err := conn.ReadMessage(); err != nil {
				return
			}
		}
	}()
	return done
}
