package client

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/protows/protows"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"github.com/protows/protows/internal/wireerr"
	"google.golang.org/protobuf/proto"
)

// ServerStream is the client's end of a server stream. Read it with a loop:
//
//	for stream.Receive() {
//		use(stream.Msg())
//	}
//	if err := stream.Err(); err != nil { ... }
//
// Receive, Msg, Seq, Gap and Err belong to one reading goroutine; Close may
// be called from any goroutine. A stream that is no longer read must be closed
// (or its context cancelled): until then the server keeps sending.
//
// When the connection drops, the client re-opens the stream on the next
// connection by sending the same request again (resubscribe), unless it was
// opened with NoResubscribe: the reader sees no error, only Gap on the first
// message after the re-open. A stream the server ends or refuses with
// CodeUnavailable or CodeCanceled (it is draining, restarting, or cancelled
// its calls at shutdown) is re-opened likewise, after a backoff delay that
// grows until a message arrives.
//
// A stream that is a subscription to a room (the hub package) carries the
// room's sequence number on each room message (Seq); when a number skips,
// Gap is true on that message too, so a loss shows the same way whether the
// link dropped or the server lost messages:
//
//	for stream.Receive() {
//		if stream.Gap() {
//			reload() // messages may be missing before this one
//		}
//		use(stream.Msg())
//	}
//
// A room with history (docs/PROTOCOL.md, section 14) does better: the
// client keeps the stream's position (the room's epoch and the offset of
// its last message, Position) and re-opens the stream from it, and the
// server replays what was missed before the live messages, with no
// duplicate and no hole between them. Gap is then false after a re-open
// that recovered everything, and Resumed tells the outcome of each
// (re-)open: recovered, with how many messages, or an unrecoverable gap
// and why (StreamPosition).
type ServerStream[Res any] struct {
	s      Stream // the client's own, or an interceptor's around it
	method string
	msg    *Res
	// err is an interceptor's message of the wrong type: it ends the
	// stream for the reader.
	err error
}

// CallServerStream opens a server stream on method (its full name) and
// returns at once; read the messages with Receive. Res is the message type,
// such as chatv1.RoomEvent. ctx governs the whole stream: when it ends, the
// client sends CANCEL and Err returns CodeCanceled or CodeDeadlineExceeded.
//
// While the client is reconnecting, opening waits for the connection, within
// ctx. The error is non-nil only when the stream could not be opened at all
// (ctx ended, the client stopped, the request does not encode); a refusal
// by the server arrives through Err. Errors name the method
// (protows.Error.Method).
func CallServerStream[Res any](ctx context.Context, c *Client, method string, req proto.Message, opts ...CallOption) (*ServerStream[Res], error) {
	if _, ok := any(new(Res)).(proto.Message); !ok {
		return nil, protows.Errorf(protows.CodeInternal, "client: %T does not implement proto.Message", new(Res)).WithMethod(method)
	}
	cc := newCallConfig(opts)
	call := &Call{Method: method, ServerStream: true, Request: req, md: cc.metadata, cc: &cc, newRes: func() (proto.Message, error) {
		_, msg, err := newResponse[Res](cc.initResponse)
		return msg, err
	}}
	st, err := c.stream(ctx, call)
	if err != nil {
		return nil, nameError(method, err)
	}
	return &ServerStream[Res]{s: st, method: method}, nil
}

// Receive waits for the next message and reports whether there is one. It
// returns false when the stream ended: see Err.
func (s *ServerStream[Res]) Receive() bool {
	if s.err != nil || !s.s.Receive() {
		s.msg = nil
		return false
	}
	msg := s.s.Msg()
	res, ok := any(msg).(*Res)
	if !ok {
		s.err = protows.Errorf(protows.CodeInternal, "client: an interceptor returned %T, not %T", msg, new(Res)).WithMethod(s.method)
		_ = s.s.Close()
		s.msg = nil
		return false
	}
	s.msg = res
	return true
}

