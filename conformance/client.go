package conformance

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Driver is the runner's side of the driver protocol: it sends commands to
// a client under test and sorts the events it answers with by client.
// docs/CONFORMANCE.md describes the protocol.
type Driver struct {
	w     io.Writer
	wmu   sync.Mutex
	mu    sync.Mutex
	subs  map[string]chan map[string]any
	ready chan map[string]any
	done  chan struct{}
	err   error
}

// NewDriver speaks the driver protocol over r (events, one JSON object a
// line) and w (commands). It reads until r ends.
func NewDriver(r io.Reader, w io.Writer) *Driver {
	d := &Driver{w: w, subs: map[string]chan map[string]any{}, ready: make(chan map[string]any, 1), done: make(chan struct{})}
	go d.read(r)
	return d
}

func (d *Driver) read(r io.Reader) {
	defer close(d.done)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 64<<20)
	for sc.Scan() {
		var ev map[string]any
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			d.fail(fmt.Errorf("driver printed a line that is not a JSON object: %q", sc.Text()))
			continue
		}
		if ev["event"] == "ready" {
			select {
			case d.ready <- ev:
			default:
			}
			continue
		}
		id, _ := ev["client"].(string)
		d.sub(id) <- ev
	}
	if err := sc.Err(); err != nil {
		d.fail(err)
	}
}

func (d *Driver) fail(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.err == nil {
		d.err = err
	}
}

func (d *Driver) sub(client string) chan map[string]any {
	d.mu.Lock()
	defer d.mu.Unlock()
	ch, ok := d.subs[client]
	if !ok {
		ch = make(chan map[string]any, 4096)
		d.subs[client] = ch
	}
	return ch
}

// WaitReady waits for the driver's "ready" event and returns it.
func (d *Driver) WaitReady(ctx context.Context, timeout time.Duration) (map[string]any, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case ev := <-d.ready:
		return ev, nil
	case <-d.done:
		return nil, fmt.Errorf("the driver ended before it was ready: %v", d.err)
	case <-t.C:
		return nil, fmt.Errorf("the driver was not ready within %v", timeout)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Send writes a command.
func (d *Driver) Send(cmd map[string]any) error {
	b, err := marshalJSON(cmd)
	if err != nil {
		return err
	}
	d.wmu.Lock()
	defer d.wmu.Unlock()
	_, err = d.w.Write(append(b, '\n'))
	return err
}

// StartDriver runs a client under test's driver program.
func StartDriver(ctx context.Context, argv []string, stderr io.Writer) (*Driver, func() error, error) {
	if len(argv) == 0 {
		return nil, nil, errors.New("no driver command")
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stderr = stderr
	cmd.Env = os.Environ()
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	d := NewDriver(out, in)
	stop := func() error {
		_ = d.Send(map[string]any{"op": "quit"})
		_ = in.Close()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			return <-done
		}
	}
	return d, stop, nil
}

// attempt is a client's handshake, waiting for the script's answer.
type attempt struct {
	w    http.ResponseWriter
	r    *http.Request
	done chan struct{}
}

// scriptedServer is the server of a client-mode case: it holds each
// handshake until a step answers it.
type scriptedServer struct {
	ln       net.Listener
	hs       *http.Server
	attempts chan *attempt
	closing  chan struct{}
	count    atomic.Int32
}

func startScriptedServer() (*scriptedServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &scriptedServer{ln: ln, attempts: make(chan *attempt, 64), closing: make(chan struct{})}
	s.hs = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.hs.Serve(ln) }()
	return s, nil
}

func (s *scriptedServer) url() string { return "ws://" + s.ln.Addr().String() + "/ws" }

func (s *scriptedServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.count.Add(1)
	a := &attempt{w: w, r: r, done: make(chan struct{})}
	select {
	case s.attempts <- a:
	case <-s.closing:
		http.Error(w, "the case is over", http.StatusServiceUnavailable)
		return
	}
	select {
	case <-a.done:
	case <-s.closing:
		http.Error(w, "the case is over", http.StatusServiceUnavailable)
	}
}

