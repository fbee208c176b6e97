package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gorilla/websocket"
	"github.com/protows/protows"
)

// Client is a connection to a protows server that survives drops: it
// reconnects, re-authenticates and re-opens its server streams on its own
// (see the package documentation). Make calls with CallUnary and
// CallServerStream. A Client is safe for concurrent use.
type Client struct {
	cfg config
	url string

	ctx    context.Context // ends with Close
	cancel context.CancelFunc
	done   chan struct{} // closed when the supervising goroutine returned

	token   tokenState // see tokenState
	refusal string     // why the server refused the token last, likewise
	rtt     atomic.Int64
	slots   chan struct{} // one element per call in flight (WithMaxInFlight)
	outbox  outbox        // calls with an idempotency key (outbox.go)

	mu      sync.Mutex
	state   State
	cur     *conn         // nil while not connected
	ready   chan struct{} // closed when cur is set or the client stopped
	stopErr error         // set when the client stopped
	streams map[*streamCore]struct{}

	// The call functions, wrapped in the interceptors (chain).
	unary  UnaryFunc
	stream StreamFunc
}

// Dial connects to the protows server at rawURL (ws:// or wss://) and
// returns a Client that keeps the connection up until Close.
//
// Dial makes one attempt: when it fails (the server is unreachable, refuses
// the handshake, or rejects the token), it returns a *protows.Error whose
// code says why (CodeUnavailable, CodeUnauthenticated for HTTP 401,
// CodePermissionDenied for 403, CodeFailedPrecondition for 400 or a server
// that does not speak the codec's subprotocol) and starts nothing. Once
// connected, the client reconnects by itself. ctx bounds the attempt only.
func Dial(ctx context.Context, rawURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, protows.Errorf(protows.CodeInvalidArgument, "client: bad URL: %w", err)
	}
	if u.Scheme != "ws" && u.Scheme != "wss" {
		return nil, protows.Errorf(protows.CodeInvalidArgument, "client: URL scheme %q is not ws or wss", u.Scheme)
	}
	c := &Client{
		cfg:     newConfig(opts),
		url:     u.String(),
		ready:   make(chan struct{}),
		streams: make(map[*streamCore]struct{}),
		done:    make(chan struct{}),
	}
	c.slots = make(chan struct{}, c.cfg.maxInFlight)
	c.chain()
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.setState(StateConnecting, nil)
	cn, aerr := c.connect(ctx, false)
	if aerr != nil {
		err := aerr.err
		if dl, ok := ctx.Deadline(); ctx.Err() != nil || ok && !time.Now().Before(dl) {
			// The caller's context ended the attempt (gorilla turns its
			// deadline into an i/o timeout, maybe before ctx.Err is set).
			err = protows.NewError(protows.CodeDeadlineExceeded, context.DeadlineExceeded)
			if errors.Is(ctx.Err(), context.Canceled) {
				err = ctxError(ctx)
			}
		}
		c.cancel()
		c.setState(StateClosed, err)
		close(c.done)
		return nil, err
	}
	c.attach(cn)
	go c.supervise(cn)
	return c, nil
}

// Close closes the connection (code 1000) and stops reconnecting. Calls in
// flight and open streams end with a CodeCanceled error wrapping ErrClosed,
// as do later calls. Close waits for the client's goroutines and always
// returns nil; calling it again does nothing.
func (c *Client) Close() error {
	c.cancel()
	<-c.done
	return nil
}

// State returns the current state.
func (c *Client) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// RTT returns the last round-trip time measured by the heartbeat (PING to
// PONG, including the server's queueing), or 0 before the first PONG.
func (c *Client) RTT() time.Duration {
	return time.Duration(c.rtt.Load())
}

func (c *Client) setState(s State, err error) {
	c.mu.Lock()
	changed := c.state != s
	c.state = s
	c.mu.Unlock()
	if changed && c.cfg.onState != nil {
		c.cfg.onState(s, err)
	}
}

