package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	protows "github.com/protows/protows"
	"github.com/protows/protows/codec"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
)

// Errors of Conn.Enqueue and Call.Send.
var (
	// ErrClosed: the connection is closing or closed; nothing more is
	// sent.
	ErrClosed = errors.New("transport: connection closed")
	// ErrSlowConsumer: the send queue was full, so the connection is
	// being closed with 4008.
	ErrSlowConsumer = errors.New("transport: send queue full (slow consumer)")
	// ErrMessageTooLarge: the envelope's frame would be larger than
	// Config.MaxMessageSize. That limit is symmetric: the server sends no
	// message larger than the largest it takes (PROTOCOL.md section 11),
	// so a client that accepts what it may send never gets a message it
	// cannot take. The envelope is not sent; the connection stays.
	ErrMessageTooLarge = errors.New("transport: envelope larger than the message size limit")
)

// Conn is one WebSocket connection of a Server. Handlers reach it through
// ConnFromContext; hubs keep it to send to it later. Its methods are safe
// for concurrent use.
//
// Everything sent goes through a bounded queue drained by one writer
// goroutine, which joins whatever is queued into as few frames as possible.
//
// The connection's life is a state machine (connState, changed only by
// setStateLocked); the goroutines that serve it are one reader (read.go),
// at most one writer, started on demand (write.go), and one per running
// handler. Authentication is in auth.go, closing and teardown in close.go.
type Conn struct {
	srv    *Server
	ws     *websocket.Conn
	id     string
	remote string
	ip     string
	codec  codec.Codec
	ctx    connContext // cancelled when the connection ends
	cancel context.CancelFunc

	metadata  map[string]string // from Config.ConnMetadata; read-only
	principal atomic.Pointer[Principal]

	// The fields under mu. The small ones come first and together, so
	// that padding does not push the struct, allocated once per
	// connection, into a larger size class.
	mu        sync.Mutex
	state     connState         // see connState
	code      protows.CloseCode // close code to send once closing; 0 sends none
	drainCode protows.CloseCode // the close that ends draining: 1001 or 1013
	// busyReads is the reader's, not under mu (it fills the padding):
	// messages since the handshake or the last silence, up to freshReads.
	busyReads uint8
	// turn is odd while the reader runs a call inline; runInline and
	// handOver move it on, so that exactly one of them wins (runInline).
	// It is not under mu either.
	turn        atomic.Uint32
	w           writer // the send queue and the writer's flags
	auth        authTimers
	drainTmr    *time.Timer // Config.DrainTimeout, from the start of draining
	reason      string      // close reason
	drainReason string      // draining's close reason, also the message of refused calls
	calls       map[uint32]*Call
	running     int // handler goroutines not yet returned
	// ending counts the calls marked ended whose terminal envelope is not
	// queued yet, and drainSeen says a drain began: a draining connection
	// closes only once both running and ending are 0, for a handler that
	// returns as its call is ended (woken by the end) must not close the
	// connection before that end's envelope is queued.
	ending    atomic.Int32
	drainSeen atomic.Bool
	// done is made by the first Done and closed on entering stateEnded:
	// most connections are never asked, and a channel is 96 bytes.
	done chan struct{}

	writerWG sync.WaitGroup

	// closeSent is set once the writer wrote the close frame. The reader
	// reads it without the lock, on every message (extendDeadline).
	closeSent  atomic.Bool
	closeCode  atomic.Uint32 // the CloseCode sent or received, for logs and metrics
	handlersWG sync.WaitGroup

	// Owned by the reader (read).
	tokens  float64
	lastMsg time.Duration // when the last message came, since srv.epoch: a monotonic time in 8 bytes
	// inline is the unary call of the last message, which the reader runs
	// itself once the message was processed (runInline); handOff is the
	// timer that hands reading on when the call takes too long.
	inline  *Call
	handOff *time.Timer

	opened time.Duration // when the connection opened, since srv.epoch, for the close's log line
}

// connState is where a connection is in its life. It only moves forward
// (see canBecome), under Conn.mu, through setStateLocked:
//
//	open ──► draining ──► closing, flushed ──► closing, immediate ──► closed ──► ended
//
// Every state but ended may be skipped: an open connection may close at
// once, a close may be immediate from the start, a failed write or the end
// of reading closes whatever the state.
type connState uint8

