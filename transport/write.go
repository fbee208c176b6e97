package transport

import (
	"errors"
	"runtime"
	"time"

	"github.com/gorilla/websocket"
	protows "github.com/protows/protows"
	"github.com/protows/protows/codec"
)

// writer is a connection's send queue and the flags of its writer, under
// Conn.mu. The writer is the only goroutine that writes to the WebSocket:
// data frames, pings and the close frame.
type writer struct {
	queue []codec.Parts
	spare []codec.Parts // an emptied batch, the next queue
	// owned are the pooled buffers (Server.bufs) of envelopes in queue,
	// the REPLYs of unary calls: the writer puts them back once it wrote
	// the batch they are in. spareOwned is an emptied owned.
	owned      []*[]byte
	spareOwned []*[]byte
	queued     int64 // bytes in queue
	inWrite    int64 // bytes of the batch being written
	peak       int64 // the most of queued+inWrite so far, for tests
	pingTmr    *time.Timer
	// room is made by an answer waiting for room in the queue
	// (enqueueLocked), and closed by wakeLocked when room may have
	// appeared.
	room    chan struct{}
	running bool // a writer goroutine runs (at most one at a time)
	pingDue bool // the ping timer fired: the writer sends a ping
	corked  bool // the reader is processing a frame: wake the writer after it
	stopped bool // reading ended (finish): no writer starts any more
	// broadcast: a room broadcast queued an envelope (Conn.enqueueCall)
	// while this writer ran: more are likely on the way, so the writer
	// lingers before it exits (writeLoop, maxLingers).
	broadcast bool
}

// wakeLocked wakes the answers waiting for room in the queue: the writer
// finished writing a batch, or the connection is closing. c.mu must be
// held.
func (c *Conn) wakeLocked() {
	if c.w.room != nil {
		close(c.w.room)
		c.w.room = nil
	}
}

// signal makes sure a writer runs. The writer is started on demand and
// exits when there is nothing to write, so an idle connection has no
// writer goroutine; c.w.running guarantees there is never more than one.
// c.mu must be held.
func (c *Conn) signal() {
	if c.claimWriterLocked() {
		c.srv.workers.runTask((*connWriter)(c))
	}
}

// claimWriterLocked makes the caller the connection's writer when none
// runs and one may start: it reports true, and the caller must then run
// writeLoop: on a worker (signal, or enqueueCall once it released c.mu),
// or on its own goroutine (write-through, see Conn.enqueueReply). c.mu
// must be held.
func (c *Conn) claimWriterLocked() bool {
	if c.w.running || c.w.stopped || c.state >= stateClosed {
		return false
	}
	c.w.running = true
	c.writerWG.Add(1)
	return true
}

// enqueueReply is enqueue for the REPLY of a unary call, elem, encoded
// into bp, a buffer of the server's pool that the writer puts back once
// elem was written (nil for none); the caller puts it back when an error
// is returned.
//
// With through set, the caller is the goroutine that ran the call's
// handler, which is about to go idle: when no writer runs and the reader
// does not cork it, it makes the caller the writer (claimWriterLocked)
// instead of waking a worker to write, and reports true (write-through):
// the caller must run writeLoop once it released what the call held. That
// spares a goroutine hand-off per unary call. The connection sees a
// writer running from here on, as after signal, so a close decided
// meanwhile (a drain ending with this call's handler) is written by this
// writer.
func (c *Conn) enqueueReply(elem []byte, bp *[]byte, wait, through bool) (write bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.admitLocked(int64(len(elem)), wait); err != nil {
		return false, err
	}
	c.appendLocked(codec.Parts{Body: elem})
	if bp != nil {
		c.w.owned = append(c.w.owned, bp)
	}
	switch {
	case c.w.corked:
		return false, nil // the reader signals once its frame is processed
	case through:
		return c.claimWriterLocked(), nil
	}
	c.signal()
	return false, nil
}

// connWriter is a connection as the task of its writer (writeLoop).
type connWriter Conn

func (w *connWriter) runTask() { (*Conn)(w).writeLoop() }

// cork holds back (true) or releases (false) the writer's wake-up, so that
// the answers to one frame's envelopes go out batched.
func (c *Conn) cork(on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.w.corked = on
	if !on && len(c.w.queue) > 0 {
		c.signal()
	}
}

// firePing is the ping timer's function: it asks the writer for a ping.
func (c *Conn) firePing() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state.closeDecided() {
		return
	}
	c.w.pingDue = true
	c.w.pingTmr.Reset(c.srv.cfg.PingInterval)
	c.signal()
}

// yieldBelow and maxYields bound the writer's wait for more to write
// (writeLoop): it yields before writing fewer than yieldBelow envelopes,
// and at most maxYields times in a row while its queue keeps growing. A
// frame of 16 small envelopes costs about what one does to write.
const (
	yieldBelow = 16
	maxYields  = 8
)

// maxLingers is how many times in a row a writer whose connection is
// sent room broadcasts yields, with its queue empty, before it exits
// (writeLoop), when its last batch held more than one envelope (they
// arrive faster than it writes them) or an earlier linger found more to
// write: the connection's next broadcast is then likely to find it still
// running, and spares the hand-off of a new writer to a worker and the
// park of the old one. In server-bound room fan-out of small messages to
// 1,000 members, writes per delivery fell from 0.21-0.25 to 0.20-0.21
// with 3 (1 did about as well), and the server's CPU per delivery by
// about a tenth. A writer that wrote a lone envelope, and whose lingers
// found nothing, exits at once: at 20 broadcasts a second to 1,000
// members, where nothing arrives meanwhile, lingering after every write
// cost 5-14 % more CPU per delivery.
const maxLingers = 3