func (s *scriptedServer) close() {
	close(s.closing)
	_ = s.hs.Close()
	for {
		select {
		case a := <-s.attempts:
			http.Error(a.w, "the case is over", http.StatusServiceUnavailable)
			close(a.done)
		default:
			return
		}
	}
}

// defaultConnect is the connect command a client case starts with, unless
// its first step is one: a short backoff so that reconnections are quick,
// and a heartbeat that stays out of the way.
var defaultConnect = map[string]any{
	"op":        "connect",
	"backoff":   map[string]any{"initialMs": 50.0, "maxMs": 200.0},
	"heartbeat": map[string]any{"idleMs": 30000.0, "timeoutMs": 10000.0},
}

// clientStep takes one step of a client-mode case.
func (r *caseRun) clientStep(s *Step) error {
	switch {
	case s.Do != nil:
		return r.do(s.Do)
	case s.Accept != nil:
		return r.accept(s.Accept, s.within())
	case s.Result != nil:
		return r.result(s.Result, s.within())
	case s.ExpectNoConnection != 0:
		d := time.Duration(s.ExpectNoConnection)
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case a := <-r.script.attempts:
			http.Error(a.w, "unexpected", http.StatusServiceUnavailable)
			close(a.done)
			return fmt.Errorf("the client connected again within %v", d)
		case <-t.C:
			return nil
		case <-r.ctx.Done():
			return r.ctx.Err()
		}
	case s.Wait != 0:
		return r.commonStep(nil, s)
	case s.Close != nil && r.current != nil:
		// A server closes as PROTOCOL.md section 10.1 says: the close
		// frame, up to 1 s for the client's, then the end of the TCP
		// connection, which some clients wait for before they report
		// the close.
		if err := r.commonStep(r.current, s); err != nil {
			return err
		}
		deadline := time.Now().Add(time.Second)
		for {
			it, err := r.current.next(r.ctx, deadline)
			if err != nil || it.ev.kind == eventClose || it.ev.kind == eventEnd {
				break
			}
		}
		return r.current.ws.nc.Close()
	}
	if r.current == nil {
		return errors.New("no connection was accepted yet")
	}
	return r.commonStep(r.current, s)
}

func (r *caseRun) do(cmd Command) error {
	m := substituteMap(map[string]any(cmd), r.vars, 0)
	if m["op"] == "connect" {
		full := maps.Clone(defaultConnect)
		maps.Copy(full, m)
		m = full
		m["url"] = r.script.url()
		m["codec"] = r.codecName
	}
	m["client"] = r.client
	r.log.add("=> driver %s", show(m))
	return r.driver.Send(m)
}

// accept answers the client's next handshake.
func (r *caseRun) accept(a *Accept, within time.Duration) error {
	t := time.NewTimer(within)
	defer t.Stop()
	var at *attempt
	select {
	case at = <-r.script.attempts:
	case <-t.C:
		return fmt.Errorf("the client did not connect within %v", within)
	case <-r.ctx.Done():
		return r.ctx.Err()
	}
	defer close(at.done)
	offered := offeredSubprotocols(at.r.Header)
	r.log.add("<- handshake offering %q", offered)
	if a.Status != 0 && a.Status != http.StatusSwitchingProtocols {
		for k, v := range a.Headers {
			at.w.Header().Set(k, v)
		}
		http.Error(at.w, "refused by the case", a.Status)
		r.log.add("-> HTTP %d", a.Status)
		return nil
	}
	if !slices.Contains(offered, r.codec.Name()) {
		http.Error(at.w, "wrong subprotocol", http.StatusBadRequest)
		return fmt.Errorf("the client offered %q, not %q", offered, r.codec.Name())
	}
	ws, err := upgrade(at.w, at.r, r.codec.Name())
	if err != nil {
		return err
	}
	if r.current != nil {
		r.current.shutdown()
	}
	answer := a.AnswerPings == nil || *a.AnswerPings
	r.current = newPeer(ws, r.codec, r.log, true, false)
	r.current.autoPong.Store(answer)
	r.vars["connections"] = float64(r.script.count.Load())
	r.log.add("-> 101 %s", r.codec.Name())
	return nil
}

