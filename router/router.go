package router

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	protows "github.com/protows/protows"
	"github.com/protows/protows/codec"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"github.com/protows/protows/transport"
	"google.golang.org/protobuf/proto"
)

// Router maps methods to typed handlers. It implements transport.Handler.
// Register every handler before serving: registration is safe for
// concurrent use, but a method registered while clients call is visible
// only to later requests.
type Router struct {
	interceptors []Interceptor
	logger       *slog.Logger

	mu      sync.RWMutex
	methods map[uint32]*transport.Method
}

var _ transport.Handler = (*Router)(nil)

// Option configures a Router.
type Option func(*Router)

// WithInterceptors adds interceptors that wrap every call of the router,
// the first given outermost.
func WithInterceptors(is ...Interceptor) Option {
	return func(r *Router) { r.interceptors = append(r.interceptors, is...) }
}

// WithLogger sets the logger of handler panics. Nil (the default) means
// slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(r *Router) { r.logger = l }
}

// New returns an empty router.
func New(opts ...Option) *Router {
	r := &Router{methods: make(map[uint32]*transport.Method)}
	for _, o := range opts {
		o(r)
	}
	if r.logger == nil {
		r.logger = slog.Default()
	}
	return r
}

// Lookup implements transport.Handler.
func (r *Router) Lookup(methodID uint32) (*transport.Method, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	m, ok := r.methods[methodID]
	return m, ok
}

// Methods returns the full names of the registered methods, in no order.
func (r *Router) Methods() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.methods))
	for _, m := range r.methods {
		names = append(names, m.Name)
	}
	return names
}

// Registration errors, wrapped by HandleUnary and HandleServerStream.
var (
	// ErrNotProtoMessage: *Req or *Res does not implement proto.Message.
	ErrNotProtoMessage = errors.New("router: request and response types must be Protobuf messages")
	// ErrInvalidMethod: the name is not "/package.Service/Method".
	ErrInvalidMethod = errors.New("router: invalid method name")
	// ErrDuplicate: the method is registered already.
	ErrDuplicate = errors.New("router: method registered twice")
	// ErrIDCollision: the method's id is 0 or another method's.
	ErrIDCollision = errors.New("router: method id collides")
	// ErrReserved: the method is the transport's own Authenticate.
	ErrReserved = errors.New("router: method is served by the transport")
)

// HandlerOption configures one registered method.
type HandlerOption func(*handlerConfig)

type handlerConfig struct {
	interceptors  []Interceptor
	timeout       time.Duration // unary calls
	streamTimeout time.Duration // streams of every kind
}

// WithHandlerInterceptors adds interceptors for this method only, inside
// the router's.
func WithHandlerInterceptors(is ...Interceptor) HandlerOption {
	return func(c *handlerConfig) { c.interceptors = append(c.interceptors, is...) }
}

// WithTimeout bounds the run of a unary handler: its context expires
// after d, and the call ends with deadline_exceeded if the handler returns
// its context's error. It does not apply to streams (server, client and
// bidirectional), which live as
// long as their subscription (a room's Watch lasts minutes or hours), so it
// can be given to a whole service's RegisterXHandler: its unary methods get
// the deadline, its streams do not. Bound streams with WithStreamTimeout.
// Zero means no timeout.
func WithTimeout(d time.Duration) HandlerOption {
	return func(c *handlerConfig) { c.timeout = d }
}

// WithStreamTimeout bounds the whole life of a stream (server, client or
// bidirectional): after d its handler's context expires, and the call
// ends with deadline_exceeded (STREAM_END, or ERROR for a client stream)
// if the handler returns its context's error (which Send and Receive
// return too once the context ended). It does not apply to unary calls. Use it for streams with a natural end, such as an export, never
// for subscriptions that should last as long as the client wants them.
// Zero (the default) means no timeout.
func WithStreamTimeout(d time.Duration) HandlerOption {
	return func(c *handlerConfig) { c.streamTimeout = d }
}