// Msg returns the message of the last successful Receive.
func (s *ServerStream[Res]) Msg() *Res {
	return s.msg
}

// Gap reports whether messages may be missing just before the message Msg
// returns. It is true in two cases:
//
//   - The stream was re-opened (after a reconnection, or after the server
//     ended it with CodeUnavailable or an unrequested CodeCanceled). Messages
//     the server produced between the end and the re-open are missing, and
//     the server's handler started again from the request: a stream of
//     events continues from "now", a stream that replays state replays it.
//   - The message is a room message (Seq is not 0) whose number does not
//     follow the previous room message of the stream: it skips ahead (the
//     server could not deliver the messages in between, say a broadcast lost
//     between nodes) or goes back (the numbering restarted).
//
// Messages with Seq 0 never start or hide a gap. Applications that must not
// miss messages resume from a position of their own when Gap is true (reload
// the state, or ask for the messages after the last one they have).
//
// In a room with history, a re-open that recovered everything missed is
// not a gap: the replayed messages follow with the next numbers. One that
// could not (Resumed tells why) is a gap, on the first message after it.
func (s *ServerStream[Res]) Gap() bool {
	return s.msg != nil && s.s.Gap()
}

// Resumed returns what the server said of the stream's position just
// before the message Msg returns (a STREAM_POSITION, docs/PROTOCOL.md
// section 14), and true, on the first message after each opening of a
// stream of a room with history: whether what was missed was recovered
// (and how many messages are replayed), or why it was not. It returns
// false on other messages, and on every message of streams without
// history. OnPosition tells the same thing at once, without waiting for a
// message.
func (s *ServerStream[Res]) Resumed() (StreamPosition, bool) {
	if ps, ok := s.s.(PositionStream); ok && s.msg != nil {
		return ps.Resumed()
	}
	return StreamPosition{}, false
}

// Position returns the stream's position after the message Msg returns:
// the room's epoch and the offset of its last message the reader got. The
// client resumes from it by itself after a reconnection; an application
// may keep it, to open the stream again later from it (ResumeFrom). It is
// the zero Position on streams without history.
func (s *ServerStream[Res]) Position() Position {
	if ps, ok := s.s.(PositionStream); ok {
		return ps.Position()
	}
	return Position{}
}

// Seq returns the room sequence number of the message Msg returns
// (docs/PROTOCOL.md, section 3.5): consecutive room messages of one stream
// carry consecutive numbers. It is 0 for a message that is not sequenced (an
// ordinary stream message, or one sent to a single member). Numbers of
// different streams, and of one stream before and after Gap reported a
// re-open, are not comparable.
func (s *ServerStream[Res]) Seq() uint64 {
	if s.msg == nil {
		return 0
	}
	return s.s.Seq()
}

// Err returns why the stream ended: nil when the server ended it cleanly or
// Close was called, else a *protows.Error that names the method (the
// server's, CodeCanceled or CodeDeadlineExceeded when ctx ended,
// CodeUnavailable when the connection dropped and the stream was not
// re-opened, CodeResourceExhausted when the reader fell more than the stream
// buffer behind, CodeInternal when a message did not decode, even one that
// arrived before the server ended the stream). It returns nil while the
// stream is open.
func (s *ServerStream[Res]) Err() error {
	if s.err != nil {
		return s.err
	}
	return nameError(s.method, s.s.Err())
}

// Close stops the stream: the client sends CANCEL if the stream is still
// open, and Receive returns false from then on. It always returns nil.
func (s *ServerStream[Res]) Close() error {
	_ = s.s.Close()
	return nil
}

// openStream is the innermost StreamFunc: it opens the stream on the
// connection and returns the client's own Stream.
func (c *Client) openStream(ctx context.Context, call *Call) (Stream, error) {
	st, err := c.doOpenStream(ctx, call)
	return st, nameError(call.Method, err)
}

