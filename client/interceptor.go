package client

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/protows/protows"
	"google.golang.org/protobuf/proto"
)

// Call describes one call to the client's interceptors: the method, the
// request, and its metadata, which interceptors may add to (a trace
// context, a request id).
type Call struct {
	// Method is the full method name, "/package.Service/Method".
	Method string
	// ServerStream is true for CallServerStream, false for CallUnary.
	ServerStream bool
	// Request is the request message. Interceptors must not modify it:
	// the caller owns it.
	Request proto.Message

	md      map[string]string // the request's metadata; copied on first write
	mdOwned bool
	replyMD map[string]string // a unary call's REPLY metadata, once it succeeded
	cc      *callConfig
	newRes  func() (proto.Message, error)
}

// IdempotencyKey returns the key of a call made with ExactlyOnce or
// WithIdempotencyKey, "" for other calls. It is chosen once per call, before
// the interceptors: an interceptor that calls next again sends the same
// call, which the server runs once.
func (c *Call) IdempotencyKey() string { return c.cc.key }

// Metadata returns the request's metadata (WithMetadata, plus what
// interceptors set). The map must not be modified: use SetMetadata.
func (c *Call) Metadata() map[string]string { return c.md }

// SetMetadata sets a metadata entry of the request (docs/PROTOCOL.md,
// section 3.4). The map given to WithMetadata is copied, never modified.
// Keys should be lower case ASCII.
func (c *Call) SetMetadata(key, value string) {
	if !c.mdOwned {
		md := make(map[string]string, len(c.md)+1)
		maps.Copy(md, c.md)
		c.md, c.mdOwned = md, true
	}
	c.md[key] = value
}

// ReplyMetadata returns the metadata of a unary call's REPLY once next
// returned it successfully, nil before and for streams. The map must not
// be modified.
func (c *Call) ReplyMetadata() map[string]string { return c.replyMD }

// UnaryFunc makes a unary call: it returns the response message (of the
// type CallUnary was given) or an error, a *protows.Error naming the
// method.
type UnaryFunc func(ctx context.Context, call *Call) (proto.Message, error)

// StreamFunc opens a server stream. Like CallServerStream it returns at
// once; the messages and the end come through the Stream.
type StreamFunc func(ctx context.Context, call *Call) (Stream, error)

// Stream is a server stream as interceptors see it: ServerStream's methods,
// with the message untyped. An interceptor that wants to see the messages
// or the end of a stream returns its own Stream around next's, embedding
// it so that the methods it does not override pass through.
type Stream interface {
	// Receive waits for the next message and reports whether there is
	// one; false once the stream ended (see Err).
	Receive() bool
	// Msg returns the message of the last successful Receive.
	Msg() proto.Message
	// Seq returns the message's room sequence number (ServerStream.Seq).
	Seq() uint64
	// Gap reports whether messages may be missing before this one
	// (ServerStream.Gap).
	Gap() bool
	// Err returns why the stream ended, nil while it is open or when it
	// ended cleanly.
	Err() error
	// Close stops the stream (ServerStream.Close).
	Close() error
}

// PositionStream is the optional interface of a Stream of a room with
// history (docs/PROTOCOL.md, section 14), which ServerStream.Resumed and
// ServerStream.Position find by type assertion: the client's own streams
// have it. An interceptor that wraps a Stream keeps them working by
// forwarding the two methods to the Stream it wraps (embedding the Stream
// interface does not, as it promotes only Stream's methods).
type PositionStream interface {
	Stream
	// Resumed is ServerStream.Resumed.
	Resumed() (StreamPosition, bool)
	// Position is ServerStream.Position.
	Position() Position
}

// Interceptor wraps the calls of a Client (WithInterceptors): logging,
// metrics, tracing, metadata. Each wrapper gets the next function in the
// chain and returns one that does its work around it. An interceptor sees
// each call once, however often the client sends it: retries of idempotent
// calls and re-opens of streams after a reconnection happen below the
// interceptors.
type Interceptor interface {
	// WrapUnary wraps CallUnary.
	WrapUnary(next UnaryFunc) UnaryFunc
	// WrapStream wraps CallServerStream.
	WrapStream(next StreamFunc) StreamFunc
}

// UnaryInterceptorFunc is an Interceptor of unary calls only: streams pass
// through it untouched.
type UnaryInterceptorFunc func(next UnaryFunc) UnaryFunc

var _ Interceptor = UnaryInterceptorFunc(nil)