// Stream sends the messages of a server stream. Send returns an error once
// the call ended (cancelled, connection closed); handlers should then
// return.
//
// The Stream a handler gets for a call of a protows server also has the
// methods
//
//	ID() uint32
//	Codec() codec.Codec
//	EnqueueParts(codec.Parts) error
//	EnqueuePartsWait(context.Context, codec.Parts) error
//	SendPosition(context.Context, *protowsv1.Position) error
//
// of its transport.Call, for code that queues STREAM_MESSAGEs it encoded
// itself and finds them with a type assertion, the way an http.Handler
// finds http.Flusher on its ResponseWriter: package hub uses them to
// encode a broadcast once for all the members of a room, and to replay a
// room's history to a member that resumes (docs/PROTOCOL.md, section 14). An interceptor
// that replaces Call.Stream with a wrapper hides them unless the wrapper
// has them too; such code then sends through Send.
type Stream[T any] interface {
	Send(T) error
}

// Receiver reads the client's messages of a call whose client streams (a
// client stream or a bidirectional call), in the order the client sent
// them. Receive returns io.EOF once the client is done sending and every
// message was read; a CodeInvalidArgument error for a message that does
// not decode; another error when the call or its context ended. Each
// message is a new one, of the method's request type.
type Receiver interface {
	Receive() (proto.Message, error)
}

// ClientStream is the handler's end of a client-streaming call: the
// client's messages, read as a loop,
//
//	for s.Receive() {
//		use(s.Msg())
//	}
//	if err := s.Err(); err != nil { return nil, err }
//
// Receive waits for the next message and reports whether there is one; it
// returns false once the client is done sending (Err is nil) or the call
// failed (Err says why). As the handler reads, the server grants the
// client credit for more messages (docs/PROTOCOL.md, section 4.6): a
// handler that stops reading stops the client, not the connection. An
// interface, so that handlers can be tested with a fake.
type ClientStream[T any] interface {
	Receive() bool
	Msg() T
	Err() error
}

// BidiStream is the handler's end of a bidirectional call. Receive
// returns the client's next message, and io.EOF once the client is done
// sending; Send sends a message to the client, waiting while the client
// has granted no credit or the connection's queue is full (as Stream's
// Send). The two directions are independent: Send and Receive may be
// called from different goroutines. The call ends when the handler
// returns. Like Stream, the BidiStream of a protows server also has the
// enqueuer methods ID, Codec and EnqueueParts.
type BidiStream[Req, Res any] interface {
	Receive() (Req, error)
	Send(Res) error
}

// Call describes a call to interceptors. The kind of the method follows
// from ServerStream and ClientStream: unary (neither), server stream,
// client stream, or bidirectional (both).
type Call struct {
	// Method is the full method name.
	Method string
	// ServerStream is true for methods whose server streams: server
	// streams and bidirectional methods.
	ServerStream bool
	// ClientStream is true for methods whose client streams: client
	// streams and bidirectional methods.
	ClientStream bool
	// Request is the decoded request; nil when ClientStream is true (the
	// messages come through Receiver).
	Request proto.Message
	// Stream sends stream messages; nil unless ServerStream.
	Stream Stream[proto.Message]
	// Receiver reads the client's messages; nil unless ClientStream.
	// Interceptors may wrap it, as they may wrap Stream.
	Receiver Receiver
}

// HandlerFunc is a call as interceptors see it. A unary or client-stream
// handler returns its response; a handler whose server streams sends
// through call.Stream and returns a nil response.
type HandlerFunc func(ctx context.Context, call *Call) (proto.Message, error)

// Interceptor wraps calls: logging, metrics, authorization, timeouts.
type Interceptor func(next HandlerFunc) HandlerFunc

// HandleUnary registers a unary handler for method. *Req and *Res must be
// Protobuf messages.
func HandleUnary[Req, Res any](r *Router, method string, fn func(context.Context, *Req) (*Res, error), opts ...HandlerOption) error {
	if fn == nil {
		return fmt.Errorf("router: nil handler for %s", method)
	}
	newReq, newRes, err := messageTypes[Req, Res]()
	if err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	inner := func(ctx context.Context, call *Call) (proto.Message, error) {
		res, err := fn(ctx, any(call.Request).(*Req))
		if err != nil {
			return nil, err
		}
		if res == nil {
			return nil, protows.Errorf(protows.CodeInternal, "handler returned no response and no error")
		}
		return any(res).(proto.Message), nil
	}
	return r.register(method, methodKind{}, newReq, newRes, inner, opts)
}