func (c *Client) doOpenStream(ctx context.Context, call *Call) (Stream, error) {
	payload, err := c.preparePayload(call.Method, call.Request)
	if err != nil {
		return nil, err
	}
	s := &streamCore{
		cl:         c,
		method:     call.Method,
		payload:    payload,
		metadata:   call.md,
		newRes:     call.newRes,
		resub:      !call.cc.noResubscribe,
		wake:       make(chan struct{}, 1),
		history:    call.cc.history,
		onPosition: call.cc.onPosition,
		epoch:      call.cc.from.Epoch,
	}
	if s.epoch != "" {
		s.lastSeq = call.cc.from.Offset
	}
	if err := c.acquire(ctx); err != nil {
		return nil, err
	}
	if err := c.addStream(s); err != nil {
		c.releaseSlot()
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { s.cancel(ctxError(ctx), false) })
	s.mu.Lock()
	s.stopCtx = stop
	ended := s.ended
	s.mu.Unlock()
	if ended { // the client stopped meanwhile; release ran without stop
		stop()
	}
	// Once added, the stream is opened by every new connection, so a
	// connection that ends under the first attempt hands over to the next.
	var dead *conn
	for {
		cn, err := c.waitConn(ctx, dead)
		if err != nil {
			s.cancel(err, false)
			return nil, err
		}
		if err := s.open(ctx, cn); !errors.Is(err, errLinkDown) {
			break
		}
		dead = cn
	}
	return &rawStream{core: s}, nil
}

// rawStream is the client's own Stream: it decodes each message into a new
// response message.
type rawStream struct {
	core    *streamCore
	msg     proto.Message
	seq     uint64
	gap     bool
	epoch   string
	offset  uint64
	resumed *StreamPosition
	// err is a message that did not decode: it ends the stream for the
	// reader even when the server had already ended it, with messages
	// still queued.
	err error
}

var _ PositionStream = (*rawStream)(nil)

func (s *rawStream) Receive() bool {
	if s.err != nil {
		return false
	}
	it, ok := s.core.next()
	if !ok {
		s.msg, s.seq, s.gap, s.resumed = nil, 0, false, nil
		return false
	}
	msg, err := s.core.newRes()
	if err == nil {
		err = s.core.cl.cfg.codec.UnmarshalPayload(it.payload, msg)
	}
	if err != nil {
		s.err = protows.Errorf(protows.CodeInternal, "client: decode stream message: %w", err).WithMethod(s.core.method)
		s.core.cancel(s.err, false)
		s.msg, s.seq, s.gap, s.resumed = nil, 0, false, nil
		return false
	}
	s.msg, s.seq, s.gap, s.resumed = msg, it.seq, it.gap, it.pos
	if it.seq != 0 || it.pos != nil {
		s.epoch, s.offset = it.epoch, it.offset
	}
	return true
}

func (s *rawStream) Resumed() (StreamPosition, bool) {
	if s.resumed == nil {
		return StreamPosition{}, false
	}
	return *s.resumed, true
}

func (s *rawStream) Position() Position {
	if s.epoch == "" {
		return Position{}
	}
	return Position{Epoch: s.epoch, Offset: s.offset}
}

func (s *rawStream) Msg() proto.Message { return s.msg }
func (s *rawStream) Seq() uint64        { return s.seq }
func (s *rawStream) Gap() bool          { return s.gap }

func (s *rawStream) Err() error {
	if s.err != nil {
		return s.err
	}
	return nameError(s.core.method, s.core.result())
}

func (s *rawStream) Close() error {
	s.core.cancel(nil, true)
	return nil
}

// streamItem is one received message, still encoded.
type streamItem struct {
	payload []byte
	seq     uint64
	gap     bool
	// The stream's position after the message; pos is the
	// STREAM_POSITION that came just before it, if one did.
	epoch  string
	offset uint64
	pos    *StreamPosition
}

