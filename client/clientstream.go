package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/protows/protows"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"github.com/protows/protows/internal/wireerr"
	"google.golang.org/protobuf/proto"
)

// ClientStream is the client's end of a client-streaming call: send the
// messages with Send, then CloseAndReceive for the response.
//
//	stream, err := client.CallClientStream[uploadv1.Chunk, uploadv1.Summary](ctx, c, method)
//	for _, chunk := range chunks {
//		if err := stream.Send(chunk); err != nil {
//			break // io.EOF: the server ended the call; CloseAndReceive says how
//		}
//	}
//	summary, err := stream.CloseAndReceive()
//
// Send, CloseAndReceive and Close belong to one goroutine, but Close may
// be called from any. The call is never resumed after a reconnection: it
// ends with CodeUnavailable wrapping ErrConnectionLost, and the application
// decides whether to start it again.
type ClientStream[Req, Res any] struct {
	core *flowCall
}

// BidiStream is the client's end of a bidirectional call: Send and
// CloseSend for the client's messages, Receive for the server's.
//
//	stream, err := client.CallBidiStream[chatv1.Say, chatv1.Said](ctx, c, method)
//	go func() {
//		for _, m := range outgoing {
//			if stream.Send(m) != nil {
//				return
//			}
//		}
//		stream.CloseSend()
//	}()
//	for {
//		msg, err := stream.Receive()
//		if errors.Is(err, io.EOF) {
//			break // the server ended the call cleanly
//		}
//		...
//	}
//
// The two directions may be used from two goroutines: one sends (Send,
// CloseSend), one receives (Receive); Close may be called from any. As for
// ClientStream, the call is never resumed after a reconnection.
type BidiStream[Req, Res any] struct {
	core *flowCall
	// err is a message that did not decode: it ends the stream for the
	// reader even when the server had already ended it.
	err error
}

// CallClientStream opens a client-streaming call on method (its full name)
// and returns at once; send the messages with Send. Req and Res are the
// message types, such as uploadv1.Chunk and uploadv1.Summary. ctx governs
// the whole call: when it ends, the client sends CANCEL, and Send and
// CloseAndReceive return CodeCanceled or CodeDeadlineExceeded.
//
// While the client is reconnecting, opening waits for the connection,
// within ctx. The error is non-nil only when the call could not be opened
// at all (ctx ended, the client stopped); a refusal by the server arrives
// through Send (io.EOF) and CloseAndReceive.
func CallClientStream[Req, Res any](ctx context.Context, c *Client, method string, opts ...CallOption) (*ClientStream[Req, Res], error) {
	core, err := openFlowCall[Req, Res](ctx, c, method, false, opts)
	if err != nil {
		return nil, err
	}
	return &ClientStream[Req, Res]{core: core}, nil
}

// CallBidiStream opens a bidirectional call on method (its full name) and
// returns at once. Req and Res are the message types. ctx governs the
// whole call, as for CallClientStream.
func CallBidiStream[Req, Res any](ctx context.Context, c *Client, method string, opts ...CallOption) (*BidiStream[Req, Res], error) {
	core, err := openFlowCall[Req, Res](ctx, c, method, true, opts)
	if err != nil {
		return nil, err
	}
	return &BidiStream[Req, Res]{core: core}, nil
}

// Send sends msg to the server, waiting while the server has granted no
// credit for it (the call is not open yet, or the handler has not read
// the earlier messages: docs/PROTOCOL.md, section 4.6). It returns io.EOF
// when the call ended before msg could be sent (the server replied or
// failed early, the connection dropped): CloseAndReceive then returns the
// outcome. It returns another error when msg does not encode or exceeds
// the message size limit (the call goes on), when ctx ended, and after
// CloseAndReceive.
func (s *ClientStream[Req, Res]) Send(msg *Req) error {
	return s.core.named(s.core.send(any(msg)))
}

// CloseAndReceive tells the server that the client is done sending and
// waits for the response. Every error is a *protows.Error: the server's,
// CodeCanceled or CodeDeadlineExceeded when ctx ended, CodeUnavailable
// wrapping ErrConnectionLost when the connection dropped.
func (s *ClientStream[Req, Res]) CloseAndReceive() (*Res, error) {
	if err := s.core.closeSend(); err != nil && !errors.Is(err, io.EOF) {
		return nil, s.core.named(err)
	}
	env, err := s.core.wait()
	if err != nil {
		return nil, s.core.named(err)
	}
	res, msg, err := newResponse[Res](s.core.initRes)
	if err != nil {
		return nil, protows.Errorf(protows.CodeInternal, "client: reply of %s: %w", s.core.method, err)
	}
	if err := s.core.cl.cfg.codec.UnmarshalPayload(env.GetPayload(), msg); err != nil {
		return nil, protows.Errorf(protows.CodeInternal, "client: decode reply of %s: %w", s.core.method, err)
	}
	if s.core.replyMD != nil {
		*s.core.replyMD = env.GetMetadata()
	}
	return res, nil
}

