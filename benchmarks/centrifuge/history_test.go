package main

import (
	"context"
	"testing"
	"time"

	"github.com/protows/protows/benchmarks/harness"
	"github.com/protows/protows/benchmarks/payload"
)

// TestBroadcastHistorySmoke runs the fan-out with history on for a fraction
// of a second in both codecs: every publish reaches every member.
func TestBroadcastHistorySmoke(t *testing.T) {
	for _, c := range []string{harness.CodecProto, harness.CodecJSON} {
		t.Run(c, func(t *testing.T) {
			p := harness.Params{Codec: c, Size: payload.Small, Conns: 5, InFlight: 4, Messages: 1000, Duration: 2 * time.Second}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			results, err := harness.Run(ctx, harness.Config{Reps: 1}, []harness.Job{{Scenario: BroadcastHistory(), Params: p}})
			if err != nil {
				t.Fatal(err)
			}
			rep := results[0].Reps[0]
			if rep.Messages != p.Messages {
				t.Errorf("%d deliveries, want %d", rep.Messages, p.Messages)
			}
			if rep.ServerCPU <= 0 {
				t.Errorf("server CPU %v, want > 0", rep.ServerCPU)
			}
		})
	}
}
