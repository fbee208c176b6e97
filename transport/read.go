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
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
)

// errTooLarge is returned by readMessage for a message over the limit.
var errTooLarge = errors.New("transport: message too large")

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
	c.mu.Lock()
	closing := c.state.closeDecided()
	c.mu.Unlock()
	if closing {
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
		c.closeNow(protows.CloseUnsupportedData, fmt.Sprintf("%s frames only on %s", frameTypeName(wantType), c.codec.Name()))
		return 0, true, hop
	}
	bp, err := c.readMessage(r, cfg.MaxMessageSize)
	if err != nil {
		if errors.Is(err, errTooLarge) {
			c.closeNow(protows.CloseMessageTooBig, fmt.Sprintf("message larger than %d bytes", cfg.MaxMessageSize))
			return 0, true, hop
		}
		return c.readFailed(err), false, false
	}
	cfg.Metrics.MessageIn(c.codec.Name(), len(*bp))
	envs, err := c.codec.DecodeFrame(*bp)
	if err != nil {
		c.srv.bufs.put(bp)
		c.closeNow(protows.CloseInvalidPayload, "undecodable frame: "+err.Error())
		return 0, true, hop
	}
	// Answers to one frame's envelopes (PONGs, refusals) go out
	// batched: the writer starts once the whole frame was processed.
	c.cork(true)
	for _, e := range envs {
		if !c.allow() {
			c.closeNow(protows.CloseRateLimited, "rate limit exceeded")
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
		if c.closeCode.CompareAndSwap(0, uint32(ce.Code)) {
			c.mu.Lock()
			c.reason = truncateReason(ce.Text)
			c.mu.Unlock()
		}
		return endNow // the client sends nothing after its close frame
	case errors.Is(err, websocket.ErrReadLimit):
		// gorilla sent close 1009 itself; the message is still arriving.
		c.closeCode.CompareAndSwap(0, uint32(protows.CloseMessageTooBig))
	case errors.As(err, &ne) && ne.Timeout():
		if c.closeSent.Load() {
			return endNow // the client had closeGrace to answer our close frame
		}
		c.logger().Info("protows: heartbeat timeout")
		c.closeNow(protows.CloseHeartbeatTimeout, "heartbeat timeout")
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
		c.closeNow(protows.CloseProtocolError, fmt.Sprintf("a client may not send kind %d", e.GetKind()))
		return false
	}
}

func (c *Conn) handleRequest(e *protowsv1.Envelope) bool {
	id := e.GetId()
	if id == 0 {
		c.closeNow(protows.CloseProtocolError, "request with id 0")
		return false
	}
	c.mu.Lock()
	_, dup := c.calls[id]
	state, drainMsg, inflight := c.state, c.drainReason, len(c.calls)
	c.mu.Unlock()
	if state.closeDecided() {
		return false
	}
	if dup {
		c.closeNow(protows.CloseProtocolError, fmt.Sprintf("request id %d is in flight", id))
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
	if state == stateDraining {
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
	switch c.state {
	case stateOpen:
	case stateDraining:
		// Shutdown or shedding began since the check above: a stream
		// registered now would miss drainWith's STREAM_END.
		drainMsg = c.drainReason
		c.mu.Unlock()
		c.srv.calls.Add(-1)
		cancel()
		c.sendError(id, protows.CodeUnavailable, drainMsg)
		return true
	default:
		c.mu.Unlock()
		c.srv.calls.Add(-1)
		cancel()
		return false
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
