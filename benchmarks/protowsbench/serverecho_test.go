package protowsbench_test

import (
	"context"
	"testing"
	"time"

	"github.com/protows/protows/benchmarks/harness"
	"github.com/protows/protows/benchmarks/payload"
	"github.com/protows/protows/benchmarks/protowsbench"
)

// TestServerEchoSmoke runs the server-bound echo for a moment in both
// codecs and at every size, with the server in a child process as make
// bench runs it: the minimal clients count the server's replies (a reply
// they could not count would fail the run) up to the count bound, plus at
// most what was in flight when it was reached, and both processes' CPU is
// measured.
func TestServerEchoSmoke(t *testing.T) {
	for _, c := range []string{harness.CodecProto, harness.CodecJSON} {
		for _, size := range payload.Sizes {
			t.Run(c+"/"+string(size), func(t *testing.T) {
				p := harness.Params{Codec: c, Size: size, Conns: 4, InFlight: 4, Messages: 400, Duration: 10 * time.Second}
				if size == payload.Large {
					p.Messages = 40 // JSON's tens of calls a second under the race detector
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				results, err := harness.Run(ctx, harness.Config{Reps: 1, Child: true}, []harness.Job{{Scenario: protowsbench.ServerEcho(), Params: p}})
				if err != nil {
					t.Fatal(err)
				}
				rep := results[0].Reps[0]
				if inFlight := int64(p.Conns * p.InFlight); rep.Messages < p.Messages || rep.Messages > p.Messages+inFlight {
					t.Errorf("%d calls, want %d to %d", rep.Messages, p.Messages, p.Messages+inFlight)
				}
				// A request each, and the frames of the replies.
				if rep.Frames <= rep.Messages || rep.Frames > 2*rep.Messages {
					t.Errorf("%d frames for %d calls", rep.Frames, rep.Messages)
				}
				if rep.ServerCPU <= 0 || rep.ClientCPU <= 0 {
					t.Errorf("server CPU %v, client CPU %v, want both > 0", rep.ServerCPU, rep.ClientCPU)
				}
			})
		}
	}
}