const (
	// stateOpen: calls are served.
	stateOpen connState = iota
	// stateDraining: shutdown or overload (Config.MaxCalls): new calls are
	// refused, streams were ended, and the connection closes with
	// drainCode, flushed, once its handlers returned.
	stateDraining
	// stateClosingFlush: a close was decided (code, reason): nothing more
	// is queued; the writer writes the queue, then the close frame.
	stateClosingFlush
	// stateClosingNow: a close was decided and the queue dropped: the
	// writer writes the close frame next. It overrides a flushed close
	// whose close frame was not sent yet.
	stateClosingNow
	// stateClosed: nothing more is written: the close frame went out, a
	// write failed, or reading ended and the writer returned. The queue is
	// empty and the timers are stopped.
	stateClosed
	// stateEnded: every goroutine of the connection returned; Done is
	// closed.
	stateEnded
)

var stateNames = [...]string{
	stateOpen:         "open",
	stateDraining:     "draining",
	stateClosingFlush: "closing (flush)",
	stateClosingNow:   "closing (immediate)",
	stateClosed:       "closed",
	stateEnded:        "ended",
}

func (s connState) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "connState(" + strconv.Itoa(int(s)) + ")"
}

// canBecome reports whether a connection in state s may move to state to.
// It is the transition table of connState.
func (s connState) canBecome(to connState) bool {
	switch to {
	case stateDraining:
		return s == stateOpen
	case stateClosingFlush:
		return s == stateOpen || s == stateDraining
	case stateClosingNow:
		return s == stateOpen || s == stateDraining || s == stateClosingFlush
	case stateClosed:
		return s < stateClosed
	case stateEnded:
		return s == stateClosed
	}
	return false
}

// closeDecided reports whether a close was decided (or the connection is
// past closing): nothing more is queued.
func (s connState) closeDecided() bool { return s >= stateClosingFlush }

// setStateLocked moves the connection to state to, when the transition
// table allows it, and keeps the invariants of the state it enters: a
// dropped queue in stateClosingNow and stateClosed, stopped timers from
// closing on. It reports whether the state changed. c.mu must be held.
func (c *Conn) setStateLocked(to connState) bool {
	if !c.state.canBecome(to) {
		return false
	}
	c.state = to
	switch to {
	case stateClosingNow, stateClosed:
		c.w.queue, c.w.queued, c.w.owned = nil, 0, nil
		c.stopTimersLocked()
		c.wakeLocked()
	case stateClosingFlush:
		c.stopTimersLocked()
		c.wakeLocked()
	}
	return true
}

// stopTimersLocked stops the connection's timers: once a close is decided
// none has anything left to do.
func (c *Conn) stopTimersLocked() {
	c.auth.stop()
	if c.drainTmr != nil {
		c.drainTmr.Stop()
	}
	if c.w.pingTmr != nil {
		c.w.pingTmr.Stop()
	}
}

// connContext is the connection's context: its cancellation, plus the
// connection itself as the value of connKey. Held inside Conn, it spares an
// idle connection the allocation of a context.WithValue.
type connContext struct {
	context.Context
	conn *Conn
}

// Value returns the connection for connKey and defers to the cancellation
// context (so to its parents) otherwise.
func (x *connContext) Value(key any) any {
	if key == (connKey{}) {
		return x.conn
	}
	return x.Context.Value(key)
}

// ID returns the connection's id, unique within the server process.
func (c *Conn) ID() string { return c.id }

// RemoteAddr returns the client's address (the peer of the TCP connection).
func (c *Conn) RemoteAddr() string { return c.remote }

// Codec returns the connection's codec.
func (c *Conn) Codec() codec.Codec { return c.codec }

// Subprotocol returns the negotiated subprotocol, the codec's name.
func (c *Conn) Subprotocol() string { return c.codec.Name() }

// Metadata returns what Config.ConnMetadata kept of the handshake request,
// nil without it. The map must not be modified.
func (c *Conn) Metadata() map[string]string { return c.metadata }

// Principal returns the authenticated principal, nil while anonymous.
func (c *Conn) Principal() *Principal { return c.principal.Load() }

// Context returns a context that is cancelled when the connection ends. It
// is not derived from the handshake request's context: values middleware
// put there do not reach it (see Config.ConnMetadata).
func (c *Conn) Context() context.Context { return &c.ctx }

// Done returns a channel closed when the connection has ended and all its
// goroutines returned.
func (c *Conn) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		c.done = make(chan struct{})
		if c.state == stateEnded {
			close(c.done)
		}
	}
	return c.done
}

