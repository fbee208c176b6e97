package transport

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/protows/protows/codec"
	"github.com/protows/protows/dedupe"
)

// Defaults of the protocol's limits table (docs/PROTOCOL.md, section 11).
// A zero Config field means the default.
const (
	// DefaultMaxMessageSize is the largest message, after decompression.
	DefaultMaxMessageSize = 1 << 20
	// DefaultMaxInFlight is the most calls running on one connection.
	DefaultMaxInFlight = 128
	// DefaultRateLimit is the envelopes per second a connection may send.
	DefaultRateLimit = 1000
	// DefaultRateBurst is the size of the rate limit's token bucket.
	DefaultRateBurst = 2000
	// DefaultSendQueue is the most envelopes queued for one connection.
	DefaultSendQueue = 1024
	// DefaultMaxQueueBytes is the most bytes queued for one connection:
	// four of the largest messages a client may send.
	DefaultMaxQueueBytes = 4 << 20
	// DefaultAuthTimeout is the in-band authentication deadline.
	DefaultAuthTimeout = 10 * time.Second
	// DefaultPingInterval is the period of WebSocket pings.
	DefaultPingInterval = 25 * time.Second
	// DefaultReadTimeout is how long a connection may stay silent.
	DefaultReadTimeout = 60 * time.Second
	// DefaultWriteTimeout is the deadline of every write.
	DefaultWriteTimeout = 10 * time.Second
	// DefaultHandshakeTimeout bounds the handshake's authentication and
	// response.
	DefaultHandshakeTimeout = 10 * time.Second
	// DefaultCompressionMinSize is the smallest frame compressed when
	// compression is on.
	DefaultCompressionMinSize = 1024
	// DefaultDrainTimeout bounds how long a draining connection waits for
	// its handlers.
	DefaultDrainTimeout = 30 * time.Second
	// DefaultRetryAfter is the delay suggested with HTTP 503.
	DefaultRetryAfter = 5 * time.Second
	// DefaultStreamWindow is the initial window of the client's stream
	// messages on a client-streaming or bidirectional call.
	DefaultStreamWindow = 16
	// DefaultInlineCallFor is how long the reader runs a unary call
	// itself before it hands reading on (Config.InlineCallFor).
	DefaultInlineCallFor = 50 * time.Microsecond
	// DefaultReadBufferSize is small on purpose: gorilla holds the read
	// buffer for the life of a connection, so it dominates the heap of an
	// idle connection. Larger messages are read in several reads, which
	// costs nothing measurable: 512 against 1024 bytes made no difference
	// to small echo and helped 1 KB echo (benchmarks/RESULTS.md).
	DefaultReadBufferSize = 512
)

// AuthenticateMethod is the full name of the built-in in-band
// authentication method, which the transport serves itself.
const AuthenticateMethod = "/protows.v1.AuthService/Authenticate"

