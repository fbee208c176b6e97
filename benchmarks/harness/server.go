package harness

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"time"
)

// serverHandle is a running server side, wherever it runs.
type serverHandle interface {
	url() string
	// snapshot returns the server process's figures; ok is false when
	// they are unknown (an external server).
	snapshot(freeMemory bool) (s ProcStats, ok bool, err error)
	close() error
}

// inProcess serves a scenario's server in this process.
type inProcess struct {
	srv    Server
	hs     *http.Server
	addr   string
	wire   wireCounter
	served chan error
}

func startInProcess(sc Scenario, p Params) (*inProcess, error) {
	srv, err := sc.NewServer(p)
	if err != nil {
		return nil, fmt.Errorf("harness: %s server: %w", sc.Key(), err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		_ = srv.Close()
		return nil, fmt.Errorf("harness: listen: %w", err)
	}
	s := &inProcess{srv: srv, addr: ln.Addr().String(), served: make(chan error, 1)}
	mux := http.NewServeMux()
	mux.Handle(Path, srv)
	s.hs = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { s.served <- s.hs.Serve(countingListener{Listener: ln, c: &s.wire}) }()
	return s, nil
}

func (s *inProcess) url() string { return "ws://" + s.addr + Path }

func (s *inProcess) snapshot(freeMemory bool) (ProcStats, bool, error) {
	st := ReadSelf(freeMemory)
	st.WireIn, st.WireOut, st.WireWrites = s.wire.in.Load(), s.wire.out.Load(), s.wire.writes.Load()
	if c, ok := s.srv.(Counting); ok {
		st.Counters = c.Counters()
	}
	return st, true, nil
}

func (s *inProcess) close() error {
	// http.Server does not know hijacked WebSocket connections: the
	// scenario's Server closes those, after the listener is gone.
	err := s.hs.Close()
	err = errors.Join(err, s.srv.Close())
	if serr := <-s.served; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}

// serveUntil serves sc's server at addr, a loopback address, until ctx is
// done: the other end of a run with Config.ServerURL.
func serveUntil(ctx context.Context, sc Scenario, p Params, addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("harness: serve address: %w", err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("harness: serve address %q is not a loopback address", addr)
	}
	srv, err := sc.NewServer(p)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return errors.Join(err, srv.Close())
	}
	mux := http.NewServeMux()
	mux.Handle(Path, srv)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(os.Stderr, "serving %s at ws://%s%s\n", sc.Key(), ln.Addr(), Path)
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	select {
	case err = <-served:
	case <-ctx.Done():
		err = hs.Close()
		<-served
	}
	return errors.Join(err, srv.Close())
}

// external is a server that was already running.
type external string

func (e external) url() string                          { return string(e) }
func (external) snapshot(bool) (ProcStats, bool, error) { return ProcStats{}, false, nil }
func (external) close() error                           { return nil }

// childArg is the flag by which a load tool runs as a server child; Main
// recognizes it.
const childArg = "-harness-child"

// childSpec is what a parent tells its child to serve.
type childSpec struct {
	Scenario string `json:"scenario"`
	Params   Params `json:"params"`
	// CPUProfile, when set, is a file the child writes a CPU profile of
	// its whole life to.
	CPUProfile string `json:"cpuProfile,omitempty"`
}

// child serves a scenario in a child process (this executable, run with
// childArg), so that its CPU and memory are measured apart from the
// clients'. The parent talks to it over stdin and stdout, one JSON line per
// answer: "snap" and "snapfree" ask for ProcStats; closing stdin stops it.
type child struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Scanner
	addr string
}

func startChild(ctx context.Context, exe string, sc Scenario, p Params, profile string) (*child, error) {
	spec, err := json.Marshal(childSpec{Scenario: sc.Key(), Params: p, CPUProfile: profile})
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, exe, childArg, string(spec))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("harness: start server child: %w", err)
	}
	c := &child{cmd: cmd, in: in, out: bufio.NewScanner(out)}
	var hello struct {
		Addr string `json:"addr"`
	}
	if err := c.readJSON(&hello); err != nil {
		_ = c.close()
		return nil, fmt.Errorf("harness: server child: %w", err)
	}
	c.addr = hello.Addr
	return c, nil
}

func (c *child) readJSON(v any) error {
	if !c.out.Scan() {
		if err := c.out.Err(); err != nil {
			return err
		}
		return io.ErrUnexpectedEOF
	}
	return json.Unmarshal(c.out.Bytes(), v)
}

func (c *child) url() string { return "ws://" + c.addr + Path }

func (c *child) snapshot(freeMemory bool) (ProcStats, bool, error) {
	cmd := "snap\n"
	if freeMemory {
		cmd = "snapfree\n"
	}
	var s ProcStats
	if _, err := io.WriteString(c.in, cmd); err != nil {
		return s, false, err
	}
	err := c.readJSON(&s)
	return s, err == nil, err
}

func (c *child) close() error {
	_ = c.in.Close()
	return c.cmd.Wait()
}

// serveChild is the child's side: serve, print the address, answer
// snapshots until stdin closes.
func serveChild(sc Scenario, p Params, stdin io.Reader, stdout io.Writer) error {
	s, err := startInProcess(sc, p)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	if err := enc.Encode(map[string]string{"addr": s.addr}); err != nil {
		return errors.Join(err, s.close())
	}
	in := bufio.NewScanner(stdin)
	for in.Scan() {
		st, _, _ := s.snapshot(in.Text() == "snapfree")
		if err := enc.Encode(st); err != nil {
			return errors.Join(err, s.close())
		}
	}
	return s.close()
}