// Close cancels the call, unless it already ended: the client sends
// CANCEL, and later Sends fail. It always returns nil.
func (s *ClientStream[Req, Res]) Close() error {
	s.core.cancel(protows.Errorf(protows.CodeCanceled, "client: call closed"))
	return nil
}

// Send sends msg to the server, waiting for credit as ClientStream.Send
// does. It returns io.EOF when the call ended before msg could be sent:
// Receive then returns how it ended.
func (s *BidiStream[Req, Res]) Send(msg *Req) error {
	return s.core.named(s.core.send(any(msg)))
}

// CloseSend tells the server that the client is done sending (a
// half-close); the server may go on sending. It returns nil when the call
// had already ended.
func (s *BidiStream[Req, Res]) CloseSend() error {
	if err := s.core.closeSend(); err != nil && !errors.Is(err, io.EOF) {
		return s.core.named(err)
	}
	return nil
}

// Receive waits for the server's next message. It returns io.EOF once the
// server ended the call cleanly and every message was read, and otherwise
// the error that ended it, a *protows.Error (as for ServerStream.Err). As
// the reader takes messages the client grants the server credit for more.
func (s *BidiStream[Req, Res]) Receive() (*Res, error) {
	if s.err != nil {
		return nil, s.err
	}
	payload, err := s.core.next()
	if err != nil {
		return nil, s.core.named(err)
	}
	res, msg, err := newResponse[Res](s.core.initRes)
	if err == nil {
		err = s.core.cl.cfg.codec.UnmarshalPayload(payload, msg)
	}
	if err != nil {
		s.err = protows.Errorf(protows.CodeInternal, "client: decode message of %s: %w", s.core.method, err)
		s.core.cancel(s.err)
		return nil, s.err
	}
	return res, nil
}

// Close cancels the call, unless it already ended: the client sends
// CANCEL, and Receive returns CodeCanceled. It always returns nil.
func (s *BidiStream[Req, Res]) Close() error {
	s.core.cancel(protows.Errorf(protows.CodeCanceled, "client: call closed"))
	return nil
}

// flowCall is the untyped state of a client-streaming or bidirectional
// call, on one connection for its whole life.
type flowCall struct {
	cl      *Client
	cn      *conn
	id      uint32
	ctx     context.Context
	method  string
	bidi    bool
	initRes func(proto.Message) error
	replyMD *map[string]string

	mu      sync.Mutex
	wake    chan struct{} // closed and cleared by wakeLocked
	open    bool          // the server's first CREDIT arrived
	credit  int64         // the messages the client may still send
	halfSet bool          // the client sent STREAM_END
	queue   [][]byte      // the server's messages not yet read (bidi)
	avail   int64         // the credit the server has left (bidi)
	ended   bool
	reply   *protowsv1.Envelope // the REPLY of a client stream
	err     error               // why it ended; nil for a clean end
	stop    func() bool         // stops the context watcher
	owned   bool                // opened: release frees the slot
}

var _ sink = (*flowCall)(nil)

func openFlowCall[Req, Res any](ctx context.Context, c *Client, method string, bidi bool, opts []CallOption) (*flowCall, error) {
	if _, ok := any(new(Req)).(proto.Message); !ok {
		return nil, protows.Errorf(protows.CodeInternal, "client: %T does not implement proto.Message", new(Req))
	}
	if _, ok := any(new(Res)).(proto.Message); !ok {
		return nil, protows.Errorf(protows.CodeInternal, "client: %T does not implement proto.Message", new(Res))
	}
	if !protows.ValidMethodName(method) {
		return nil, protows.Errorf(protows.CodeInvalidArgument, "client: %q is not a full method name", method)
	}
	cc := newCallConfig(opts)
	if err := c.acquire(ctx); err != nil {
		return nil, err
	}
	var (
		f    *flowCall
		dead *conn
	)
	for {
		cn, err := c.waitConn(ctx, dead)
		if err != nil {
			c.releaseSlot()
			return nil, err
		}
		// A fresh call per attempt: one that a dead connection settled
		// stays settled.
		f = &flowCall{cl: c, ctx: ctx, method: method, bidi: bidi, initRes: cc.initResponse, replyMD: cc.replyMD}
		if bidi {
			f.avail = int64(c.cfg.streamBuffer)
		}
		id, err := cn.register(f)
		if errors.Is(err, errLinkDown) {
			dead = cn
			continue
		}
		if err != nil {
			c.releaseSlot()
			return nil, err
		}
		f.cn, f.id = cn, id
		req := cn.request(id, method, nil, cc.metadata)
		req.Credit = uint32(f.avail)
		b, err := cn.encode(req)
		if err == nil {
			err = cn.send(ctx, b)
		}
		if errors.Is(err, errLinkDown) {
			// Never sent: try the next connection.
			cn.unregister(id)
			dead = cn
			continue
		}
		if err != nil {
			cn.unregister(id)
			c.releaseSlot()
			return nil, err
		}
		break
	}
	stop := context.AfterFunc(ctx, func() { f.cancel(ctxError(ctx)) })
	f.mu.Lock()
	f.stop, f.owned = stop, true
	ended := f.ended
	f.mu.Unlock()
	if ended {
		// It ended before it was ours to release (the connection dropped
		// at once): release it here.
		stop()
		c.releaseSlot()
	}
	return f, nil
}