// WrapUnary implements Interceptor.
func (f UnaryInterceptorFunc) WrapUnary(next UnaryFunc) UnaryFunc { return f(next) }

// WrapStream implements Interceptor: it returns next.
func (f UnaryInterceptorFunc) WrapStream(next StreamFunc) StreamFunc { return next }

// WithInterceptors adds interceptors that wrap every call of the client,
// the first given outermost.
func WithInterceptors(is ...Interceptor) Option {
	return optionFunc(func(cfg *config) { cfg.interceptors = append(cfg.interceptors, is...) })
}

// chain wraps the client's own call functions in its interceptors.
func (c *Client) chain() {
	c.unary, c.stream = c.invokeUnary, c.openStream
	for i := len(c.cfg.interceptors) - 1; i >= 0; i-- {
		c.unary = c.cfg.interceptors[i].WrapUnary(c.unary)
		c.stream = c.cfg.interceptors[i].WrapStream(c.stream)
	}
}

// nameError returns err as a *protows.Error that names method (see
// protows.Error.WithMethod): a mistyped method then reads
// "unimplemented: /chat.v1.ChatService/Sned: unknown method with id
// 0xd2600009", not just the id the Protobuf codec sends.
func nameError(method string, err error) error {
	if err == nil {
		return nil
	}
	var perr *protows.Error
	if !errors.As(err, &perr) || perr != err {
		// Not an *Error itself (an interceptor's own, or one it wrapped):
		// keep the whole chain under the code.
		perr = protows.NewError(protows.CodeOf(err), err)
	}
	if perr.Method() != "" {
		return perr
	}
	return perr.WithMethod(method)
}

// LogCalls returns an interceptor that logs every call when it ends: the
// method, the code ("ok" for a success, see protows.CodeOf) and the
// duration; for a stream also the messages received; for a failure the
// message. Successes and cancellations log at debug level, other failures
// at info level. A stream ends when Receive returns false or at Close.
func LogCalls(l *slog.Logger) Interceptor {
	return logCalls{l}
}

type logCalls struct{ l *slog.Logger }

func (lc logCalls) WrapUnary(next UnaryFunc) UnaryFunc {
	return func(ctx context.Context, call *Call) (proto.Message, error) {
		start := time.Now()
		res, err := next(ctx, call)
		lc.log(ctx, call, start, err, -1)
		return res, err
	}
}

func (lc logCalls) WrapStream(next StreamFunc) StreamFunc {
	return func(ctx context.Context, call *Call) (Stream, error) {
		start := time.Now()
		s, err := next(ctx, call)
		if err != nil {
			lc.log(ctx, call, start, err, 0)
			return nil, err
		}
		return &loggedStream{Stream: s, ctx: ctx, call: call, start: start, lc: lc}, nil
	}
}

func (lc logCalls) log(ctx context.Context, call *Call, start time.Time, err error, msgs int) {
	code := protows.CodeOf(err)
	attrs := []any{"method", call.Method, "code", code.String(), "duration", time.Since(start)}
	if msgs >= 0 {
		attrs = append(attrs, "messages", msgs)
	}
	level := slog.LevelDebug
	if err != nil {
		attrs = append(attrs, "err", protows.AsError(err).Message())
		if code != protows.CodeCanceled {
			level = slog.LevelInfo
		}
	}
	lc.l.Log(ctx, level, "protows client: call", attrs...)
}

var _ PositionStream = (*loggedStream)(nil)

// loggedStream logs the end of a stream, once.
type loggedStream struct {
	Stream
	ctx   context.Context
	call  *Call
	start time.Time
	lc    logCalls
	msgs  atomic.Int64 // Close may run on another goroutine than Receive
	once  sync.Once
}

func (s *loggedStream) Receive() bool {
	if s.Stream.Receive() {
		s.msgs.Add(1)
		return true
	}
	s.once.Do(func() { s.lc.log(s.ctx, s.call, s.start, s.Stream.Err(), int(s.msgs.Load())) })
	return false
}

func (s *loggedStream) Resumed() (StreamPosition, bool) {
	if ps, ok := s.Stream.(PositionStream); ok {
		return ps.Resumed()
	}
	return StreamPosition{}, false
}

func (s *loggedStream) Position() Position {
	if ps, ok := s.Stream.(PositionStream); ok {
		return ps.Position()
	}
	return Position{}
}

func (s *loggedStream) Close() error {
	err := s.Stream.Close()
	s.once.Do(func() { s.lc.log(s.ctx, s.call, s.start, nil, int(s.msgs.Load())) })
	return err
}
