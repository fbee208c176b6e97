package transport

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	protows "github.com/protows/protows"
	"github.com/protows/protows/codec"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"github.com/protows/protows/internal/wireerr"
	"google.golang.org/protobuf/proto"
)

// Handler serves the calls of a Server's connections: it maps method ids to
// methods. router.Router implements it; the transport never imports the
// router.
type Handler interface {
	// Lookup returns the method with the given id (protows.MethodID of
	// its full name), or false when there is none. It is called on each
	// connection's read loop, concurrently, and must not block.
	Lookup(methodID uint32) (*Method, bool)
}

// Method is one method a Handler serves.
type Method struct {
	// Name is the method's full name, "/package.Service/Method".
	Name string
	// ServerStream is true for a method whose server streams: a server
	// stream or a bidirectional method. Its call ends with STREAM_END
	// instead of REPLY, and its handler sends with Call.Send.
	ServerStream bool
	// ClientStream is true for a method whose client streams: a
	// client-streaming or bidirectional method. Its REQUEST carries no
	// message; its handler reads the client's messages with Call.Receive.
	ClientStream bool
	// NewRequest returns an empty request message to decode into: the
	// REQUEST's payload, or each of the client's stream messages.
	NewRequest func() proto.Message
	// NewResponse returns an empty response message of a unary method. It
	// is needed only to answer a call with an idempotency key whose first
	// outcome was kept in the other codec (docs/PROTOCOL.md, section 3.7);
	// without it such a call gets ERROR internal.
	NewResponse func() proto.Message
	// Serve runs one call on its own goroutine with the decoded request
	// (nil for a method whose client streams). A unary or client-streaming
	// method returns the reply message; a method whose server streams
	// sends with call.Send and returns a nil message. A non-nil error ends
	// the call with ERROR (unary, client stream) or STREAM_END (server
	// stream, bidirectional), its code from protows.CodeOf. ctx is
	// cancelled when the client cancels the call or the connection ends.
	Serve func(ctx context.Context, call *Call, req proto.Message) (proto.Message, error)
}

// ErrCallEnded is returned by Call.Send and Call.Enqueue(Parts) after the call
// ended: its terminal envelope (STREAM_END, or ERROR canceled) was queued,
// because the handler returned, the client cancelled, or the server shed
// the connection.
var ErrCallEnded = errors.New("transport: call ended")

// ErrNoCredit is returned by Call.EnqueueParts (and Enqueue) when the
// call is a flow-controlled stream whose client granted no credit for
// another message (docs/PROTOCOL.md, section 4.6): its reader is too slow.
// The call was ended with STREAM_END resource_exhausted; the connection and
// its other calls go on.
var ErrNoCredit = errors.New("transport: stream reader too slow (no credit)")

// errUnaryStream is returned by Call.Send and Call.Enqueue on a call whose
// server does not stream, and errNotClientStream by Call.Receive on one
// whose client does not.
var (
	errUnaryStream     = errors.New("transport: stream message on a call whose server does not stream")
	errNotClientStream = errors.New("transport: receive on a call whose client does not stream")
)

