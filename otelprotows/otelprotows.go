// Package otelprotows traces protows calls with OpenTelemetry
// (go.opentelemetry.io/otel): a router interceptor makes a server span per
// call, a client interceptor a client span per call, and the trace context
// travels in the request's metadata as W3C Trace Context ("traceparent",
// "tracestate") and W3C Baggage ("baggage") entries, so that a call's
// client and server spans join one trace, from the Go client or from any
// client that sets those metadata entries.
//
//	r := router.New(router.WithInterceptors(otelprotows.ServerInterceptor()))
//	c, err := client.Dial(ctx, url, client.WithInterceptors(otelprotows.ClientInterceptor()))
//
// It lives in its own package so that programs that do not import it do
// not link OpenTelemetry (see docs/DEPLOYMENT.md for what it means for
// downloads).
//
// # Spans
//
// A span is named after the method without its leading slash
// ("chat.v1.ChatService/Send"), of kind server or client, with the
// attributes rpc.system "protows", rpc.service, rpc.method and
// rpc.protows.code (the outcome, "ok" for a success; see protows.CodeOf),
// and, on the server, protows.connection_id. A failed call's span has
// status Error with the error's message. A server stream's span lasts as
// long as its handler (a room membership's as long as the membership); a
// client stream's span ends when Receive returns false or at Close, with
// the messages received in rpc.protows.messages_received. Retries and
// re-opens by the client after a reconnection happen within one client
// span.
package otelprotows

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"

	protows "github.com/protows/protows"
	"github.com/protows/protows/client"
	"github.com/protows/protows/router"
	"github.com/protows/protows/transport"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
)

// instrumentation is the tracer's name, the import path of this package.
const instrumentation = "github.com/protows/protows/otelprotows"

// Attribute keys, after OpenTelemetry's RPC conventions.
const (
	keySystem   = attribute.Key("rpc.system")
	keyService  = attribute.Key("rpc.service")
	keyMethod   = attribute.Key("rpc.method")
	keyCode     = attribute.Key("rpc.protows.code")
	keyReceived = attribute.Key("rpc.protows.messages_received")
	keyConn     = attribute.Key("protows.connection_id")
)

// Option configures the interceptors.
type Option func(*config)

type config struct {
	tp   trace.TracerProvider
	prop propagation.TextMapPropagator
}

// WithTracerProvider sets the tracer provider. The default is the global
// one, otel.GetTracerProvider(), read when the interceptor is made.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *config) { c.tp = tp }
}

// WithPropagator sets how the trace context is written to and read from
// the request metadata. The default is W3C Trace Context and W3C Baggage,
// whatever the global propagator is: the default global one propagates
// nothing.
func WithPropagator(p propagation.TextMapPropagator) Option {
	return func(c *config) { c.prop = p }
}

func newConfig(opts []Option) (trace.Tracer, propagation.TextMapPropagator) {
	c := config{
		tp:   otel.GetTracerProvider(),
		prop: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
	}
	for _, o := range opts {
		o(&c)
	}
	return c.tp.Tracer(instrumentation, trace.WithInstrumentationVersion(protows.Version)), c.prop
}

// spanName and methodAttrs split "/pkg.Service/Method".
func spanName(method string) string { return strings.TrimPrefix(method, "/") }

func methodAttrs(method string) []attribute.KeyValue {
	service, name, _ := strings.Cut(strings.TrimPrefix(method, "/"), "/")
	return []attribute.KeyValue{keySystem.String("protows"), keyService.String(service), keyMethod.String(name)}
}

// end records a call's outcome on its span and ends it.
func end(span trace.Span, err error, extra ...attribute.KeyValue) {
	span.SetAttributes(keyCode.String(protows.CodeOf(err).String()))
	span.SetAttributes(extra...)
	if err != nil {
		span.SetStatus(codes.Error, protows.AsError(err).Message())
	}
	span.End()
}

// metadataCarrier reads a request's metadata (the server's side).
type metadataCarrier map[string]string