// Config configures a Server. The zero value is a working, safe server:
// Protobuf (default) and JSON codecs, same-origin only, no authentication,
// and the limits of docs/PROTOCOL.md section 11.
type Config struct {
	// Codecs are the codecs offered in the handshake. Nil means
	// codec.DefaultRegistry() (Protobuf default, then JSON).
	Codecs *codec.Registry

	// AllowedOrigins lists the browser origins allowed to connect: exact
	// origins ("https://app.example.com") or one leading wildcard label
	// ("https://*.example.com"). Empty means same origin only (the
	// request's own scheme, host and port). A handshake without an Origin
	// header (a non-browser client) is not checked. The entry "*" allows
	// every origin: only for servers that authenticate every connection
	// with a token and use no cookies (NewServer logs a warning).
	AllowedOrigins []string
	// AllowedHosts lists the hosts this server answers to, as the Host
	// header names them: a host name or IP literal, with a port
	// ("localhost:8080") or without one (any port). A handshake whose Host
	// is not listed is refused with 403, whether it comes from a browser
	// or not. Empty means: when AllowedOrigins is empty too (same origin
	// only), a browser's handshake (one with an Origin header) that
	// arrived on a loopback address must name a loopback host
	// ("localhost", a name under ".localhost", 127.0.0.0/8, [::1]), and
	// others are not checked. The same-origin rule trusts the Host, which
	// is whatever name the browser resolved: without this check a page on
	// http://evil.example:8080 whose name resolves to the server's address
	// (DNS rebinding) would pass as the server's own origin. A server
	// reached by names of its own on a private network should list them
	// here (or set AllowedOrigins).
	AllowedHosts []string

	// Authenticator validates tokens. Nil means every connection is
	// anonymous and Authenticate is answered with unimplemented.
	Authenticator Authenticator
	// Authorize decides whether an authenticated principal may use this
	// server, after its token was validated: in the handshake (once the
	// connection is upgraded) and on every in-band Authenticate, first or
	// refresh. A non-nil error (logged, never sent) closes the connection
	// with 4503 (forbidden), after ERROR permission_denied (id 0 for a
	// handshake token, the Authenticate call's id in band). Nil allows
	// every authenticated principal. It runs on the connection's read
	// loop, bounded by HandshakeTimeout (handshake) or AuthTimeout (in
	// band), and must be safe for concurrent use.
	Authorize func(ctx context.Context, c *Conn, p *Principal) error
	// AuthTimeout is how long a connection that did not authenticate in
	// the handshake has to call Authenticate in band. Zero means
	// DefaultAuthTimeout.
	AuthTimeout time.Duration
	// AllowQueryToken accepts a token in the "access_token" query
	// parameter. False (the default) refuses such handshakes with HTTP
	// 400, because URLs end up in logs.
	AllowQueryToken bool

	// MaxConns caps the open connections of the server. Zero means no
	// limit. Beyond it handshakes get HTTP 503 with Retry-After.
	MaxConns int
	// MaxConnsPerIP caps the open connections per client IP (the host of
	// the request's RemoteAddr, or ClientIP). Zero means no limit.
	MaxConnsPerIP int
	// ClientIP returns the client address used for MaxConnsPerIP and logs.
	// Nil means the host part of http.Request.RemoteAddr; set it when a
	// trusted proxy sits in front of the server (see the example: believe
	// X-Forwarded-For only from the proxy, and only its last entry).
	ClientIP func(*http.Request) string
	// RetryAfter is the delay suggested with HTTP 503. Zero means
	// DefaultRetryAfter.
	RetryAfter time.Duration

	// MaxMessageSize is the largest message accepted, after decompression.
	// Zero means DefaultMaxMessageSize. Larger messages close with 1009.
	// The limit is symmetric: the server sends no message larger either
	// (PROTOCOL.md section 11), so configure clients with the same value.
	// A reply over it is replaced by ERROR resource_exhausted, an error
	// has its message cut, a stream message is refused to Call.Send
	// (ErrMessageTooLarge); the connection stays.
	MaxMessageSize int64
	// MaxInFlight is the most calls that run at once on one connection.
	// Zero means DefaultMaxInFlight. Excess requests get ERROR
	// resource_exhausted.
	MaxInFlight int
	// RateLimit is the sustained number of envelopes per second a
	// connection may send, with RateBurst the bucket size; WebSocket ping
	// and pong frames count as envelopes (a ping costs a pong written).
	// Zero means the defaults; a negative RateLimit disables the limit.
	// Exceeding it closes the connection with 4029.
	RateLimit float64
	// RateBurst is the token bucket size of RateLimit. Zero means
	// DefaultRateBurst.
	RateBurst int
	// SendQueue is the most envelopes queued for one connection. Zero
	// means DefaultSendQueue. Room broadcasts that overflow it close the
	// connection with 4008; answers to the client's own calls (PONGs,
	// replies, errors, STREAM_ENDs, CREDITs, and the stream messages of
	// Call.Send) wait while the queue holds half of it or half of
	// MaxQueueBytes (back-pressure, docs/PROTOCOL.md section 4.7), and
	// while the reader waits it reads no more, so a client that sends
	// faster than it reads its answers is slowed down by TCP, not cut off.
	SendQueue int
	// MaxQueueBytes is the most bytes of encoded envelopes held for one
	// connection: queued, plus the batch the writer is writing. Zero means
	// DefaultMaxQueueBytes; a negative value disables the byte limit
	// (SendQueue still applies). An envelope that would take the bytes
	// held beyond it counts as an overflow (see SendQueue), except that
	// when nothing is held one envelope of any size (at most
	// MaxMessageSize) is taken: the bytes held never exceed
	// max(MaxQueueBytes, MaxMessageSize). Beside them the writer holds a
	// copy of the frame it is writing (at most 64 KiB, or one envelope).
	// A broadcast shared by many connections counts in full on each of
	// them.
	MaxQueueBytes int64

	// StreamWindow is the initial window, in messages, that the server
	// grants the client's STREAM_MESSAGEs on each client-streaming or
	// bidirectional call, and the most of them it holds for a handler that
	// has not read them; it grants more as the handler reads
	// (docs/PROTOCOL.md, section 4.6). Zero means DefaultStreamWindow. It
	// is at most 2^31-1.
	StreamWindow int

	// MaxCalls caps the calls running at once on the whole server (all
	// connections). Zero means no limit. A REQUEST beyond it means the
	// server is overloaded: that REQUEST gets ERROR unavailable, the
	// connection's other server streams end with STREAM_END unavailable,
	// its unary calls finish and get their replies, new REQUESTs get
	// ERROR unavailable, and the connection then closes with 1013 (try
	// again later). Shedding whole connections, rather than refusing
	// single calls, moves their clients to less loaded servers.
	MaxCalls int

	// DrainTimeout bounds how long a draining connection (Server.Shutdown,
	// or MaxCalls shedding it) waits for its running handlers before it
	// closes. Zero means DefaultDrainTimeout. When it expires, the calls
	// still running end with ERROR unavailable, their contexts are
	// cancelled, and the connection closes with 1001 (or 1013) after what
	// is queued, so that a handler that ignores its context cannot hold
	// its connection open. Shutdown's context still bounds the whole
	// shutdown: when it expires first, connections are dropped.
	DrainTimeout time.Duration

	// PingInterval is the period of WebSocket pings. Zero means
	// DefaultPingInterval.
	PingInterval time.Duration
	// ReadTimeout closes a connection from which nothing (frame or pong)
	// arrived for this long, with 4002. Zero means DefaultReadTimeout.
	ReadTimeout time.Duration
	// WriteTimeout is the deadline of every write. Zero means
	// DefaultWriteTimeout.
	WriteTimeout time.Duration
	// DisableBatching makes the writer send every envelope in its own
	// WebSocket message (one write each), and skip the yield that lets
	// concurrent replies share a frame. False (the default) joins what is
	// queued into as few frames as possible, which saves a write system
	// call per envelope; the switch exists to measure that saving and for
	// peers that cannot decode batched frames (every protows client can).
	DisableBatching bool
	// InlineCallFor is how long the reader of a busy connection runs a
	// unary call itself, on its own goroutine, before a worker takes over
	// reading while the call goes on. A call that returns sooner, as most
	// do, costs no hand-off to a worker goroutine: under load that
	// hand-off was the largest source of queueing delay, and the reason
	// protows's p99 latency exceeded raw gorilla's (docs/DECISIONS.md).
	// The connection's next message waits meanwhile, for this long at
	// most (plus the scheduling delay of a busy server). Zero means
	// DefaultInlineCallFor; a negative value runs every call on a worker
	// goroutine, as streams and client-streaming calls always are.
	InlineCallFor time.Duration
	// WriteDelay holds the writer back this long after it was woken
	// before it writes, so that more envelopes join the frame: fewer
	// writes at the cost of that much added latency. Zero (the default)
	// writes at once. A ping or close frame with nothing queued before it
	// is not delayed, and Shutdown waits at most this long more per
	// connection; keep it to milliseconds. With DisableBatching the delay
	// still applies, but each envelope goes out in its own frame.
	WriteDelay time.Duration
	// HandshakeTimeout bounds the authentication of a handshake token and
	// the write of the upgrade response. Zero means
	// DefaultHandshakeTimeout. Set http.Server.ReadHeaderTimeout too (see
	// the package documentation): only the HTTP server can bound the time
	// to read the request headers.
	HandshakeTimeout time.Duration

	// EnableCompression negotiates permessage-deflate when a client offers
	// it. False (the default) never compresses.
	EnableCompression bool
	// CompressionMinSize is the smallest frame that is compressed when
	// compression is on. Zero means DefaultCompressionMinSize.
	CompressionMinSize int
	// ReadBufferSize is the size of the per-connection read buffer. Zero
	// means DefaultReadBufferSize.
	ReadBufferSize int

	// ConnMetadata picks what a connection keeps of its handshake request
	// (a user agent, a request id), for handlers to read with
	// Conn.Metadata. Nil keeps nothing: the request itself is not kept, to
	// keep idle connections small.
	ConnMetadata func(*http.Request) map[string]string

	// Dedupe is the window of idempotency keys (docs/PROTOCOL.md, section
	// 3.6): where the outcomes of calls made with a key are kept, so that
	// a repeated send of such a call gets the first outcome instead of
	// running the handler again. Nil means a dedupe.Memory of this server
	// with the default bounds; a cluster whose clients may reconnect to
	// another node shares one window (dedupe/natsdedupe). A store with a
	// method Prefetch(dedupe.Key) dedupe.Hint is given each keyed call's
	// key as soon as the REQUEST is read, and its claim the Hint
	// (dedupe.Memory.Prefetch).
	Dedupe dedupe.Store

	// Logger receives the server's structured logs. Nil means
	// slog.Default().
	Logger *slog.Logger
	// ConnLogLevel is the level of the two lines each connection logs:
	// "protows: connection open" (conn id, remote address, client IP,
	// subprotocol, subject when authenticated in the handshake) and
	// "protows: connection closed" (the same ids, the close code sent or
	// received, 1006 when none, its reason and how long the connection
	// lived). The zero value is slog.LevelInfo; slog.LevelDebug keeps them
	// out of a busy server's logs, and a level below the Logger's minimum
	// (slog.LevelDebug-4 for most handlers) turns them off.
	ConnLogLevel slog.Level
	// Metrics receives the server's measurements. Nil means none.
	Metrics Metrics
}

