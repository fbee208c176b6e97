package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "chat:", err)
		os.Exit(1)
	}
}

// options are the command's flags.
type options struct {
	addr     string
	origins  []string
	tokenTTL time.Duration
	natsURL  string
	nodeName string
	cluster  int
	verbose  bool
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fl := flag.NewFlagSet("chat", flag.ContinueOnError)
	fl.SetOutput(stderr)
	fl.StringVar(&o.addr, "addr", "127.0.0.1:8080", "listen address (with -cluster, the first node's)")
	origin := fl.String("origin", "", "comma-separated origins the page is served from (default: the listen address's, and localhost's)")
	fl.DurationVar(&o.tokenTTL, "token-ttl", 2*time.Minute, "lifetime of the tokens of POST /token")
	fl.StringVar(&o.natsURL, "nats", "", "NATS URL to share rooms with other nodes (default: none, one node)")
	fl.StringVar(&o.nodeName, "node", "", "node name among the nodes on NATS (default: random)")
	fl.IntVar(&o.cluster, "cluster", 0, "start an embedded NATS server and this many nodes on consecutive ports")
	fl.BoolVar(&o.verbose, "v", false, "log debug messages")
	if err := fl.Parse(args); err != nil {
		return o, err
	}
	if fl.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fl.Args())
	}
	var err error
	if o.origins, err = parseOrigins(*origin); err != nil {
		return o, err
	}
	if o.cluster < 0 || o.cluster > 16 {
		return o, errors.New("-cluster must be between 1 and 16")
	}
	if o.cluster > 0 && o.natsURL != "" {
		return o, errors.New("-cluster starts its own NATS server: drop -nats")
	}
	if o.cluster > 0 && len(o.origins) > 0 {
		return o, errors.New("-cluster nodes serve their own origins: drop -origin")
	}
	return o, nil
}

// run serves until ctx ends, then shuts down.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	level := slog.LevelInfo
	if o.verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	var nodes []*node
	var stopNATS func()
	if o.cluster > 0 {
		var natsURL string
		nodes, natsURL, stopNATS, err = startCluster(o, logger)
		if err == nil {
			fmt.Fprintf(stdout, "chat: embedded NATS at %s (more nodes: -nats %s)\n", natsURL, natsURL)
		}
	} else {
		var n *node
		n, err = startSingle(o, logger)
		nodes = []*node{n}
	}
	if err != nil {
		return err
	}
	for _, n := range nodes {
		fmt.Fprintf(stdout, "chat: node %s: open %s/ (origins %v)\n", n.name, n.url, n.origins)
	}
	<-ctx.Done()
	fmt.Fprintln(stdout, "chat: shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var errs []error
	for _, n := range nodes {
		errs = append(errs, n.shutdown(sctx))
	}
	if stopNATS != nil {
		stopNATS()
	}
	return errors.Join(errs...)
}

func startSingle(o options, logger *slog.Logger) (*node, error) {
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return nil, err
	}
	return startNode(nodeConfig{
		Listener: ln,
		Origins:  o.origins,
		TokenTTL: o.tokenTTL,
		Name:     o.nodeName,
		NATSURL:  o.natsURL,
		Logger:   logger,
	})
}

// nextAddrs returns n listen addresses on consecutive ports from addr's;
// port 0 gives n addresses with port 0 (any free port each).
func nextAddrs(addr string, n int) ([]string, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port+n-1 > 65535 {
		return nil, fmt.Errorf("-addr %q: bad port for %d nodes", addr, n)
	}
	out := make([]string, n)
	for i := range out {
		q := port
		if port != 0 {
			q += i
		}
		out[i] = net.JoinHostPort(host, strconv.Itoa(q))
	}
	return out, nil
}
