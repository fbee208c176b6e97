package transport

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"runtime"
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
)

// Conn is one WebSocket connection of a Server. Handlers reach it through
// ConnFromContext; hubs keep it to send to it later. Its methods are safe
// for concurrent use.
//
// Everything sent goes through a bounded queue drained by one writer
// goroutine, which joins whatever is queued into as few frames as possible.
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

	// The fields under mu; the flags are kept together, so that padding
	// does not push the struct, allocated once per connection, into a
	// larger size class.
	mu          sync.Mutex
	queue       []codec.Parts
	spare       []codec.Parts
	queued      int64  // bytes in queue
	inWrite     int64  // bytes of the batch the writer is writing
	code        int    // close code to send; 0 sends none
	reason      string // close reason
	calls       map[uint32]*Call
	running     int    // handler goroutines not yet returned
	drainCode   int    // the close code of draining: 1001 or 1013
	drainReason string // its reason, also the message of refused calls
	authGen     int    // invalidates expiry timers of replaced credentials
	authTmr     *time.Timer
	expTmr      *time.Timer
	pingTmr     *time.Timer
	closing     bool // a close was decided: nothing more is queued
	flush       bool // write the queue before the close frame
	draining    bool // shutdown or overload: refuse new calls, close when idle
	writing     bool // a writer goroutine runs (at most one at a time)
	pingDue     bool // the ping timer fired: the writer sends a ping
	closeDone   bool // the close frame was written or the link failed
	stopped     bool // the connection ended: no writer starts any more
	corked      bool // the reader is processing a frame: wake the writer after it
	ended       bool // every goroutine of the connection ended
	// busyReads is the reader's, not under mu (it fills the flags'
	// padding): messages since the handshake or the last silence, up to
	// freshReads.
	busyReads uint8
	// done is made by the first Done and closed when ended: most
	// connections are never asked, and a channel is 96 bytes.
	done chan struct{}

	writerWG sync.WaitGroup

	closeSent  atomic.Bool
	closeCode  atomic.Int64 // the code sent or received, for logs and metrics
	handlersWG sync.WaitGroup

	// Owned by the reader (read).
	tokens  float64
	lastMsg time.Duration // when the last message came, since srv.epoch: a monotonic time in 8 bytes
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
		if c.ended {
			close(c.done)
		}
	}
	return c.done
}

// Enqueue queues one encoded envelope, as codec.Codec.AppendEnvelope of
// this connection's codec produced it, for the writer. elem is only read,
// never modified or kept after it was written, so one encoding may be
// queued on many connections (encode once, broadcast to many). When the
// queue is full (Config.SendQueue envelopes or Config.MaxQueueBytes) the
// connection is closed with 4008 and ErrSlowConsumer is returned; after a
// close was decided, ErrClosed.
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
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.enqueueLocked(p)
}

func (c *Conn) enqueueLocked(elem codec.Parts) error {
	if c.closing {
		return ErrClosed
	}
	cfg := &c.srv.cfg
	// An empty queue takes any one envelope, even while a batch is being
	// written: a client that reads every reply before asking again is
	// never cut off, however large the replies.
	pending := c.queued + c.inWrite
	if len(c.queue) >= cfg.SendQueue ||
		(cfg.MaxQueueBytes > 0 && c.queued > 0 && pending+int64(elem.Len()) > cfg.MaxQueueBytes) {
		cfg.Metrics.SendQueueDropped()
		cfg.Logger.Warn("protows: slow consumer", "conn", c.id, "remote", c.remote, "queued", len(c.queue), "bytes", pending)
		c.closeLocked(CloseSlowConsumer, "slow consumer: send queue overflowed", false)
		return ErrSlowConsumer
	}
	c.queue = append(c.queue, elem)
	c.queued += int64(elem.Len())
	if !c.corked {
		c.signal()
	}
	return nil
}

// SendEnvelope encodes e with the connection's codec and queues it (see
// Enqueue). e.Payload must already be in the connection's codec.
func (c *Conn) SendEnvelope(e *protowsv1.Envelope) error {
	elem, err := c.codec.AppendEnvelope(nil, e)
	if err != nil {
		return err
	}
	return c.Enqueue(elem)
}

// send queues an envelope the transport itself produced. One that does not
// encode is the transport's own failure: the connection closes with 1011.
func (c *Conn) send(e *protowsv1.Envelope) {
	elem, err := c.codec.AppendEnvelope(nil, e)
	if err != nil {
		c.internalError(e, err)
		return
	}
	_ = c.Enqueue(elem)
}

// internalError closes the connection with 1011 after an envelope failed
// to encode, once what is queued was written.
func (c *Conn) internalError(e *protowsv1.Envelope, err error) {
	c.logger().Error("protows: cannot encode envelope", "id", e.GetId(), "kind", e.GetKind().String(), "err", err)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closeLocked(CloseInternalError, "internal error", true)
}

// Close closes the connection with the given close code and reason (cut
// to 123 bytes), after the envelopes already queued were written.
func (c *Conn) Close(code int, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closeLocked(code, reason, true)
}