// withDefaults returns c with every zero field replaced by its default.
func (c Config) withDefaults() Config {
	if c.Codecs == nil {
		c.Codecs = codec.DefaultRegistry()
	}
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.AuthTimeout, DefaultAuthTimeout)
	def(&c.RetryAfter, DefaultRetryAfter)
	def(&c.DrainTimeout, DefaultDrainTimeout)
	def(&c.PingInterval, DefaultPingInterval)
	def(&c.ReadTimeout, DefaultReadTimeout)
	def(&c.WriteTimeout, DefaultWriteTimeout)
	def(&c.HandshakeTimeout, DefaultHandshakeTimeout)
	if c.InlineCallFor == 0 {
		c.InlineCallFor = DefaultInlineCallFor
	}
	if c.MaxMessageSize <= 0 {
		c.MaxMessageSize = DefaultMaxMessageSize
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.RateLimit == 0 {
		c.RateLimit = DefaultRateLimit
	}
	if c.RateBurst <= 0 {
		c.RateBurst = DefaultRateBurst
	}
	if c.SendQueue <= 0 {
		c.SendQueue = DefaultSendQueue
	}
	if c.MaxQueueBytes == 0 {
		c.MaxQueueBytes = DefaultMaxQueueBytes
	}
	if c.StreamWindow <= 0 {
		c.StreamWindow = DefaultStreamWindow
	}
	c.StreamWindow = min(c.StreamWindow, maxWindow)
	if c.CompressionMinSize <= 0 {
		c.CompressionMinSize = DefaultCompressionMinSize
	}
	if c.ReadBufferSize <= 0 {
		c.ReadBufferSize = DefaultReadBufferSize
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Dedupe == nil {
		c.Dedupe = dedupe.NewMemory(dedupe.MemoryConfig{})
	}
	if c.Metrics == nil {
		c.Metrics = NopMetrics{}
	}
	return c
}
