// Package transport is the protows WebSocket server: the handshake, the
// connection's read loop and single writer, authentication, heartbeats,
// limits and graceful shutdown. It implements docs/PROTOCOL.md and hands
// each call to a Handler (in practice a router.Router).
//
//	r := router.New()
//	_ = chatv1.RegisterChatServiceHandler(r, svc)
//	srv := transport.NewServer(r, transport.Config{
//		AllowedOrigins: []string{"https://chat.example.com"},
//		Authenticator:  auth, // e.g. jwtauth.New(...)
//	})
//	mux := http.NewServeMux()
//	mux.Handle("/ws", srv)
//	mux.Handle("GET /readyz", srv.ReadyHandler()) // 503 from the start of Shutdown
//	mux.Handle("GET /healthz", srv.LiveHandler())
//	hs := transport.NewHTTPServer(":8080", mux) // ReadHeaderTimeout: slowloris
//	go hs.ListenAndServe()
//	...
//	srv.Shutdown(ctx) // not ready; ends streams, drains unary calls, closes with 1001
//	hs.Shutdown(ctx)  // then stop accepting HTTP: the probes answered meanwhile
//
// # Defaults
//
// The zero Config is a safe server with the limits of the protocol's
// section 11: messages up to 1 MiB (after decompression; larger close
// with 1009), 128 calls in flight per connection (the excess gets ERROR
// resource_exhausted), 1000 envelopes per second with a burst of 2000,
// WebSocket ping and pong frames included (beyond: close 4029), a send
// queue of 1024 envelopes and 4 MiB (answers to a client's calls wait at
// half of it, room broadcasts that overflow it close 4008), a window of 16
// of a client's stream messages per call (StreamWindow), no server-wide
// limit of running calls (Config.MaxCalls), pings every 25 s, a read
// timeout of 60 s (close 4002), a write deadline of 10 s on every write, a
// handshake timeout of 10 s, and an in-band authentication deadline of 10
// s (close 4501). Text messages must be UTF-8 (RFC 6455; otherwise close
// 1007).
//
// # Handshake
//
// A handshake is refused before the upgrade, with a plain-text body: 400
// for a request that is not a WebSocket upgrade, for subprotocols of which
// none is supported, and for a token in the URL query (access_token or
// token; AllowQueryToken lifts this); 401 with WWW-Authenticate for an
// invalid Authorization bearer token; 403 for an Origin that is not
// allowed, or a Host the server does not serve (see Origin
// considerations); 503 with Retry-After when MaxConns or MaxConnsPerIP is reached
// or the server is shutting down. A failed upgrade is logged and never
// followed by a write. The HTTP server must set ReadHeaderTimeout itself
// (slowloris): the Server only sees requests whose headers were read.
// NewHTTPServer returns an http.Server with it and the other safe
// timeouts, which end with the handshake: upgraded connections get the
// transport's own deadlines.
//
// Behind a reverse proxy, set Config.ClientIP so that MaxConnsPerIP and
// the logs see clients rather than the proxy (see the example of
// Config.ClientIP: trust X-Forwarded-For only from the proxy, and only its
// last entry).
//
// # Origin considerations
//
// Browsers let any page open a WebSocket to any server, sending the page's
// Origin; cookies go along. The default therefore allows only the
// request's own origin (scheme, host and port), and, because the
// request's host is whatever name the browser resolved (DNS rebinding),
// only hosts the server serves: Config.AllowedHosts, or without it, on a
// loopback address, loopback names only (403 otherwise). AllowedOrigins takes exact
// origins and patterns with one leading wildcard label:
// "https://*.example.com" matches "https://a.example.com" but neither
// "https://example.com", "https://a.b.example.com" nor
// "https://a.example.com.evil.com". The origin "null" (sandboxed frames,
// file: pages) never matches. "*" allows every origin, explicitly (and
// with a warning in the log). Requests without Origin (non-browser
// clients) are not checked: authenticate them. Behind a TLS-terminating
// proxy the request looks like plain HTTP, so list the public origin.
//
// # Authentication
//
// With an Authenticator, a connection is authenticated by an
// Authorization bearer token in the handshake or, for browsers, by calling
// AuthenticateMethod in band before AuthTimeout. Until then every other
// request gets ERROR unauthenticated. A failed first Authenticate gets
// ERROR unauthenticated and close 4501; a failed refresh keeps the current
// credential; a refresh with another subject gets permission_denied. When
// the credential expires without a refresh the connection closes with
// 4009. Handlers read the principal with ConnFromContext(ctx).Principal().
// Config.Authorize then decides whether an authenticated principal may use
// the server at all, at the handshake and on every in-band Authenticate
// (a refresh too): a refusal gets ERROR permission_denied and close 4503.
// The in-band Authenticate runs on the connection's read loop, so requests
// after it in the same frame already see its outcome.
//
// # Concurrency
//
// Each connection has one reader goroutine and, only while there is
// something to write, one writer goroutine: an idle connection costs a
// single goroutine, a small read buffer and no write buffer (write buffers
// come from a pool). The reader parks with the smallest stack Go gives a
// goroutine (2 KiB) while its connection is idle: after the first few
// messages of a connection, and of every run of messages that follows a
// silence (10 ms or more), it hands reading on to a fresh goroutine, so a
// stack grown to process messages is not held through the silence that
// likely follows. Requests start in arrival order and run concurrently,
// so replies of different calls may come in any order; the envelopes of
// one call keep their order. The reader runs a unary call itself, once the
// message that carried it was processed, when its connection is busy
// (the reader is not about to hop): most handlers return within
// microseconds, and the hand-off to another goroutine would cost more in
// queueing delay under load than they take to run. A unary call still
// running after Config.InlineCallFor (50 µs by default) goes on where it
// is while a worker takes over reading, so a slow handler holds up its
// connection's next message for that long at most; a negative
// InlineCallFor gives every call a goroutine from the start. Streams,
// client-streaming calls, a frame's second and later unary requests, the
// calls of a connection that is not busy, and writers run on the Server's worker goroutines, which wait up to a second
// for their next task before they exit, so that a busy server does not
// start a goroutine and grow its stack for every call and every burst of
// replies; Shutdown ends them. The goroutine of a unary call whose handler
// returned writes the REPLY itself when no writer runs (write-through),
// rather than wake a worker to. A server stream that lasts as
// long as its client wants, such as a room membership, need not keep its
// goroutine: its handler detaches the call (Call.Detach) and returns, and
// the call stays open until Finish or until it is cancelled, ending then
// as if its handler had returned (package hub's Attach does this).
//
// Everything sent to a connection goes through its bounded send queue.
// The writer joins what is queued into as few frames as possible (up to
// 1024 envelopes or 64 KiB per frame), with a write deadline on each;
// while more handlers of the connection run than envelopes are queued, or
// when fewer than 16 envelopes are queued, it yields to the scheduler
// before it writes, and again while its queue grew meanwhile (at most 8
// times), so that replies finishing at the same time, and broadcasts
// published one after the other, share one frame and one write.
// Config.DisableBatching turns this off (one envelope per frame and
// write); Config.WriteDelay makes the writer wait a little before each
// write so that more envelopes share it (benchmarks/RESULTS.md measures
// both).
// While the read loop processes an incoming frame it holds the writer back,
// so the answers to one frame of requests (PONGs, refusals) leave as one
// frame.
// Conn.Enqueue takes an envelope already encoded with the connection's
// codec (codec.Codec.AppendEnvelope) and never modifies or keeps it after
// writing, so a broadcast encodes once per codec and queues the same bytes
// on every member's connection; Conn.EnqueueParts and Call.EnqueueParts
// take an envelope in pieces (codec.Parts), so that members with envelopes
// of their own share the payload and the writer copies it once, into the
// frame. These enqueues never wait: a full queue (Config.SendQueue
// envelopes or Config.MaxQueueBytes bytes) closes the connection with 4008
// at once (the queue is dropped, memory stays bounded) and the enqueue
// returns ErrSlowConsumer; other connections are not affected. A
// Call.EnqueueParts for a flow-controlled stream without credit ends that
// stream with STREAM_END resource_exhausted (ErrNoCredit).
//
// Everything else the server sends for a client's own calls waits instead
// (back-pressure, docs/PROTOCOL.md section 4.7): Call.Send waits for the
// call's credit and for the queue to be below half its limits; PONGs,
// refusals, CREDITs and the REPLY, ERROR or STREAM_END of a call wait for
// the same room, and while the reader waits it reads nothing more, so TCP
// slows down a client that sends faster than it reads, and the write
// timeout cuts off one that reads nothing. A client that reads promptly is
// never closed with 4008 because of its own calls. Call.Receive reads the
// client's messages of a client-streaming or bidirectional call and grants
// credit for more as it reads. No message larger than Config.MaxMessageSize
// is sent, the limit of what the server accepts (a symmetric limit): an
// oversized reply becomes ERROR resource_exhausted for its call, an
// oversized stream message is refused to the sender with
// ErrMessageTooLarge.
//
// CANCEL ends a call at once with ERROR canceled (unary) or STREAM_END
// canceled (stream) and then cancels the handler's context; what the
// handler sends or returns afterwards is discarded. The end is queued
// first, so code that sends to a stream from outside its handler (a
// broadcast) must go through Call.Send or Call.Enqueue, which refuse with
// ErrCallEnded once the call ended: Conn.Enqueue would put the message
// after the STREAM_END.
//
// # Overload and internal errors
//
// Config.MaxCalls bounds the calls running on the whole server. A REQUEST
// beyond it sheds its connection: ERROR unavailable for it, STREAM_END
// unavailable for the connection's streams, replies for its unary calls,
// then close 1013, so that the client reconnects, perhaps to another
// server. An envelope the transport cannot encode, even as a fallback
// ERROR internal, closes the connection with 1011; only a broken codec
// gets there. What a handler returns that its codec refuses (reply
// metadata that is not UTF-8, with Protobuf) ends its call with ERROR
// internal instead, and an error message that is not UTF-8 is repaired.
//
// # Shutdown
//
// Server.Shutdown refuses new handshakes (503) and new calls (ERROR
// unavailable), ends every server stream at once with STREAM_END
// unavailable and cancels its handler's context (a subscription, such as a
// hub's Join, returns then), lets running unary handlers finish and writes
// their replies, then closes every connection with 1001 and waits for the
// connection goroutines to end. Stream handlers must watch their context
// (after the STREAM_END, Send returns ErrCallEnded). A connection whose
// handlers have not all returned after Config.DrainTimeout (30 s) ends
// their calls with ERROR unavailable, cancels them and closes with 1001
// all the same, so a handler that ignores its context cannot hold its
// connection open. When Shutdown's context expires, the remaining calls
// are cancelled, connections are dropped and Shutdown returns.
//
// # Health probes
//
// Server.ReadyHandler serves a load balancer's readiness probe: 200 until
// Shutdown starts, 503 from then on (set before any connection is told to
// leave), and 503 while any ReadyCheck given to it fails (a broker's
// connection, say). Server.LiveHandler serves a liveness probe, which
// stays 200 through a drain and fails only when the server's bookkeeping
// is wedged. Call Server.Shutdown before http.Server.Shutdown, so that the
// probes are answered while the connections drain (docs/DEPLOYMENT.md).
//
// # Observability
//
// Logs go to Config.Logger (log/slog). Each connection logs one line when
// it opens and one when it closes (with the close code, its reason and the
// connection's lifetime) at Config.ConnLogLevel, Info by default.
// Measurements go to Config.Metrics (LoadMetrics adds shed connections);
// the prommetrics package adapts them to Prometheus, jwtauth provides a JWT
// Authenticator. Both are separate packages so that servers that do not
// use them do not link their dependencies.
package transport
