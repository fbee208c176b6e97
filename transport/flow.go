package transport

import (
	"bytes"
	"context"
	"fmt"
	"io"

	protows "github.com/protows/protows"
	"github.com/protows/protows/codec"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"google.golang.org/protobuf/proto"
)

// Flow control and back-pressure (docs/PROTOCOL.md, sections 4.6 and 4.7).
//
// Two policies share a connection's send queue. What the server produces
// for the client's own calls (stream messages of Send, replies, errors,
// CREDITs, PONGs) waits for room below the back-pressure threshold, half
// the queue's limits (fitsLocked): a handler's Send blocks (push), and the
// reader, when an answer of its own must wait (Conn.enqueueLocked with
// wait), stops reading, so TCP pushes back on the client. Room broadcasts
// (Conn.Enqueue, Call.Enqueue) never wait: they take the other half, and
// a full queue closes the connection with 4008.
//
// Per call, the sender of STREAM_MESSAGEs holds credit granted by their
// receiver. The server's messages are counted against the credit of the
// REQUEST and the client's CREDITs (Call.flow, Call.credit); the client's
// messages against the server's CREDITs (Call.inAvail), which the server
// grants as the handler reads them (Receive).

// maxWindow is the largest window a CREDIT may take a call to.
const maxWindow = 1<<31 - 1

// fitsLocked reports whether an envelope of n bytes may join the queue
// now. An answer (a PONG, a reply, a handler's stream message) fits below
// the back-pressure threshold, half the queue's limits in envelopes and in
// bytes; a broadcast fits within the full limits, and the half above the
// threshold is kept for broadcasts. When nothing is held, one envelope of
// any size is taken either way. c.mu must be held.
func (c *Conn) fitsLocked(n int64, answer bool) bool {
	cfg := &c.srv.cfg
	count, bytes := cfg.SendQueue, cfg.MaxQueueBytes
	if answer {
		count, bytes = max(count/2, 1), bytes/2
	}
	held := c.w.queued + c.w.inWrite
	return len(c.w.queue) < count && (cfg.MaxQueueBytes <= 0 || held == 0 || held+n <= bytes)
}

// roomLocked returns a channel closed when the writer made room in the
// queue (wakeLocked), or the connection began to close. It makes sure a
// writer runs, even while the reader corks it: the reader itself may be
// the one waiting. c.mu must be held.
func (c *Conn) roomLocked() <-chan struct{} {
	if c.w.room == nil {
		c.w.room = make(chan struct{})
	}
	c.signal()
	return c.w.room
}

// pushLocked appends an envelope to the queue and wakes the writer,
// unless the reader corked it. c.mu must be held.
func (c *Conn) pushLocked(elem codec.Parts) {
	c.appendLocked(elem)
	if !c.w.corked {
		c.signal()
	}
}

// appendLocked appends an envelope to the queue. c.mu must be held.
func (c *Conn) appendLocked(elem codec.Parts) {
	c.w.queue = append(c.w.queue, elem)
	c.w.queued += int64(elem.Len())
	if b := c.w.queued + c.w.inWrite; b > c.w.peak {
		c.w.peak = b
	}
}

// wakeLocked wakes Send and Receive waiting on the call. c.mu must be
// held.
func (c *Call) wakeLocked() {
	if c.wake != nil {
		close(c.wake)
		c.wake = nil
	}
}

// waitLocked returns a channel closed by the next wakeLocked. c.mu must be
// held.
func (c *Call) waitLocked() <-chan struct{} {
	if c.wake == nil {
		c.wake = make(chan struct{})
	}
	return c.wake
}

// push queues elem, an envelope of this call, once the call has credit
// for it (counted, for a STREAM_MESSAGE) and the connection's queue is
// below the back-pressure threshold, unless the call ended first. Checking
// the end and queueing happen under c.mu, so nothing is ever queued after
// the call's terminal envelope; waiting happens outside it, so a broadcast
// to the call (EnqueueParts) is never held up. An envelope larger than the
// message size limit is not queued: ErrMessageTooLarge.
func (c *Call) push(ctx context.Context, elem codec.Parts, counted bool) error {
	conn := c.conn
	n := int64(elem.Len())
	if n > conn.srv.cfg.MaxMessageSize {
		return ErrMessageTooLarge
	}
	for {
		c.mu.Lock()
		if c.ended {
			c.mu.Unlock()
			return ErrCallEnded
		}
		var wait <-chan struct{}
		if counted && c.flow && c.credit == 0 {
			wait = c.waitLocked()
		} else {
			conn.mu.Lock()
			switch {
			case conn.state.closeDecided():
				conn.mu.Unlock()
				c.mu.Unlock()
				return ErrClosed
			case conn.fitsLocked(n, true):
				conn.pushLocked(elem)
				conn.mu.Unlock()
				if counted && c.flow {
					c.credit--
				}
				c.mu.Unlock()
				return nil
			}
			wait = conn.roomLocked()
			conn.mu.Unlock()
		}
		c.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return c.waitEnded(ctx)
		}
	}
}

// Receive reads the client's next STREAM_MESSAGE of a client-streaming or
// bidirectional call into msg, waiting for one. It returns io.EOF once the
// client half-closed and every message was read, ErrCallEnded when the
// call ended first, a CodeInvalidArgument error when the message does not
// decode, and the context's error when the call's context ends. As the
// handler reads, the server grants the client credit for more
// (docs/PROTOCOL.md, section 4.6).
func (c *Call) Receive(msg proto.Message) error {
	return c.ReceiveContext(c.ctx, msg)
}

