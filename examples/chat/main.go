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
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	// The flag package has printed its own errors, and the usage.
	if err != nil && !errors.Is(err, flag.ErrHelp) && !errors.As(err, new(flagError)) {
		fmt.Fprintln(os.Stderr, "chat:", err)
	}
	os.Exit(exitStatus(err))
}

// flagError is a command line the flag package refused; it has printed
// why, and the usage.
type flagError struct{ err error }

func (e flagError) Error() string { return e.err.Error() }
func (e flagError) Unwrap() error { return e.err }

// exitStatus is the exit status for run's error: 0 for none and for -help
// (which printed the usage, as asked), 2 for a bad command line, 1 for
// anything else.
func exitStatus(err error) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, new(flagError)), errors.As(err, new(usageError)):
		return 2
	}
	return 1
}

// usageError is a command line that parses but does not make sense.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// options are the command's flags.
type options struct {
	addr       string
	origins    []string
	tokenTTL   time.Duration
	natsURL    string
	nodeName   string
	cluster    int
	verbose    bool
	reflection bool
	history    string
	store      string
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
	fl.BoolVar(&o.reflection, "reflection", false, "serve protows server reflection, for the protows command (protows list ws://ADDR/ws)")
	fl.StringVar(&o.history, "history", "", "where rooms keep their history: memory, jetstream (needs -nats or -cluster) or off (default: jetstream with -cluster, else memory)")
	fl.StringVar(&o.store, "store", defaultStore(), "with -cluster, the directory of the embedded NATS server's JetStream files: the history survives restarts")
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, err
		}
		return o, flagError{err}
	}
	if fl.NArg() > 0 {
		return o, usageError{fmt.Sprintf("unexpected arguments %q", fl.Args())}
	}
	var err error
	if o.origins, err = parseOrigins(*origin); err != nil {
		return o, usageError{err.Error()}
	}
	if o.cluster < 0 || o.cluster > 16 {
		return o, usageError{"-cluster must be between 1 and 16"}
	}
	if o.cluster > 0 && o.natsURL != "" {
		return o, usageError{"-cluster starts its own NATS server: drop -nats"}
	}
	if o.cluster > 0 && len(o.origins) > 0 {
		return o, usageError{"-cluster nodes serve their own origins: drop -origin"}
	}
	if o.history == "" {
		o.history = historyMemory
		if o.cluster > 0 {
			o.history = historyJetStream
		}
	}
	switch o.history {
	case historyMemory, historyOff:
	case historyJetStream:
		if o.cluster == 0 && o.natsURL == "" {
			return o, usageError{"-history jetstream needs -nats or -cluster"}
		}
	default:
		return o, usageError{fmt.Sprintf("-history %q: want memory, jetstream or off", o.history)}
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
		Listener:   ln,
		Origins:    o.origins,
		TokenTTL:   o.tokenTTL,
		Name:       o.nodeName,
		NATSURL:    o.natsURL,
		Reflection: o.reflection,
		History:    o.history,
		Logger:     logger,
	})
}

// defaultStore is where -cluster keeps its JetStream files unless -store
// says otherwise: the same directory from run to run, so that rooms keep
// their history when the demo restarts.
func defaultStore() string {
	return filepath.Join(os.TempDir(), "protows-chat-jetstream")
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
