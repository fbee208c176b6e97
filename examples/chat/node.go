package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	chatv1 "github.com/protows/protows/gen/go/examples/chat/v1"
	"github.com/protows/protows/hub"
	"github.com/protows/protows/hub/natsbroker"
	hubmetrics "github.com/protows/protows/hub/prommetrics"
	"github.com/protows/protows/reflection"
	"github.com/protows/protows/router"
	"github.com/protows/protows/transport"
	"github.com/protows/protows/transport/prommetrics"
)

// natsSubject is the subject the demo's hubs share on NATS.
const natsSubject = "protows.chat"

// Where rooms keep their history (nodeConfig.History, -history).
const (
	historyMemory    = "memory"
	historyJetStream = "jetstream"
	historyOff       = "off"
)

// historyLimits bound each room's history: the latest 1000 messages of the
// last 24 hours.
var historyLimits = hub.HistoryLimits{Messages: 1000, Age: 24 * time.Hour}

// historyStream is the JetStream stream of the demo's history.
const historyStream = "PROTOWS_CHAT"

// nodeConfig configures one demo server node.
type nodeConfig struct {
	// Listener is where the node serves; it owns it from then on.
	Listener net.Listener
	// Origins are the page origins allowed to connect. Empty means the
	// listener's own (defaultOrigins).
	Origins []string
	// TokenTTL is the lifetime of the tokens of POST /token.
	TokenTTL time.Duration
	// Name names the node among the nodes of a cluster. Empty means a
	// random name.
	Name string
	// NATSURL joins the node to the others through NATS. Empty means the
	// node is alone (the in-memory hub).
	NATSURL string
	// Reflection serves protows server reflection, so that the protows
	// command lists, describes and calls the chat service.
	Reflection bool
	// History is where rooms keep their history (docs/PROTOCOL.md,
	// section 14): historyMemory (the default), historyJetStream (NATS
	// JetStream, shared by the nodes; needs NATSURL) or historyOff.
	History string
	// Web is the page's files. Nil means the embedded build.
	Web fs.FS
	// Logger receives the logs. Nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
}

// node is one running demo server: the page, the token endpoint and the
// WebSocket endpoint, over a hub that may share its rooms through NATS.
type node struct {
	name    string
	url     string
	origins []string
	hub     *hub.Hub[*chatv1.RoomEvent]
	typing  *hub.Hub[*chatv1.TypingEvent] // the typing indicators (typing.go)
	ws      *transport.Server
	hs      *http.Server
	nc      *nats.Conn
	tokens  *tokens
	served  chan error
}

