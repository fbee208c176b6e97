package natsbroker_test

// protows nodes as separate OS processes: the test binary re-executes
// itself with nodeEnv set (TestMain), and runs one node whose hub keeps
// history in the JetStream server of the test process. The test speaks to
// a node through its standard input (commands) and output (answers), and
// kills it with SIGKILL: no goodbye on NATS, no close frame on its
// WebSocket connections, nothing flushed.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/protows/protows/client"
	"github.com/protows/protows/codec"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"github.com/protows/protows/hub"
	"github.com/protows/protows/hub/internal/hubtest"
	"github.com/protows/protows/hub/natsbroker"
	"github.com/protows/protows/router"
	"github.com/protows/protows/transport"
)

// The environment of a node process: its name, and its NATS server's URL.
const (
	nodeEnv     = "PROTOWS_TEST_NODE"
	nodeNATSEnv = "PROTOWS_TEST_NODE_NATS"
)

// runNodeProcess is the main of a node process. It prints "ready ADDR"
// once its WebSocket server listens on ADDR (host:port) and its hub reads
// the history stream, then runs the commands of its standard input, one a
// line:
//
//	bcast ROOM FROM TO  broadcast to ROOM the messages FROM..TO of this node
//	                    (Subject: the node's name, ExpiresAt: the number);
//	                    answers "done TO" or "error TEXT"
//
// It stops when its standard input ends.
func runNodeProcess(name, natsURL string) int {
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "node %s: %v\n", name, err)
		return 1
	}
	nc, err := nats.Connect(natsURL, nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond), nats.Name(name))
	if err != nil {
		return fail(err)
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	h, err := hub.New(hub.Config[*Msg]{
		Broker:  natsbroker.New(nc, natsbroker.Config{Subject: "test.rooms"}),
		History: natsbroker.NewHistory(nc, natsbroker.HistoryConfig{Stream: "ROOMS", Timeout: 30 * time.Second}),
		Node:    name,
		Logger:  slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return fail(err)
	}
	defer func() { _ = h.Close() }()
	r := router.New(router.WithLogger(slog.New(slog.DiscardHandler)))
	if err := router.HandleServerStream(r, hubtest.WatchMethod,
		func(ctx context.Context, req *protowsv1.AuthenticateRequest, s router.Stream[*Msg]) error {
			return h.Join(ctx, req.GetToken(), s)
		}); err != nil {
		return fail(err)
	}
	srv := transport.NewServer(r, transport.Config{Logger: slog.New(slog.DiscardHandler)})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fail(err)
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	defer func() {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		_ = hs.Shutdown(sctx)
		_ = srv.Shutdown(sctx)
	}()
	fmt.Printf("ready %s\n", ln.Addr())
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 4 || f[0] != "bcast" {
			fmt.Printf("error bad command %q\n", sc.Text())
			continue
		}
		from, err1 := strconv.Atoi(f[2])
		to, err2 := strconv.Atoi(f[3])
		if err := errors.Join(err1, err2); err != nil {
			fmt.Printf("error %v\n", err)
			continue
		}
		var bad error
		for k := from; k <= to && bad == nil; k++ {
			bad = h.Broadcast(ctx, f[1], &Msg{Subject: name, ExpiresAt: int64(k)})
		}
		if bad != nil {
			fmt.Printf("error %v\n", bad)
			continue
		}
		fmt.Printf("done %d\n", to)
	}
	return 0
}

// nodeProc is a node process, seen from the test.
type nodeProc struct {
	name   string
	addr   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string
	stderr *lockedBuffer
}

// startNodeProcess starts a node process connected to natsURL and waits
// until it is ready. It stops when the test ends, killed if it does not
// stop by itself.
func startNodeProcess(t *testing.T, natsURL, name string) *nodeProc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	n := &nodeProc{name: name, lines: make(chan string, 1024), stderr: &lockedBuffer{}}
	n.cmd = exec.Command(exe, "-test.run=^$")
	n.cmd.Env = append(os.Environ(), nodeEnv+"="+name, nodeNATSEnv+"="+natsURL)
	n.cmd.Stdout = &lineWriter{lines: n.lines}
	n.cmd.Stderr = n.stderr
	n.stdin, err = n.cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Its standard input ends: the node stops, or is killed.
		_ = n.stdin.Close()
		timer := time.AfterFunc(30*time.Second, func() { _ = n.cmd.Process.Kill() })
		defer timer.Stop()
		_ = n.cmd.Wait()
		if t.Failed() {
			t.Logf("node %s's stderr:\n%s", name, n.stderr.String())
		}
	})
	line := n.expect(t, "ready ", time.Minute)
	n.addr = strings.TrimPrefix(line, "ready ")
	return n
}

// expect waits for the node's next line, which must start with prefix.
func (n *nodeProc) expect(t *testing.T, prefix string, timeout time.Duration) string {
	t.Helper()
	line, err := n.next(prefix, timeout)
	if err != nil {
		t.Fatal(err)
	}
	return line
}