// Enqueue queues one encoded envelope, as codec.Codec.AppendEnvelope of
// this connection's codec produced it, for the writer. elem is only read,
// never modified or kept after it was written, so one encoding may be
// queued on many connections (encode once, broadcast to many). It never
// waits: it is the path of broadcasts, which must not wait for one member
// (docs/PROTOCOL.md, section 4.7). When the queue is full
// (Config.SendQueue envelopes or Config.MaxQueueBytes) the connection is
// closed with 4008 and ErrSlowConsumer is returned; after a close was
// decided, ErrClosed. An envelope whose frame would be larger than
// Config.MaxMessageSize is not queued: ErrMessageTooLarge, and the
// connection stays.
//
// Enqueue knows nothing of calls: to send a STREAM_MESSAGE of a call, use
// Call.Enqueue, which refuses once the call has ended, so that nothing
// follows its STREAM_END.
func (c *Conn) Enqueue(elem []byte) error {
	return c.EnqueueParts(codec.Parts{Body: elem})
}

// EnqueueParts is Enqueue for an envelope held in parts (see codec.Parts):
// none of them is modified or kept after it was written, and the writer
// copies them straight into the frame, so a Body shared by many connections
// is never copied into a per-connection envelope.
func (c *Conn) EnqueueParts(p codec.Parts) error {
	return c.enqueue(p, false)
}

// enqueueCall is Call.EnqueueParts for a call without flow control: it
// queues p unless the call ended, under c.mu alone. A call's end is marked
// (Call.gone) before its terminal envelope is queued under c.mu, so an
// envelope queued here either precedes the terminal one, or this sees the
// mark and refuses.
//
// A writer it has to start is handed to a worker after c.mu is released:
// the writer's first act is to take c.mu, and a room broadcast calls this
// for every member, so a writer woken under the lock would contend with
// the broadcast for it (in room fan-out to 1,000 members, the release of
// c.mu here was 6 % of the server's CPU, most of it that contention).
func (c *Conn) enqueueCall(call *Call, p codec.Parts) error {
	c.mu.Lock()
	if call.gone.Load() {
		c.mu.Unlock()
		return ErrCallEnded
	}
	if err := c.admitLocked(int64(p.Len()), false); err != nil {
		c.mu.Unlock()
		return err
	}
	c.appendLocked(p)
	c.w.broadcast = true
	start := !c.w.corked && c.claimWriterLocked()
	c.mu.Unlock()
	if start {
		c.srv.workers.runTask((*connWriter)(c))
	}
	return nil
}

func (c *Conn) enqueue(p codec.Parts, wait bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.enqueueLocked(p, wait)
}

// enqueueLocked queues elem. What does not fit in the queue closes the
// connection with 4008 (a slow consumer), unless wait is set: elem then
// answers one of the client's own envelopes (a PONG, a refusal, the end
// of a call), and the caller waits until the queue is below the
// back-pressure threshold, half its limits (fitsLocked). A client that
// sends faster than it reads its answers is thereby slowed down, not cut
// off: when the reader waits it stops reading, and TCP carries the back
// pressure to the client; a client that reads nothing at all is cut off by
// the write timeout. The stream messages of a handler's Send wait the same
// way (Call.push); broadcasts never wait: they are what a slow consumer
// falls behind on (docs/PROTOCOL.md, section 4.7).
//
// The queue holds at most Config.SendQueue envelopes, and its bytes
// together with those of the batch being written at most
// Config.MaxQueueBytes, except that when nothing is held one envelope of
// any size (up to the message size limit) is taken. c.mu must be held; it
// is released while waiting.
func (c *Conn) enqueueLocked(elem codec.Parts, wait bool) error {
	if err := c.admitLocked(int64(elem.Len()), wait); err != nil {
		return err
	}
	c.pushLocked(elem)
	return nil
}

// admitLocked is enqueueLocked up to the push: it returns nil once an
// envelope of n bytes may be queued, after waiting for room when wait is
// set. c.mu must be held; it is released while waiting.
func (c *Conn) admitLocked(n int64, wait bool) error {
	cfg := &c.srv.cfg
	for {
		if c.state.closeDecided() {
			return ErrClosed
		}
		// An envelope alone is a frame of its own length, in both codecs
		// (an element of a Protobuf frame carries its tag and length).
		if n > cfg.MaxMessageSize {
			return ErrMessageTooLarge
		}
		if c.fitsLocked(n, wait) {
			break
		}
		if !wait {
			held := c.w.queued + c.w.inWrite
			cfg.Metrics.SendQueueDropped()
			cfg.Logger.Warn("protows: slow consumer", "conn", c.id, "remote", c.remote, "queued", len(c.w.queue), "bytes", held)
			c.closeLocked(protows.CloseSlowConsumer, "slow consumer: send queue overflowed", false)
			return ErrSlowConsumer
		}
		room := c.roomLocked()
		c.mu.Unlock()
		<-room
		c.mu.Lock()
	}
	return nil
}