func (f *flowCall) waitLocked() <-chan struct{} {
	if f.wake == nil {
		f.wake = make(chan struct{})
	}
	return f.wake
}

func (f *flowCall) wakeLocked() {
	if f.wake != nil {
		close(f.wake)
		f.wake = nil
	}
}

// endLocked ends the call with err (nil: cleanly) and reports whether it
// was still running, in which case the caller releases it. f.mu must be
// held.
func (f *flowCall) endLocked(err error) bool {
	if f.ended {
		return false
	}
	f.ended, f.err = true, err
	f.wakeLocked()
	return true
}

// release gives back the call's slot and stops its context watcher. It
// runs once, after whichever of deliver, lost and cancel ended the call;
// before the call was opened, the opener releases it instead.
func (f *flowCall) release() {
	f.mu.Lock()
	stop, owned := f.stop, f.owned
	f.mu.Unlock()
	if !owned {
		return
	}
	f.cl.releaseSlot()
	stop()
}

func (f *flowCall) deliver(cn *conn, id uint32, env *protowsv1.Envelope, final bool) {
	f.mu.Lock()
	if f.ended || f.cn != cn || f.id != id {
		f.mu.Unlock()
		return
	}
	var end error
	switch env.GetKind() {
	case protowsv1.Kind_KIND_CREDIT:
		n := int64(env.GetCredit())
		if n == 0 || f.credit+n > 1<<31-1 {
			end = protows.Errorf(protows.CodeInternal, "client: server sent a bad CREDIT of %d for %s", n, f.method)
			break
		}
		f.open = true
		f.credit += n
		f.wakeLocked()
		f.mu.Unlock()
		return
	case protowsv1.Kind_KIND_STREAM_MESSAGE:
		if !f.bidi {
			end = protows.Errorf(protows.CodeInternal, "client: server sent a stream message for the client stream %s", f.method)
			break
		}
		if f.avail <= 0 {
			end = protows.Errorf(protows.CodeResourceExhausted, "client: server sent beyond the window of %s", f.method)
			break
		}
		f.avail--
		f.queue = append(f.queue, env.GetPayload())
		f.wakeLocked()
		f.mu.Unlock()
		return
	case protowsv1.Kind_KIND_REPLY:
		if f.bidi {
			end = protows.Errorf(protows.CodeInternal, "client: server sent REPLY for the bidirectional call %s", f.method)
			break
		}
		f.reply = env
	case protowsv1.Kind_KIND_STREAM_END:
		if !f.bidi {
			end = protows.Errorf(protows.CodeInternal, "client: server sent STREAM_END for the client stream %s", f.method)
		} else if env.GetError() != nil {
			end = wireerr.FromWire(cn.codec, env.GetError())
		}
	case protowsv1.Kind_KIND_ERROR:
		end = wireerr.FromWire(cn.codec, env.GetError())
	default:
		end = protows.Errorf(protows.CodeInternal, "client: server sent %s for %s", env.GetKind(), f.method)
	}
	if final {
		// The server ended the call; the id is free already.
		ended := f.endLocked(end)
		f.mu.Unlock()
		if ended {
			f.release()
		}
		return
	}
	// A broken envelope that does not end the call on the server: cancel.
	f.mu.Unlock()
	f.cancel(end)
}

// lost ends the call when its connection dropped: it is never resumed.
func (f *flowCall) lost(cn *conn, id uint32, err error) {
	f.mu.Lock()
	if f.cn != cn || f.id != id {
		f.mu.Unlock()
		return
	}
	ended := f.endLocked(err)
	f.mu.Unlock()
	if ended {
		f.release()
	}
}