func (n *nodeProc) next(prefix string, timeout time.Duration) (string, error) {
	select {
	case line := <-n.lines:
		if !strings.HasPrefix(line, prefix) {
			return "", fmt.Errorf("node %s: %q, want %q...; stderr:\n%s", n.name, line, prefix, n.stderr.String())
		}
		return line, nil
	case <-time.After(timeout):
		return "", fmt.Errorf("node %s: no %q... within %v; stderr:\n%s", n.name, prefix, timeout, n.stderr.String())
	}
}

// bcast makes the node broadcast its messages from..to to room, and
// returns once they are all stored in the history.
func (n *nodeProc) bcast(room string, from, to int) error {
	if _, err := fmt.Fprintf(n.stdin, "bcast %s %d %d\n", room, from, to); err != nil {
		return err
	}
	_, err := n.next(fmt.Sprintf("done %d", to), 2*time.Minute)
	return err
}

// kill kills the node with SIGKILL and waits until it is gone.
func (n *nodeProc) kill(t *testing.T) {
	t.Helper()
	if err := n.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = n.cmd.Wait()
	if st := n.cmd.ProcessState; st == nil || st.Exited() {
		t.Fatalf("node %s: %v, want killed by a signal", n.name, st)
	}
}

// lineWriter hands the lines written to it to a channel.
type lineWriter struct {
	buf   []byte
	lines chan string
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		select {
		case w.lines <- string(w.buf[:i]):
		default: // nobody listens: the test is over
		}
		w.buf = w.buf[i+1:]
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestJetStreamNodeKilled: three protows nodes, each its own process,
// share a room's history in the JetStream server of the test process. The
// node of the member's connection is killed with SIGKILL; while the client
// reconnects (to another node, through a proxy that stands for a load
// balancer) the two other nodes broadcast; the client recovers all of it,
// in order, once each, marked recovered, and goes on live.
func TestJetStreamNodeKilled(t *testing.T) {
	for _, cd := range []codec.Codec{codec.Proto(), codec.JSON()} {
		t.Run(cd.Name(), func(t *testing.T) {
			ns := startJetStream(t, 0, t.TempDir())
			defer stopNATS(ns)
			// Started one at a time: each makes or updates the stream.
			a := startNodeProcess(t, ns.ClientURL(), "a")
			b := startNodeProcess(t, ns.ClientURL(), "b")
			c := startNodeProcess(t, ns.ClientURL(), "c")
			proxy := hubtest.NewProxy(t, a.addr)
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()

			var posMu sync.Mutex
			var positions []client.StreamPosition
			joined := make(chan struct{}, 2)
			st := watch(t, ctx, "ws://"+proxy.Addr()+"/ws", cd, "r", client.OnPosition(func(sp client.StreamPosition) {
				posMu.Lock()
				positions = append(positions, sp)
				posMu.Unlock()
				joined <- struct{}{}
			}))
			// The position comes once the member is in the room on a.
			select {
			case <-joined:
			case <-ctx.Done():
				t.Fatal("no STREAM_POSITION from node a")
			}

			seen := make(map[string]bool)
			last := map[string]int64{}
			var lastSeq uint64
			read := func(n int) {
				t.Helper()
				for range n {
					if !st.Receive() {
						t.Fatalf("stream ended: %v", st.Err())
					}
					m := st.Msg()
					id := msgID(m)
					if seen[id] {
						t.Fatalf("%s twice", id)
					}
					seen[id] = true
					if m.GetExpiresAt() != last[m.GetSubject()]+1 {
						t.Fatalf("%s after %s#%d", id, m.GetSubject(), last[m.GetSubject()])
					}
					last[m.GetSubject()] = m.GetExpiresAt()
					if lastSeq != 0 && st.Seq() != lastSeq+1 {
						t.Fatalf("%s: seq %d after %d", id, st.Seq(), lastSeq)
					}
					if st.Gap() {
						t.Fatalf("%s: Gap", id)
					}
					lastSeq = st.Seq()
				}
			}
			both := func(from, to int) {
				t.Helper()
				errs := make(chan error, 2)
				go func() { errs <- b.bcast("r", from, to) }()
				go func() { errs <- c.bcast("r", from, to) }()
				if err := errors.Join(<-errs, <-errs); err != nil {
					t.Fatal(err)
				}
			}
			both(1, 5)
			read(10)

			// The load balancer sends new connections to b, once the
			// test lets it; a dies.
			proxy.Refuse(true)
			proxy.Target(b.addr)
			a.kill(t)
			both(6, 255)
			proxy.Refuse(false)
			read(500)
			both(256, 256)
			read(2)
			for _, n := range []string{"b", "c"} {
				if last[n] != 256 {
					t.Errorf("%s: last message #%d, want #256", n, last[n])
				}
			}
			posMu.Lock()
			defer posMu.Unlock()
			if len(positions) != 2 || positions[0].Recovery != client.NotResumed || positions[1].Recovery != client.Recovered ||
				positions[1].Replayed() != 500 || positions[0].Epoch != positions[1].Epoch {
				t.Errorf("positions %+v: want a fresh start, then a recovery of 500 messages in the same epoch", positions)
			}
		})
	}
}
