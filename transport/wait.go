package transport

import (
	"context"

	"github.com/protows/protows/codec"
)

// EnqueuePartsWait is EnqueueParts for STREAM_MESSAGEs that answer the
// client's call rather than broadcast to it, such as a replay of a room's
// history: like Send, it waits, within ctx, while the connection's send
// queue is at its back-pressure threshold (half its limits,
// docs/PROTOCOL.md section 4.7) and, on a flow-controlled stream, until
// the call has credit for the message (section 4.6), so that a long replay
// never closes the connection as a slow consumer (4008) nor ends the
// stream for want of credit, and leaves the queue's other half for
// broadcasts. It returns ErrCallEnded once the call ended, ErrClosed once
// the connection is closing, ErrMessageTooLarge for an envelope over the
// message size limit (not sent), and ctx's error when ctx ends first.
func (c *Call) EnqueuePartsWait(ctx context.Context, p codec.Parts) error {
	if !c.method.ServerStream {
		return errUnaryStream
	}
	return c.push(ctx, p, true)
}

// EnqueueControlWait is EnqueuePartsWait for an envelope of the call that
// is not a STREAM_MESSAGE, such as a STREAM_POSITION: it waits for room in
// the send queue as EnqueuePartsWait does, but takes none of the call's
// credit, which counts STREAM_MESSAGEs only (docs/PROTOCOL.md section
// 4.6).
func (c *Call) EnqueueControlWait(ctx context.Context, p codec.Parts) error {
	if !c.method.ServerStream {
		return errUnaryStream
	}
	return c.push(ctx, p, false)
}
