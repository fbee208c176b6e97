package protowsbench_test

import (
	"context"
	"testing"
	"time"

	"github.com/protows/protows/benchmarks/harness"
	"github.com/protows/protows/benchmarks/payload"
	"github.com/protows/protows/benchmarks/protowsbench"
)

// TestEchoPaced runs paced echo at a rate far below what the server does:
// the calls go out at the rate (about rate × duration complete, not as
// many as the connections could make), and the percentiles are ordered.
func TestEchoPaced(t *testing.T) {
	for _, c := range []string{harness.CodecProto, harness.CodecJSON} {
		t.Run(c, func(t *testing.T) { pacedSmoke(t, protowsbench.EchoPaced(), c) })
	}
	if _, err := protowsbench.EchoPaced().Connect(context.Background(), "ws://127.0.0.1:1/ws", harness.Params{Codec: harness.CodecProto, Size: payload.Small, Conns: 1}); err == nil {
		t.Error("paced echo connected without a rate")
	}
}

// TestServerEchoPaced runs the minimal clients of serverecho paced, in
// both codecs: about rate × duration replies are counted, with ordered
// percentiles.
func TestServerEchoPaced(t *testing.T) {
	for _, c := range []string{harness.CodecProto, harness.CodecJSON} {
		t.Run(c, func(t *testing.T) { pacedSmoke(t, protowsbench.ServerEchoPaced(), c) })
	}
	if _, err := protowsbench.ServerEchoPaced().Connect(context.Background(), "ws://127.0.0.1:1/ws", harness.Params{Codec: harness.CodecProto, Size: payload.Small, Conns: 1}); err == nil {
		t.Error("paced server echo connected without a rate")
	}
}

func pacedSmoke(t *testing.T, sc harness.Scenario, codecName string) {
	p := harness.Params{Codec: codecName, Size: payload.Small, Conns: 4, Rate: 2000, Duration: 500 * time.Millisecond}
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
	// 1,000 calls are due in 500 ms; a loaded machine may start late or
	// end early, but a closed loop of 4 connections would make many more.
	if rep.Messages < 300 || rep.Messages > 1100 {
		t.Errorf("%d calls in %v at %v/s, want about 1000", rep.Messages, rep.Elapsed, p.Rate)
	}
	if !(0 < rep.P50 && rep.P50 <= rep.P99 && rep.P99 <= rep.P999 && rep.P999 < 5*time.Second) {
		t.Errorf("latencies p50 %v p99 %v p999 %v", rep.P50, rep.P99, rep.P999)
	}
}