// Call is one call in flight on a connection. Handlers reach it through
// CallFromContext. Its methods are safe for concurrent use.
type Call struct {
	conn     *Conn
	id       uint32
	method   *Method
	metadata map[string]string
	ctx      context.Context // the call's context, &cx
	resume   *protowsv1.Resume
	// cx is the call's context, cancelled by cancel (which also finishes a
	// detached call).
	cx  callContext
	key string // the idempotency key, "" for none
	// req is the decoded request until the call's task (runTask) takes
	// it; nil for a method whose client streams.
	req proto.Message
	// stopDeadline stops the watch of the call's timeout (timeout_ms);
	// nil without one.
	stopDeadline func() bool

	start time.Time // when the handler began; zero unless Server.timed

	mu sync.Mutex
	// ended is set once, by markEndedLocked, under mu; gone mirrors it
	// for the broadcast path (EnqueueParts), which reads it under the
	// connection's mutex instead of mu.
	ended bool
	gone  atomic.Bool
	// returned: the handler returned; detach: the call was detached
	// (detach.go), nil for most calls.
	returned bool
	detach   *detachState
	replyMD  map[string]string
	// wake is closed, and cleared, when what Send and Receive wait for
	// may have changed: credit or a message arrived, the client
	// half-closed, the call ended. Made by the first waiter.
	wake chan struct{}
	// Flow control of the server's STREAM_MESSAGEs (flow.go): flow is set
	// when the REQUEST carried a credit; credit is what is left of it.
	flow   bool
	credit int64
	// The client's STREAM_MESSAGEs (flow.go): payloads not yet read, the
	// credit the client still has, the messages read since the last
	// CREDIT, and whether the client half-closed.
	in      [][]byte
	inAvail int64
	inTaken int64
	inHalf  bool

	// keyed is what a call with an idempotency key keeps (keyed.go);
	// nil for other calls.
	keyed *keyedCall
}

// ID returns the call's correlation id.
func (c *Call) ID() uint32 { return c.id }

// Method returns the full name of the called method.
func (c *Call) Method() string { return c.method.Name }

// ServerStream reports whether the server streams on the call: a server
// stream or a bidirectional call.
func (c *Call) ServerStream() bool { return c.method.ServerStream }

// ClientStream reports whether the client streams on the call: a
// client-streaming or bidirectional call.
func (c *Call) ClientStream() bool { return c.method.ClientStream }

// Conn returns the connection the call arrived on.
func (c *Call) Conn() *Conn { return c.conn }

// Codec returns the codec of the call's connection, the one Enqueue's
// envelopes must be encoded with.
func (c *Call) Codec() codec.Codec { return c.conn.codec }

// IdempotencyKey returns the REQUEST's idempotency key, "" when it has
// none (docs/PROTOCOL.md, section 3.7).
func (c *Call) IdempotencyKey() string { return c.key }

// Metadata returns the REQUEST's metadata. The map must not be modified.
func (c *Call) Metadata() map[string]string { return c.metadata }

// Resume returns the REQUEST's resume (docs/PROTOCOL.md, section 14): how
// a stream of a room with history should start, and, by being there, that
// the client understands STREAM_POSITION. It returns nil when the REQUEST
// had none. The message must not be modified.
func (c *Call) Resume() *protowsv1.Resume { return c.resume }

// SetReplyMetadata sets a metadata entry of the REPLY of a unary call. It
// has no effect on streams, nor after the reply was sent.
func (c *Call) SetReplyMetadata(key, value string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.replyMD == nil {
		c.replyMD = make(map[string]string)
	}
	c.replyMD[key] = value
}

// Send queues msg as a STREAM_MESSAGE of this call, waiting while the call
// has no credit (a flow-controlled stream whose client has not taken the
// messages it was sent) and while the connection's send queue is at its
// back-pressure threshold (docs/PROTOCOL.md, sections 4.6 and 4.7). It
// returns ErrCallEnded once the call ended, ErrClosed when the connection
// is closing, and the context's error when the call's context ends first.
// A message too large to send (its frame over Config.MaxMessageSize) is
// not sent: Send returns a resource_exhausted error wrapping
// ErrMessageTooLarge, and the stream goes on. Send does not wait for the
// message to be written.
func (c *Call) Send(msg proto.Message) error {
	return c.SendContext(c.ctx, msg)
}

