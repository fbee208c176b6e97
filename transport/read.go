package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/gorilla/websocket"
	protows "github.com/protows/protows"
	"github.com/protows/protows/codec"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"google.golang.org/protobuf/proto"
)

// errTooLarge is returned by readMessage for a message over the limit.
var errTooLarge = errors.New("transport: message too large")

// authMethodID is the method id of AuthenticateMethod.
var authMethodID = protows.MethodID(AuthenticateMethod)

// readEnd says what becomes of the TCP link once reading stopped.
type readEnd int

const (
	// endAfterClose: the writer still sends a close frame, and the link
	// ends after it.
	endAfterClose readEnd = iota
	// endNow: the close handshake is complete, or the link is dead.
	endNow
	// endLinger: reading stopped while the client may still be sending;
	// the link ends with lingerClose.
	endLinger
)

// startReading prepares the connection for its reader; the read
// deadline, the pong handler and the rate bucket are the reader's from
// then on.
func (c *Conn) startReading() {
	now := time.Now()
	c.extendDeadline(now)
	c.ws.SetPongHandler(func(string) error {
		c.extendDeadline(time.Now())
		return nil
	})
	c.lastMsg = now.Sub(c.srv.epoch)
	c.tokens = float64(c.srv.cfg.RateBurst)
}

// read is the connection's reader: it reads and processes messages one
// after the other, and ends the connection (finish) when reading ends.
//
// Now and then it hands reading on to a fresh goroutine and returns,
// because Go shrinks a goroutine's stack only while less than a quarter of
// it is in use: a reader that decoded and dispatched a message once parks at 4 KiB or
// more for as long as its connection then stays idle, while a fresh
// goroutine parked in NextReader fits in the initial 2 KiB, and idle
// connections are what a server holds most of. A hop costs about a
// microsecond (a goroutine start and the regrowth of its stack), so it is
// made where it is likely to precede a long wait and rarely costs: after
// each of the first freshReads messages of a connection, and of every run
// of messages that follows a silence of idleGap or more (a client's
// heartbeat after a quiet spell). A busy connection stays on one goroutine.
// Only one reader runs at a time, so the read side is as single-threaded
// as one loop would be (docs/DECISIONS.md).
func (c *Conn) read() {
	for {
		mt, r, err := c.ws.NextReader()
		if err != nil {
			c.finish(c.readFailed(err))
			return
		}
		end, more, hop := c.handleMessage(mt, r)
		if !more {
			c.finish(end)
			return
		}
		if hop {
			go c.read()
			return
		}
	}
}

// The reader's hops (see read).
const (
	// idleGap is a silence long enough for the reader to expect more
	// silences: the messages after it are followed by hops again.
	idleGap = 10 * time.Millisecond
	// freshReads is how many messages after the handshake, or after a
	// silence, are each followed by a hop.
	freshReads = 4
)

