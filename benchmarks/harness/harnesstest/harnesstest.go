// Package harnesstest holds the smoke tests that every implementation of
// a benchmark scenario runs alike (protowsbench and raw), so that the
// implementations are held to the same checks:
//
//	func TestServerEchoSmoke(t *testing.T) { harnesstest.ServerEchoSmoke(t, raw.ServerEcho()) }
//
// A test that runs its server as a child (Config.Child) needs the
// scenario in its TestMain's harness.Main.
package harnesstest

import (
	"context"
	"testing"
	"time"

	"github.com/protows/protows/benchmarks/harness"
	"github.com/protows/protows/benchmarks/payload"
)

// codecs are the codecs the smoke tests run in.
var codecs = []string{harness.CodecProto, harness.CodecJSON}

// Run runs jobs with cfg, within 30 seconds, and returns their results;
// it fails the test at once on an error.
func Run(t *testing.T, cfg harness.Config, jobs ...harness.Job) []harness.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	results, err := harness.Run(ctx, cfg, jobs)
	if err != nil {
		t.Fatal(err)
	}
	return results
}

// ServerEchoSmoke runs sc, a server-bound echo, for a moment in both
// codecs and at every size, with the server in a child process as make
// bench runs it: the minimal clients count the server's replies (a reply
// they could not count would fail the run) up to the count bound, plus at
// most what was in flight when it was reached, and both processes' CPU is
// measured.
func ServerEchoSmoke(t *testing.T, sc harness.Scenario) {
	for _, c := range codecs {
		for _, size := range payload.Sizes {
			t.Run(c+"/"+string(size), func(t *testing.T) {
				p := harness.Params{Codec: c, Size: size, Conns: 4, InFlight: 4, Messages: 400, Duration: 10 * time.Second}
				if size == payload.Large {
					p.Messages = 40 // JSON's tens of calls a second under the race detector
				}
				rep := Run(t, harness.Config{Reps: 1, Child: true}, harness.Job{Scenario: sc, Params: p})[0].Reps[0]
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

// PacedSmoke runs sc, a paced echo, in both codecs at a rate far below
// what the server does: the calls go out at the rate (about rate ×
// duration complete, not as many as the connections could make), and the
// percentiles are ordered. Without a rate, sc does not connect.
func PacedSmoke(t *testing.T, sc harness.Scenario) {
	for _, c := range codecs {
		t.Run(c, func(t *testing.T) {
			p := harness.Params{Codec: c, Size: payload.Small, Conns: 4, Rate: 2000, Duration: 500 * time.Millisecond}
			r := Run(t, harness.Config{Reps: 1}, harness.Job{Scenario: sc, Params: p})[0]
			if r.Scenario != sc.Name || r.Rate != p.Rate {
				t.Errorf("result %s at rate %v, want %s at %v", r.ID(), r.Rate, sc.Name, p.Rate)
			}
			rep := r.Reps[0]
			// 1,000 calls are due in 500 ms; a loaded machine may start
			// late or end early, but a closed loop of 4 connections would
			// make many more.
			if rep.Messages < 300 || rep.Messages > 1100 {
				t.Errorf("%d calls in %v at %v/s, want about 1000", rep.Messages, rep.Elapsed, p.Rate)
			}
			if !(0 < rep.P50 && rep.P50 <= rep.P99 && rep.P99 <= rep.P999 && rep.P999 < 5*time.Second) {
				t.Errorf("latencies p50 %v p99 %v p999 %v", rep.P50, rep.P99, rep.P999)
			}
		})
	}
	if _, err := sc.Connect(context.Background(), "ws://127.0.0.1:1/ws", harness.Params{Codec: harness.CodecProto, Size: payload.Small, Conns: 1}); err == nil {
		t.Errorf("%s connected without a rate", sc.Key())
	}
}
