package transport

import (
	"compress/flate"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
	protows "github.com/protows/protows"
	"github.com/protows/protows/dedupe"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"google.golang.org/protobuf/proto"
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
	c.ws.SetPongHandler(c.pongFrame)
	c.ws.SetPingHandler(c.pingFrame)
	c.lastMsg = now.Sub(c.srv.epoch)
	c.tokens = float64(c.srv.cfg.RateBurst)
}

// countControl counts a ping or pong frame, which gorilla reads and hands
// to its handlers (pingFrame, pongFrame) on the reader, inside NextReader.
// Control frames count against the envelope rate limit like envelopes:
// each ping costs a pong written, and nothing else would bound a flood of
// them. It reports whether the frame is within the limit; beyond it the
// connection closes with 4029 at once, and the reader drains what still
// comes until the client's close frame, as after any close.
func (c *Conn) countControl() bool {
	now := time.Now()
	c.extendDeadline(now)
	since := now.Sub(c.srv.epoch)
	c.refill(since - c.lastMsg)
	c.lastMsg = since
	if c.allow() {
		return true
	}
	c.closeNow(protows.CloseRateLimited, "rate limit exceeded")
	return false
}

// pongFrame handles a pong frame: an answer to the server's ping, or an
// unsolicited one (RFC 6455 allows both).
func (c *Conn) pongFrame(string) error {
	c.countControl()
	return nil
}

// pingFrame answers a ping frame with a pong, as gorilla's default handler
// does, while the connection is within its rate limit and not closing.
func (c *Conn) pingFrame(data string) error {
	if !c.countControl() || c.closeSent.Load() {
		return nil
	}
	c.mu.Lock()
	closing := c.state.closeDecided()
	c.mu.Unlock()
	if closing {
		return nil
	}
	// WriteControl may run beside the writer: gorilla serializes them.
	err := c.ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(c.srv.cfg.WriteTimeout))
	var ne net.Error
	if err == nil || errors.Is(err, websocket.ErrCloseSent) || (errors.As(err, &ne) && ne.Timeout()) {
		// A pong that times out means a client that does not read: the
		// writer's deadline and the heartbeat deal with it.
		return nil
	}
	return err
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
		if call := c.inline; call != nil {
			c.inline = nil
			if !more || hop {
				// Reading ends, or the reader is about to hop to a fresh
				// goroutine, whose small stack a handler would grow: the
				// call goes to a warm worker, as on a connection that is
				// not busy.
				c.srv.workers.runTask(call)
			} else if !c.runInline(call) {
				return // another reader took over while the call ran
			}
		}
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
		switch {
		case errors.Is(err, errTooLarge):
			c.closeNow(protows.CloseMessageTooBig, fmt.Sprintf("message larger than %d bytes", cfg.MaxMessageSize))
			return 0, true, hop
		case isInflateError(err):
			c.closeNow(protows.CloseInvalidPayload, "compressed data is corrupt")
			return 0, true, hop
		}
		return c.readFailed(err), false, false
	}
	cfg.Metrics.MessageIn(c.codec.Name(), len(*bp))
	if mt == websocket.TextMessage && !utf8.Valid(*bp) {
		// RFC 6455, section 8.1: an endpoint that receives a text
		// message that is not UTF-8 fails the connection with 1007.
		c.srv.bufs.put(bp)
		c.closeNow(protows.CloseInvalidPayload, "text message is not valid UTF-8")
		return 0, true, hop
	}
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