// handleMessage processes one message. It returns more = false, and how
// the link is to end, when reading is over, and whether the reader should
// hop to a fresh goroutine (see read).
func (c *Conn) handleMessage(mt int, r io.Reader) (end readEnd, more, hop bool) {
	cfg := &c.srv.cfg
	now := time.Now()
	c.extendDeadline(now)
	since := now.Sub(c.srv.epoch)
	gap := since - c.lastMsg
	c.lastMsg = since
	if gap >= c.srv.idleGap {
		c.busyReads = 0
	}
	if hop = c.busyReads < freshReads; hop {
		c.busyReads++
	}
	c.refill(gap)
	if c.isClosing() {
		// A close was decided: drain until the client's close frame.
		if _, err := io.Copy(io.Discard, r); err != nil {
			return c.readFailed(err), false, false
		}
		return 0, true, hop
	}
	wantType := websocket.TextMessage
	if c.codec.Binary() {
		wantType = websocket.BinaryMessage
	}
	if mt != wantType {
		c.closeNow(CloseUnsupportedData, fmt.Sprintf("%s frames only on %s", frameTypeName(wantType), c.codec.Name()))
		return 0, true, hop
	}
	bp, err := c.readMessage(r, cfg.MaxMessageSize)
	if err != nil {
		if errors.Is(err, errTooLarge) {
			c.closeNow(CloseMessageTooBig, fmt.Sprintf("message larger than %d bytes", cfg.MaxMessageSize))
			return 0, true, hop
		}
		return c.readFailed(err), false, false
	}
	cfg.Metrics.MessageIn(c.codec.Name(), len(*bp))
	envs, err := c.codec.DecodeFrame(*bp)
	if err != nil {
		c.srv.bufs.put(bp)
		c.closeNow(CloseInvalidPayload, "undecodable frame: "+err.Error())
		return 0, true, hop
	}
	// Answers to one frame's envelopes (PONGs, refusals) go out
	// batched: the writer starts once the whole frame was processed.
	c.cork(true)
	for _, e := range envs {
		if !c.allow() {
			c.closeNow(CloseRateLimited, "rate limit exceeded")
			break
		}
		if !c.handleEnvelope(e) {
			break
		}
	}
	c.cork(false)
	// Requests were decoded synchronously, so nothing aliases the
	// buffer any more.
	c.srv.bufs.put(bp)
	return 0, true, hop
}

func frameTypeName(t int) string {
	if t == websocket.BinaryMessage {
		return "binary"
	}
	return "text"
}

// readMessage reads one message into a pooled buffer, failing with
// errTooLarge beyond limit bytes. The limit applies to the decompressed
// data: gorilla's own read limit counts wire bytes only.
func (c *Conn) readMessage(r io.Reader, limit int64) (*[]byte, error) {
	bp := c.srv.bufs.get(512)
	b := (*bp)[:0]
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if int64(len(b)) > limit {
			*bp = b
			c.srv.bufs.put(bp)
			return nil, errTooLarge
		}
		if err == io.EOF {
			*bp = b
			return bp, nil
		}
		if err != nil {
			*bp = b
			c.srv.bufs.put(bp)
			return nil, err
		}
	}
}

// readFailed handles the end of reading: a close frame from the client, a
// heartbeat timeout, a message over gorilla's wire limit, a frame gorilla
// found malformed, or a dead link.
func (c *Conn) readFailed(err error) readEnd {
	var ce *websocket.CloseError
	var ne net.Error
	switch {
	case errors.As(err, &ce):
		// gorilla answered the client's close frame already.
		if c.closeCode.CompareAndSwap(0, int64(ce.Code)) {
			c.mu.Lock()
			c.reason = truncateReason(ce.Text)
			c.mu.Unlock()
		}
		return endNow // the client sends nothing after its close frame
	case errors.Is(err, websocket.ErrReadLimit):
		// gorilla sent close 1009 itself; the message is still arriving.
		c.closeCode.CompareAndSwap(0, CloseMessageTooBig)
	case errors.As(err, &ne) && ne.Timeout():
		if c.closeSent.Load() {
			return endNow // the client had closeGrace to answer our close frame
		}
		c.logger().Info("protows: heartbeat timeout")
		c.closeNow(CloseHeartbeatTimeout, "heartbeat timeout")
		return endAfterClose
	}
	// A protocol error (gorilla sent close 1002) may leave data unread; a
	// dead link makes lingerClose return at once.
	return endLinger
}

// extendDeadline moves the read deadline after a frame or pong arrived at
// now, unless the close handshake is under way.
func (c *Conn) extendDeadline(now time.Time) {
	if c.closeSent.Load() {
		return
	}
	_ = c.ws.SetReadDeadline(now.Add(c.srv.cfg.ReadTimeout))
	if c.closeSent.Load() { // the writer sent close meanwhile: keep its grace
		_ = c.ws.SetReadDeadline(time.Now().Add(closeGrace))
	}
}

