package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// roleEnv names the role of a process the driver started: "server" or
// "load". Unset means the driver.
const roleEnv = "PROTOWS_SCALE_ROLE"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := runMain(ctx, os.Getenv(roleEnv), os.Args[1:], os.Stdin, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(1)
	}
}

// runMain runs the process's role with its command-line arguments. The
// tests call it too, from TestMain, when the driver starts the test binary
// as a child.
func runMain(ctx context.Context, role string, args []string, stdin io.Reader, stdout io.Writer) error {
	switch role {
	case "server":
		return serverMain(ctx, args, stdin, stdout)
	case "load":
		return loadMain(ctx, args, stdin, stdout)
	case "nats":
		return natsMain(ctx, args, stdin, stdout)
	case "":
		cfg, err := parseDriverFlags(args)
		if err != nil {
			return err
		}
		if cfg.Idle {
			return driveIdle(ctx, cfg, stdout)
		}
		return drive(ctx, cfg, stdout)
	default:
		return fmt.Errorf("unknown %s %q", roleEnv, role)
	}
}

// DriverConfig is what the driver runs. Zero fields take the defaults of
// the flags.
type DriverConfig struct {
	// Conns is the number of room members, on all nodes.
	Conns int
	// Nodes is the number of server processes. Above 1 the driver also
	// starts a NATS server process, and the servers' hubs share the room
	// through hub/natsbroker; the members spread evenly over the nodes.
	Nodes int
	// LoadProcs is the number of load processes the members spread over.
	LoadProcs int
	// Codecs are the codecs to measure in turn: "proto", "json".
	Codecs []string
	// Rate is the number of publishes per second.
	Rate float64
	// Duration is how long the driver publishes.
	Duration time.Duration
	// Sources is the number of loopback source addresses the members
	// spread over (127.0.0.2, 127.0.0.3, ...).
	Sources int
	// TextSize is the length of each Sample's text, which sets the size
	// of the message.
	TextSize int
	// Timeout bounds the whole run of one codec, children included.
	Timeout time.Duration
	// Idle measures idle connections and members instead of a broadcast
	// (idle.go): Runs rounds over Servers.
	Idle    bool
	Runs    int
	Servers []ServerExe
}

func parseDriverFlags(args []string) (DriverConfig, error) {
	fs := flag.NewFlagSet("scale", flag.ContinueOnError)
	var cfg DriverConfig
	var codecs string
	fs.IntVar(&cfg.Conns, "conns", 10000, "room members (concurrent WebSocket connections), on all nodes")
	fs.IntVar(&cfg.Nodes, "nodes", 1, "server processes; above 1 they share the room over a NATS server process (hub/natsbroker)")
	fs.IntVar(&cfg.LoadProcs, "load-procs", 1, "load processes the members spread over")
	fs.StringVar(&codecs, "codec", "proto", "codec: proto, json or both")
	fs.Float64Var(&cfg.Rate, "rate", 10, "publishes per second")
	fs.DurationVar(&cfg.Duration, "duration", 30*time.Second, "how long to publish")
	fs.IntVar(&cfg.Sources, "sources", 4, "loopback source addresses for the members")
	fs.IntVar(&cfg.TextSize, "text", 32, "text bytes in each message")
	fs.DurationVar(&cfg.Timeout, "timeout", 5*time.Minute, "bound on the run of one codec")
	fs.BoolVar(&cfg.Idle, "idle", false, "measure the server memory of idle connections and idle members instead of a broadcast")
	fs.IntVar(&cfg.Runs, "runs", 3, "with -idle: rounds over the servers; the report gives medians")
	servers := fs.String("servers", "", "with -idle: the servers to compare, name=executable,... (an empty executable is this binary)")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	var err error
	if cfg.Servers, err = parseServers(*servers); err != nil {
		return cfg, err
	}
	if cfg.Idle && (cfg.Runs <= 0 || codecs == "both") {
		return cfg, fmt.Errorf("-idle needs -runs > 0 and one -codec")
	}
	switch codecs {
	case "proto", "json":
		cfg.Codecs = []string{codecs}
	case "both":
		cfg.Codecs = []string{"proto", "json"}
	default:
		return cfg, fmt.Errorf("-codec %q: want proto, json or both", codecs)
	}
	if cfg.Conns <= 0 || cfg.Rate <= 0 || cfg.Duration <= 0 || cfg.Sources <= 0 || cfg.Sources > 250 {
		return cfg, fmt.Errorf("-conns, -rate and -duration must be positive, -sources in 1..250")
	}
	if cfg.Nodes <= 0 || cfg.LoadProcs <= 0 {
		return cfg, fmt.Errorf("-nodes and -load-procs must be positive")
	}
	// Each end of a connection is a descriptor in its process: say so
	// before starting rather than fail halfway through the joins.
	if per := ceilDiv(cfg.Conns, cfg.Nodes); per > maxConnsPerProc {
		return cfg, fmt.Errorf("%d members per server process: at most %d fit under the limit of open files (raise -nodes)", per, maxConnsPerProc)
	}
	if per := ceilDiv(cfg.Conns, cfg.LoadProcs); per > maxConnsPerProc {
		return cfg, fmt.Errorf("%d members per load process: at most %d fit under the limit of open files (raise -load-procs)", per, maxConnsPerProc)
	}
	return cfg, nil
}

// maxConnsPerProc is the most connections one process may hold here: the
// hard limit of open files is 20,000 per process, and a process also needs
// a few descriptors of its own (listener, pipes, the runtime's).
const maxConnsPerProc = 19_900

func ceilDiv(a, b int) int { return (a + b - 1) / b }
