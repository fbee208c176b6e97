package transport

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/protows/protows/codec"
	"github.com/protows/protows/dedupe"
)

// Server accepts protows WebSocket connections. It is an http.Handler:
// mount it at any path. Create it with NewServer.
type Server struct {
	h        Handler
	cfg      Config
	origins  *originChecker
	upgrader websocket.Upgrader
	bufs     bufferPool
	idPrefix string
	nextID   atomic.Uint64
	calls    atomic.Int64  // running calls of every connection (Config.MaxCalls)
	workers  *workerPool   // runs handlers and writers on warm goroutines
	epoch    time.Time     // the zero of the connections' monotonic clocks
	idleGap  time.Duration // the readers' idleGap; other values in tests
	load     LoadMetrics   // cfg.Metrics's, when it has them
	// claims is cfg.Dedupe when it is a dedupe.ClaimStore, asserted once:
	// every keyed call asks (Call.keepPayload, Conn.runKeyed).
	claims dedupe.ClaimStore
	// prefetch is cfg.Dedupe when it can start loading what a claim will
	// read (keyPrefetcher), asserted once.
	prefetch keyPrefetcher
	// timed: cfg.Metrics is not NopMetrics, so calls are timed and
	// reported (Metrics.CallDone); without it a call does not read the
	// clock for them (twice per call, some 100 ns on a busy host).
	timed bool

	mu       sync.Mutex
	conns    map[*Conn]struct{}
	perIP    map[string]int
	open     int // reserved or open connections
	draining bool
	wg       sync.WaitGroup // one per connection being served
}

var _ http.Handler = (*Server)(nil)

// NewServer returns a server that dispatches calls to h, configured by cfg
// (see Config for the zero values). A nil h serves no method (every call
// gets unimplemented; Authenticate still works).
func NewServer(h Handler, cfg Config) *Server {
	cfg = cfg.withDefaults()
	if h == nil {
		h = noMethods{}
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	s := &Server{
		h:        h,
		cfg:      cfg,
		origins:  newOriginChecker(cfg.AllowedOrigins, cfg.AllowedHosts),
		idPrefix: hex.EncodeToString(rnd[:]),
		conns:    make(map[*Conn]struct{}),
		perIP:    make(map[string]int),
		workers:  newWorkerPool(),
		epoch:    time.Now(),
		idleGap:  idleGap,
	}
	s.load, _ = cfg.Metrics.(LoadMetrics)
	s.claims, _ = cfg.Dedupe.(dedupe.ClaimStore)
	s.prefetch, _ = cfg.Dedupe.(keyPrefetcher)
	_, nop := cfg.Metrics.(NopMetrics)
	s.timed = !nop
	if s.origins.all {
		cfg.Logger.Warn("protows: AllowedOrigins has \"*\": any web page may open connections to this server")
	}
	s.upgrader = websocket.Upgrader{
		HandshakeTimeout: cfg.HandshakeTimeout,
		ReadBufferSize:   cfg.ReadBufferSize,
		// Write buffers come from a pool: an idle connection holds none.
		WriteBufferPool:   &sync.Pool{},
		EnableCompression: cfg.EnableCompression,
		// Checked before Upgrade, with our own rules.
		CheckOrigin: func(*http.Request) bool { return true },
		Error: func(w http.ResponseWriter, r *http.Request, status int, reason error) {
			s.reject(w, "upgrade", status, reason.Error())
		},
	}
	return s
}

// noMethods is the Handler of a server created without one.
type noMethods struct{}

func (noMethods) Lookup(uint32) (*Method, bool) { return nil, false }

// reject answers a refused handshake with a plain-text status.
func (s *Server) reject(w http.ResponseWriter, reason string, status int, msg string) {
	s.cfg.Metrics.HandshakeRejected(reason)
	s.cfg.Logger.Debug("protows: handshake refused", "reason", reason, "status", status, "msg", msg)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = fmt.Fprintln(w, msg)
}

func (s *Server) clientIP(r *http.Request) string {
	if s.cfg.ClientIP != nil {
		return s.cfg.ClientIP(r)
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// ServeHTTP performs the handshake (docs/PROTOCOL.md, section 1.2) and
// starts serving the connection; it returns once the connection is
// upgraded.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !websocket.IsWebSocketUpgrade(r) {
		s.reject(w, "not_websocket", http.StatusBadRequest, "not a WebSocket handshake")
		return
	}
	if q := r.URL.Query(); (q.Has("access_token") || q.Has("token")) && !s.cfg.AllowQueryToken {
		s.reject(w, "query_token", http.StatusBadRequest, "tokens in the URL are refused: use the Authorization header or "+AuthenticateMethod)
		return
	}
	if !s.origins.hostAllowed(r) {
		s.reject(w, "host", http.StatusForbidden, "host not allowed")
		return
	}
	if !s.origins.allowed(r) {
		s.reject(w, "origin", http.StatusForbidden, "origin not allowed")
		return
	}
	c, err := s.cfg.Codecs.Negotiate(websocket.Subprotocols(r))
	if err != nil {
		s.reject(w, "subprotocol", http.StatusBadRequest, "unsupported subprotocol: supported are "+strings.Join(s.cfg.Codecs.Names(), ", "))
		return
	}
	var principal *Principal
	if s.cfg.Authenticator != nil {
		tok, err := bearerToken(r.Header)
		if err == nil && tok == "" && s.cfg.AllowQueryToken {
			tok = r.URL.Query().Get("access_token")
		}
		if err == nil && tok != "" {
			ctx, cancel := context.WithTimeout(r.Context(), s.cfg.HandshakeTimeout)
			principal, err = s.cfg.Authenticator.Authenticate(ctx, tok)
			cancel()
			if err == nil && principal == nil {
				err = errors.New("no principal")
			}
		}
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			s.reject(w, "unauthenticated", http.StatusUnauthorized, "invalid bearer token")
			return
		}
	}
	ip := s.clientIP(r)
	if reason, ok := s.reserve(ip); !ok {
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int(s.cfg.RetryAfter.Seconds()+0.5))))
		s.reject(w, reason, http.StatusServiceUnavailable, "too many connections, retry later")
		return
	}
	var hdr http.Header
	if len(websocket.Subprotocols(r)) > 0 {
		hdr = http.Header{"Sec-Websocket-Protocol": {c.Name()}}
	}
	ws, err := s.upgrader.Upgrade(w, r, hdr)
	if err != nil {
		// gorilla answered already (through Error) or the hijacked
		// connection failed: log, never write.
		s.release(ip, nil)
		s.cfg.Logger.Info("protows: upgrade failed", "remote", r.RemoteAddr, "err", err)
		return
	}
	var md map[string]string
	if s.cfg.ConnMetadata != nil {
		md = s.cfg.ConnMetadata(r)
	}
	// ServeHTTP returns once the connection is set up, and its reader runs
	// on a goroutine of its own: net/http then frees the request and its
	// 8 KiB of bufio buffers, which would otherwise stay live for the
	// connection's life. Nothing of the request is kept, its context
	// neither: deriving the connection's context from it would keep
	// net/http's per-connection contexts (some 300 bytes) live as long
	// (docs/DECISIONS.md).
	s.serveConn(r.RemoteAddr, ws, c, ip, principal, md)
}