// cork holds back (true) or releases (false) the writer's wake-up.
func (c *Conn) cork(on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.corked = on
	if !on && len(c.queue) > 0 {
		c.signal()
	}
}

func (c *Conn) isClosing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing
}

// closeNow closes without writing what is queued.
func (c *Conn) closeNow(code int, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closeLocked(code, reason, false)
}

// closeAfterError queues ERROR id 0 and then closes with code.
func (c *Conn) closeAfterError(errCode protows.Code, msg string, code int, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return
	}
	e := &protowsv1.Envelope{
		Kind:  protowsv1.Kind_KIND_ERROR,
		Error: &protowsv1.Error{Code: protowsv1.Code(errCode), Message: msg},
	}
	elem, err := c.codec.AppendEnvelope(nil, e)
	if err != nil {
		c.logger().Error("protows: cannot encode envelope", "kind", e.GetKind().String(), "err", err)
		c.closeLocked(CloseInternalError, "internal error", true)
		return
	}
	_ = c.enqueueLocked(codec.Parts{Body: elem})
	c.closeLocked(code, reason, true)
}

// refill adds to the connection's rate bucket the tokens earned in
// elapsed, the time since the previous message.
func (c *Conn) refill(elapsed time.Duration) {
	cfg := &c.srv.cfg
	if cfg.RateLimit < 0 {
		return
	}
	c.tokens = min(c.tokens+elapsed.Seconds()*cfg.RateLimit, float64(cfg.RateBurst))
}

// allow takes a token from the connection's rate bucket.
func (c *Conn) allow() bool {
	if c.srv.cfg.RateLimit < 0 {
		return true
	}
	if c.tokens < 1 {
		return false
	}
	c.tokens--
	return true
}

// handleEnvelope processes one envelope from the client. It returns false
// when the connection is closing and the rest of the frame is ignored.
func (c *Conn) handleEnvelope(e *protowsv1.Envelope) bool {
	switch e.GetKind() {
	case protowsv1.Kind_KIND_REQUEST:
		return c.handleRequest(e)
	case protowsv1.Kind_KIND_CANCEL:
		c.mu.Lock()
		call := c.calls[e.GetId()]
		c.mu.Unlock()
		if call != nil && call.end(nil, protows.Errorf(protows.CodeCanceled, "canceled by the client")) {
			call.cancel()
		}
		return true
	case protowsv1.Kind_KIND_PING:
		c.send(&protowsv1.Envelope{Id: e.GetId(), Kind: protowsv1.Kind_KIND_PONG})
		return true
	case protowsv1.Kind_KIND_PONG:
		return true
	default:
		c.closeNow(CloseProtocolError, fmt.Sprintf("a client may not send kind %d", e.GetKind()))
		return false
	}
}

