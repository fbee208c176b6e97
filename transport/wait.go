package transport

import (
	"context"

	"github.com/protows/protows/codec"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
)

// A replay (the hub's history, sent to a member that resumes a room
// stream) answers the client's own call: it waits for the call's credit
// and for room in the send queue, as a handler's Send does
// (docs/PROTOCOL.md, sections 4.6 and 4.7), rather than overflow it as a
// broadcast would.

// EnqueuePartsWait is EnqueueParts for STREAM_MESSAGEs that answer the
// client's call rather than broadcast to it, such as a replay of a room's
// history: it waits, within ctx, for the call's credit (a flow-controlled
// stream) and for room in the connection's send queue below its
// back-pressure threshold, so that a long replay never closes the
// connection as a slow consumer (4008). It returns ErrCallEnded once the
// call ended, ErrClosed once the connection is closing, ErrMessageTooLarge
// for an envelope over the message size limit, and ctx's error when ctx
// ends first.
func (c *Call) EnqueuePartsWait(ctx context.Context, p codec.Parts) error {
	if !c.method.ServerStream {
		return errUnaryStream
	}
	return c.push(ctx, p, true)
}

// SendPosition sends a STREAM_POSITION of the call (docs/PROTOCOL.md,
// section 14), waiting for room in the send queue as EnqueuePartsWait
// does; it takes no credit. The caller sends it only to a client whose
// REQUEST carried resume (Resume), which understands it.
func (c *Call) SendPosition(ctx context.Context, pos *protowsv1.Position) error {
	if !c.method.ServerStream {
		return errUnaryStream
	}
	elem, err := c.conn.codec.AppendEnvelope(nil, &protowsv1.Envelope{Id: c.id, Kind: protowsv1.Kind_KIND_STREAM_POSITION, Position: pos})
	if err != nil {
		return err
	}
	return c.push(ctx, codec.Parts{Body: elem}, false)
}
