package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/nats-io/nats.go"
	benchv1 "github.com/protows/protows/gen/go/protows/bench/v1"
	"github.com/protows/protows/hub"
	"github.com/protows/protows/hub/natsbroker"
	"github.com/protows/protows/router"
	"github.com/protows/protows/transport"
)

// serverMain is the server role: it prints "listen ADDR", serves until its
// standard input closes, ctx ends or -timeout passes, then shuts down.
func serverMain(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("scale server", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address (loopback)")
	timeout := fs.Duration("timeout", 5*time.Minute, "lifetime bound")
	natsURL := fs.String("nats", "", "NATS server URL: join the other nodes over hub/natsbroker (empty: one node)")
	node := fs.String("node", "", "this node's name among the nodes (with -nats)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	events := newEvents()
	var nc *nats.Conn
	if *natsURL != "" {
		var err error
		opts := append(events.natsOptions(), nats.Name("protows-scale-"+*node), nats.MaxReconnects(-1))
		if nc, err = nats.Connect(*natsURL, opts...); err != nil {
			return fmt.Errorf("nats: %w", err)
		}
		// After the hub, which says goodbye to the other nodes through it.
		defer nc.Close()
	}
	s, err := newScaleServer(nc, *node, events)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return errors.Join(err, s.close())
	}
	hs := &http.Server{Handler: s.mux, ReadHeaderTimeout: ioTimeout}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	if _, err := fmt.Fprintf(stdout, "listen %s\n", ln.Addr()); err != nil {
		cancel()
	}
	stdinClosed := make(chan struct{})
	go func() {
		// Stdin is a pipe from the driver: EOF means the driver is done
		// (or gone), which ends the server.
		_, _ = io.Copy(io.Discard, bufio.NewReader(stdin))
		close(stdinClosed)
	}()
	select {
	case <-ctx.Done():
	case <-stdinClosed:
	case err = <-served:
	}
	sctx, scancel := context.WithTimeout(context.Background(), ioTimeout)
	defer scancel()
	return errors.Join(err, hs.Shutdown(sctx), s.close())
}

// scaleServer is the measured server: one hub room behind a router and a
// transport.Server, and the /stats endpoint.
type scaleServer struct {
	hub    *hub.Hub[*benchv1.Sample]
	srv    *transport.Server
	mux    *http.ServeMux
	events *Events
}

// newScaleServer makes the server; with nc, its hub joins the other nodes'
// hubs over NATS, as node.
func newScaleServer(nc *nats.Conn, node string, events *Events) (*scaleServer, error) {
	discard := slog.New(logCounter{events})
	cfg := hub.Config[*benchv1.Sample]{Logger: discard, Metrics: events}
	if nc != nil {
		cfg.Broker = natsbroker.New(nc, natsbroker.Config{Subject: natsSubject})
		cfg.Node = node
	}
	h, err := hub.New(cfg)
	if err != nil {
		return nil, err
	}
	r := router.New(router.WithLogger(discard))
	err = errors.Join(
		router.HandleServerStream(r, joinMethod, func(ctx context.Context, _ *benchv1.PushRequest, st router.Stream[*benchv1.Sample]) error {
			return h.Attach(ctx, roomName, st)
		}),
		router.HandleUnary(r, publishMethod, func(ctx context.Context, req *benchv1.EchoRequest) (*benchv1.EchoResponse, error) {
			return &benchv1.EchoResponse{}, h.Broadcast(ctx, roomName, req.GetSample())
		}),
	)
	if err != nil {
		return nil, errors.Join(err, h.Close())
	}
	// The defaults, except the per-connection request rate limit, which
	// the publisher may exceed by design, and the logs.
	srv := transport.NewServer(r, transport.Config{RateLimit: -1, Logger: discard})
	s := &scaleServer{hub: h, srv: srv, mux: http.NewServeMux(), events: events}
	s.mux.Handle(wsPath, srv)
	s.mux.HandleFunc(statsPath, s.stats)
	// The profiles, to see where a slow run spends its time (loopback
	// only, like everything here).
	s.mux.HandleFunc("/debug/pprof/", pprof.Index)
	s.mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	return s, nil
}

// stats answers with the process's Stats as JSON; ?gc=1 collects garbage
// and returns free memory to the system first, so that two measurements
// compare live memory rather than garbage.
func (s *scaleServer) stats(w http.ResponseWriter, r *http.Request) {
	st := readStats(r.URL.Query().Get("gc") == "1")
	// Members lists the room on every node: count this node's, which
	// are the connections this process holds.
	node := s.hub.Node()
	for _, m := range s.hub.Members(roomName) {
		st.RoomMembers++
		if m.Node == node {
			st.Members++
		}
	}
	st.Events, st.NATSError = s.events.Snapshot()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(st)
}

func (s *scaleServer) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	// The hub first: it ends the Join handlers, which Shutdown waits for.
	return errors.Join(s.hub.Close(), s.srv.Shutdown(ctx))
}