// reserve counts a connection against the limits, or says which is full.
func (s *Server) reserve(ip string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.draining:
		return "draining", false
	case s.cfg.MaxConns > 0 && s.open >= s.cfg.MaxConns:
		return "limit", false
	case s.cfg.MaxConnsPerIP > 0 && s.perIP[ip] >= s.cfg.MaxConnsPerIP:
		return "limit", false
	}
	s.open++
	s.perIP[ip]++
	s.wg.Add(1)
	return "", true
}

func (s *Server) release(ip string, c *Conn) {
	s.mu.Lock()
	s.open--
	if s.perIP[ip]--; s.perIP[ip] <= 0 {
		delete(s.perIP, ip)
	}
	if c != nil {
		delete(s.conns, c)
	}
	s.mu.Unlock()
	s.wg.Done()
}

// serveConn sets up one upgraded connection and starts its reader (read);
// the writer runs on a goroutine of its own only while there is something
// to write.
func (s *Server) serveConn(remote string, ws *websocket.Conn, cd codec.Codec, ip string, p *Principal, md map[string]string) {
	ctx, cancel := context.WithCancel(context.Background())
	c := &Conn{
		srv:      s,
		ws:       ws,
		id:       s.idPrefix + "-" + strconv.FormatUint(s.nextID.Add(1), 10),
		remote:   remote,
		ip:       ip,
		codec:    cd,
		metadata: md,
		cancel:   cancel,
		opened:   time.Since(s.epoch),
	}
	c.ctx = connContext{Context: ctx, conn: c}
	// gorilla's wire limit; a compressed message is checked again after
	// decompression. Deflate can expand incompressible data by a few bytes
	// per block, hence the slack.
	limit := s.cfg.MaxMessageSize
	if s.cfg.EnableCompression {
		limit += limit/64 + 1024
	}
	ws.SetReadLimit(limit)
	if p != nil {
		c.setPrincipal(p)
	} else if s.cfg.Authenticator != nil {
		c.armAuthDeadline()
	}

	s.mu.Lock()
	s.conns[c] = struct{}{}
	draining := s.draining
	s.mu.Unlock()
	if draining {
		c.drain()
	}
	s.cfg.Metrics.ConnOpened(cd.Name())
	// c.logger() allocates: an idle connection keeps no logger of its own.
	if lvl := s.cfg.ConnLogLevel; s.cfg.Logger.Enabled(ctx, lvl) {
		attrs := []any{"ip", ip, "subprotocol", cd.Name()}
		if p != nil {
			attrs = append(attrs, "subject", p.Subject)
		}
		c.logger().Log(ctx, lvl, "protows: connection open", attrs...)
	}

	c.mu.Lock()
	c.w.pingTmr = time.AfterFunc(s.cfg.PingInterval, c.firePing)
	c.mu.Unlock()
	c.authorizeHandshake(p)
	c.startReading()
	go c.read()
}

// Shutdown stops accepting connections, refuses new calls with
// unavailable, ends every server stream at once with STREAM_END
// unavailable and cancels its handler's context, waits for the running
// handlers (unary calls run to their end, for at most Config.DrainTimeout)
// and writes their replies, closes every connection with 1001, and
// returns when all connection goroutines ended. When ctx expires first, the remaining connections are dropped
// (their contexts cancelled, their TCP connections closed) and ctx's error
// is returned at once, without waiting for handlers that ignore their
// context. Shutdown does not stop the http.Server the
// Server is mounted on: call http.Server.Shutdown too (hijacked WebSocket
// connections are not tracked by it).
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.draining = true
	conns := make([]*Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.drain()
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		// Every handler and writer returned: the workers are idle.
		s.workers.stop()
		s.workers.wait()
		return nil
	case <-ctx.Done():
		s.workers.stop()
		s.mu.Lock()
		for c := range s.conns {
			c.cancel()
			c.cancelCalls(true)
			c.abort()
		}
		s.mu.Unlock()
		return ctx.Err()
	}
}
