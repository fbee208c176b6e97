package client

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/protows/protows/codec"
	"google.golang.org/protobuf/proto"
)

// An Option configures a Client in Dial.
type Option interface {
	apply(*config)
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// TokenSource returns a bearer token (a JWT with the built-in authenticator)
// and when it expires; a zero expiry means it does not. The client calls it
// when it needs a token it does not have: before the first dial, shortly
// before the current token expires (the new one is then presented in band,
// without reconnecting), and after the server expired (close 4009) or
// refused (close 4501, HTTP 401) the current one. So each call should
// return the freshest token available. It is called from the client's own
// goroutines, one call at a time, with a context that ends with the client
// or after the dial timeout.
type TokenSource func(ctx context.Context) (token string, expiry time.Time, err error)

// StateFunc observes the client's state. err says why the client left the
// connected state (nil for Close and for the first connecting). It is called
// from the client's supervising goroutine, one call at a time and in order,
// so it must not block or call Close; send to a buffered channel to hand
// the change to another goroutine.
type StateFunc func(s State, err error)

type config struct {
	codec         codec.Codec
	tokens        TokenSource
	origin        string
	header        http.Header
	tls           *tls.Config
	dialTimeout   time.Duration
	backoff       Backoff
	pingInterval  time.Duration
	pingTimeout   time.Duration
	onState       StateFunc
	logger        *slog.Logger
	maxMessage    int
	streamBuffer  int
	maxInFlight   int
	retryAttempts int
	interceptors  []Interceptor
	rnd           func(int64) int64
	netDial       func(ctx context.Context, network, addr string) (net.Conn, error)
	// beforeOpenSend runs when a server stream (re-)opens, between its
	// registration and the sending of its REQUEST; for tests.
	beforeOpenSend func()
}

func newConfig(opts []Option) config {
	cfg := config{
		codec:         codec.Proto(),
		dialTimeout:   10 * time.Second,
		pingInterval:  15 * time.Second,
		pingTimeout:   10 * time.Second,
		maxMessage:    1 << 20,
		streamBuffer:  256,
		maxInFlight:   128,
		retryAttempts: 3,
		rnd:           randInt64N,
	}
	for _, o := range opts {
		o.apply(&cfg)
	}
	cfg.backoff = cfg.backoff.withDefaults()
	if cfg.logger == nil {
		cfg.logger = slog.New(slog.DiscardHandler)
	}
	return cfg
}

// WithCodec selects the codec, and so the subprotocol the client offers.
// The default is codec.Proto(); codec.JSON() makes the traffic readable.
func WithCodec(c codec.Codec) Option {
	return optionFunc(func(cfg *config) {
		if c != nil {
			cfg.codec = c
		}
	})
}

// WithTokenSource makes the client authenticate: it sends the token as
// "Authorization: Bearer" in every handshake and refreshes it in band
// (AuthService/Authenticate) before it expires. Without it the client is
// anonymous.
func WithTokenSource(ts TokenSource) Option {
	return optionFunc(func(cfg *config) { cfg.tokens = ts })
}

// WithOrigin sets the Origin header of the handshake, for servers whose
// Origin allowlist expects one. Go clients send none by default, which a
// protows server does not check (it is not a browser).
func WithOrigin(origin string) Option {
	return optionFunc(func(cfg *config) { cfg.origin = origin })
}

// WithHeader adds headers to every handshake (a user agent, a trace id).
// Authorization, Origin and the WebSocket headers are set by the client and
// must not be given here.
func WithHeader(h http.Header) Option {
	return optionFunc(func(cfg *config) { cfg.header = h.Clone() })
}

// WithTLSConfig sets the TLS configuration for wss URLs. The default is
// crypto/tls's, which verifies the server against the system roots.
func WithTLSConfig(c *tls.Config) Option {
	return optionFunc(func(cfg *config) { cfg.tls = c })
}

// WithDialTimeout bounds each connection attempt: TCP, TLS and the
// WebSocket handshake. Zero or less keeps the default, 10 s.
func WithDialTimeout(d time.Duration) Option {
	return optionFunc(func(cfg *config) {
		if d > 0 {
			cfg.dialTimeout = d
		}
	})
}

// WithBackoff configures the delays between reconnection attempts; zero
// fields keep their defaults (see Backoff).
func WithBackoff(b Backoff) Option {
	return optionFunc(func(cfg *config) { cfg.backoff = b })
}

// WithHeartbeat configures the application-level heartbeat: the client
// sends a PING every interval and treats a PONG that has not come within
// timeout as a dead link, which it closes and replaces. A half-open link is
// so detected within interval + timeout. The timeout also bounds every
// write. Zero or less keeps the defaults, 15 s and 10 s.
func WithHeartbeat(interval, timeout time.Duration) Option {
	return optionFunc(func(cfg *config) {
		if interval > 0 {
			cfg.pingInterval = interval
		}
		if timeout > 0 {
			cfg.pingTimeout = timeout
		}
	})
}

// WithStateFunc observes the client's state (see StateFunc).
func WithStateFunc(f StateFunc) Option {
	return optionFunc(func(cfg *config) { cfg.onState = f })
}

// WithLogger logs connection events (drops, reconnection attempts, token
// refreshes) at Info and Debug level. The default logs nothing.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(cfg *config) { cfg.logger = l })
}