// cancel ends the call from the client's side and tells the server.
func (f *flowCall) cancel(err error) {
	f.mu.Lock()
	ended := f.endLocked(err)
	if ended {
		f.queue = nil // the reader learns of the end at once
	}
	cn, id := f.cn, f.id
	f.mu.Unlock()
	if !ended {
		return
	}
	if cn != nil && cn.unregister(id) {
		cn.sendCancel(id)
	}
	f.release()
}

// await waits until ready reports true (under f.mu, which it returns
// held) or the call ended (false, f.mu held).
func (f *flowCall) await(ready func() bool) bool {
	f.mu.Lock()
	for !f.ended && !ready() {
		w := f.waitLocked()
		f.mu.Unlock()
		<-w
		f.mu.Lock()
	}
	return !f.ended
}

// send sends one message within the credit.
func (f *flowCall) send(m any) error {
	msg, ok := m.(proto.Message)
	if !ok || msg == nil {
		return protows.Errorf(protows.CodeInvalidArgument, "client: Send of a nil message")
	}
	payload, err := f.cl.cfg.codec.AppendPayload(nil, msg)
	if err != nil {
		return protows.Errorf(protows.CodeInternal, "client: encode message of %s: %w", f.method, err)
	}
	b, err := f.cn.encode(&protowsv1.Envelope{Id: f.id, Kind: protowsv1.Kind_KIND_STREAM_MESSAGE, Payload: payload})
	if err != nil {
		return err
	}
	if !f.await(func() bool { return f.halfSet || f.open && f.credit > 0 }) {
		f.mu.Unlock()
		return io.EOF
	}
	if f.halfSet {
		f.mu.Unlock()
		return protows.Errorf(protows.CodeFailedPrecondition, "client: Send after the end of sending on %s", f.method)
	}
	f.credit--
	f.mu.Unlock()
	return f.write(b)
}

// closeSend sends the half-close, once the call is open.
func (f *flowCall) closeSend() error {
	if !f.await(func() bool { return f.open || f.halfSet }) {
		f.mu.Unlock()
		return io.EOF
	}
	if f.halfSet {
		f.mu.Unlock()
		return nil
	}
	f.halfSet = true
	f.mu.Unlock()
	b, err := f.cn.encode(&protowsv1.Envelope{Id: f.id, Kind: protowsv1.Kind_KIND_STREAM_END})
	if err != nil {
		return err
	}
	return f.write(b)
}

// write queues an encoded envelope of the call. When the connection ended
// the call ends through lost, and io.EOF sends the caller to the outcome.
func (f *flowCall) write(b []byte) error {
	select {
	case f.cn.out <- b:
		return nil
	case <-f.cn.done:
		return io.EOF
	case <-f.ctx.Done():
		f.cancel(ctxError(f.ctx))
		return io.EOF
	}
}

// wait waits for the end of a client stream: its REPLY, or why it failed.
func (f *flowCall) wait() (*protowsv1.Envelope, error) {
	f.await(func() bool { return false })
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	if f.reply == nil {
		return nil, protows.Errorf(protows.CodeInternal, "client: %s ended without a reply", f.method)
	}
	return f.reply, nil
}

// next returns the server's next message of a bidirectional call, and
// grants credit for more once half the window was read.
func (f *flowCall) next() ([]byte, error) {
	f.await(func() bool { return len(f.queue) > 0 })
	if len(f.queue) == 0 {
		err := f.err
		f.mu.Unlock()
		if err == nil {
			return nil, io.EOF
		}
		return nil, err
	}
	payload := f.queue[0]
	f.queue[0] = nil
	f.queue = f.queue[1:]
	window := int64(f.cl.cfg.streamBuffer)
	var grant int64
	if !f.ended {
		if g := window - int64(len(f.queue)) - f.avail; g >= max(window/2, 1) {
			grant = g
			f.avail += g
		}
	}
	cn, id := f.cn, f.id
	f.mu.Unlock()
	if grant > 0 {
		cn.sendCredit(id, grant)
	}
	return payload, nil
}

// named returns err as a *protows.Error naming the method, as every call
// error is (see nameError); io.EOF, the end of a stream, stays itself.
func (f *flowCall) named(err error) error {
	if err == nil || errors.Is(err, io.EOF) {
		return err
	}
	return nameError(f.method, err)
}

// String describes the call for logs.
func (f *flowCall) String() string {
	return fmt.Sprintf("%s#%d", f.method, f.id)
}