func (c *Conn) handleRequest(e *protowsv1.Envelope) bool {
	id := e.GetId()
	if id == 0 {
		c.closeNow(CloseProtocolError, "request with id 0")
		return false
	}
	c.mu.Lock()
	_, dup := c.calls[id]
	draining, drainMsg, inflight := c.draining, c.drainReason, len(c.calls)
	c.mu.Unlock()
	if dup {
		c.closeNow(CloseProtocolError, fmt.Sprintf("request id %d is in flight", id))
		return false
	}
	methodID, name := e.GetMethodId(), e.GetMethod()
	switch {
	case name != "" && methodID != 0 && protows.MethodID(name) != methodID:
		c.sendError(id, protows.CodeInvalidArgument, fmt.Sprintf("method %q does not have id 0x%08x", name, methodID))
		return true
	case name == "" && methodID == 0:
		c.sendError(id, protows.CodeInvalidArgument, "request names no method")
		return true
	case methodID == 0:
		methodID = protows.MethodID(name)
	}
	if draining {
		c.sendError(id, protows.CodeUnavailable, drainMsg)
		return true
	}
	if methodID == authMethodID {
		return c.authenticate(id, e.GetPayload())
	}
	if c.srv.cfg.Authenticator != nil && c.principal.Load() == nil {
		c.sendError(id, protows.CodeUnauthenticated, "call "+AuthenticateMethod+" first")
		return true
	}
	m, ok := c.srv.h.Lookup(methodID)
	if !ok {
		if name == "" {
			name = fmt.Sprintf("with id 0x%08x", methodID)
		}
		c.sendError(id, protows.CodeUnimplemented, "unknown method "+name)
		return true
	}
	if inflight >= c.srv.cfg.MaxInFlight {
		c.sendError(id, protows.CodeResourceExhausted, fmt.Sprintf("more than %d calls in flight", c.srv.cfg.MaxInFlight))
		return true
	}
	req := m.NewRequest()
	if err := c.codec.UnmarshalPayload(e.GetPayload(), req); err != nil {
		c.sendError(id, protows.CodeInvalidArgument, fmt.Sprintf("request of %s does not decode: %v", m.Name, err))
		return true
	}
	// The server-wide limit; released by handlerDone.
	if n := c.srv.calls.Add(1); c.srv.cfg.MaxCalls > 0 && n > int64(c.srv.cfg.MaxCalls) {
		c.srv.calls.Add(-1)
		c.sendError(id, protows.CodeUnavailable, "server overloaded")
		c.shed()
		return true
	}
	ctx, cancel := context.WithCancel(&c.ctx)
	call := &Call{conn: c, id: id, method: m, metadata: e.GetMetadata(), cancel: cancel}
	ctx = context.WithValue(ctx, callKey{}, call)
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		c.srv.calls.Add(-1)
		cancel()
		return false
	}
	if c.draining {
		// Shutdown or shedding began since the check above: a stream
		// registered now would miss drainWith's STREAM_END.
		drainMsg = c.drainReason
		c.mu.Unlock()
		c.srv.calls.Add(-1)
		cancel()
		c.sendError(id, protows.CodeUnavailable, drainMsg)
		return true
	}
	if c.calls == nil {
		c.calls = make(map[uint32]*Call)
	}
	c.calls[id] = call
	c.running++
	c.handlersWG.Add(1)
	c.mu.Unlock()
	c.srv.workers.run(func() { c.runCall(ctx, call, req) })
	return true
}

// runCall runs a handler on its own goroutine and sends its outcome.
func (c *Conn) runCall(ctx context.Context, call *Call, req proto.Message) {
	defer c.handlerDone()
	defer call.cancel()
	start := time.Now()
	res, err := c.serve(ctx, call, req)
	call.end(res, err)
	outcome := "ok"
	if err != nil {
		outcome = protows.CodeOf(err).String()
	}
	c.srv.cfg.Metrics.CallDone(call.method.Name, outcome, time.Since(start))
}

// serve calls the method, turning a panic that escaped the Handler's own
// recovery into an internal error: the connection and the process
// survive.
func (c *Conn) serve(ctx context.Context, call *Call, req proto.Message) (res proto.Message, err error) {
	defer func() {
		if p := recover(); p != nil {
			c.logger().Error("protows: handler panic", "method", call.method.Name, "panic", p)
			res, err = nil, protows.Errorf(protows.CodeInternal, "internal error")
		}
	}()
	return call.method.Serve(ctx, call, req)
}