// attemptError is a failed connection attempt and what to do about it.
type attemptError struct {
	act        action
	err        error
	retryAfter time.Duration
}

// connect makes one connection attempt, first getting a token when the
// current one is missing, stale, or (newToken) refused by the server.
func (c *Client) connect(ctx context.Context, newToken bool) (*conn, *attemptError) {
	if c.cfg.tokens != nil && (newToken || c.token.stale(time.Now())) {
		refused := c.token.value
		if err := c.fetchToken(ctx); err != nil {
			return nil, &attemptError{act: actBackoff, err: err}
		}
		if newToken && c.token.value == refused {
			return nil, &attemptError{act: actStop, err: protows.Errorf(protows.CodeUnauthenticated,
				"client: the token source gave no new token after the server refused it: %s", c.refusal)}
		}
	}
	header := http.Header{}
	for k, v := range c.cfg.header {
		header[k] = v
	}
	if c.token.value != "" {
		header.Set("Authorization", "Bearer "+c.token.value)
	}
	if c.cfg.origin != "" {
		header.Set("Origin", c.cfg.origin)
	}
	d := websocket.Dialer{
		Proxy:            http.ProxyFromEnvironment,
		HandshakeTimeout: c.cfg.dialTimeout,
		TLSClientConfig:  c.cfg.tls,
		Subprotocols:     []string{c.cfg.codec.Name()},
		NetDialContext:   c.cfg.netDial,
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.dialTimeout)
	defer cancel()
	ws, resp, err := d.DialContext(ctx, c.url, header)
	if err != nil {
		if resp != nil && errors.Is(err, websocket.ErrBadHandshake) {
			return nil, handshakeError(resp)
		}
		return nil, &attemptError{act: actBackoff, err: protows.Errorf(protows.CodeUnavailable, "client: dial %s: %w", c.url, err)}
	}
	if got := ws.Subprotocol(); got != c.cfg.codec.Name() {
		ws.Close()
		return nil, &attemptError{act: actStop, err: protows.Errorf(protows.CodeFailedPrecondition,
			"client: server chose subprotocol %q, not %q", got, c.cfg.codec.Name())}
	}
	return newConn(c, ws), nil
}

// handshakeError describes a refused upgrade (docs/PROTOCOL.md, section 1.2).
func handshakeError(resp *http.Response) *attemptError {
	act, code := classifyHandshake(resp.StatusCode)
	ae := &attemptError{act: act, err: protows.Errorf(code, "client: handshake refused: %s", describeRefusal(resp))}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		ae.retryAfter = time.Duration(s) * time.Second
	}
	return ae
}

// maxRefusalText is the most bytes of a refusal's body that an error
// quotes.
const maxRefusalText = 200

// describeRefusal says why a server refused the upgrade: the status and,
// when the body is a short plain-text reason (a protows server's, say), the
// reason. A foreign endpoint's page (an HTML 200 from a web server, a
// proxy's error page) is named by its status and type, never copied into
// the error: it would flood logs and say nothing.
func describeRefusal(resp *http.Response) string {
	status := fmt.Sprintf("HTTP %d", resp.StatusCode)
	if text := http.StatusText(resp.StatusCode); text != "" {
		status += " " + text
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		status = "not a WebSocket endpoint: " + status
	}
	ctype := resp.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ctype); err == nil && mt != "text/plain" || err != nil && ctype != "" {
		return fmt.Sprintf("%s (a %s body)", status, ctype)
	}
	// gorilla keeps up to 1 KiB of the body and needs no Close.
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	text, _, _ := strings.Cut(strings.TrimSpace(strings.ToValidUTF8(string(body), "\uFFFD")), "\n")
	text = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, strings.TrimSpace(text))
	if len(text) > maxRefusalText {
		cut := maxRefusalText
		for cut > 0 && !utf8.RuneStart(text[cut]) {
			cut--
		}
		text = text[:cut] + "…"
	}
	if text == "" {
		return status
	}
	return status + ": " + text
}

