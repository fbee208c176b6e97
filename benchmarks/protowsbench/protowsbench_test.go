package protowsbench_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/protows/protows/benchmarks/harness"
	"github.com/protows/protows/benchmarks/harness/harnesstest"
	"github.com/protows/protows/benchmarks/payload"
	"github.com/protows/protows/benchmarks/protowsbench"
	"go.uber.org/goleak"
)

func scenarios() []harness.Scenario {
	return []harness.Scenario{
		protowsbench.Echo(), protowsbench.Push(), protowsbench.Bidi(), protowsbench.Broadcast(), harness.IdleOf(protowsbench.Echo()),
		protowsbench.BroadcastWith(protowsbench.NoBatching), protowsbench.BroadcastWith(protowsbench.WriteDelay1ms),
		protowsbench.BroadcastHistory(),
		protowsbench.EchoWith(protowsbench.NoVTProto), protowsbench.EchoWith(protowsbench.DeterministicProto),
		protowsbench.BroadcastWith(protowsbench.NoVTProto),
	}
}

func TestMain(m *testing.M) {
	// Child-mode tests run this test binary as the server child.
	if harness.IsChild(os.Args[1:]) {
		if err := harness.Main(context.Background(), append(scenarios(), protowsbench.ServerFanout(), protowsbench.ServerEcho(), protowsbench.ServerEchoKeyed()), os.Args[1:]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	// The children are this test binary, built with -race when the tests
	// are: the race runtime would make each sleep 1 s at exit (GORACE's
	// atexit_sleep_ms, a wait for late race reports), for every run.
	if g := os.Getenv("GORACE"); !strings.Contains(g, "atexit_sleep_ms") {
		os.Setenv("GORACE", strings.TrimSpace(g+" atexit_sleep_ms=0"))
	}
	goleak.VerifyTestMain(m)
}

// TestSmoke runs every protows scenario for a fraction of a second in both
// codecs and checks that the figures are sane: messages flowed within the
// bound, latencies are ordered, and the wire carries the payload plus an
// envelope of at most 16 bytes (the protocol's budget) in the Protobuf
// codec.
func TestSmoke(t *testing.T) {
	for _, child := range []bool{false, true} {
		for _, sc := range scenarios() {
			for _, c := range sc.Codecs {
				t.Run(fmt.Sprintf("%s/%s/child=%v", sc.Key(), c, child), func(t *testing.T) {
					smoke(t, sc, c, child)
				})
			}
		}
	}
}

func smoke(t *testing.T, sc harness.Scenario, codecName string, child bool) {
	p := harness.Params{Codec: codecName, Size: payload.Small, Conns: 4, InFlight: 4, Messages: 2000, Duration: 300 * time.Millisecond}
	slack := int64(p.Conns * p.InFlight)
	switch sc.Shape {
	case harness.Stream:
		p.InFlight, p.Burst = 0, 64
		slack = int64(p.Conns * p.Burst)
	case harness.Idle:
		p.Conns, p.InFlight, p.Messages = 50, 1, 50
		slack = 50
	}
	rep := harnesstest.Run(t, harness.Config{Reps: 1, Child: child}, harness.Job{Scenario: sc, Params: p})[0].Reps[0]
	if rep.Messages <= 0 || rep.Messages > p.Messages+slack {
		t.Errorf("%d messages, want 1..%d", rep.Messages, p.Messages+slack)
	}
	if !(0 < rep.P50 && rep.P50 <= rep.P95 && rep.P95 <= rep.P99 && rep.P99 < 5*time.Second) {
		t.Errorf("latencies p50 %v p95 %v p99 %v", rep.P50, rep.P95, rep.P99)
	}
	payloadPerFrame := float64(rep.PayloadBytes) / float64(rep.Frames)
	overhead := float64(rep.WireBytes)/float64(rep.Frames) - payloadPerFrame
	// The WebSocket header (2 bytes, plus a 4-byte mask from clients) and
	// the envelope; batching only shrinks it. A broadcast's publish and its
	// reply spread over the members.
	budget := 6 + 16.0
	if codecName == harness.CodecJSON {
		budget = 6 + 120 // the JSON envelope names the method and kind
	}
	if sc.Shape == harness.Fanout {
		budget += (payloadPerFrame + 40) / float64(p.Conns)
	}
	if overhead < 0 || overhead > budget {
		t.Errorf("%.1f bytes of overhead per message on the wire, want 0..%.0f", overhead, budget)
	}
	if rep.ServerCPU <= 0 || rep.ServerConnBytes == -1 {
		t.Errorf("server CPU %v, conn bytes %d: want known", rep.ServerCPU, rep.ServerConnBytes)
	}
	// In process the clients' own garbage can outweigh a few connections.
	if child && rep.ServerConnHeap <= 0 {
		t.Errorf("server heap growth %d from %d connections: want > 0", rep.ServerConnHeap, p.Conns)
	}
	// Encode-once: every publish reached every member and was marshalled
	// exactly once (one codec per run). Other scenarios marshal no Sample.
	marshals, ok := rep.Counters[harness.CounterMarshals]
	// With history the hub encodes each broadcast in Protobuf for the
	// store with codec.Proto() itself, not the server's counting codec,
	// and Protobuf members reuse those bytes: no counted marshal.
	historyProto := sc.Impl == protowsbench.BroadcastHistory().Impl && codecName == harness.CodecProto
	switch {
	case !ok:
		t.Errorf("counters %v: no %q", rep.Counters, harness.CounterMarshals)
	case historyProto:
		if marshals != 0 {
			t.Errorf("%d counted marshals: the Protobuf members reuse the history's encoding", marshals)
		}
	case sc.Shape == harness.Fanout && marshals*int64(p.Conns) != rep.Messages:
		t.Errorf("%d marshals for %d deliveries to %d members: want one per publish", marshals, rep.Messages, p.Conns)
	case sc.Shape != harness.Fanout && marshals != 0:
		t.Errorf("%d marshals of a Sample in %s", marshals, sc.Name)
	}
}