// isInflateError reports whether err, from reading a message, says that
// its permessage-deflate data is corrupt. Errors of the link itself come
// from gorilla as a *websocket.CloseError (1006) or a net.Error, never as
// these: compress/flate's own, and io.ErrUnexpectedEOF, which flate
// returns for compressed data that ends inside a block.
func isInflateError(err error) bool {
	var ce flate.CorruptInputError
	return errors.As(err, &ce) || errors.Is(err, io.ErrUnexpectedEOF)
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
		// gorilla sends close 1009 itself for a message over the wire
		// limit, but returns the same error without a close frame for a
		// frame length of 2^63 or more (the most significant bit of a
		// 64-bit length set, which RFC 6455 section 5.2 forbids, or
		// fragments adding up past 2^63-1): a protocol error. Writing a
		// close frame fails with ErrCloseSent when gorilla sent its own.
		msg := websocket.FormatCloseMessage(int(protows.CloseProtocolError), "frame length out of range")
		err := c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(c.srv.cfg.WriteTimeout))
		switch {
		case err == nil:
			c.closeSent.Store(true)
			if c.closeCode.CompareAndSwap(0, uint32(protows.CloseProtocolError)) {
				c.mu.Lock()
				c.reason = "frame length out of range"
				c.mu.Unlock()
			}
		case errors.Is(err, websocket.ErrCloseSent):
			c.closeCode.CompareAndSwap(0, uint32(protows.CloseMessageTooBig))
		}
		// The message is still arriving, or the rest of a bad frame.
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
		if call != nil && call.end(nil, protows.Errorf(protows.CodeCanceled, "canceled by the client"), true) {
			call.cancel()
		}
		return true
	case protowsv1.Kind_KIND_STREAM_MESSAGE, protowsv1.Kind_KIND_STREAM_END:
		return c.handleClientMessage(e)
	case protowsv1.Kind_KIND_CREDIT:
		return c.handleCredit(e)
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
	credit := e.GetCredit()
	if credit > maxWindow {
		c.closeNow(protows.CloseProtocolError, fmt.Sprintf("request %d grants a window past %d", id, maxWindow))
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
	key := e.GetIdempotencyKey()
	var hint dedupe.Hint // the window's of key, when it can prefetch
	if key != "" {
		if m.ServerStream || m.ClientStream {
			c.sendError(id, protows.CodeInvalidArgument, "idempotency keys are for unary calls: "+m.Name+" is a stream")
			return true
		}
		if err := checkKey(key); err != nil {
			c.sendError(id, protows.CodeInvalidArgument, err.Error())
			return true
		}
		if pf := c.srv.prefetch; pf != nil {
			// Before the request is decoded, so that the window's lines
			// have arrived by the time the call claims its key.
			hint = pf.Prefetch(c.dedupeKey(m.Name, key))
		}
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
	if m.ClientStream {
		// The messages come as STREAM_MESSAGEs; one in the REQUEST would
		// be lost (docs/PROTOCOL.md, section 4.4).
		if proto.Size(req) != 0 {
			c.sendError(id, protows.CodeInvalidArgument, fmt.Sprintf("the request of %s, whose client streams, carries a message: send it as a stream message", m.Name))
			return true
		}
		req = nil
	}
	// The server-wide limit; released by handlerDone.
	if n := c.srv.calls.Add(1); c.srv.cfg.MaxCalls > 0 && n > int64(c.srv.cfg.MaxCalls) {
		c.srv.calls.Add(-1)
		c.sendError(id, protows.CodeUnavailable, "server overloaded")
		c.shed()
		return true
	}
	// The call's context is not a child of the connection's: a child is
	// an entry in the parent's map of children, whose memory an idle
	// room member would carry for as long as it lasts. The connection
	// cancels its calls itself when it ends (Conn.finish), but for a
	// keyed call, which outlives its connection: its outcome waits in the
	// window for the client's next send (docs/PROTOCOL.md, section 3.7).
	// Shutdown's deadline still cancels it (cancelCalls). The context is
	// a part of the Call (callContext), which spares a call four
	// allocations.
	call := &Call{conn: c, id: id, method: m, metadata: e.GetMetadata(), resume: e.GetResume(), key: key}
	if c.srv.timed {
		call.start = time.Now()
	}
	ms := e.GetTimeoutMs()
	call.cx.init(call, time.Duration(ms)*time.Millisecond)
	call.ctx = &call.cx
	ctx := call.ctx
	if credit > 0 && m.ServerStream {
		call.flow, call.credit = true, int64(credit)
	}
	if key != "" {
		call.keepPayload(e.GetPayload(), &hint) // the frame's buffer is reused
	}
	if ms > 0 {
		c.watchDeadline(ctx, call, ms)
	}
	c.mu.Lock()
	switch c.state {
	case stateOpen:
	case stateDraining:
		// Shutdown or shedding began since the check above: a stream
		// registered now would miss drainWith's STREAM_END.
		drainMsg = c.drainReason
		c.mu.Unlock()
		c.srv.calls.Add(-1)
		call.cx.cancel(ctxCanceled)
		c.sendError(id, protows.CodeUnavailable, drainMsg)
		return true
	default:
		c.mu.Unlock()
		c.srv.calls.Add(-1)
		call.cx.cancel(ctxCanceled)
		return false
	}
	if c.calls == nil {
		c.calls = make(map[uint32]*Call)
	}
	c.calls[id] = call
	c.running++
	c.handlersWG.Add(1)
	c.mu.Unlock()
	if m.ClientStream {
		call.open()
	}
	call.req = req
	if c.inline == nil && !m.ClientStream && !m.ServerStream && c.srv.cfg.InlineCallFor > 0 {
		c.inline = call // run by the reader once the frame is processed
		return true
	}
	c.srv.workers.runTask(call)
	return true
}

// runInline runs a unary call on the reader's goroutine (on a busy
// connection: see read), sparing it the hand-off to a worker, which under
// load costs more in queueing delay than most handlers take to run
// (docs/DECISIONS.md, "The reader runs unary calls"). If the call is
// still running after Config.InlineCallFor, its timer (handOver) starts
// another reader, and the call finishes on this goroutine, which then
// stops reading. runInline reports whether this
// goroutine is still the reader.
//
// turn settles the race between the call's return and its timer: the
// reader makes it odd, the call's return moves it on by one and the
// timer by three, each only from the odd value, so that only one of them
// succeeds, and a late timer of an earlier call finds the value moved on.
// A call that ends its goroutine (runtime.Goexit) never moves it: the
// timer then hands reading on.
func (c *Conn) runInline(call *Call) bool {
	if c.handOff == nil {
		// Made before turn moves, which orders it before the reader
		// that handOver may start, and which uses it.
		c.handOff = time.AfterFunc(math.MaxInt64, c.handOver)
	}
	v := c.turn.Add(1)
	c.handOff.Reset(c.srv.cfg.InlineCallFor)
	call.runTask()
	if c.turn.CompareAndSwap(v, v+1) {
		c.handOff.Stop()
		return true
	}
	return false
}

// handOver is the timer of a call that the reader runs (runInline): when
// the call is still running, a worker takes over reading. A worker, not a
// fresh goroutine: the connection is busy, and its next calls would grow
// a fresh goroutine's stack.
func (c *Conn) handOver() {
	if v := c.turn.Load(); v&1 == 1 && c.turn.CompareAndSwap(v, v+3) {
		c.srv.workers.runTask((*connReader)(c))
	}
}

// connReader is a connection as the task of its reader (read).
type connReader Conn

func (r *connReader) runTask() { (*Conn)(r).read() }