// result waits for the next driver event of a call and matches it.
func (r *caseRun) result(want map[string]any, within time.Duration) error {
	w := substituteMap(want, r.vars, 0)
	ref, _ := w["ref"].(string)
	if ref == "" {
		return errors.New("a result needs a ref")
	}
	ev, err := r.nextEvent(ref, within)
	if err != nil {
		return err
	}
	if err := match(normalizeNumber(w), ev, r.vars); err != nil {
		return fmt.Errorf("driver event %s: %w", show(ev), err)
	}
	return nil
}

// nextEvent returns the next event of a call, keeping the events of other
// calls for later.
func (r *caseRun) nextEvent(ref string, within time.Duration) (map[string]any, error) {
	if q := r.events[ref]; len(q) > 0 {
		r.events[ref] = q[1:]
		return q[0], nil
	}
	t := time.NewTimer(within)
	defer t.Stop()
	ch := r.driver.sub(r.client)
	for {
		select {
		case ev := <-ch:
			r.log.add("<= driver %s", show(ev))
			got, _ := ev["ref"].(string)
			if got == "" {
				continue // state changes and such: for the transcript
			}
			if got == ref {
				return ev, nil
			}
			r.events[got] = append(r.events[got], ev)
		case <-t.C:
			return nil, fmt.Errorf("no event for %q from the driver within %v", ref, within)
		case <-r.driver.done:
			return nil, fmt.Errorf("the driver ended: %v", r.driver.err)
		case <-r.ctx.Done():
			return nil, r.ctx.Err()
		}
	}
}

var clientSeq atomic.Int64

// runClientCase runs a client-mode case: a scripted server, a fresh client
// in the driver, the steps, then the client's close.
func (r *caseRun) runClientCase() error {
	s, err := startScriptedServer()
	if err != nil {
		return err
	}
	r.script = s
	r.client = "c" + strconv.FormatInt(clientSeq.Add(1), 10)
	r.events = map[string][]map[string]any{}
	defer func() {
		s.close()
		r.cleanup()
	}()
	steps := r.c.Steps
	if steps[0].Do == nil || steps[0].Do["op"] != "connect" {
		if err := r.do(Command{"op": "connect"}); err != nil {
			return err
		}
	}
	stepsErr := r.runSteps(steps)
	// The client closes; its close must come, whatever the steps did.
	if err := r.driver.Send(map[string]any{"op": "close", "client": r.client, "ref": "$close"}); err != nil {
		return errors.Join(stepsErr, err)
	}
	if _, err := r.nextEvent("$close", 10*time.Second); err != nil && stepsErr == nil {
		return fmt.Errorf("closing the client: %w", err)
	}
	return stepsErr
}

// RunClient runs the client-mode cases of suites against the client under
// test behind d, up to opts.Parallel at once.
func RunClient(ctx context.Context, suites []*Suite, d *Driver, opts Options) *Report {
	rep := newReport(opts)
	var jobs []job
	for _, s := range suites {
		for _, c := range s.Cases {
			if c.Mode != ModeClient || !opts.selected(c) {
				continue
			}
			for _, cn := range CodecNames {
				if c.RunsIn(cn) && opts.codecSelected(cn) {
					jobs = append(jobs, job{c, cn})
				}
			}
		}
	}
	runJobs(jobs, opts.Parallel, func(j job) {
		res := Result{Case: j.c.FullName(), Codec: j.cn, Mode: ModeClient, Sections: j.c.Sections}
		start := time.Now()
		r := newCaseRun(ctx, j.c, j.cn)
		r.driver = d
		err := r.runClientCase()
		res.Duration = time.Since(start)
		res.Transcript = r.log.text()
		rep.finish(&res, err)
	})
	return rep
}