// closeLocked decides to close. The first decision wins, except that an
// immediate close overrides a pending flush.
func (c *Conn) closeLocked(code int, reason string, flush bool) {
	if c.closing {
		if c.flush && !flush && !c.closeSent.Load() {
			c.flush = false
			c.code, c.reason = code, truncateReason(reason)
			c.queue, c.queued = nil, 0
			c.signal()
		}
		return
	}
	c.closing = true
	c.flush = flush
	c.code = code
	c.reason = truncateReason(reason)
	if !flush {
		c.queue, c.queued = nil, 0
	}
	c.stopTimersLocked()
	c.signal()
}

func (c *Conn) stopTimersLocked() {
	if c.authTmr != nil {
		c.authTmr.Stop()
	}
	if c.expTmr != nil {
		c.expTmr.Stop()
	}
	if c.pingTmr != nil {
		c.pingTmr.Stop()
	}
}

// signal makes sure a writer runs. The writer is started on demand and
// exits when there is nothing to write, so an idle connection has no
// writer goroutine; c.writing guarantees there is never more than one.
// c.mu must be held.
func (c *Conn) signal() {
	if c.writing || c.closeDone || c.stopped {
		return
	}
	c.writing = true
	c.writerWG.Add(1)
	c.srv.workers.run(c.writeLoop)
}

// firePing is the ping timer's function: it asks the writer for a ping.
func (c *Conn) firePing() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing || c.closeDone {
		return
	}
	c.pingDue = true
	c.pingTmr.Reset(c.srv.cfg.PingInterval)
	c.signal()
}

func (c *Conn) forgetCall(id uint32) {
	c.mu.Lock()
	delete(c.calls, id)
	c.mu.Unlock()
}

// maxBatchBytes bounds a batched frame; a single larger envelope still
// goes out alone.
const maxBatchBytes = 64 << 10

// writeLoop is the only goroutine that writes data frames, pings and the
// close frame. It drains the queue, joining what is queued into as few
// frames as possible, and returns when the queue is empty.
func (c *Conn) writeLoop() {
	defer c.writerWG.Done()
	cfg := &c.srv.cfg
	msgType := websocket.TextMessage
	if c.codec.Binary() {
		msgType = websocket.BinaryMessage
	}
	for {
		c.mu.Lock()
		if c.closeDone || (len(c.queue) == 0 && !c.pingDue && !c.closing) {
			c.writing = false
			c.mu.Unlock()
			return
		}
		if d := cfg.WriteDelay; d > 0 && !c.closing && len(c.queue) > 0 {
			// Collect what arrives meanwhile into this write. The writer
			// is the only one to take from the queue, so it cannot empty
			// while it sleeps; a close decided meanwhile is seen below.
			c.mu.Unlock()
			time.Sleep(d)
			c.mu.Lock()
		} else if (c.running > len(c.queue) || len(c.queue) == 1) && !c.closing && !cfg.DisableBatching {
			// Handlers of this connection are still running, or the
			// writer was woken for a single envelope (the first of a
			// room's broadcasts, whose publishers are still queueing the
			// next): let those that are about to send do so, and write
			// what they send in this frame rather than in one write each.
			// A write syscall costs far more than a trip through the
			// scheduler, which returns at once when nothing else is
			// runnable. For a single envelope this halved the writes and
			// the server's CPU per delivery of small-payload room fan-out
			// (benchmarks/RESULTS.md, "Fan-out: the writer yields for a
			// single envelope").
			c.mu.Unlock()
			runtime.Gosched()
			c.mu.Lock()
		}
		batch := c.queue
		c.queue = c.spare
		c.spare = nil
		c.inWrite, c.queued = c.queued, 0
		ping := c.pingDue
		c.pingDue = false
		closing, flush, code, reason := c.closing, c.flush, c.code, c.reason
		c.mu.Unlock()

		var err error
		if ping && !closing {
			_ = c.ws.SetWriteDeadline(time.Now().Add(cfg.WriteTimeout))
			err = c.ws.WriteMessage(websocket.PingMessage, nil)
		}
		if err == nil && (!closing || flush) {
			err = c.writeBatch(msgType, batch)
		}
		clear(batch)
		c.mu.Lock()
		c.inWrite = 0
		if cap(batch) <= 64 { // keep a small spare; let bursts be collected
			c.spare = batch[:0]
		}
		pending := len(c.queue) > 0 && c.flush
		code, reason = c.code, c.reason // an immediate close may have replaced a flushing one
		if err != nil {
			c.closeDone, c.writing = true, false
			c.mu.Unlock()
			c.abort()
			return
		}
		c.mu.Unlock()
		if closing && !pending {
			c.writeClose(code, reason)
			c.mu.Lock()
			c.closeDone, c.writing = true, false
			c.mu.Unlock()
			return
		}
	}
}

