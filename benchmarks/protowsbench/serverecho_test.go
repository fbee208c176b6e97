package protowsbench_test

import (
	"strings"
	"testing"
	"time"

	"github.com/protows/protows/benchmarks/harness"
	"github.com/protows/protows/benchmarks/harness/harnesstest"
	"github.com/protows/protows/benchmarks/payload"
	"github.com/protows/protows/benchmarks/protowsbench"
)

// TestServerEchoSmoke runs the server-bound echo for a moment in both
// codecs and at every size (harnesstest.ServerEchoSmoke).
func TestServerEchoSmoke(t *testing.T) { harnesstest.ServerEchoSmoke(t, protowsbench.ServerEcho()) }

// TestServerEchoKeyedSmoke runs the keyed server-bound echo as
// TestServerEchoSmoke runs the plain one.
func TestServerEchoKeyedSmoke(t *testing.T) {
	harnesstest.ServerEchoSmoke(t, protowsbench.ServerEchoKeyed())
}

// TestServerEchoKeyedInTurns runs the keyed server-bound echo as make
// bench does, in turns with the plain one on the keyed scenario's server
// (its window full): both loads are served, turn by turn, and the report
// compares them turn by turn.
func TestServerEchoKeyedInTurns(t *testing.T) {
	p := harness.Params{Codec: harness.CodecProto, Size: payload.Small, Conns: 2, InFlight: 4, Duration: 400 * time.Millisecond}
	results := harnesstest.Run(t, harness.Config{Reps: 1, Child: true, Interleave: 100 * time.Millisecond},
		harness.Job{Scenario: protowsbench.ServerEcho(), Params: p}, harness.Job{Scenario: protowsbench.ServerEchoKeyed(), Params: p})
	if len(results) != 2 {
		t.Fatalf("%d results, want 2", len(results))
	}
	for _, r := range results {
		if r.Interleave == 0 || len(r.Reps) != 1 {
			t.Fatalf("%s: interleave %v, %d reps: did not take turns", r.ID(), r.Interleave, len(r.Reps))
		}
		rep := r.Reps[0]
		if len(rep.Turns) != 4 {
			t.Errorf("%s: %d turns, want 4", r.ID(), len(rep.Turns))
		}
		for i, turn := range rep.Turns {
			if turn.Messages == 0 || turn.ServerCPU <= 0 {
				t.Errorf("%s: turn %d: %d calls, %v of server CPU", r.ID(), i, turn.Messages, turn.ServerCPU)
			}
		}
	}
	var md strings.Builder
	if err := harness.WriteMarkdown(&md, results); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(md.String(), "| serverecho proto small: protows |") {
		t.Errorf("the report has no row for the key's cost:\n%s", md.String())
	}
}