// WithMaxMessageSize sets the largest WebSocket message the client sends or
// accepts. A request that would exceed it fails locally with
// CodeResourceExhausted instead of making the server close the connection
// (1009); a larger incoming message ends the connection. Zero or less keeps
// the default, 1 MiB, the server's default limit. The limit is symmetric
// (docs/PROTOCOL.md section 11): a protows server sends no message larger
// than its own limit (an oversized reply becomes ERROR
// resource_exhausted), so set the same value on both sides.
func WithMaxMessageSize(n int) Option {
	return optionFunc(func(cfg *config) {
		if n > 0 {
			cfg.maxMessage = n
		}
	})
}

// WithStreamBuffer sets the window of the streams the client reads
// (ServerStream, BidiStream): how many received messages it holds for a
// reader that has not taken them yet. The client grants the server that
// many messages per stream and more as the reader takes them
// (docs/PROTOCOL.md, section 4.6), so a slow reader holds back its own
// stream only, never the connection. A stream to which a server sends more
// than the window (a server that predates flow control) is cancelled and
// ends with CodeResourceExhausted. Zero or less keeps the default, 256; at
// most 2^31-1.
func WithStreamBuffer(n int) Option {
	return optionFunc(func(cfg *config) {
		if n > 0 {
			cfg.streamBuffer = min(n, 1<<31-1)
		}
	})
}

// WithMaxInFlight caps the calls (unary calls and open streams) the client
// has in flight at once. Calls beyond the cap wait for a slot, within their
// context, instead of being refused by the server with
// CodeResourceExhausted. Zero or less keeps the default, 128, the server's
// default limit; set it to the server's limit if that differs.
func WithMaxInFlight(n int) Option {
	return optionFunc(func(cfg *config) {
		if n > 0 {
			cfg.maxInFlight = n
		}
	})
}

// withNetDial replaces the dialing of TCP connections, for tests on an
// in-memory network (internal/memnet) in a testing/synctest bubble.
func withNetDial(dial func(ctx context.Context, network, addr string) (net.Conn, error)) Option {
	return optionFunc(func(cfg *config) { cfg.netDial = dial })
}

// withBeforeOpenSend sets config.beforeOpenSend, for tests.
func withBeforeOpenSend(f func()) Option {
	return optionFunc(func(cfg *config) { cfg.beforeOpenSend = f })
}

// withRand replaces the jitter source, for tests.
func withRand(rnd func(int64) int64) Option {
	return optionFunc(func(cfg *config) { cfg.rnd = rnd })
}

// A CallOption configures one call.
type CallOption interface {
	applyCall(*callConfig)
}

type callOptionFunc func(*callConfig)

func (f callOptionFunc) applyCall(c *callConfig) { f(c) }

type callConfig struct {
	idempotent    bool
	exactlyOnce   bool
	key           string
	noResubscribe bool
	metadata      map[string]string
	replyMD       *map[string]string
	initResponse  func(proto.Message) error
	history       uint32
	from          Position
	onPosition    func(StreamPosition)
}

func newCallConfig(opts []CallOption) callConfig {
	var cc callConfig
	for _, o := range opts {
		o.applyCall(&cc)
	}
	return cc
}

// Idempotent marks a unary call as safe to repeat: when the connection drops
// while it is in flight, the client sends it again on the next connection
// (up to 3 times, within the call's context) instead of failing it with
// CodeUnavailable. Generated clients pass it for methods whose
// idempotency_level is IDEMPOTENT or NO_SIDE_EFFECTS. Without it, nothing is
// retried: the outcome of a call in flight during a drop is unknown.
func Idempotent() CallOption {
	return callOptionFunc(func(c *callConfig) { c.idempotent = true })
}