// streamCore is the untyped state of a server stream. It outlives
// connections: open registers it on each new one.
type streamCore struct {
	cl       *Client
	method   string
	payload  []byte
	metadata map[string]string
	newRes   func() (proto.Message, error) // a new response message, initialized
	resub    bool
	stopCtx  func() bool
	wake     chan struct{} // signalled when items or the end arrive

	mu         sync.Mutex
	cn         *conn // the connection it is open on, nil between two
	id         uint32
	avail      int64 // the credit the server has left on cn (section 4.6)
	queue      []streamItem
	gapPending bool   // the stream was re-opened since the last message
	lastSeq    uint64 // the last non-zero seq since the stream was (re-)opened, or since its position
	// The room position (docs/PROTOCOL.md, section 14): epoch is the
	// room's epoch, "" when the stream has none, and lastSeq its offset.
	// positioned: a STREAM_POSITION came since the stream was (re-)opened.
	history    uint32
	onPosition func(StreamPosition)
	epoch      string
	positioned bool
	// opening: the stream's REQUEST is being sent (open); no credit is
	// granted meanwhile.
	opening    bool
	posPending *StreamPosition // to attach to the next message
	refusals   int             // unavailable ends since the last message
	retry      *time.Timer     // re-opens the stream after an unavailable end
	ended      bool
	err        error
}

var _ sink = (*streamCore)(nil)

// open sends the stream's request on cn, unless the stream ended or is
// already open. It returns errLinkDown when cn had ended; if cn ends after
// the registration, drain hands the stream back for the next connection.
func (s *streamCore) open(ctx context.Context, cn *conn) error {
	s.mu.Lock()
	if s.ended || s.cn != nil {
		s.mu.Unlock()
		return nil
	}
	id, err := cn.register(s)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	// The window counts the messages still held from an earlier opening,
	// so that what the stream holds never exceeds it.
	window := int64(max(s.cl.cfg.streamBuffer-len(s.queue), 1))
	s.cn, s.id, s.avail = cn, id, window
	// Every stream says it understands STREAM_POSITION: the client cannot
	// know which streams are rooms with history.
	resume := &protowsv1.Resume{History: s.history}
	if s.epoch != "" {
		resume.Epoch, resume.Offset = s.epoch, s.lastSeq
	}
	s.positioned = false
	// No credit is granted until the REQUEST is queued: the reader may
	// take what an earlier opening holds meanwhile, and a CREDIT ahead of
	// its REQUEST would be ignored by the server (a call it does not know
	// yet), leaving this side counting credit the server never got.
	s.opening = true
	s.mu.Unlock()
	if f := s.cl.cfg.beforeOpenSend; f != nil {
		f()
	}
	req := cn.request(id, s.method, s.payload, s.metadata)
	req.Credit = uint32(window)
	req.Resume = resume
	b, err := cn.encode(req)
	if err == nil {
		err = cn.send(ctx, b)
	}
	s.mu.Lock()
	s.opening = false
	gcn, gid, grant := s.grantLocked()
	s.mu.Unlock()
	if err != nil && !errors.Is(err, errLinkDown) {
		s.cancel(err, false)
		return nil
	}
	if grant > 0 {
		gcn.sendCredit(gid, grant)
	}
	return nil
}

