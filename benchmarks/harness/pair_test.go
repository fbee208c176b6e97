package harness

import (
	"context"
	"math"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// turnServer is an echo server that notes, in order, which load each
// message came from (its first byte), and how many servers were made.
type turnServer struct {
	made atomic.Int32
	mu   sync.Mutex
	seq  []byte // the first byte of every message, in the order served
}

func (ts *turnServer) newServer(Params) (Server, error) {
	ts.made.Add(1)
	var up websocket.Upgrader
	return ServerFunc{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer conn.Close()
		for {
			mt, msg, err := conn.ReadMessage()
			if err != nil {
				return
			}
			ts.mu.Lock()
			ts.seq = append(ts.seq, msg[0])
			ts.mu.Unlock()
			if err := conn.WriteMessage(mt, msg); err != nil {
				return
			}
		}
	}), CloseFunc: func() error { return nil }}, nil
}

// runs returns the runs of ts.seq: the loads in the order they were
// served, a load's messages next to each other counted once.
func (ts *turnServer) runs() string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	var out []byte
	for _, b := range ts.seq {
		if len(out) == 0 || out[len(out)-1] != b {
			out = append(out, b)
		}
	}
	ts.seq = ts.seq[:0]
	return string(out)
}

// turnScenario is an echo scenario on ts's servers whose requests start
// with tag.
func turnScenario(ts *turnServer, impl string, tag byte) Scenario {
	return Scenario{
		Name: "turns", Impl: impl, Codecs: []string{CodecProto}, NewServer: ts.newServer,
		Connect: func(ctx context.Context, url string, p Params) (Load, error) {
			frame := append([]byte{tag}, make([]byte, 31)...)
			return DialEchoers(ctx, url, "", p.Conns, p.Window(), EchoFrames{
				Frame: frame, Type: websocket.BinaryMessage, Min: len(frame), Size: len(frame),
				Count: func(b []byte, min int) int { return len(b) / min },
			})
		},
	}
}

// TestRunPairTakesTurns: with Interleave, a scenario and its partner run
// on one server a repetition, which serves one load at a time, in the
// order A B B A A B..., after a turn of each that is not measured; each
// load's repetition adds up its own turns.
func TestRunPairTakesTurns(t *testing.T) {
	ts := &turnServer{}
	plain := turnScenario(ts, "x", 'A')
	keyed := turnScenario(ts, "x-keyed", 'B')
	keyed.Partner = plain.Key()
	p := Params{Codec: CodecProto, Size: "small", Conns: 2, InFlight: 2, Duration: 400 * time.Millisecond}
	jobs := []Job{{Scenario: plain, Params: p}, {Scenario: keyed, Params: p}}
	cfg := Config{Reps: 2, Interleave: 100 * time.Millisecond}

	ctx := t.Context()
	// The server notes the loads of each repetition, read after each: the
	// repetitions run one Run at a time.
	var results []Result
	var runs []string
	for range cfg.Reps {
		one := cfg
		one.Reps = 1
		rs, err := Run(ctx, one, jobs)
		if err != nil {
			t.Fatal(err)
		}
		runs = append(runs, ts.runs())
		results = Combine(append(results, rs...))
	}
	if got := ts.made.Load(); got != int32(cfg.Reps) {
		t.Errorf("%d servers made for %d repetitions of the pair: want one a repetition", got, cfg.Reps)
	}
	// The host's load (keyed's, B) goes first: a warm-up turn of each,
	// B then A, then 4 turns each, B A A B B A A B: the runs B A B A B A
	// B.
	for i, r := range runs {
		if r != "BABABAB" {
			t.Errorf("rep %d served its loads in the runs %q, want BABABAB: a warm-up turn of each, then B A A B B A A B", i+1, r)
		}
	}
	if len(results) != 2 {
		t.Fatalf("%d results, want 2", len(results))
	}
	for _, r := range results {
		if r.Interleave != cfg.Interleave {
			t.Errorf("%s: Interleave = %v, want %v", r.ID(), r.Interleave, cfg.Interleave)
		}
		if len(r.Reps) != cfg.Reps {
			t.Fatalf("%s: %d reps, want %d", r.ID(), len(r.Reps), cfg.Reps)
		}
		for _, rep := range r.Reps {
			if len(rep.Turns) != 4 {
				t.Fatalf("%s: %d turns, want 4", r.ID(), len(rep.Turns))
			}
			var msgs int64
			var elapsed, cpu time.Duration
			for _, turn := range rep.Turns {
				if turn.Messages == 0 {
					t.Errorf("%s: a turn with no message", r.ID())
				}
				msgs += turn.Messages
				elapsed += turn.Elapsed
				cpu += turn.ServerCPU
			}
			if msgs != rep.Messages || elapsed != rep.Elapsed || cpu != rep.ServerCPU {
				t.Errorf("%s: the turns add up to %d messages in %v with %v of CPU; the repetition has %d in %v with %v",
					r.ID(), msgs, elapsed, cpu, rep.Messages, rep.Elapsed, rep.ServerCPU)
			}
			if rep.Elapsed < p.Duration {
				t.Errorf("%s: %v of turns, want at least the duration, %v", r.ID(), rep.Elapsed, p.Duration)
			}
		}
	}
}