// writeBatch writes the queued elements as few frames as the limits allow.
func (c *Conn) writeBatch(msgType int, batch []codec.Parts) error {
	cfg := &c.srv.cfg
	for len(batch) > 0 {
		n, size := 0, 0
		for n < len(batch) && n < codec.MaxEnvelopesPerFrame && (n == 0 || (!cfg.DisableBatching && size+batch[n].Len() <= maxBatchBytes)) {
			size += batch[n].Len()
			n++
		}
		bp := c.srv.bufs.get(size + 8 + n)
		frame := c.codec.AppendFrameParts((*bp)[:0], batch[:n])
		_ = c.ws.SetWriteDeadline(time.Now().Add(cfg.WriteTimeout))
		if cfg.EnableCompression {
			c.ws.EnableWriteCompression(len(frame) >= cfg.CompressionMinSize)
		}
		err := c.ws.WriteMessage(msgType, frame)
		cfg.Metrics.MessageOut(c.codec.Name(), len(frame))
		*bp = frame
		c.srv.bufs.put(bp)
		if err != nil {
			return err
		}
		batch = batch[n:]
	}
	return nil
}

// closeGrace is how long the server waits for the client's close frame
// after sending its own, before it drops the TCP connection.
const closeGrace = time.Second

func (c *Conn) writeClose(code int, reason string) {
	if code == 0 {
		c.abort()
		return
	}
	c.closeCode.CompareAndSwap(0, int64(code))
	msg := websocket.FormatCloseMessage(code, reason)
	err := c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(c.srv.cfg.WriteTimeout))
	c.closeSent.Store(true)
	if err != nil && !errors.Is(err, websocket.ErrCloseSent) {
		c.abort()
		return
	}
	// Let the reader see the client's answering close frame, or give up.
	_ = c.ws.NetConn().SetReadDeadline(time.Now().Add(closeGrace))
}

// abort drops the TCP connection, which ends the read loop.
func (c *Conn) abort() {
	_ = c.ws.NetConn().Close()
}

// maxLingerBytes bounds what lingerClose reads and discards.
const maxLingerBytes = 1 << 20

// lingerClose drops the TCP connection once reading ended, gently: closing
// a socket that still holds unread data (the rest of a message over the
// size limit, say) makes the kernel send a reset, which can destroy the
// close frame sent just before it, so the client would see a reset rather
// than the documented close code. It half-closes the connection instead,
// and discards what still arrives until the client closes its side, for at
// most closeGrace and maxLingerBytes.
func (c *Conn) lingerClose() {
	nc := c.ws.NetConn()
	if hc, ok := nc.(interface{ CloseWrite() error }); ok && hc.CloseWrite() == nil {
		_ = nc.SetReadDeadline(time.Now().Add(closeGrace))
		_, _ = io.Copy(io.Discard, io.LimitReader(nc, maxLingerBytes))
	}
	_ = nc.Close()
}

// logger returns the connection's logger.
func (c *Conn) logger() *slog.Logger {
	return c.srv.cfg.Logger.With("conn", c.id, "remote", c.remote)
}

// sendError queues an ERROR envelope.
func (c *Conn) sendError(id uint32, code protows.Code, msg string) {
	c.send(&protowsv1.Envelope{
		Id:    id,
		Kind:  protowsv1.Kind_KIND_ERROR,
		Error: &protowsv1.Error{Code: protowsv1.Code(code), Message: msg},
	})
}

// drain starts the graceful close of shutdown: new calls are refused, the
// connection's streams end with STREAM_END unavailable at once (a
// subscription would otherwise keep it open until Shutdown's deadline), its
// unary calls finish and answer, then the connection closes with 1001.
func (c *Conn) drain() {
	c.drainWith(CloseGoingAway, "server shutting down")
}

// shed closes an overloaded server's connection (Config.MaxCalls): its
// streams end with unavailable, its unary calls finish, then close 1013.
func (c *Conn) shed() {
	c.mu.Lock()
	first := !c.draining
	c.mu.Unlock()
	if first {
		c.logger().Warn("protows: server overloaded, shedding connection", "max_calls", c.srv.cfg.MaxCalls)
	}
	c.drainWith(CloseTryAgainLater, "server overloaded")
}

// drainWith refuses new calls from now on, ends the running streams with
// STREAM_END unavailable and cancels their handlers, and closes with code
// once every handler returned. The first drain's code wins.
func (c *Conn) drainWith(code int, reason string) {
	c.mu.Lock()
	if !c.draining {
		c.draining = true
		c.drainCode, c.drainReason = code, reason
	}
	// handleRequest registers a call only while not draining (under c.mu),
	// so no stream starts after this snapshot.
	var streams []*Call
	for _, call := range c.calls {
		if call.method.ServerStream {
			streams = append(streams, call)
		}
	}
	msg := c.drainReason
	c.mu.Unlock()
	for _, call := range streams {
		if call.end(nil, protows.Errorf(protows.CodeUnavailable, "%s", msg)) {
			call.cancel()
		}
	}
	c.mu.Lock()
	if c.running == 0 {
		c.closeLocked(c.drainCode, c.drainReason, true)
	}
	c.mu.Unlock()
}

// handlerDone records the return of a handler goroutine.
func (c *Conn) handlerDone() {
	c.srv.calls.Add(-1)
	c.mu.Lock()
	c.running--
	if c.draining && c.running == 0 {
		c.closeLocked(c.drainCode, c.drainReason, true)
	}
	c.mu.Unlock()
	c.handlersWG.Done()
}