// HandleServerStream registers a server-streaming handler for method. *Req
// and *Res must be Protobuf messages. The stream ends when fn returns:
// successfully when it returns nil, unless fn detached its call
// (transport.Call.Detach, which hub.Hub.Attach uses): a detached call
// stays open after fn returned nil, until it is finished or cancelled, and
// the interceptors have returned by then.
func HandleServerStream[Req, Res any](r *Router, method string, fn func(context.Context, *Req, Stream[*Res]) error, opts ...HandlerOption) error {
	if fn == nil {
		return fmt.Errorf("router: nil handler for %s", method)
	}
	newReq, newRes, err := messageTypes[Req, Res]()
	if err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	inner := func(ctx context.Context, call *Call) (proto.Message, error) {
		bindContext(call, ctx)
		return nil, fn(ctx, any(call.Request).(*Req), newTypedStream[Res](call.Stream))
	}
	return r.register(method, methodKind{server: true}, newReq, newRes, inner, opts)
}

// HandleClientStream registers a client-streaming handler for method. *Req
// and *Res must be Protobuf messages. fn reads the client's messages from
// its ClientStream and returns the response, usually once Receive returned
// false; it may return early, and the messages it did not read are
// dropped.
func HandleClientStream[Req, Res any](r *Router, method string, fn func(context.Context, ClientStream[*Req]) (*Res, error), opts ...HandlerOption) error {
	if fn == nil {
		return fmt.Errorf("router: nil handler for %s", method)
	}
	newReq, newRes, err := messageTypes[Req, Res]()
	if err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	inner := func(ctx context.Context, call *Call) (proto.Message, error) {
		bindContext(call, ctx)
		res, err := fn(ctx, &clientStream[Req]{r: call.Receiver})
		if err != nil {
			return nil, err
		}
		if res == nil {
			return nil, protows.Errorf(protows.CodeInternal, "handler returned no response and no error")
		}
		return any(res).(proto.Message), nil
	}
	return r.register(method, methodKind{client: true}, newReq, newRes, inner, opts)
}

// HandleBidiStream registers a bidirectional handler for method. *Req and
// *Res must be Protobuf messages. The call ends when fn returns:
// successfully when it returns nil, whether or not the client was done
// sending.
func HandleBidiStream[Req, Res any](r *Router, method string, fn func(context.Context, BidiStream[*Req, *Res]) error, opts ...HandlerOption) error {
	if fn == nil {
		return fmt.Errorf("router: nil handler for %s", method)
	}
	newReq, newRes, err := messageTypes[Req, Res]()
	if err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	inner := func(ctx context.Context, call *Call) (proto.Message, error) {
		bindContext(call, ctx)
		return nil, fn(ctx, newBidiStream[Req, Res](call.Receiver, call.Stream))
	}
	return r.register(method, methodKind{server: true, client: true}, newReq, newRes, inner, opts)
}

// methodKind says which sides of a method stream.
type methodKind struct{ server, client bool }

// messageTypes checks that *Req and *Res are messages and returns their
// constructors.
func messageTypes[Req, Res any]() (newReq, newRes func() proto.Message, err error) {
	if _, ok := any(new(Req)).(proto.Message); !ok {
		return nil, nil, fmt.Errorf("%w: %T", ErrNotProtoMessage, new(Req))
	}
	if _, ok := any(new(Res)).(proto.Message); !ok {
		return nil, nil, fmt.Errorf("%w: %T", ErrNotProtoMessage, new(Res))
	}
	return func() proto.Message { return any(new(Req)).(proto.Message) },
		func() proto.Message { return any(new(Res)).(proto.Message) }, nil
}

