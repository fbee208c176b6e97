package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// NATSStats is one measurement of the NATS process: the process's own
// Stats and the NATS server's message counters since it started.
type NATSStats struct {
	Self Stats `json:"self"`
	// InMsgs and InBytes are what the nodes published to NATS; OutMsgs
	// and OutBytes what NATS delivered to their subscriptions (payloads,
	// as nats-server counts them, without protocol lines).
	InMsgs   int64 `json:"inMsgs"`
	InBytes  int64 `json:"inBytes"`
	OutMsgs  int64 `json:"outMsgs"`
	OutBytes int64 `json:"outBytes"`
	// Conns is the number of NATS client connections: one per node.
	Conns int `json:"conns"`
}

// natsMain is the nats role: a NATS server (nats-server/v2, the one the
// tests embed) on a free loopback port, in a process of its own so that
// its CPU and memory are its own. It prints "listen NATS_URL STATS_ADDR",
// serves /stats until its standard input closes, ctx ends or -timeout
// passes.
func natsMain(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("scale nats", flag.ContinueOnError)
	timeout := fs.Duration("timeout", 5*time.Minute, "lifetime bound")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		return fmt.Errorf("nats server: %w", err)
	}
	go ns.Start()
	defer func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	}()
	if !ns.ReadyForConnections(10 * time.Second) {
		return errors.New("nats server did not start within 10s")
	}

	mux := http.NewServeMux()
	mux.HandleFunc(statsPath, func(w http.ResponseWriter, r *http.Request) {
		st := NATSStats{Self: readStats(r.URL.Query().Get("gc") == "1")}
		if v, err := ns.Varz(nil); err == nil {
			st.InMsgs, st.InBytes, st.OutMsgs, st.OutBytes = v.InMsgs, v.InBytes, v.OutMsgs, v.OutBytes
			st.Conns = v.Connections
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(st)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: ioTimeout}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	if _, err := fmt.Fprintf(stdout, "listen %s %s\n", ns.ClientURL(), ln.Addr()); err != nil {
		cancel()
	}
	stdinClosed := make(chan struct{})
	go func() {
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
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return errors.Join(err, hs.Shutdown(sctx))
}