// SendContext is Send, giving up with ctx's error when ctx ends first. The
// router passes the handler's context, which may have a deadline of its
// own.
func (c *Call) SendContext(ctx context.Context, msg proto.Message) error {
	if !c.method.ServerStream {
		return errUnaryStream
	}
	payload, err := c.conn.codec.AppendPayload(nil, msg)
	if err != nil {
		return protows.Errorf(protows.CodeInternal, "encode stream message: %w", err)
	}
	env := &protowsv1.Envelope{Id: c.id, Kind: protowsv1.Kind_KIND_STREAM_MESSAGE, Payload: payload}
	elem, err := c.conn.codec.AppendEnvelope(nil, env)
	if err != nil {
		return protows.Errorf(protows.CodeInternal, "encode stream message: %w", err)
	}
	err = c.push(ctx, codec.Parts{Body: elem}, true)
	if errors.Is(err, ErrMessageTooLarge) {
		// Returned by the handler, it ends the stream with this code.
		return protows.Errorf(protows.CodeResourceExhausted, "stream message of %d bytes, the limit is %d: %w",
			len(elem), c.conn.srv.cfg.MaxMessageSize, err)
	}
	return err
}

// Enqueue queues elem, a STREAM_MESSAGE of this call already encoded with
// the connection's codec (codec.Codec.AppendEnvelope, with the call's id),
// like Conn.Enqueue: elem is only read, so one encoding may be queued on
// many calls. Unlike Conn.Enqueue it refuses with ErrCallEnded once the
// call ended, whose terminal envelope is then the next and last thing
// queued for it, so nothing is ever sent for a call after its STREAM_END
// or ERROR, even while a CANCEL races a broadcast. Like Conn.Enqueue it
// never waits: it is the path of room broadcasts, which must not wait for
// one member. On a flow-controlled stream without credit it ends the call
// with STREAM_END resource_exhausted and returns ErrNoCredit. Otherwise it
// returns the connection's error (ErrClosed, or ErrSlowConsumer when elem
// overflowed the send queue), or ErrMessageTooLarge (elem is not sent,
// the stream and the connection go on). It returns an error on a call
// whose server does not stream.
func (c *Call) Enqueue(elem []byte) error {
	return c.EnqueueParts(codec.Parts{Body: elem})
}

// EnqueueParts is Enqueue for an envelope held in parts (see codec.Parts):
// a broadcast queues each member's call id and sequence number around one
// shared payload, which the writer copies straight into the frame.
func (c *Call) EnqueueParts(p codec.Parts) error {
	if !c.method.ServerStream {
		return errUnaryStream
	}
	if !c.flow {
		// Without credit to count, one lock: the call's end is read under
		// the connection's, which its terminal envelope is queued under
		// too (end), so this envelope is either queued before it or sees
		// the call gone.
		return c.conn.enqueueCall(c, p)
	}
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		return ErrCallEnded
	}
	if c.credit == 0 {
		c.mu.Unlock()
		if c.end(nil, protows.Errorf(protows.CodeResourceExhausted, "stream reader too slow: no credit for a room message"), false) {
			c.cancel()
		}
		return ErrNoCredit
	}
	c.credit--
	// Under c.mu, so that ended and credit hold; the call is not gone
	// (its end is marked under c.mu too), and enqueueCall starts a writer
	// after releasing the connection's mutex.
	err := c.conn.enqueueCall(c, p)
	if err != nil {
		c.credit++ // not sent
	}
	c.mu.Unlock()
	return err
}

// markEndedLocked marks the call ended: nothing more is queued for it but
// its terminal envelope, which the caller queues next. c.mu must be held.
func (c *Call) markEndedLocked() {
	c.conn.ending.Add(1) // until its envelope is queued: Conn.endQueued
	c.ended = true
	c.gone.Store(true)
}

// end ends the call with the outcome of its handler, or with err when
// cancelled, and queues its terminal envelope, waiting for room in the
// send queue when wait is set (see Conn.enqueueLocked). It reports false
// when the call had already ended.
//
// The call is marked ended before its terminal envelope is queued, and
// outside c.mu, so that a broadcast to the call (Call.EnqueueParts) is
// never held up by an end that waits: nothing is queued for the call
// after it was marked ended (Send and the CREDITs of Receive check it
// under c.mu, Enqueue under c.mu or, without flow control, through gone
// under the connection's mutex, which the terminal envelope is queued
// under), so the terminal envelope still comes last.
func (c *Call) end(res proto.Message, err error, wait bool) bool {
	ended, _ := c.endThrough(res, err, wait, false)
	return ended
}