// maxBatchBytes bounds a batched frame; a single larger envelope still
// goes out alone.
const maxBatchBytes = 64 << 10

// writeLoop is the writer. It drains the queue, joining what is queued
// into as few frames as possible, and returns when the queue is empty;
// once a close was decided it writes the close frame and moves the
// connection to stateClosed.
func (c *Conn) writeLoop() {
	defer c.writerWG.Done()
	cfg := &c.srv.cfg
	msgType := websocket.TextMessage
	if c.codec.Binary() {
		msgType = websocket.BinaryMessage
	}
	// last: envelopes in the last batch taken; hot: a linger found more
	// to write (maxLingers).
	lingers, last, hot := 0, 0, false
	for {
		c.mu.Lock()
		idle := len(c.w.queue) == 0 && !c.w.pingDue && !c.state.closeDecided()
		if idle && c.w.broadcast && (last > 1 || hot) && lingers < maxLingers && c.state < stateClosed && !cfg.DisableBatching {
			lingers++
			c.mu.Unlock()
			runtime.Gosched()
			continue
		}
		if c.state >= stateClosed || idle {
			c.w.running = false
			c.w.broadcast = false
			c.mu.Unlock()
			return
		}
		hot = hot || lingers > 0
		lingers = 0
		if d := cfg.WriteDelay; d > 0 && !c.state.closeDecided() && len(c.w.queue) > 0 {
			// Collect what arrives meanwhile into this write. The writer
			// is the only one to take from the queue, so it cannot empty
			// while it sleeps; a close decided meanwhile is seen below.
			c.mu.Unlock()
			time.Sleep(d)
			c.mu.Lock()
		} else if q := len(c.w.queue); (c.running > q || (q > 0 && q < yieldBelow)) && !c.state.closeDecided() && !cfg.DisableBatching {
			// Handlers of this connection are still running, or the
			// writer was woken for a few envelopes (of a room's
			// broadcasts, whose publishers are still queueing the next):
			// let those that are about to send do so, and write what they
			// send in this frame rather than in one write each. A write
			// syscall costs far more than a trip through the scheduler,
			// which returns at once when nothing else is runnable, so at
			// low rates this adds no delay. The writer yields again while
			// the queue grew during its last yield, as it does while a
			// busy server's broadcasts still reach this connection: in
			// room fan-out of small messages to 1,000 and 5,000 members
			// a write then carried 4-5.5 envelopes instead of about 3,
			// and the server's CPU per delivery fell by 10-28 %
			// (benchmarks/RESULTS.md, "Fan-out: the writer yields while
			// its queue grows").
			for range maxYields {
				c.mu.Unlock()
				runtime.Gosched()
				c.mu.Lock()
				if n := len(c.w.queue); n == q || n >= yieldBelow || c.state.closeDecided() {
					break
				}
				q = len(c.w.queue)
			}
		}
		// Only this writer moves the connection to stateClosed while it
		// runs (finish waits for it first), so the state is one of open,
		// draining or closing here.
		batch := c.w.queue
		last = len(batch)
		c.w.queue = c.w.spare
		c.w.spare = nil
		owned := c.w.owned
		c.w.owned = c.w.spareOwned
		c.w.spareOwned = nil
		c.w.inWrite, c.w.queued = c.w.queued, 0
		ping := c.w.pingDue
		c.w.pingDue = false
		closing, flush := c.state.closeDecided(), c.state == stateClosingFlush
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
		for _, bp := range owned {
			c.srv.bufs.put(bp)
		}
		clear(owned)
		c.mu.Lock()
		c.w.inWrite = 0
		// Room is made once the batch is out, not when it is taken: the
		// waiters then fill a whole batch for the next write rather than
		// trickle into small ones while this one is written.
		c.wakeLocked()
		if cap(batch) <= 64 { // keep a small spare; let bursts be collected
			c.w.spare = batch[:0]
		}
		if cap(owned) <= 64 {
			c.w.spareOwned = owned[:0]
		}
		// A flushed close waits for what was queued before it; an
		// immediate close may have replaced it meanwhile (and dropped the
		// queue), with its own code.
		pending := len(c.w.queue) > 0 && c.state == stateClosingFlush
		code, reason := c.code, c.reason
		if err != nil {
			c.setStateLocked(stateClosed)
			c.w.running = false
			c.mu.Unlock()
			c.abort()
			return
		}
		c.mu.Unlock()
		if closing && !pending {
			c.writeClose(code, reason)
			c.mu.Lock()
			c.setStateLocked(stateClosed)
			c.w.running = false
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

// writeClose writes the close frame, or drops the link for code 0.
func (c *Conn) writeClose(code protows.CloseCode, reason string) {
	if code == 0 {
		c.abort()
		return
	}
	c.closeCode.CompareAndSwap(0, uint32(code))
	msg := websocket.FormatCloseMessage(int(code), reason)
	err := c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(c.srv.cfg.WriteTimeout))
	c.closeSent.Store(true)
	if err != nil && !errors.Is(err, websocket.ErrCloseSent) {
		c.abort()
		return
	}
	// Let the reader see the client's answering close frame, or give up.
	_ = c.ws.NetConn().SetReadDeadline(time.Now().Add(closeGrace))
}