// startNode starts serving on cfg.Listener.
func startNode(cfg nodeConfig) (_ *node, err error) {
	defer func() {
		if err != nil {
			_ = cfg.Listener.Close()
		}
	}()
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Web == nil {
		if cfg.Web, err = webFiles(); err != nil {
			return nil, err
		}
	}
	origins := cfg.Origins
	if len(origins) == 0 {
		if origins, err = defaultOrigins(cfg.Listener.Addr()); err != nil {
			return nil, err
		}
	}
	toks, err := newTokens(cfg.TokenTTL, cfg.Now)
	if err != nil {
		return nil, err
	}

	n := &node{url: "http://" + cfg.Listener.Addr().String(), origins: origins, tokens: toks, served: make(chan error, 1)}
	// Each node has its own registry (no global state): the nodes of
	// -cluster share a process but not their figures.
	reg := prometheus.NewRegistry()
	metrics, err := prommetrics.New(reg)
	var roomMetrics *hubmetrics.Metrics
	if err == nil {
		roomMetrics, err = hubmetrics.New(reg)
	}
	if err == nil {
		err = reg.Register(collectors.NewGoCollector())
	}
	if err == nil {
		err = reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	pres := newPresence(cfg.Now)
	var typingBroker hub.Broker // nil: alone, as the room hub
	hcfg := hub.Config[*chatv1.RoomEvent]{
		Node:     cfg.Name,
		Presence: pres.event,
		Logger:   cfg.Logger,
		Metrics:  roomMetrics,
		// Each room keeps its latest messages (docs/PROTOCOL.md section
		// 14): the page shows them on entry, and a page that lost its
		// connection gets what it missed when it comes back.
		History: hub.NewMemoryHistory(hub.HistoryLimits{}),
	}
	if cfg.NATSURL != "" {
		n.nc, err = nats.Connect(cfg.NATSURL,
			nats.Name("protows-chat "+cfg.Name),
			nats.MaxReconnects(-1)) // ride out NATS restarts (docs/GUARANTEES.md)
		if err != nil {
			return nil, fmt.Errorf("connect to NATS at %s: %w", cfg.NATSURL, err)
		}
		hcfg.Broker = natsbroker.New(n.nc, natsbroker.Config{Subject: natsSubject})
		typingBroker = natsbroker.New(n.nc, natsbroker.Config{Subject: natsSubject + ".typing"})
	}
	switch cfg.History {
	case "", historyMemory:
		hcfg.History = hub.NewMemoryHistory(historyLimits)
	case historyJetStream:
		if n.nc == nil {
			return nil, errors.New("history in JetStream needs NATS")
		}
		hcfg.History = natsbroker.NewHistory(n.nc, natsbroker.HistoryConfig{
			Stream: historyStream, Subject: natsSubject + ".history", Limits: historyLimits})
	case historyOff:
	default:
		n.closeNATS()
		return nil, fmt.Errorf("history %q: want %s, %s or %s", cfg.History, historyMemory, historyJetStream, historyOff)
	}
	n.hub, err = hub.New(hcfg)
	if err != nil {
		n.closeNATS()
		return nil, err
	}
	n.name = n.hub.Node()
	pres.setHub(n.hub)
	hcfg.Node = n.name
	if n.typing, err = newTypingHub(hcfg, typingBroker); err != nil {
		_ = n.closeHubs()
		n.closeNATS()
		return nil, err
	}

	r := router.New(router.WithLogger(cfg.Logger))
	if err := chatv1.RegisterChatServiceHandler(r, &chatService{hub: n.hub, typing: n.typing, now: cfg.Now}); err != nil {
		_ = n.closeHubs()
		n.closeNATS()
		return nil, err
	}
	if cfg.Reflection {
		if err := reflection.Register(r); err != nil {
			_ = n.closeHubs()
			n.closeNATS()
			return nil, err
		}
	}
	tcfg := transport.Config{
		AllowedOrigins: origins,
		Authenticator:  toks.auth,
		Logger:         cfg.Logger,
		Metrics:        metrics,
	}
	n.ws = transport.NewServer(r, tcfg)

	mux := http.NewServeMux()
	mux.Handle("GET /ws", n.ws) // a WebSocket handshake is a GET (RFC 6455)
	mux.Handle("POST /token", tokenHandler(toks, &originList{origins: origins}, n.name))
	// Prometheus scrapes this without an Origin; like the rest of the
	// demo, it listens on loopback unless -addr says otherwise.
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn)}))
	// A load balancer's probes (docs/DEPLOYMENT.md): readiness fails as
	// soon as shutdown starts; liveness stays up through the drain. NATS
	// is not a readiness condition: when it is down every node would be
	// unready at once, and each still serves its own members.
	mux.Handle("GET /readyz", n.ws.ReadyHandler())
	mux.Handle("GET /healthz", n.ws.LiveHandler())
	if err := handlePage(mux, cfg.Web); err != nil {
		_ = n.closeHubs()
		n.closeNATS()
		return nil, err
	}
	n.hs = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second, // slowloris; the transport needs it too
		ReadTimeout:       10 * time.Second,
		IdleTimeout:       60 * time.Second,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
	}
	go func() { n.served <- n.hs.Serve(cfg.Listener) }()
	return n, nil
}

// shutdown stops the node gracefully: /readyz fails at once, memberships
// end (their streams end with unavailable, which tells clients to come
// back), running calls answer, connections close with 1001, the node
// leaves the cluster, and then the HTTP server stops, so that the probes
// were answered throughout the drain.
func (n *node) shutdown(ctx context.Context) error {
	// The transport's drain ends the Watch streams and cancels their
	// handlers' contexts, which ends their memberships.
	werr := n.ws.Shutdown(ctx)
	cerr := n.closeHubs()
	herr := n.hs.Shutdown(ctx)
	n.closeNATS()
	if err := <-n.served; !errors.Is(err, http.ErrServerClosed) {
		herr = errors.Join(herr, err)
	}
	return errors.Join(herr, cerr, werr)
}

// closeHubs closes the room hub and the typing hub.
func (n *node) closeHubs() error {
	err := n.hub.Close()
	if n.typing != nil {
		err = errors.Join(err, n.typing.Close())
	}
	return err
}

func (n *node) closeNATS() {
	if n.nc != nil {
		n.nc.Close()
	}
}