// TestRunPairNeedsTimeBound: loads that take turns are bound by time
// alone; a count bound is refused with a clear error.
func TestRunPairNeedsTimeBound(t *testing.T) {
	ts := &turnServer{}
	plain := turnScenario(ts, "x", 'A')
	keyed := turnScenario(ts, "x-keyed", 'B')
	keyed.Partner = plain.Key()
	p := Params{Codec: CodecProto, Size: "small", Conns: 1, InFlight: 1, Messages: 100}
	_, err := Run(t.Context(), Config{Reps: 1, Interleave: 50 * time.Millisecond}, []Job{{Scenario: plain, Params: p}, {Scenario: keyed, Params: p}})
	if err == nil {
		t.Fatal("a pair bound by count ran")
	}
	if ts.made.Load() != 0 {
		t.Error("a server was made for a pair that cannot run")
	}
}

// TestPairOf: a job's pair is its partner's job of the same codec and
// size, whichever of the two names the other, the host being the one that
// does.
func TestPairOf(t *testing.T) {
	plain := Scenario{Name: "s", Impl: "p"}
	keyed := Scenario{Name: "s", Impl: "p-keyed", Partner: "s/p"}
	other := Scenario{Name: "s", Impl: "q"}
	jobs := []Job{
		{Scenario: plain, Params: Params{Codec: CodecProto, Size: "small"}},
		{Scenario: keyed, Params: Params{Codec: CodecJSON, Size: "small"}},
		{Scenario: keyed, Params: Params{Codec: CodecProto, Size: "small"}},
		{Scenario: other, Params: Params{Codec: CodecProto, Size: "small"}},
		{Scenario: plain, Params: Params{Codec: CodecProto, Size: "medium"}},
	}
	for _, c := range []struct {
		i, host, guest int
		ok             bool
	}{
		{0, 2, 0, true},
		{2, 2, 0, true},
		{1, -1, -1, false}, // no plain JSON job
		{3, -1, -1, false}, // no partner
		{4, -1, -1, false}, // no keyed medium job
	} {
		h, g, ok := pairOf(jobs, c.i)
		if h != c.host || g != c.guest || ok != c.ok {
			t.Errorf("pairOf(%d) = %d, %d, %v; want %d, %d, %v", c.i, h, g, ok, c.host, c.guest, c.ok)
		}
	}
}

// TestTurnRatios: the key's cost of results that took turns is the median
// over the pairs of turns next to each other, which a burst on the host
// in one turn does not move; without turns, the medians of the
// repetitions are compared.
func TestTurnRatios(t *testing.T) {
	turn := func(msgs int64, cpuPerCall time.Duration) Turn {
		return Turn{Messages: msgs, Elapsed: 100 * time.Millisecond, ServerCPU: time.Duration(msgs) * cpuPerCall}
	}
	u := Result{Scenario: "serverecho", Impl: "protows", Codec: CodecProto, Size: "small", Interleave: 100 * time.Millisecond}
	k := u
	k.Impl += KeyedSuffix
	// Turns of 10 µs a call unkeyed and 11 µs keyed, calls/s 1.05× apart,
	// but for one pair that a burst hit (keyed 30 µs).
	for range 2 {
		var ru, rk Rep
		for i := range 3 {
			ru.Turns = append(ru.Turns, turn(10_500, 10*time.Microsecond))
			if i == 1 && len(k.Reps) == 0 {
				rk.Turns = append(rk.Turns, turn(3_000, 30*time.Microsecond))
			} else {
				rk.Turns = append(rk.Turns, turn(10_000, 11*time.Microsecond))
			}
		}
		for _, tr := range ru.Turns {
			ru.Messages += tr.Messages
			ru.Elapsed += tr.Elapsed
			ru.ServerCPU += tr.ServerCPU
		}
		for _, tr := range rk.Turns {
			rk.Messages += tr.Messages
			rk.Elapsed += tr.Elapsed
			rk.ServerCPU += tr.ServerCPU
		}
		ru.ClientCPU, rk.ClientCPU = time.Second, time.Second
		u.Reps, k.Reps = append(u.Reps, ru), append(k.Reps, rk)
	}
	rows := keyedCosts([]Result{u, k})
	if len(rows) != 1 {
		t.Fatalf("%d rows, want 1", len(rows))
	}
	if got := rows[0].values; math.Abs(got[0]-1.05) > 1e-9 || math.Abs(got[1]-1.10) > 1e-9 {
		t.Errorf("calls/s and CPU ratios = %.4f, %.4f; want the medians of the turns, 1.05 and 1.10", got[0], got[1])
	}
	// Results that did not take turns: the medians of their repetitions.
	u.Interleave, k.Interleave = 0, 0
	rows = keyedCosts([]Result{u, k})
	want := serverCPU.Median(k) / serverCPU.Median(u)
	if got := rows[0].values[1]; got != want {
		t.Errorf("without turns, CPU ratio = %.4f, want the ratio of the medians, %.4f", got, want)
	}
}
