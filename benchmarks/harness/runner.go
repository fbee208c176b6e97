package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Config says how to run jobs.
type Config struct {
	// Reps is the number of repetitions of each job. Zero means 3.
	Reps int
	// ServerURL, when set, is a running server to load instead of starting
	// one per repetition (ws://127.0.0.1:port/ws). Server figures are then
	// unknown.
	ServerURL string
	// Child runs each repetition's server in a child process (this
	// executable, through Main), so that server and client CPU and memory
	// are measured apart. False runs it in this process.
	Child bool
	// ProfileDir, with Child, is a directory where each repetition's server
	// writes a CPU profile (scenario-impl-codec-size-repN.pprof). Empty
	// means no profiles.
	ProfileDir string
	// Progress receives a progress line while jobs run. Nil means none.
	Progress io.Writer
	// Grace is how long a load may take to stop after its bound before the
	// repetition fails. Zero means 15 s.
	Grace time.Duration
	// Interleave, when positive, runs a scenario and its Partner on one
	// server in each repetition, their loads taking turns of this length
	// (see pair.go). Zero runs every job on a server of its own.
	Interleave time.Duration
}

// Job is a scenario with its parameters.
type Job struct {
	Scenario Scenario
	Params   Params
}

// ID returns the job's result identifier.
func (j Job) ID() string {
	return fmt.Sprintf("%s/%s/%s/%s", j.Scenario.Name, j.Scenario.Impl, j.Params.Codec, j.Params.Size)
}

// Run runs each job Reps times and returns one Result per job, in the
// order of jobs. It runs the implementations of one scenario, codec and
// size one right after the other (see RunOrder), or, with
// Config.Interleave, a scenario and its Partner together, in turns on one
// server (pair.go). It stops at the first failure, returning the results
// so far.
func Run(ctx context.Context, cfg Config, jobs []Job) ([]Result, error) {
	results := make([]Result, len(jobs))
	ran := make([]bool, len(jobs))
	done := func() []Result {
		var so []Result
		for k, ok := range ran {
			if ok {
				so = append(so, results[k])
			}
		}
		return so
	}
	for n, i := range RunOrder(jobs) {
		if ran[i] {
			continue // run in turns with its partner
		}
		tag := fmt.Sprintf("[%d/%d]", n+1, len(jobs))
		if h, g, ok := pairOf(jobs, i); ok && cfg.Interleave > 0 && !ran[h] && !ran[g] {
			rh, rg, err := runPair(ctx, cfg, jobs[h], jobs[g], tag)
			if err != nil {
				return done(), fmt.Errorf("%s with %s: %w", jobs[h].ID(), jobs[g].Scenario.Impl, err)
			}
			results[h], results[g], ran[h], ran[g] = rh, rg, true, true
			continue
		}
		r, err := runJob(ctx, cfg, jobs[i], tag)
		if err != nil {
			return done(), fmt.Errorf("%s: %w", jobs[i].ID(), err)
		}
		results[i], ran[i] = r, true
	}
	return results, nil
}

// RunOrder returns the indexes of jobs in the order to run them: jobs of
// the same scenario name, codec and size (the implementations being
// compared) next to each other, in their order in jobs, the groups in the
// order of their first job. The load of a shared machine drifts over
// minutes; run far apart, two implementations would be measured under
// different loads, and their ratio would say more about the machine than
// about them.
func RunOrder(jobs []Job) []int {
	type key struct{ name, codec, size string }
	group := make(map[key]int)
	keys := make([]int, len(jobs))
	for i, j := range jobs {
		k := key{j.Scenario.Name, j.Params.Codec, string(j.Params.Size)}
		g, ok := group[k]
		if !ok {
			g = len(group)
			group[k] = g
		}
		keys[i] = g
	}
	order := make([]int, len(jobs))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return keys[a] - keys[b] })
	return order
}

func runJob(ctx context.Context, cfg Config, j Job, tag string) (Result, error) {
	p := j.Params
	if p.Messages <= 0 && p.Duration <= 0 {
		return Result{}, errors.New("harness: a job needs a count or a time bound")
	}
	r := newResult(cfg, j)
	for i := range reps(cfg) {
		rep, err := runRep(ctx, cfg, j, i+1, fmt.Sprintf("%s %s rep %d/%d", tag, j.ID(), i+1, reps(cfg)))
		if err != nil {
			return r, fmt.Errorf("rep %d: %w", i+1, err)
		}
		r.Reps = append(r.Reps, rep)
	}
	if cfg.Progress != nil {
		fmt.Fprintf(cfg.Progress, "\r\033[K%s %s: %.0f msgs/s (±%.0f%%), p99 %.2f ms\n", tag, j.ID(),
			msgsPerSec.Median(r), 100*msgsPerSec.Spread(r), p99.Median(r))
	}
	return r, nil
}

// reps returns the repetitions of each job.
func reps(cfg Config) int {
	if cfg.Reps <= 0 {
		return 3
	}
	return cfg.Reps
}

// newResult returns j's result, without repetitions.
func newResult(cfg Config, j Job) Result {
	p := j.Params
	r := Result{
		Scenario: j.Scenario.Name, Impl: j.Scenario.Impl, Codec: p.Codec, Size: p.Size,
		Conns: p.Conns, InFlight: p.InFlight, Mode: ModeInProcess,
	}
	switch j.Scenario.Shape {
	case Stream:
		r.Burst = p.StreamBurst()
	case Fanout:
		if p.Rate > 0 {
			// A paced run answers another question (the cost per message at
			// a rate) and must not be compared with an unpaced one.
			r.Rate = p.Rate
			r.Scenario += "-steady"
		}
	case Paced:
		r.Rate = p.Rate
	}
	switch {
	case cfg.ServerURL != "":
		r.Mode = ModeExternal
	case cfg.Child:
		r.Mode = ModeChild
	}
	return r
}