// attach makes cn the current connection and re-opens the streams that
// lost theirs.
func (c *Client) attach(cn *conn) {
	c.mu.Lock()
	c.cur = cn
	close(c.ready)
	streams := make([]*streamCore, 0, len(c.streams))
	for s := range c.streams {
		streams = append(streams, s)
	}
	c.mu.Unlock()
	c.setState(StateConnected, nil)
	for _, s := range streams {
		s.open(c.ctx, cn)
	}
	c.flushOutbox(cn)
}

// detach forgets the ended connection cn and settles its calls.
func (c *Client) detach(cn *conn, lost error) {
	c.mu.Lock()
	if c.cur == cn {
		c.cur = nil
		c.ready = make(chan struct{})
	}
	c.mu.Unlock()
	close(cn.gone)
	cn.drain(lost)
}

// stop makes the client final: calls waiting for a connection and open
// streams end with err, and so will later calls.
func (c *Client) stop(err error, reported error) {
	c.mu.Lock()
	c.stopErr = err
	c.cur = nil
	select {
	case <-c.ready:
	default:
		close(c.ready)
	}
	streams := make([]*streamCore, 0, len(c.streams))
	for s := range c.streams {
		streams = append(streams, s)
	}
	c.mu.Unlock()
	for _, s := range streams {
		s.finish(err)
	}
	c.cancel()
	c.setState(StateClosed, reported)
}

// current returns the current connection, nil while not connected.
func (c *Client) current() *conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur
}

// waitConn returns the current connection, waiting for one while the client
// reconnects. dead, when not nil, is a connection the caller found ended:
// waitConn waits for the client to replace it.
func (c *Client) waitConn(ctx context.Context, dead *conn) (*conn, error) {
	for {
		c.mu.Lock()
		cn, err, ready := c.cur, c.stopErr, c.ready
		c.mu.Unlock()
		switch {
		case err != nil:
			return nil, err
		case cn != nil && cn != dead:
			return cn, nil
		case cn != nil:
			ready = cn.gone
		}
		select {
		case <-ready:
		case <-ctx.Done():
			return nil, ctxError(ctx)
		}
	}
}

// acquire takes a slot for a call in flight, waiting for one within ctx.
func (c *Client) acquire(ctx context.Context) error {
	select {
	case c.slots <- struct{}{}:
		return nil
	default:
	}
	select {
	case c.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctxError(ctx)
	case <-c.done:
		return c.stopErr
	}
}

// releaseSlot gives back a slot taken by acquire.
func (c *Client) releaseSlot() { <-c.slots }

// supervise runs the connection cn, then replaces it whenever it ends, as
// the close-code table says, until the client stops.
func (c *Client) supervise(cn *conn) {
	defer close(c.done)
	closed := protows.NewError(protows.CodeCanceled, ErrClosed)
	attempt := 0
	for {
		up := time.Now()
		end, serverErr := c.serve(cn)
		if c.ctx.Err() != nil {
			c.detach(cn, closed)
			c.stop(closed, nil)
			return
		}
		lost := protows.NewError(protows.CodeUnavailable, fmt.Errorf("%w: %s", ErrConnectionLost, describeEnd(end, serverErr)))
		c.detach(cn, lost)
		act, code := classifyClose(end.code)
		if end.local {
			// The client closed it for a protocol violation by the server;
			// another connection may reach a sound server.
			act = actBackoff
		}
		if act == actNewToken && c.cfg.tokens == nil {
			// No token source, so no new token can ever come.
			act = actStop
		}
		c.cfg.logger.Info("protows client: connection lost", "cause", describeEnd(end, serverErr), "up", time.Since(up))
		if act == actStop {
			err := protows.NewError(code, fmt.Errorf("client: connection ended for good: %s", describeEnd(end, serverErr)))
			c.stop(err, err)
			return
		}
		if time.Since(up) >= c.cfg.backoff.ResetAfter {
			attempt = 0
		}
		c.setState(StateReconnecting, lost)
		c.refusal = describeEnd(end, serverErr)
		cn = c.reconnect(act, &attempt)
		if cn == nil {
			return
		}
		c.attach(cn)
	}
}

