package transport

import (
	"io"
	"time"
	"unicode/utf8"

	protows "github.com/protows/protows"
	"github.com/protows/protows/codec"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
)

// Close closes the connection with the given close code and reason (cut
// to 123 bytes), after the envelopes already queued were written.
func (c *Conn) Close(code protows.CloseCode, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closeLocked(code, reason, true)
}

// closeNow closes without writing what is queued.
func (c *Conn) closeNow(code protows.CloseCode, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closeLocked(code, reason, false)
}

// closeLocked decides to close, flushed (the queue is written first) or
// immediate. The first decision wins, except that an immediate close
// overrides a flushed one whose close frame was not sent yet. c.mu must be
// held.
func (c *Conn) closeLocked(code protows.CloseCode, reason string, flush bool) {
	to := stateClosingNow
	if flush {
		to = stateClosingFlush
	}
	if c.state == stateClosingFlush && c.closeSent.Load() {
		return // too late to override: the close frame is out
	}
	if !c.setStateLocked(to) {
		return
	}
	c.code, c.reason = code, truncateReason(reason)
	c.signal()
}

// closeAfterError queues ERROR id 0 and then closes with code.
func (c *Conn) closeAfterError(errCode protows.Code, msg string, code protows.CloseCode, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state.closeDecided() {
		return
	}
	e := &protowsv1.Envelope{
		Kind:  protowsv1.Kind_KIND_ERROR,
		Error: &protowsv1.Error{Code: protowsv1.Code(errCode), Message: msg},
	}
	elem, err := c.codec.AppendEnvelope(nil, e)
	if err != nil {
		c.logger().Error("protows: cannot encode envelope", "kind", e.GetKind().String(), "err", err)
		c.closeLocked(protows.CloseInternalError, "internal error", true)
		return
	}
	_ = c.enqueueLocked(codec.Parts{Body: elem}, false)
	c.closeLocked(code, reason, true)
}

// drain starts the graceful close of shutdown: new calls are refused, the
// connection's streams end with STREAM_END unavailable at once (a
// subscription would otherwise keep it open until Shutdown's deadline), its
// unary calls finish and answer, then the connection closes with 1001.
func (c *Conn) drain() {
	c.drainWith(protows.CloseGoingAway, "server shutting down")
}

// shed closes an overloaded server's connection (Config.MaxCalls): its
// streams end with unavailable, its unary calls finish, then close 1013.
func (c *Conn) shed() {
	c.mu.Lock()
	first := c.state == stateOpen
	c.mu.Unlock()
	if first {
		c.logger().Warn("protows: server overloaded, shedding connection", "max_calls", c.srv.cfg.MaxCalls)
		if c.srv.load != nil {
			c.srv.load.ConnShed()
		}
	}
	c.drainWith(protows.CloseTryAgainLater, "server overloaded")
}

// drainWith moves an open connection to stateDraining, which refuses new
// calls, ends the running streams with STREAM_END unavailable and cancels
// their handlers, and closes with code once every handler returned. The
// first drain's code wins.
func (c *Conn) drainWith(code protows.CloseCode, reason string) {
	c.mu.Lock()
	if c.setStateLocked(stateDraining) {
		c.drainSeen.Store(true)
		c.drainCode, c.drainReason = code, reason
		c.drainTmr = time.AfterFunc(c.srv.cfg.DrainTimeout, c.drainExpired)
	}
	msg := reason
	if c.drainReason != "" {
		msg = c.drainReason
	}
	// handleRequest registers a call only while open (under c.mu), so no
	// stream starts after this snapshot.
	var streams []*Call
	for _, call := range c.calls {
		if call.method.ServerStream || call.method.ClientStream {
			streams = append(streams, call)
		}
	}
	c.mu.Unlock()
	for _, call := range streams {
		// No waiting for room: Shutdown must not be held up by a
		// client that does not read.
		if call.end(nil, protows.Errorf(protows.CodeUnavailable, "%s", msg), false) {
			call.cancel()
		}
	}
	c.mu.Lock()
	c.closeIfDrainedLocked()
	c.mu.Unlock()
}

