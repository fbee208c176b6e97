package main

import (
	"context"
	"testing"
	"time"

	"github.com/protows/protows/benchmarks/harness"
	"github.com/protows/protows/benchmarks/payload"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// Centrifuge's dissolver worker sleeps about a second after
		// Node.Shutdown before it notices; it is Centrifuge's, not ours.
		goleak.IgnoreAnyFunction("github.com/centrifugal/centrifuge/internal/dissolve.(*Dissolver).runWorker"))
}

// TestBroadcastSmoke runs the Centrifuge fan-out for a fraction of a second
// in both codecs and checks that every publish reached every member and
// that the figures are sane.
func TestBroadcastSmoke(t *testing.T) {
	for _, c := range []string{harness.CodecProto, harness.CodecJSON} {
		t.Run(c, func(t *testing.T) {
			p := harness.Params{Codec: c, Size: payload.Small, Conns: 5, InFlight: 4, Messages: 1000, Duration: 2 * time.Second}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			results, err := harness.Run(ctx, harness.Config{Reps: 1}, []harness.Job{{Scenario: Broadcast(), Params: p}})
			if err != nil {
				t.Fatal(err)
			}
			rep := results[0].Reps[0]
			// The count bound is met exactly: 200 publishes to 5 members.
			if rep.Messages != p.Messages {
				t.Errorf("%d deliveries, want %d", rep.Messages, p.Messages)
			}
			if !(0 < rep.P50 && rep.P50 <= rep.P99 && rep.P99 < 2*time.Second) {
				t.Errorf("latencies p50 %v p99 %v", rep.P50, rep.P99)
			}
			if perMsg := float64(rep.WireBytes) / float64(rep.Frames); perMsg < 50 || perMsg > 400 {
				t.Errorf("%.1f wire bytes per delivery, want a small payload plus Centrifuge's framing", perMsg)
			}
			if rep.ServerCPU <= 0 {
				t.Errorf("server CPU %v, want > 0", rep.ServerCPU)
			}
		})
	}
}