// serve waits for cn to end, refreshing the token in band on the way, and
// returns how it ended.
func (c *Client) serve(cn *conn) (connEnd, *protows.Error) {
	refreshOff := false
	for {
		var refresh <-chan time.Time
		t := (*time.Timer)(nil)
		if c.cfg.tokens != nil && !refreshOff {
			if at := c.token.refreshAt(); !at.IsZero() {
				t = time.NewTimer(time.Until(at))
				refresh = t.C
			}
		}
		var refreshNow bool
		select {
		case <-cn.done:
		case <-c.ctx.Done():
			cn.fail(connEnd{code: protows.CloseNormal, send: protows.CloseNormal, local: true, err: ErrClosed})
		case <-refresh:
			refreshNow = true
		}
		if t != nil {
			t.Stop()
		}
		if refreshNow {
			c.refreshInBand(cn)
			if !c.token.refreshAt().After(time.Now()) {
				// The source gave no fresher token: stop asking on this
				// connection; the server closes with 4009 at expiry.
				refreshOff = true
			}
			continue
		}
		break
	}
	cn.wait()
	cn.mu.Lock()
	serverErr := cn.serverErr
	cn.mu.Unlock()
	return cn.end, serverErr
}

// reconnect dials until a connection is up, waiting between attempts as act
// and the backoff say. It returns nil when the client stopped.
func (c *Client) reconnect(act action, attempt *int) *conn {
	closed := protows.NewError(protows.CodeCanceled, ErrClosed)
	var retryAfter time.Duration
	for {
		var delay time.Duration
		switch act {
		case actNow, actRefresh:
			// 1001 and 4009 say nothing about the server's health: come
			// back at once, with jitter so that clients do not return in
			// the same millisecond (docs/DECISIONS.md).
			delay = c.cfg.backoff.jitterNow(c.cfg.rnd)
		case actSlow:
			delay = c.cfg.backoff.Initial + c.cfg.backoff.delay(*attempt, c.cfg.rnd)
			*attempt++
		default:
			delay = c.cfg.backoff.delay(*attempt, c.cfg.rnd)
			*attempt++
		}
		delay = max(delay, retryAfter)
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-c.ctx.Done():
			t.Stop()
			c.stop(closed, nil)
			return nil
		}
		if act == actRefresh {
			// A fresh token, whatever the source thinks of the old one.
			c.token.value = ""
		}
		cn, aerr := c.connect(c.ctx, act == actNewToken)
		if aerr == nil {
			return cn
		}
		if c.ctx.Err() != nil {
			c.stop(closed, nil)
			return nil
		}
		c.cfg.logger.Info("protows client: reconnect failed", "err", aerr.err, "attempt", *attempt)
		if aerr.act == actStop || aerr.act == actNewToken && c.cfg.tokens == nil {
			c.stop(aerr.err, aerr.err)
			return nil
		}
		act, retryAfter = aerr.act, aerr.retryAfter
		c.refusal = aerr.err.Error()
		if act == actNow || act == actRefresh {
			act = actBackoff
		}
	}
}

// describeEnd says how a connection ended, for error messages and logs.
func describeEnd(e connEnd, serverErr *protows.Error) string {
	var s string
	switch {
	case errors.Is(e.err, ErrClosed):
		s = "client closed"
	case e.local:
		s = "client " + closeText(e.code, e.reason)
	case e.code == protows.CloseAbnormal && e.err != nil:
		s = "link down: " + e.err.Error()
	default:
		s = "server " + closeText(e.code, e.reason)
	}
	if serverErr != nil {
		s += ": " + serverErr.Error()
	}
	return s
}