// drainExpired ends a drain whose handlers did not all return within
// Config.DrainTimeout: a handler that ignores its context would otherwise
// hold its connection open for as long as it runs. The calls still
// running end with ERROR unavailable (their outcome is unknown, as after
// a dropped connection), their contexts are cancelled, and the connection
// closes with the drain's code after what is queued. What the handlers
// return later is discarded.
func (c *Conn) drainExpired() {
	c.mu.Lock()
	if c.state != stateDraining {
		c.mu.Unlock()
		return
	}
	calls := make([]*Call, 0, len(c.calls))
	for _, call := range c.calls {
		calls = append(calls, call)
	}
	reason := c.drainReason
	c.mu.Unlock()
	c.logger().Warn("protows: handlers still running at the end of the drain timeout", "calls", len(calls), "drain_timeout", c.srv.cfg.DrainTimeout)
	for _, call := range calls {
		if call.end(nil, protows.Errorf(protows.CodeUnavailable, "%s: the call did not finish in time", reason), false) {
			call.cancel()
		}
	}
	c.mu.Lock()
	c.closeLocked(c.drainCode, c.drainReason, true)
	c.mu.Unlock()
}

// handlerDone records the return of a handler goroutine.
func (c *Conn) handlerDone() {
	c.srv.calls.Add(-1)
	c.mu.Lock()
	c.running--
	c.closeIfDrainedLocked()
	c.mu.Unlock()
	c.handlersWG.Done()
}

// endQueued is called once the terminal envelope of a call marked ended
// (Call.markEndedLocked) was queued, or refused.
func (c *Conn) endQueued() {
	if c.ending.Add(-1) == 0 && c.drainSeen.Load() {
		c.mu.Lock()
		c.closeIfDrainedLocked()
		c.mu.Unlock()
	}
}

// closeIfDrainedLocked closes a draining connection, flushed, once no
// handler runs any more and every ended call's envelope is queued. c.mu
// must be held.
func (c *Conn) closeIfDrainedLocked() {
	if c.state == stateDraining && c.running == 0 && c.ending.Load() == 0 {
		c.closeLocked(c.drainCode, c.drainReason, true)
	}
}

// closeGrace is how long the server waits for the client's close frame
// after sending its own, before it drops the TCP connection.
const closeGrace = time.Second

// finish tears the connection down once reading ended, on the last
// reader's goroutine: it lets the writer finish, closes the connection
// (stateClosed), waits for the handlers, and ends it (stateEnded).
func (c *Conn) finish(end readEnd) {
	s := c.srv

	// Reading ended: the client closed, the link died, or our close
	// handshake finished. Let the writer finish its close frame, if it is
	// still writing one, then drop the link.
	switch end {
	case endNow:
		c.abort()
	case endLinger:
		c.lingerClose()
	}
	c.mu.Lock()
	c.w.stopped = true
	c.mu.Unlock()
	c.writerWG.Wait()
	c.cancel()
	c.cancelCalls(false)
	c.mu.Lock()
	c.setStateLocked(stateClosed) // unless the writer got there first
	c.mu.Unlock()
	_ = c.ws.Close()
	c.handlersWG.Wait()

	code := protows.CloseCode(c.closeCode.Load())
	if code == 0 {
		code = protows.CloseAbnormal
	}
	c.mu.Lock()
	reason := c.reason
	c.mu.Unlock()
	s.cfg.Metrics.ConnClosed(c.codec.Name(), int(code))
	if lvl := s.cfg.ConnLogLevel; s.cfg.Logger.Enabled(&c.ctx, lvl) {
		attrs := []any{"ip", c.ip, "subprotocol", c.codec.Name(), "code", int(code), "reason", reason,
			"duration", time.Since(s.epoch) - c.opened}
		if p := c.principal.Load(); p != nil {
			attrs = append(attrs, "subject", p.Subject)
		}
		c.logger().Log(&c.ctx, lvl, "protows: connection closed", attrs...)
	}
	// Before release: once Shutdown returned, every Done is closed.
	c.mu.Lock()
	c.setStateLocked(stateEnded)
	if c.done != nil {
		close(c.done)
	}
	c.mu.Unlock()
	s.release(c.ip, c)
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

// maxCloseReason is the most bytes of reason a close frame holds.
const maxCloseReason = 123

// truncateReason cuts s to at most 123 bytes of valid UTF-8: a close
// frame whose reason is not UTF-8 is a protocol error.
func truncateReason(s string) string {
	s = truncateUTF8(s, maxCloseReason)
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// truncateUTF8 cuts s to at most n bytes without splitting a UTF-8
// sequence.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