func (m metadataCarrier) Get(key string) string { return m[strings.ToLower(key)] }
func (m metadataCarrier) Set(string, string)    {} // read-only
func (m metadataCarrier) Keys() []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	return keys
}

// callCarrier writes into a client call's metadata.
type callCarrier struct{ call *client.Call }

func (c callCarrier) Get(key string) string { return c.call.Metadata()[strings.ToLower(key)] }
func (c callCarrier) Set(key, value string) { c.call.SetMetadata(strings.ToLower(key), value) }
func (c callCarrier) Keys() []string        { return metadataCarrier(c.call.Metadata()).Keys() }

// ServerInterceptor returns a router interceptor that makes a server span
// for every call, the child of the trace context found in the request's
// metadata (a new trace without one). The handler's context carries the
// span, so that the handler's own spans and outgoing calls join the trace.
func ServerInterceptor(opts ...Option) router.Interceptor {
	tracer, prop := newConfig(opts)
	return func(next router.HandlerFunc) router.HandlerFunc {
		return func(ctx context.Context, call *router.Call) (proto.Message, error) {
			attrs := methodAttrs(call.Method)
			if tc, ok := transport.CallFromContext(ctx); ok {
				ctx = prop.Extract(ctx, metadataCarrier(tc.Metadata()))
				attrs = append(attrs, keyConn.String(tc.Conn().ID()))
			}
			ctx, span := tracer.Start(ctx, spanName(call.Method),
				trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attrs...))
			// The stream is passed on as it is: a hub delivers to it
			// through the transport, not through Send, so a wrapper
			// would count nothing and could hide the call from the hub.
			res, err := next(ctx, call)
			end(span, err)
			return res, err
		}
	}
}

// ClientInterceptor returns a client interceptor that makes a client span
// for every call, the child of the span in the call's context, and writes
// its trace context into the request's metadata.
func ClientInterceptor(opts ...Option) client.Interceptor {
	tracer, prop := newConfig(opts)
	return clientInterceptor{tracer: tracer, prop: prop}
}

type clientInterceptor struct {
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
}

var _ client.Interceptor = clientInterceptor{}

func (ci clientInterceptor) start(ctx context.Context, call *client.Call) (context.Context, trace.Span) {
	ctx, span := ci.tracer.Start(ctx, spanName(call.Method),
		trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(methodAttrs(call.Method)...))
	ci.prop.Inject(ctx, callCarrier{call})
	return ctx, span
}

// WrapUnary implements client.Interceptor.
func (ci clientInterceptor) WrapUnary(next client.UnaryFunc) client.UnaryFunc {
	return func(ctx context.Context, call *client.Call) (proto.Message, error) {
		ctx, span := ci.start(ctx, call)
		res, err := next(ctx, call)
		end(span, err)
		return res, err
	}
}

// WrapStream implements client.Interceptor.
func (ci clientInterceptor) WrapStream(next client.StreamFunc) client.StreamFunc {
	return func(ctx context.Context, call *client.Call) (client.Stream, error) {
		ctx, span := ci.start(ctx, call)
		s, err := next(ctx, call)
		if err != nil {
			end(span, err, keyReceived.Int64(0))
			return nil, err
		}
		return &tracedStream{Stream: s, span: span}, nil
	}
}

// tracedStream ends its span when the stream ends for its reader.
type tracedStream struct {
	client.Stream
	span trace.Span
	n    atomic.Int64 // Close may run on another goroutine than Receive
	once sync.Once
}

func (s *tracedStream) Receive() bool {
	if s.Stream.Receive() {
		s.n.Add(1)
		return true
	}
	s.once.Do(func() { end(s.span, s.Stream.Err(), keyReceived.Int64(s.n.Load())) })
	return false
}

func (s *tracedStream) Close() error {
	err := s.Stream.Close()
	s.once.Do(func() { end(s.span, nil, keyReceived.Int64(s.n.Load())) })
	return err
}