// ReceiveContext is Receive, giving up with ctx's error when ctx ends
// first.
func (c *Call) ReceiveContext(ctx context.Context, msg proto.Message) error {
	if !c.method.ClientStream {
		return errNotClientStream
	}
	for {
		c.mu.Lock()
		if len(c.in) > 0 {
			payload := c.in[0]
			c.in[0] = nil
			c.in = c.in[1:]
			c.inTaken++
			var grant int64
			if !c.inHalf && c.inTaken >= max(int64(c.conn.srv.cfg.StreamWindow)/2, 1) {
				grant = c.inTaken
			}
			c.mu.Unlock()
			if grant > 0 {
				c.grant(ctx, grant)
			}
			if err := c.conn.codec.UnmarshalPayload(payload, msg); err != nil {
				return protows.Errorf(protows.CodeInvalidArgument, "message of %s does not decode: %v", c.method.Name, err)
			}
			return nil
		}
		if c.inHalf {
			c.mu.Unlock()
			return io.EOF
		}
		if c.ended {
			c.mu.Unlock()
			return ErrCallEnded
		}
		wait := c.waitLocked()
		c.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return c.waitEnded(ctx)
		}
	}
}

// grant gives the client credit for n more messages. The credit counts
// from the moment it is decided, before the CREDIT is queued, so that a
// message sent on it is never taken for a violation.
func (c *Call) grant(ctx context.Context, n int64) {
	c.mu.Lock()
	if c.ended || c.inHalf {
		c.mu.Unlock()
		return
	}
	c.inTaken -= n
	c.inAvail += n
	c.mu.Unlock()
	c.sendCredit(ctx, n)
}

// sendCredit queues a CREDIT of n for the call.
func (c *Call) sendCredit(ctx context.Context, n int64) {
	elem, err := c.conn.codec.AppendEnvelope(nil, &protowsv1.Envelope{Id: c.id, Kind: protowsv1.Kind_KIND_CREDIT, Credit: uint32(n)})
	if err != nil {
		c.conn.internalError(&protowsv1.Envelope{Id: c.id, Kind: protowsv1.Kind_KIND_CREDIT}, err)
		return
	}
	_ = c.push(ctx, codec.Parts{Body: elem}, false)
}

// open grants the client the initial window of a call whose client
// streams: the first envelope the server sends for it (docs/PROTOCOL.md,
// section 4.4). It runs on the reader, before the handler starts.
func (c *Call) open() {
	n := int64(c.conn.srv.cfg.StreamWindow)
	c.mu.Lock()
	c.inAvail = n
	c.mu.Unlock()
	c.sendCredit(c.ctx, n)
}

// lookupCall returns the call in flight with id, nil when there is none.
func (c *Conn) lookupCall(id uint32) *Call {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls[id]
}

// handleClientMessage takes a STREAM_MESSAGE or STREAM_END of the client.
// Either one for a call that is not in flight is ignored: it may have been
// sent before the client learnt that the call ended.
func (c *Conn) handleClientMessage(e *protowsv1.Envelope) bool {
	call := c.lookupCall(e.GetId())
	if call == nil {
		return true
	}
	half := e.GetKind() == protowsv1.Kind_KIND_STREAM_END
	if !call.method.ClientStream {
		c.closeNow(protows.CloseProtocolError, fmt.Sprintf("%s for call %d, whose client does not stream", kindName(e), e.GetId()))
		return false
	}
	call.mu.Lock()
	var violation string
	switch {
	case call.ended:
	case call.inHalf:
		violation = fmt.Sprintf("%s for call %d after its stream end", kindName(e), e.GetId())
	case half:
		call.inHalf = true
		call.wakeLocked()
	case call.inAvail == 0:
		violation = fmt.Sprintf("stream message for call %d beyond its credit", e.GetId())
	default:
		call.inAvail--
		// The payload aliases the frame's pooled buffer: keep a copy.
		call.in = append(call.in, bytes.Clone(e.GetPayload()))
		call.wakeLocked()
	}
	call.mu.Unlock()
	if violation != "" {
		c.closeNow(protows.CloseProtocolError, violation)
		return false
	}
	return true
}

// handleCredit takes a CREDIT of the client for the server's messages.
func (c *Conn) handleCredit(e *protowsv1.Envelope) bool {
	n := int64(e.GetCredit())
	if n == 0 {
		c.closeNow(protows.CloseProtocolError, fmt.Sprintf("credit of 0 for call %d", e.GetId()))
		return false
	}
	call := c.lookupCall(e.GetId())
	if call == nil {
		return true
	}
	call.mu.Lock()
	if !call.flow || call.ended {
		call.mu.Unlock()
		return true
	}
	if call.credit+n > maxWindow {
		call.mu.Unlock()
		c.closeNow(protows.CloseProtocolError, fmt.Sprintf("credit takes the window of call %d past %d", e.GetId(), maxWindow))
		return false
	}
	call.credit += n
	call.wakeLocked()
	call.mu.Unlock()
	return true
}

// kindName returns the protocol's name of an envelope's kind.
func kindName(e *protowsv1.Envelope) string {
	switch e.GetKind() {
	case protowsv1.Kind_KIND_STREAM_MESSAGE:
		return "stream message"
	case protowsv1.Kind_KIND_STREAM_END:
		return "stream end"
	}
	return e.GetKind().String()
}

// waitEnded is what a wait cut short by ctx returns: ErrCallEnded when the
// call ended meanwhile (its context ends with it), ctx's error otherwise.
func (c *Call) waitEnded(ctx context.Context) error {
	c.mu.Lock()
	ended := c.ended
	c.mu.Unlock()
	if ended {
		return ErrCallEnded
	}
	return ctx.Err()
}
