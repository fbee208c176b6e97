package raw_test

import (
	"context"
	"testing"
	"time"

	"github.com/protows/protows/benchmarks/harness"
	"github.com/protows/protows/benchmarks/payload"
	"github.com/protows/protows/benchmarks/raw"
)

// TestEchoPaced runs paced raw echo at a rate far below what the server
// does: about rate × duration calls complete, and the percentiles are
// ordered.
func TestEchoPaced(t *testing.T) {
	pacedTest(t, raw.EchoPaced())
}

// TestServerEchoPaced runs the minimal clients of serverecho paced
// against the raw server, as TestEchoPaced.
func TestServerEchoPaced(t *testing.T) {
	pacedTest(t, raw.ServerEchoPaced())
}

func pacedTest(t *testing.T, sc harness.Scenario) {
	for _, c := range []string{harness.CodecProto, harness.CodecJSON} {
		t.Run(c, func(t *testing.T) {
			p := harness.Params{Codec: c, Size: payload.Small, Conns: 4, Rate: 2000, Duration: 500 * time.Millisecond}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			results, err := harness.Run(ctx, harness.Config{Reps: 1}, []harness.Job{{Scenario: sc, Params: p}})
			if err != nil {
				t.Fatal(err)
			}
			r := results[0]
			if r.Scenario != sc.Name || r.Rate != p.Rate {
				t.Errorf("result %s at rate %v, want %s at %v", r.ID(), r.Rate, sc.Name, p.Rate)
			}
			rep := r.Reps[0]
			if rep.Messages < 300 || rep.Messages > 1100 {
				t.Errorf("%d calls in %v at %v/s, want about 1000", rep.Messages, rep.Elapsed, p.Rate)
			}
			if !(0 < rep.P50 && rep.P50 <= rep.P99 && rep.P99 <= rep.P999 && rep.P999 < 5*time.Second) {
				t.Errorf("latencies p50 %v p99 %v p999 %v", rep.P50, rep.P99, rep.P999)
			}
		})
	}
	if _, err := sc.Connect(context.Background(), "ws://127.0.0.1:1/ws", harness.Params{Codec: harness.CodecProto, Size: payload.Small, Conns: 1}); err == nil {
		t.Error("paced echo connected without a rate")
	}
}