// authenticate serves the built-in AuthService/Authenticate on the read
// loop, so that requests after it in the same frame see its outcome.
func (c *Conn) authenticate(id uint32, payload []byte) bool {
	cfg := &c.srv.cfg
	if cfg.Authenticator == nil {
		c.sendError(id, protows.CodeUnimplemented, "this server does not authenticate")
		return true
	}
	current := c.principal.Load()
	// A failure before the first success ends the connection (4501); a
	// failed refresh keeps the current credential.
	fail := func(msg string) bool {
		c.sendError(id, protows.CodeUnauthenticated, msg)
		if current == nil {
			c.Close(CloseUnauthenticated, "authentication failed")
			return false
		}
		return true
	}
	var req protowsv1.AuthenticateRequest
	if err := c.codec.UnmarshalPayload(payload, &req); err != nil {
		return fail("undecodable AuthenticateRequest")
	}
	// The authenticator may do I/O: let the writer run meanwhile.
	c.cork(false)
	ctx, cancel := context.WithTimeout(&c.ctx, cfg.AuthTimeout)
	p, err := cfg.Authenticator.Authenticate(ctx, req.GetToken())
	cancel()
	c.cork(true)
	if err != nil || p == nil {
		c.logger().Info("protows: authentication failed", "err", err)
		return fail("invalid token")
	}
	if current != nil && p.Subject != current.Subject {
		c.sendError(id, protows.CodePermissionDenied, "a refreshed token must have the same subject")
		return true
	}
	if cfg.Authorize != nil {
		c.cork(false)
		ctx, cancel := context.WithTimeout(&c.ctx, cfg.AuthTimeout)
		err := cfg.Authorize(ctx, c, p)
		cancel()
		c.cork(true)
		if err != nil {
			c.logger().Info("protows: principal not authorized", "subject", p.Subject, "err", err)
			c.sendError(id, protows.CodePermissionDenied, "forbidden")
			c.Close(CloseForbidden, "forbidden")
			return false
		}
	}
	c.setPrincipal(p)
	var exp int64
	if !p.ExpiresAt.IsZero() {
		exp = p.ExpiresAt.Unix()
	}
	res, err := c.codec.AppendPayload(nil, &protowsv1.AuthenticateResponse{Subject: p.Subject, ExpiresAt: exp})
	if err != nil {
		c.sendError(id, protows.CodeInternal, "encode reply")
		return true
	}
	c.send(&protowsv1.Envelope{Id: id, Kind: protowsv1.Kind_KIND_REPLY, Payload: res})
	return true
}

// authorizeHandshake applies Config.Authorize to the principal of a
// handshake token; a refusal closes with ERROR permission_denied and 4503.
func (c *Conn) authorizeHandshake(p *Principal) {
	cfg := &c.srv.cfg
	if cfg.Authorize == nil || p == nil {
		return
	}
	ctx, cancel := context.WithTimeout(&c.ctx, cfg.HandshakeTimeout)
	err := cfg.Authorize(ctx, c, p)
	cancel()
	if err != nil {
		c.logger().Info("protows: principal not authorized", "subject", p.Subject, "err", err)
		c.closeAfterError(protows.CodePermissionDenied, "forbidden", CloseForbidden, "forbidden")
	}
}

// setPrincipal installs a credential and arms its expiry.
func (c *Conn) setPrincipal(p *Principal) {
	c.principal.Store(p)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.authTmr != nil {
		c.authTmr.Stop()
		c.authTmr = nil
	}
	if c.expTmr != nil {
		c.expTmr.Stop()
		c.expTmr = nil
	}
	c.authGen++
	if p.ExpiresAt.IsZero() || c.closing {
		return
	}
	gen := c.authGen
	c.expTmr = time.AfterFunc(time.Until(p.ExpiresAt), func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.authGen == gen {
			c.closeLocked(CloseTokenExpired, "token expired", false)
		}
	})
}

// armAuthDeadline starts the in-band authentication deadline.
func (c *Conn) armAuthDeadline() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.authTmr = time.AfterFunc(c.srv.cfg.AuthTimeout, func() {
		if c.principal.Load() != nil {
			return
		}
		c.closeAfterError(protows.CodeUnauthenticated, "no authentication within "+c.srv.cfg.AuthTimeout.String(), CloseUnauthenticated, "authentication deadline passed")
	})
}