func startServer(ctx context.Context, cfg Config, j Job, rep int) (serverHandle, error) {
	switch {
	case cfg.ServerURL != "":
		return external(cfg.ServerURL), nil
	case cfg.Child:
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		profile := ""
		if cfg.ProfileDir != "" {
			if err := os.MkdirAll(cfg.ProfileDir, 0o755); err != nil {
				return nil, err
			}
			name := strings.ReplaceAll(j.ID(), "/", "-") + fmt.Sprintf("-rep%d.pprof", rep)
			if profile, err = filepath.Abs(filepath.Join(cfg.ProfileDir, name)); err != nil {
				return nil, err
			}
		}
		return startChild(ctx, exe, j.Scenario, j.Params, profile)
	}
	return startInProcess(j.Scenario, j.Params)
}

func runRep(ctx context.Context, cfg Config, j Job, n int, label string) (rep Rep, err error) {
	p := j.Params
	ResetPeakRSS()
	srv, err := startServer(ctx, cfg, j, n)
	if err != nil {
		return rep, err
	}
	defer func() { err = errors.Join(err, srv.close()) }()

	s0, known, err := srv.snapshot(true)
	if err != nil {
		return rep, err
	}
	load, err := j.Scenario.Connect(ctx, srv.url(), p)
	if err != nil {
		return rep, fmt.Errorf("connect: %w", err)
	}
	defer func() { err = errors.Join(err, load.Close()) }()
	if j.Scenario.Shape == Idle {
		// Let what the handshakes left behind end first: protows's worker
		// goroutines wait up to a second for their next task, and the
		// net/http goroutines of the upgrades are still returning.
		select {
		case <-time.After(IdleSettle):
		case <-ctx.Done():
			return rep, ctx.Err()
		}
	}
	s1, _, err := srv.snapshot(true)
	if err != nil {
		return rep, err
	}
	c1 := ReadSelf(false)

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if p.Duration > 0 {
		runCtx, cancel = context.WithTimeout(runCtx, p.Duration)
		defer cancel()
	}
	rec := NewRecorder(p.Messages, p.Conns, cancel)
	stopProgress := progress(cfg.Progress, label, rec)
	start := time.Now()
	err = runLoad(runCtx, cfg, load, rec, p.Duration)
	elapsed := time.Since(start)
	stopProgress()
	if err != nil {
		return rep, err
	}
	s2, _, err := srv.snapshot(false)
	if err != nil {
		return rep, err
	}
	c2 := ReadSelf(false)

	rep = measured(rec, elapsed, p.Conns)
	rep.ClientCPU, rep.ClientPeakRSS = c2.CPU-c1.CPU, c2.PeakRSS
	if known {
		var d serverDelta
		d.add(s1, s2)
		d.setOn(&rep)
		rep.ServerPeakRSS = s2.PeakRSS
		rep.ServerConnBytes = s1.RSS - s0.RSS
		rep.ServerConnHeap = s1.Heap - s0.Heap
		rep.ServerConnGoroutines = s1.Goroutines - s0.Goroutines
	}
	if rep.Messages == 0 {
		return rep, errors.New("no message was delivered")
	}
	return rep, nil
}

// measured returns the figures of a repetition that rec recorded over
// elapsed on conns connections, those of the server unknown.
func measured(rec *Recorder, elapsed time.Duration, conns int) Rep {
	lat := rec.sorted()
	return Rep{
		Messages: rec.messages.Load(), Elapsed: elapsed,
		PayloadBytes: rec.payload.Load(), Frames: rec.frames.Load(),
		WireBytes: -1, ServerCPU: -1, ServerConnBytes: -1,
		P50: Percentile(lat, 50), P95: Percentile(lat, 95), P99: Percentile(lat, 99), P999: Percentile(lat, 99.9),
		Conns: conns,
	}
}

// IdleSettle is how long an idle scenario waits after its connections are
// open before it measures the server's memory: longer than protows's
// worker goroutines linger (1 s), so that only what an idle connection
// holds is counted.
const IdleSettle = 1500 * time.Millisecond

// runLoad runs the load and fails, rather than hangs, when it does not stop
// within the grace period after its time bound.
func runLoad(ctx context.Context, cfg Config, load Load, rec *Recorder, bound time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- load.Run(ctx, rec) }()
	grace := cfg.Grace
	if grace <= 0 {
		grace = 15 * time.Second
	}
	var timeout <-chan time.Time
	if bound > 0 {
		t := time.NewTimer(bound + grace)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case err := <-done:
		return err
	case <-timeout:
		_ = load.Close()
		return fmt.Errorf("harness: load did not stop within %v of its bound", grace)
	}
}

// progress prints a progress line every half second until stopped.
func progress(w io.Writer, label string, rec *Recorder) (stop func()) {
	if w == nil {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		start := time.Now()
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				n := rec.Messages()
				fmt.Fprintf(w, "\r\033[K%s: %d msgs, %.0f msgs/s", label, n, float64(n)/now.Sub(start).Seconds())
			}
		}
	}()
	return func() { close(done); <-finished }
}