// enqueuer is the part of transport.Call that the streams of calls pass
// on (see Stream): package hub finds these methods by type assertion, to
// queue a room's broadcasts encoded once, and to replay a room's history
// (EnqueuePartsWait, SendPosition).
type enqueuer interface {
	ID() uint32
	Codec() codec.Codec
	EnqueueParts(codec.Parts) error
	EnqueuePartsWait(context.Context, codec.Parts) error
	SendPosition(context.Context, *protowsv1.Position) error
}

var (
	_ enqueuer = (*transport.Call)(nil)
	_ enqueuer = callStream{}
	_ enqueuer = typedCallStream[int]{}
)

// newTypedStream adapts the untyped stream to Stream[*Res], keeping its
// enqueuer methods when it has them.
func newTypedStream[Res any](s Stream[proto.Message]) Stream[*Res] {
	if e, ok := s.(enqueuer); ok {
		return typedCallStream[Res]{typedStream[Res]{s}, e}
	}
	return typedStream[Res]{s}
}

// typedStream adapts the untyped stream to Stream[*Res].
type typedStream[Res any] struct{ s Stream[proto.Message] }

func (t typedStream[Res]) Send(m *Res) error {
	if m == nil {
		return errors.New("router: Send of a nil message")
	}
	return t.s.Send(any(m).(proto.Message))
}

// typedCallStream is a typedStream whose stream is an enqueuer.
type typedCallStream[Res any] struct {
	typedStream[Res]
	enqueuer
}

// clientStream adapts a Receiver to ClientStream[*Req].
type clientStream[Req any] struct {
	r    Receiver
	msg  *Req
	err  error
	done bool
}

func (s *clientStream[Req]) Receive() bool {
	if s.done {
		return false
	}
	m, err := s.r.Receive()
	if err != nil {
		s.msg, s.done = nil, true
		if !errors.Is(err, io.EOF) {
			s.err = err
		}
		return false
	}
	s.msg = any(m).(*Req)
	return true
}

func (s *clientStream[Req]) Msg() *Req { return s.msg }

func (s *clientStream[Req]) Err() error { return s.err }

// bidiStream adapts a Receiver and a Stream to BidiStream[*Req, *Res].
type bidiStream[Req, Res any] struct {
	r Receiver
	typedStream[Res]
}

// bidiCallStream is a bidiStream whose stream is an enqueuer.
type bidiCallStream[Req, Res any] struct {
	bidiStream[Req, Res]
	enqueuer
}

var _ enqueuer = bidiCallStream[int, int]{}

func newBidiStream[Req, Res any](r Receiver, s Stream[proto.Message]) BidiStream[*Req, *Res] {
	b := bidiStream[Req, Res]{r: r, typedStream: typedStream[Res]{s}}
	if e, ok := s.(enqueuer); ok {
		return bidiCallStream[Req, Res]{b, e}
	}
	return b
}

func (s bidiStream[Req, Res]) Receive() (*Req, error) {
	m, err := s.r.Receive()
	if err != nil {
		return nil, err
	}
	return any(m).(*Req), nil
}

// binding is the context the stream of a call waits with: the call's,
// until the handler's (which may have a deadline of its own, from
// WithTimeout or an interceptor) replaces it before the handler runs.
type binding struct{ ctx context.Context }

// bindContext makes the call's own stream and receiver wait with ctx, even
// when interceptors wrapped them. It runs before the handler, on its
// goroutine.
func bindContext(call *Call, ctx context.Context) {
	// A bidirectional call's stream and receiver share one binding.
	if s, ok := call.Stream.(callStream); ok {
		s.b.ctx = ctx
		return
	}
	if r, ok := call.Receiver.(callReceiver); ok {
		r.b.ctx = ctx
	}
}

// callStream is the stream of a transport call: Send, and the call's
// enqueuer methods.
type callStream struct {
	call *transport.Call
	b    *binding
}

func (s callStream) Send(m proto.Message) error { return s.call.SendContext(s.b.ctx, m) }

// callReceiver is the Receiver of a transport call.
type callReceiver struct {
	call   *transport.Call
	b      *binding
	newReq func() proto.Message
}

