package raw_test

import (
	"context"
	"testing"
	"time"

	"github.com/protows/protows/benchmarks/harness"
	"github.com/protows/protows/benchmarks/payload"
	"github.com/protows/protows/benchmarks/raw"
)

// TestServerFanoutSmoke runs the server-bound fan-out for a moment in both
// codecs, with the server in a child process as make bench runs it: every
// publish reaches every member, counted without decoding (the count bound
// is met exactly: 200 publishes to 5 members), in fewer frames than
// messages or as many.
func TestServerFanoutSmoke(t *testing.T) {
	for _, c := range []string{harness.CodecProto, harness.CodecJSON} {
		t.Run(c, func(t *testing.T) {
			p := harness.Params{Codec: c, Size: payload.Small, Conns: 5, InFlight: 4, Messages: 1000, Duration: 10 * time.Second}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			results, err := harness.Run(ctx, harness.Config{Reps: 1, Child: true}, []harness.Job{{Scenario: raw.ServerFanout(), Params: p}})
			if err != nil {
				t.Fatal(err)
			}
			rep := results[0].Reps[0]
			if rep.Messages != p.Messages {
				t.Errorf("%d deliveries, want %d", rep.Messages, p.Messages)
			}
			if rep.Frames <= 0 || rep.Frames > rep.Messages {
				t.Errorf("%d frames for %d deliveries", rep.Frames, rep.Messages)
			}
			if rep.ServerCPU <= 0 {
				t.Errorf("server CPU %v, want > 0", rep.ServerCPU)
			}
		})
	}
}
