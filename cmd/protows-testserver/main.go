// Command protows-testserver serves protows.test.v1.TestService at /ws for
// the tests of the Go client, the TypeScript runtime and the browser. It
// binds to loopback by default and prints exactly one line,
// "listening on http://HOST:PORT", once it accepts connections.
//
//	protows-testserver -addr 127.0.0.1:0 -auth jwt -static ./dist
//
// GET /runs?text=T answers with the number of times the Echo handler ran
// for the text T (testservice.Runs), for tests of idempotency keys.
//
// With -reflection it serves the reflection service too, so that the
// protows command lists, describes and calls the test service.
//
// With -auth jwt, POST /token?sub=NAME&ttl=DURATION answers with a token
// (text/plain; the expiry in Unix seconds in the X-Expires-At header),
// signed HS256 with a key generated at start, issuer "protows-testserver",
// audience "protows-test". Only loopback clients may mint tokens.
//
// GET /readyz answers 200 until shutdown starts and 503 from then on;
// GET /healthz answers 200 while the server is live (docs/DEPLOYMENT.md).
//
// SIGTERM or SIGINT shuts down gracefully: /readyz fails at once, running
// calls finish, then every connection closes with 1001.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/protows/protows/internal/testservice"
	"github.com/protows/protows/reflection"
	"github.com/protows/protows/router"
	"github.com/protows/protows/transport"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "protows-testserver:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		addr         = flag.String("addr", "127.0.0.1:0", "listen address")
		authMode     = flag.String("auth", "none", "authentication: none or jwt")
		static       = flag.String("static", "", "directory served at /")
		origins      = flag.String("allow-origin", "", "comma-separated allowed origins (default: same origin only)")
		sendQueue    = flag.Int("send-queue", 0, "send queue per connection, in envelopes (0: default 1024)")
		queueBytes   = flag.Int64("send-queue-bytes", 0, "send queue per connection, in bytes (0: default 4 MiB; negative: no byte limit)")
		maxCalls     = flag.Int("max-calls", 0, "calls running at once on the server; beyond: close 1013 (0: no limit)")
		authTimeout  = flag.Duration("auth-timeout", 0, "in-band authentication deadline (0: default 10s)")
		maxMsg       = flag.Int64("max-message-size", 0, "largest message in bytes (0: default 1 MiB)")
		maxInFlight  = flag.Int("max-in-flight", 0, "calls in flight per connection (0: default 128)")
		pingEvery    = flag.Duration("ping-interval", 0, "WebSocket ping interval (0: default 25s)")
		readTimeout  = flag.Duration("read-timeout", 0, "heartbeat read timeout (0: default 60s)")
		writeTimeout = flag.Duration("write-timeout", 0, "deadline of every write (0: default 10s)")
		rateLimit    = flag.Float64("rate-limit", 0, "envelopes per second per connection (0: default 1000; negative: no limit)")
		compress     = flag.Bool("compression", false, "negotiate permessage-deflate")
		reflect      = flag.Bool("reflection", false, "serve protows.reflection.v1.ReflectionService (for the protows command)")
		verbose      = flag.Bool("v", false, "log debug messages to stderr")
	)
	flag.Parse()

	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	runs := &testservice.Runs{}
	r := router.New(router.WithLogger(logger), router.WithInterceptors(runs.Interceptor))
	if err := testservice.Register(r); err != nil {
		return err
	}
	if *reflect {
		if err := reflection.Register(r); err != nil {
			return err
		}
	}
	cfg := transport.Config{
		SendQueue:         *sendQueue,
		MaxQueueBytes:     *queueBytes,
		MaxCalls:          *maxCalls,
		AuthTimeout:       *authTimeout,
		MaxMessageSize:    *maxMsg,
		MaxInFlight:       *maxInFlight,
		PingInterval:      *pingEvery,
		ReadTimeout:       *readTimeout,
		WriteTimeout:      *writeTimeout,
		RateLimit:         *rateLimit,
		EnableCompression: *compress,
		Logger:            logger,
	}
	if *origins != "" {
		cfg.AllowedOrigins = strings.Split(*origins, ",")
	}
	mux := http.NewServeMux()
	switch *authMode {
	case "none":
	case "jwt":
		iss, err := testservice.NewTokenIssuer()
		if err != nil {
			return err
		}
		cfg.Authenticator = iss.Authenticator()
		mux.HandleFunc("POST /token", tokenHandler(iss))
	default:
		return fmt.Errorf("-auth must be none or jwt, not %q", *authMode)
	}
	ws := transport.NewServer(r, cfg)
	mux.Handle("/ws", ws)
	mux.Handle("GET /readyz", ws.ReadyHandler())
	mux.Handle("GET /healthz", ws.LiveHandler())
	mux.Handle("GET /runs", runs)
	if *static != "" {
		mux.Handle("/", http.FileServer(http.Dir(*static)))
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	hs := transport.NewHTTPServer("", mux) // ReadHeaderTimeout against slowloris
	hs.ErrorLog = slog.NewLogLogger(logger.Handler(), slog.LevelWarn)
	// Signals are caught before the address is printed: a test that reads
	// the line and sends SIGTERM at once must get a graceful shutdown.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	fmt.Printf("listening on http://%s\n", ln.Addr())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The transport first, so that /readyz answers 503 while the
	// connections drain; then the HTTP server (hijacked WebSockets are
	// not its).
	werr := ws.Shutdown(sctx)
	_ = hs.Shutdown(sctx)
	if werr != nil {
		return fmt.Errorf("shutdown: %w", werr)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// tokenHandler mints a token: POST /token?sub=NAME&ttl=DURATION.
func tokenHandler(iss *testservice.TokenIssuer) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			http.Error(w, "tokens are minted for loopback clients only", http.StatusForbidden)
			return
		}
		sub := r.URL.Query().Get("sub")
		if sub == "" {
			http.Error(w, "sub is required", http.StatusBadRequest)
			return
		}
		ttl := time.Hour
		if s := r.URL.Query().Get("ttl"); s != "" {
			d, err := time.ParseDuration(s)
			if err != nil {
				http.Error(w, "ttl: "+err.Error(), http.StatusBadRequest)
				return
			}
			ttl = d
		}
		tok, exp, err := iss.Mint(sub, ttl)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Expires-At", strconv.FormatInt(exp.Unix(), 10))
		w.Header().Set("Cache-Control", "no-store")
		_, _ = fmt.Fprint(w, tok)
	}
}