func (r callReceiver) Receive() (proto.Message, error) {
	m := r.newReq()
	if err := r.call.ReceiveContext(r.b.ctx, m); err != nil {
		return nil, err
	}
	return m, nil
}

func (s callStream) ID() uint32 { return s.call.ID() }

func (s callStream) Codec() codec.Codec { return s.call.Codec() }

func (s callStream) EnqueueParts(p codec.Parts) error { return s.call.EnqueueParts(p) }

func (s callStream) EnqueuePartsWait(ctx context.Context, p codec.Parts) error {
	return s.call.EnqueuePartsWait(ctx, p)
}

func (s callStream) SendPosition(ctx context.Context, pos *protowsv1.Position) error {
	return s.call.SendPosition(ctx, pos)
}

func (r *Router) register(method string, kind methodKind, newReq, newRes func() proto.Message, inner HandlerFunc, opts []HandlerOption) error {
	if !protows.ValidMethodName(method) {
		return fmt.Errorf("%w: %q", ErrInvalidMethod, method)
	}
	if method == transport.AuthenticateMethod {
		return fmt.Errorf("%w: %s", ErrReserved, method)
	}
	id := protows.MethodID(method)
	if id == 0 {
		return fmt.Errorf("%w: %s has id 0", ErrIDCollision, method)
	}
	var hc handlerConfig
	for _, o := range opts {
		o(&hc)
	}
	h := inner
	for i := len(hc.interceptors) - 1; i >= 0; i-- {
		h = hc.interceptors[i](h)
	}
	timeout := hc.timeout
	if kind.server || kind.client {
		timeout = hc.streamTimeout
	}
	if timeout > 0 {
		h = timeoutInterceptor(timeout)(h)
	}
	for i := len(r.interceptors) - 1; i >= 0; i-- {
		h = r.interceptors[i](h)
	}
	h = r.recoverInterceptor(h)
	m := &transport.Method{
		Name:         method,
		ServerStream: kind.server,
		ClientStream: kind.client,
		NewRequest:   newReq,
		NewResponse:  newRes,
		Serve: func(ctx context.Context, tc *transport.Call, req proto.Message) (proto.Message, error) {
			call := &Call{Method: method, ServerStream: kind.server, ClientStream: kind.client, Request: req}
			if kind.server || kind.client {
				// Only streams need the binding: a unary call is spared
				// its allocation.
				b := &binding{ctx: ctx}
				if kind.server {
					call.Stream = callStream{tc, b}
				}
				if kind.client {
					call.Receiver = callReceiver{tc, b, newReq}
				}
			}
			return h(ctx, call)
		},
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if prev, ok := r.methods[id]; ok {
		if prev.Name == method {
			return fmt.Errorf("%w: %s", ErrDuplicate, method)
		}
		return fmt.Errorf("%w: %s and %s both have id 0x%08x", ErrIDCollision, prev.Name, method, id)
	}
	if id == protows.MethodID(transport.AuthenticateMethod) {
		return fmt.Errorf("%w: %s has the id of %s", ErrIDCollision, method, transport.AuthenticateMethod)
	}
	r.methods[id] = m
	return nil
}

// recoverInterceptor turns a panic into an internal error: the connection
// and the process survive. It is always the outermost interceptor.
func (r *Router) recoverInterceptor(next HandlerFunc) HandlerFunc {
	return func(ctx context.Context, call *Call) (res proto.Message, err error) {
		defer func() {
			if p := recover(); p != nil {
				r.logger.Error("protows: handler panic", "method", call.Method, "panic", p, "stack", string(debug.Stack()))
				res, err = nil, protows.Errorf(protows.CodeInternal, "internal error")
			}
		}()
		return next(ctx, call)
	}
}

// timeoutInterceptor gives the handler a deadline.
func timeoutInterceptor(d time.Duration) Interceptor {
	return func(next HandlerFunc) HandlerFunc {
		return func(ctx context.Context, call *Call) (proto.Message, error) {
			ctx, cancel := context.WithTimeout(ctx, d)
			defer cancel()
			return next(ctx, call)
		}
	}
}