func (s *streamCore) deliver(cn *conn, id uint32, env *protowsv1.Envelope, final bool) {
	s.mu.Lock()
	if s.ended || s.cn != cn || s.id != id {
		s.mu.Unlock()
		return
	}
	var end error
	switch env.GetKind() {
	case protowsv1.Kind_KIND_CREDIT:
		// Not for a server stream: a broken server.
		s.mu.Unlock()
		s.cancel(protows.Errorf(protows.CodeInternal, "client: server sent CREDIT for the server stream %s", s.method), false)
		return
	case protowsv1.Kind_KIND_STREAM_MESSAGE:
		if len(s.queue) >= s.cl.cfg.streamBuffer {
			// The server sent beyond the window: it predates flow control
			// (section 4.6). Holding more would let it bury the reader.
			s.mu.Unlock()
			s.cancel(protows.Errorf(protows.CodeResourceExhausted,
				"client: the stream's reader fell %d messages behind", len(s.queue)), false)
			return
		}
		s.avail--
		seq := env.GetSeq()
		// A stream re-opened from a position waits for the new position
		// (or a room message) to tell whether the re-open lost anything:
		// messages outside the room's history (seq 0: presence, say) may
		// come before it, and are no gap themselves.
		waiting := s.gapPending && s.epoch != "" && !s.positioned && seq == 0
		gap := (s.gapPending && !waiting) || seqSkips(s.lastSeq, seq)
		if seq != 0 {
			s.lastSeq = seq
			if !s.positioned {
				// Room messages without a position: a room without
				// history, or a server without them.
				s.epoch = ""
			}
		}
		s.queue = append(s.queue, streamItem{payload: env.GetPayload(), seq: seq, gap: gap,
			epoch: s.epoch, offset: s.lastSeq, pos: s.posPending})
		s.refusals, s.posPending = 0, nil
		if !waiting {
			s.gapPending = false
		}
		s.mu.Unlock()
		s.signal()
		return
	case protowsv1.Kind_KIND_STREAM_POSITION:
		sp := streamPositionOf(env.GetPosition())
		s.epoch, s.lastSeq, s.positioned = sp.Epoch, sp.Offset, true
		switch {
		case sp.Recovery == Recovered:
			s.gapPending = false
		case sp.Lost():
			s.gapPending = true
		}
		s.posPending = &sp
		f := s.onPosition
		s.mu.Unlock()
		if f != nil {
			f(sp)
		}
		return
	case protowsv1.Kind_KIND_STREAM_END:
		if env.GetError() != nil {
			end = wireerr.FromWire(s.cl.cfg.codec, env.GetError())
		}
	case protowsv1.Kind_KIND_ERROR:
		end = wireerr.FromWire(s.cl.cfg.codec, env.GetError())
	default:
		end = protows.Errorf(protows.CodeInternal, "client: server sent %s for a stream", env.GetKind())
	}
	s.cn = nil
	if s.resub && end != nil && serverWentAway(protows.CodeOf(end)) {
		// The server is draining or restarting: open the stream again
		// after a backoff, on this connection or the next.
		s.reopening()
		delay := s.cl.cfg.backoff.delay(s.refusals, s.cl.cfg.rnd)
		s.refusals++
		s.retry = time.AfterFunc(delay, s.reopen)
		s.mu.Unlock()
		if !final {
			cn.unregister(id)
		}
		return
	}
	s.endLocked(end, false)
	s.mu.Unlock()
	if !final {
		cn.unregister(id)
	}
	s.release()
}

// reopening prepares the stream for its next opening. The re-open is a
// gap unless the server says it recovered everything from the stream's
// position (docs/PROTOCOL.md, section 14); without a position, the numbers
// of the re-opened stream are not comparable with these (section 3.5).
// s.mu must be held.
func (s *streamCore) reopening() {
	s.gapPending, s.posPending = true, nil
	if s.epoch == "" {
		s.lastSeq = 0
	}
}

// seqSkips reports whether room sequence number seq does not follow last,
// the previous non-zero number of the same stream: it skips ahead or goes
// back. A 0 on either side says nothing (not sequenced, or the first room
// message of the stream); an equal number is not a gap, as a room's numbers
// stay at their maximum once they reach it (docs/GUARANTEES.md, section 4).
func seqSkips(last, seq uint64) bool {
	return last != 0 && seq != 0 && seq != last && seq != last+1
}

// serverWentAway reports whether a stream's end means that the server, not
// the application, stopped it: unavailable (draining, restarting) or
// canceled. The client's own cancellations never get here (their late
// envelopes are discarded), so a canceled end is the server cancelling its
// calls at shutdown (docs/PROTOCOL.md, section 8).
func serverWentAway(c protows.Code) bool {
	return c == protows.CodeUnavailable || c == protows.CodeCanceled
}