// endThrough is end, called by the goroutine of the call's handler once
// it returned when through is set: a REPLY is then queued with
// Conn.enqueueReply, and write reports that the caller became the
// connection's writer and must run Conn.writeLoop.
func (c *Call) endThrough(res proto.Message, err error, wait, through bool) (ended, write bool) {
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		return false, false
	}
	c.markEndedLocked()
	c.wakeLocked() // Send and Receive waiting on the call return
	md := c.replyMD
	c.mu.Unlock()
	c.conn.forgetCall(c.id)
	if err == nil && res != nil && md == nil && !c.method.ServerStream {
		// The common REPLY: its element and message are encoded in one
		// pass, into one buffer. Should either not encode, the general
		// path below encodes them again and handles the error.
		if elem, bp, eerr := c.appendReply(res); eerr == nil {
			return true, c.queueReply(elem, bp, wait, through)
		}
	}
	env := &protowsv1.Envelope{Id: c.id}
	switch {
	case c.method.ServerStream:
		env.Kind = protowsv1.Kind_KIND_STREAM_END
		if err != nil {
			env.Error = wireerr.ToWire(c.conn.codec, err)
		}
	case err != nil:
		env.Kind = protowsv1.Kind_KIND_ERROR
		env.Error = wireerr.ToWire(c.conn.codec, err)
	default:
		env.Kind = protowsv1.Kind_KIND_REPLY
		env.Metadata = md
		if res != nil {
			payload, perr := c.conn.codec.AppendPayload(nil, res)
			if perr != nil {
				env.Kind = protowsv1.Kind_KIND_ERROR
				env.Metadata = nil
				env.Error = wireerr.ToWire(c.conn.codec, protows.Errorf(protows.CodeInternal, "encode reply: %v", perr))
			} else {
				env.Payload = payload
			}
		}
	}
	c.sendEnd(env, wait)
	c.conn.endQueued()
	return true, false
}

// appendReply encodes res as the call's REPLY without metadata, the
// element and its message in one pass (codec.AppendMessageEnvelope). It
// returns the element and, for a text codec, the pooled buffer it is in,
// which the writer puts back once the element is queued with it
// (queueReply); on an error the buffer is back already.
//
// A text codec's buffer comes from the server's pool: a JSON encoding,
// whose size is not known before, would grow a new one several times. A
// binary codec sizes its buffer first and allocates it once, which costs
// less than a pooled one: replies held in the queue take buffers the
// readers then make anew, larger (echo of 1 KiB Protobuf: 7-8 % more
// server CPU per call with pooled replies, 2026-12-06).
func (c *Call) appendReply(res proto.Message) (elem []byte, bp *[]byte, err error) {
	var dst []byte
	if !c.conn.codec.Binary() {
		bp = c.conn.srv.bufs.get(0)
		dst = *bp
	}
	elem, err = codec.AppendMessageEnvelope(c.conn.codec, dst, c.id, protowsv1.Kind_KIND_REPLY, res)
	if err != nil {
		c.conn.srv.bufs.putMaybe(bp)
		return nil, nil, err
	}
	if bp != nil {
		*bp = elem // grown, maybe
	}
	return elem, bp, nil
}

// queueReply queues elem, the REPLY of the call, which was just marked
// ended, with bp, its pooled buffer or nil, as Conn.enqueueReply does, and
// reports whether the caller became the connection's writer. A REPLY over
// the size limit is replaced (Conn.answer).
func (c *Call) queueReply(elem []byte, bp *[]byte, wait, through bool) (write bool) {
	write, err := c.conn.enqueueReply(elem, bp, wait, through)
	if err != nil {
		if errors.Is(err, ErrMessageTooLarge) {
			// answer replaces a REPLY over the size limit.
			c.conn.answer(&protowsv1.Envelope{Id: c.id, Kind: protowsv1.Kind_KIND_REPLY}, elem, wait)
		}
		c.conn.srv.bufs.putMaybe(bp)
	}
	c.conn.endQueued()
	return write
}