// ExactlyOnce makes a unary call survive reconnects with an exactly-once
// effect (docs/PROTOCOL.md, section 3.7). The call gets a random
// idempotency key and waits in the client's outbox until it is answered or
// ctx ends: it is sent when the client is connected, and sent again, with
// the same key, on the next connection whenever the connection drops before
// the answer came; calls are sent in the order they were made. The server
// runs the handler once per key and answers every send with that run's
// outcome, within its window (24 h and 100,000 keys by default). An ERROR
// unavailable (a draining or overloaded server) sends the call again after
// a backoff delay, up to 3 times. Give the call a deadline: without one it
// waits for an answer as long as the client lives.
func ExactlyOnce() CallOption {
	return callOptionFunc(func(c *callConfig) { c.exactlyOnce = true })
}

// WithIdempotencyKey is ExactlyOnce with the given key instead of a random
// one: for an application that keeps the key itself (with the request, in
// durable storage) so that a call survives a restart of the client too.
// The key must be fresh for each logical call, 1 to 128 characters of
// printable ASCII; the server refuses (CodeFailedPrecondition) a key it
// knows with another request.
func WithIdempotencyKey(key string) CallOption {
	return callOptionFunc(func(c *callConfig) { c.exactlyOnce, c.key = true, key })
}

// NoResubscribe makes a server stream end with CodeUnavailable when the
// connection drops, instead of being re-opened on the next connection (see
// ServerStream.Gap). Use it for streams whose request must not run twice.
func NoResubscribe() CallOption {
	return callOptionFunc(func(c *callConfig) { c.noResubscribe = true })
}

// WithHistory makes a stream of a room with history start with the room's
// latest n messages (docs/PROTOCOL.md, section 14): on its first opening,
// and whenever a re-opening cannot resume where the stream was (the
// history lost what was missed), so that the application can start again
// from them. The server replays at most its history's bound. Streams of
// rooms without history, and servers without it, ignore it.
func WithHistory(n int) CallOption {
	return callOptionFunc(func(c *callConfig) { c.history = uint32(min(max(n, 0), 1<<32-1)) })
}

// ResumeFrom opens a stream of a room with history after pos, a position
// the application kept (ServerStream.Position) or got from a call that
// reads the history: the stream starts with the messages after it, if the
// history still holds them, and Resumed tells whether it does.
func ResumeFrom(pos Position) CallOption {
	return callOptionFunc(func(c *callConfig) { c.from = pos })
}

// OnPosition makes a stream call f with each STREAM_POSITION the server
// sends for it (docs/PROTOCOL.md, section 14): when the stream of a room
// with history opens or re-opens, f learns at once whether what was missed
// is recovered, even when no message follows. f runs on the connection's
// reading goroutine, before the messages that follow the position are
// queued, and must not block.
func OnPosition(f func(StreamPosition)) CallOption {
	return callOptionFunc(func(c *callConfig) { c.onPosition = f })
}

// WithMetadata sets the request's metadata (docs/PROTOCOL.md, section 3.4).
// Keys should be lower case ASCII.
func WithMetadata(md map[string]string) CallOption {
	return callOptionFunc(func(c *callConfig) { c.metadata = md })
}

// ReplyMetadata makes a unary call store the metadata of its REPLY
// (docs/PROTOCOL.md, section 3.4) in *md when it succeeds: a map the caller
// owns, nil when the server set none. *md is left alone when the call
// fails. Streams ignore it.
func ReplyMetadata(md *map[string]string) CallOption {
	return callOptionFunc(func(c *callConfig) { c.replyMD = md })
}

// WithResponseInitializer makes the call prepare each response message
// before it is decoded: init gets a new, zero *Res (the reply of a unary
// call, each message of a stream) and may set it up. It exists for
// messages that a zero value cannot hold, such as dynamicpb.Message,
// which needs its descriptor:
//
//	init := client.WithResponseInitializer(func(m proto.Message) error {
//		*m.(*dynamicpb.Message) = *dynamicpb.NewMessage(method.Output())
//		return nil
//	})
//	res, err := client.CallUnary[dynamicpb.Message](ctx, c, name, req, init)
//
// An error from init fails the call (unary) or ends the stream with
// CodeInternal.
func WithResponseInitializer(init func(res proto.Message) error) CallOption {
	return callOptionFunc(func(c *callConfig) { c.initResponse = init })
}

// newResponse returns a new *Res, prepared by the call's initializer.
func newResponse[Res any](init func(proto.Message) error) (*Res, proto.Message, error) {
	res := new(Res)
	msg, ok := any(res).(proto.Message)
	if !ok {
		return nil, nil, fmt.Errorf("%T does not implement proto.Message", res)
	}
	if init != nil {
		if err := init(msg); err != nil {
			return nil, nil, fmt.Errorf("initialize the response: %w", err)
		}
	}
	return res, msg, nil
}