// reopen opens the stream on the current connection, if there is one;
// otherwise the next connection does.
func (s *streamCore) reopen() {
	if cn := s.cl.current(); cn != nil {
		s.open(s.cl.ctx, cn)
	}
}

func (s *streamCore) lost(cn *conn, id uint32, err error) {
	s.mu.Lock()
	if s.ended || s.cn != cn || s.id != id {
		s.mu.Unlock()
		return
	}
	s.cn = nil
	if s.resub {
		s.reopening()
		s.mu.Unlock()
		return
	}
	s.endLocked(err, false)
	s.mu.Unlock()
	s.release()
}

// cancel ends the stream from the client's side (ctx, Close, a decode
// failure, a full buffer) and tells the server with CANCEL.
func (s *streamCore) cancel(err error, byClose bool) {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return
	}
	cn, id := s.cn, s.id
	s.cn = nil
	s.endLocked(err, true)
	s.mu.Unlock()
	if cn != nil && cn.unregister(id) {
		cn.sendCancel(id)
	}
	s.release()
}

// finish ends the stream because the client stopped.
func (s *streamCore) finish(err error) {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return
	}
	s.cn = nil
	s.endLocked(err, true)
	s.mu.Unlock()
	s.release()
}

// endLocked marks the stream ended with err. With discard, messages not yet
// read are dropped: the reader learns of the end at once.
func (s *streamCore) endLocked(err error, discard bool) {
	s.ended, s.err = true, err
	if s.retry != nil {
		s.retry.Stop()
	}
	if discard {
		s.queue = nil
	}
	s.signal()
}

// release forgets an ended stream. It runs once, after whichever of
// deliver, lost, cancel and finish ended the stream.
func (s *streamCore) release() {
	s.cl.removeStream(s)
	s.cl.releaseSlot()
	s.mu.Lock()
	stop := s.stopCtx
	s.mu.Unlock()
	if stop != nil {
		stop()
	}
}

func (s *streamCore) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// next returns the next message, waiting for one; false once the stream
// ended and its messages were read. Taking a message may grant the server
// credit for more.
func (s *streamCore) next() (streamItem, bool) {
	for {
		s.mu.Lock()
		if len(s.queue) > 0 {
			it := s.queue[0]
			s.queue[0] = streamItem{}
			s.queue = s.queue[1:]
			cn, id, grant := s.grantLocked()
			s.mu.Unlock()
			if grant > 0 {
				cn.sendCredit(id, grant)
			}
			return it, true
		}
		if s.ended {
			s.mu.Unlock()
			return streamItem{}, false
		}
		s.mu.Unlock()
		<-s.wake
	}
}

// grantLocked decides the credit to grant the server once the reader took
// a message: what keeps the messages held plus those the server may still
// send at the window, once that is at least half a window
// (docs/PROTOCOL.md, section 4.6). s.mu must be held.
func (s *streamCore) grantLocked() (*conn, uint32, int64) {
	window := int64(s.cl.cfg.streamBuffer)
	if s.cn == nil || s.ended || s.opening {
		return nil, 0, 0
	}
	grant := window - int64(len(s.queue)) - s.avail
	if grant < max(window/2, 1) {
		return nil, 0, 0
	}
	s.avail += grant
	return s.cn, s.id, grant
}

func (s *streamCore) result() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ended {
		return nil
	}
	return s.err
}

// addStream records an open stream, for resubscription and for stop.
func (c *Client) addStream(s *streamCore) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopErr != nil {
		return c.stopErr
	}
	c.streams[s] = struct{}{}
	return nil
}

func (c *Client) removeStream(s *streamCore) {
	c.mu.Lock()
	delete(c.streams, s)
	c.mu.Unlock()
}