// sendEnd queues env, the terminal envelope of the call, which was just
// marked ended, waiting for room in the send queue when wait is set.
func (c *Call) sendEnd(env *protowsv1.Envelope, wait bool) {
	elem, eerr := c.conn.codec.AppendEnvelope(nil, env)
	if eerr != nil {
		// What the handler produced does not encode (reply metadata that
		// is not UTF-8, say): the client still learns how the call ended.
		c.conn.logger().Error("protows: cannot encode the end of a call", "method", c.method.Name, "id", c.id, "err", eerr)
		env = &protowsv1.Envelope{Id: c.id, Kind: protowsv1.Kind_KIND_ERROR, Error: &protowsv1.Error{
			Code: protowsv1.Code(protows.CodeInternal), Message: "internal error: the reply does not encode",
		}}
		if c.method.ServerStream {
			env.Kind = protowsv1.Kind_KIND_STREAM_END
		}
		if elem, eerr = c.conn.codec.AppendEnvelope(nil, env); eerr != nil {
			c.conn.internalError(env, eerr) // only a broken codec gets here: 1011
			return
		}
	}
	c.conn.answer(env, elem, wait)
}

// runTask runs the call on a worker (see workerPool): a *Call is its own
// task, so that starting a call allocates no closure.
func (c *Call) runTask() {
	req := c.req
	c.req = nil // the handler's from now on
	c.conn.runCall(c.ctx, c, req)
}

// runCall runs a handler on its own goroutine and sends its outcome.
func (c *Conn) runCall(ctx context.Context, call *Call, req proto.Message) {
	if call.key != "" {
		write := func() bool {
			defer c.handlerDone()
			defer call.cancel()
			if call.stopDeadline != nil {
				defer call.stopDeadline()
			}
			return c.runKeyed(ctx, call, req)
		}()
		if write {
			c.writeLoop() // write-through, once the call is released
		}
		return
	}
	var (
		res      proto.Message
		err      error
		returned bool
	)
	defer func() {
		if !returned {
			// The handler ended its goroutine (runtime.Goexit): the call
			// still ends, and is released. The error is made here, not
			// up front, to spare every call its allocation.
			err = protows.Errorf(protows.CodeInternal, "internal error: the handler did not return")
		}
		if call.handlerReturned(&err) && call.complete(res, err, true) {
			// This goroutine became the writer (write-through): it writes
			// the REPLY itself rather than wake a worker to, as it was
			// about to go idle anyway.
			c.writeLoop()
		}
	}()
	res, err = c.serve(ctx, call, req)
	returned = true
}

// serve calls the method, turning a panic that escaped the Handler's own
// recovery into an internal error: the connection and the process
// survive.
func (c *Conn) serve(ctx context.Context, call *Call, req proto.Message) (res proto.Message, err error) {
	defer func() {
		if p := recover(); p != nil {
			c.logger().Error("protows: handler panic", "method", call.method.Name, "panic", p)
			res, err = nil, protows.Errorf(protows.CodeInternal, "internal error")
		}
	}()
	return call.method.Serve(ctx, call, req)
}

type callKey struct{}

// CallFromContext returns the call a handler's context belongs to.
func CallFromContext(ctx context.Context) (*Call, bool) {
	c, ok := ctx.Value(callKey{}).(*Call)
	return c, ok
}

type connKey struct{}

// ConnFromContext returns the connection of a handler's context.
func ConnFromContext(ctx context.Context) (*Conn, bool) {
	c, ok := ctx.Value(connKey{}).(*Conn)
	return c, ok
}
