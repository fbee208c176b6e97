package transport

import (
	"context"

	"github.com/protows/protows/codec"
)

// A replay (the hub's history, sent to a member that resumes a room
// stream) is the server answering the client's own call, so it waits for
// room in the send queue instead of overflowing it: the queue keeps its
// upper half for broadcasts, which never wait.

// roomLocked reports whether an envelope of size bytes may join the queue
// without taking its upper half: the queue is empty (it always takes one
// envelope, however large), or below half its limits in envelopes and in
// bytes. c.mu must be held.
func (c *Conn) roomLocked(size int) bool {
	n := len(c.w.queue)
	if n == 0 {
		return true
	}
	cfg := &c.srv.cfg
	if n >= max(cfg.SendQueue/2, 1) {
		return false
	}
	return cfg.MaxQueueBytes <= 0 || c.w.queued+c.w.inWrite+int64(size) <= cfg.MaxQueueBytes/2
}

// roomWaitLocked returns a channel closed when the writer may have made
// room in the queue, or the connection began to close (wakeLocked). c.mu
// must be held.
func (c *Conn) roomWaitLocked() <-chan struct{} {
	if c.w.room == nil {
		c.w.room = make(chan struct{})
	}
	c.signal() // even when corked: the writer is what makes room
	return c.w.room
}

// EnqueuePartsWait is EnqueueParts for envelopes that answer the client's
// call rather than broadcast to it, such as a replay of a room's history:
// it waits, within ctx, while the connection's send queue holds half its
// limits, so that a long replay never closes the connection as a slow
// consumer (4008) and leaves the other half for broadcasts. It returns
// ErrCallEnded once the call ended, ErrClosed once the connection is
// closing, and ctx's error when ctx ends first.
func (c *Call) EnqueuePartsWait(ctx context.Context, p codec.Parts) error {
	if !c.method.ServerStream {
		return errUnaryStream
	}
	conn := c.conn
	for {
		c.mu.Lock()
		if c.ended {
			c.mu.Unlock()
			return ErrCallEnded
		}
		conn.mu.Lock()
		if conn.state.closeDecided() {
			conn.mu.Unlock()
			c.mu.Unlock()
			return ErrClosed
		}
		if conn.roomLocked(p.Len()) {
			err := conn.enqueueLocked(p, false)
			conn.mu.Unlock()
			c.mu.Unlock()
			return err
		}
		wait := conn.roomWaitLocked()
		conn.mu.Unlock()
		c.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
