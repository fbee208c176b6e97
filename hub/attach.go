package hub

import (
	"context"

	"github.com/protows/protows/transport"
)

// Attach makes the stream call of ctx a member of room, as Join does, but
// returns at once: the handler returns nil after it, and the call stays
// open, holding no goroutine, until the membership ends. A
// server-streaming handler subscribes its client to a room with
//
//	func (s *server) Watch(ctx context.Context, req *chatv1.WatchRequest, st router.Stream[*chatv1.RoomEvent]) error {
//		return s.hub.Attach(ctx, req.GetRoom(), st)
//	}
//
// The membership ends, and with it the call, as Join's would: after Leave
// with STREAM_END ok; when the client cancels, the connection closes or
// the server drains, as the transport ends such calls; at the deadline of
// ctx (router.WithStreamTimeout, an interceptor's) with deadline_exceeded;
// when the member's connection is dropped for not reading
// (transport.ErrSlowConsumer); with unavailable when the hub closes. A
// member of a room with history catches up (docs/PROTOCOL.md, section 14)
// on a goroutine that ends with the catch-up.
//
// Attach detaches the call (transport.Call.Detach) when s is the call's
// own stream, or a wrapper that keeps its enqueuer methods (router.Stream
// lists them). Otherwise (a stream wrapped by an interceptor that hides
// them, a fake stream outside a protows server) it cannot, and waits for
// the end of the membership like Join, returning what Join returns; the
// handler above works either way. Since the membership outlives the
// handler, an interceptor that cancels the context it passes on when the
// handler returns does not end it; one that wants to see the whole life
// of the stream, or to do work after it ends, needs Join.
//
// An error (an invalid room, a closed hub, a call ended already, a call
// attached already: a call is a member of one room) means the call is not
// a member: return it, and the call ends with it. A handler
// that returns another error after Attach ends the call and the
// membership with that error.
func (h *Hub[T]) Attach(ctx context.Context, room string, s Stream[T], opts ...JoinOption) error {
	m, err := h.newMember(ctx, room, s)
	if err != nil {
		return err
	}
	for _, o := range opts {
		o(&m.start)
	}
	call, inCall := transport.CallFromContext(ctx)
	if !inCall || m.ep == nil {
		return h.join(ctx, m)
	}
	// Deliveries stop with the call, not with the handler's context,
	// which interceptors may cancel when the handler returns.
	m.ctx = call.Context()
	hist := h.hasHistory(room)
	var (
		page HistoryPage
		rerr error
	)
	if hist {
		page, rerr = h.readStart(ctx, m)
	}
	var (
		cctx   context.Context
		cancel context.CancelFunc
	)
	if hist {
		cctx, cancel = context.WithCancel(m.ctx)
		m.stopCatch = cancel
	}
	added := false
	// Detached before it is added: an end of the membership from then on
	// (Leave, Close) finishes the call.
	err = call.Detach(ctx, func(err error) {
		m.end(err)
		if added {
			h.remove(m)
		}
	})
	if err != nil {
		if cancel != nil {
			cancel()
		}
		if cerr := m.ctx.Err(); cerr != nil {
			return cerr // the call was cancelled: what Join returns then
		}
		return err
	}
	m.call = call
	if err := h.add(m); err != nil {
		// The call ends with err even if the handler drops it.
		call.Finish(err)
		if cancel != nil {
			cancel()
		}
		return err
	}
	// Read by the call's onEnd, which runs only after the handler
	// returned, so after Attach did.
	added = true
	if hist {
		go func() {
			defer cancel()
			if err := h.catchUp(cctx, m, page, rerr); err != nil {
				m.end(err)
			}
		}()
	}
	return nil
}