// send queues an envelope the transport itself produced on the reader, an
// answer to the client (a PONG, a refusal): it waits for room in the
// queue (see enqueueLocked). One that does not encode is the transport's
// own failure: the connection closes with 1011.
func (c *Conn) send(e *protowsv1.Envelope) {
	elem, err := c.codec.AppendEnvelope(nil, e)
	if err != nil {
		c.internalError(e, err)
		return
	}
	c.answer(e, elem, true)
}

// answer queues elem, the encoding of e, an envelope that answers one of
// the client's own (a PONG, a refusal, a call's REPLY, ERROR or
// STREAM_END), waiting for room in the queue when wait is set. An answer
// whose frame would be larger than the message size limit, which the
// client need not accept (PROTOCOL.md section 11), is replaced: a REPLY by
// ERROR resource_exhausted, an error whose message is too long by the
// same error with its message cut until it fits. The call gets its
// answer, and the connection stays.
func (c *Conn) answer(e *protowsv1.Envelope, elem []byte, wait bool) {
	err := c.enqueue(codec.Parts{Body: elem}, wait)
	if !errors.Is(err, ErrMessageTooLarge) {
		return
	}
	limit := c.srv.cfg.MaxMessageSize
	size := len(elem)
	fb := &protowsv1.Envelope{Id: e.GetId(), Kind: e.GetKind()}
	code, msg := protowsv1.Code(protows.CodeResourceExhausted), fmt.Sprintf("reply of %d bytes is larger than the message size limit (%d bytes)", size, limit)
	if e.GetError() != nil {
		code, msg = e.GetError().GetCode(), e.GetError().GetMessage()
	} else {
		fb.Kind = protowsv1.Kind_KIND_ERROR
	}
	c.logger().Warn("protows: answer larger than the message size limit", "id", e.GetId(), "kind", e.GetKind().String(), "bytes", size, "limit", limit)
	for {
		fb.Error = &protowsv1.Error{Code: code, Message: msg}
		elem, err := c.codec.AppendEnvelope(nil, fb)
		if err != nil {
			c.internalError(fb, err)
			return
		}
		err = c.enqueue(codec.Parts{Body: elem}, wait)
		if !errors.Is(err, ErrMessageTooLarge) {
			return
		}
		if msg == "" {
			// A limit too small for an empty ERROR: nothing can answer.
			c.internalError(fb, err)
			return
		}
		msg = truncateUTF8(msg, len(msg)/2)
	}
}

// sendError queues an ERROR envelope.
func (c *Conn) sendError(id uint32, code protows.Code, msg string) {
	c.send(&protowsv1.Envelope{
		Id:    id,
		Kind:  protowsv1.Kind_KIND_ERROR,
		Error: &protowsv1.Error{Code: protowsv1.Code(code), Message: msg},
	})
}

// internalError closes the connection with 1011 after an envelope failed
// to encode, once what is queued was written.
func (c *Conn) internalError(e *protowsv1.Envelope, err error) {
	c.logger().Error("protows: cannot encode envelope", "id", e.GetId(), "kind", e.GetKind().String(), "err", err)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closeLocked(protows.CloseInternalError, "internal error", true)
}

// cancelCalls cancels the calls in flight, those with an idempotency key
// only if keyed is set: a keyed call outlives its connection, but not
// Shutdown's deadline. A call that ended was cancelled then (Call.end is
// always followed by Call.cancel), so these are all the calls whose
// context may still be live.
func (c *Conn) cancelCalls(keyed bool) {
	c.mu.Lock()
	calls := make([]*Call, 0, len(c.calls))
	for _, call := range c.calls {
		if keyed || call.key == "" {
			calls = append(calls, call)
		}
	}
	c.mu.Unlock()
	for _, call := range calls {
		call.cancel()
	}
}

func (c *Conn) forgetCall(id uint32) {
	c.mu.Lock()
	delete(c.calls, id)
	c.mu.Unlock()
}

// logger returns the connection's logger.
func (c *Conn) logger() *slog.Logger {
	return c.srv.cfg.Logger.With("conn", c.id, "remote", c.remote)
}
