package raw_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/protows/protows/benchmarks/harness"
	"github.com/protows/protows/benchmarks/payload"
	"github.com/protows/protows/benchmarks/raw"
	"github.com/protows/protows/codec"
	benchv1 "github.com/protows/protows/gen/go/protows/bench/v1"
	"go.uber.org/goleak"
)

func scenarios() []harness.Scenario {
	return []harness.Scenario{raw.Echo(), raw.Push(), raw.Broadcast()}
}

func TestMain(m *testing.M) {
	// Child-mode tests run this test binary as the server child.
	if harness.IsChild(os.Args[1:]) {
		if err := harness.Main(context.Background(), append(scenarios(), raw.ServerFanout(), raw.ServerEcho()), os.Args[1:]); err != nil {
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

// TestSmoke runs every raw baseline for a fraction of a second, in both
// codecs, and checks that the figures are sane: messages flowed, latencies
// are ordered, and the bytes on the wire are the payload plus a WebSocket
// header and nothing else.
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
	// At the bound, what is in flight still arrives: a window per
	// connection, or the rest of each connection's stream.
	slack := int64(p.Conns * p.InFlight)
	if sc.Shape == harness.Stream {
		p.InFlight, p.Burst = 0, 64
		slack = int64(p.Conns * p.Burst)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cfg := harness.Config{Reps: 2, Child: child}
	if child {
		cfg.ProfileDir = t.TempDir()
	}
	results, err := harness.Run(ctx, cfg, []harness.Job{{Scenario: sc, Params: p}})
	if err != nil {
		t.Fatal(err)
	}
	if child {
		// Each repetition's server child wrote its CPU profile.
		for rep := 1; rep <= 2; rep++ {
			name := fmt.Sprintf("%s-%s-%s-%s-rep%d.pprof", sc.Name, sc.Impl, codecName, p.Size, rep)
			if st, err := os.Stat(filepath.Join(cfg.ProfileDir, name)); err != nil || st.Size() == 0 {
				t.Errorf("CPU profile %s: %v, want a non-empty file", name, err)
			}
		}
	}
	if len(results) != 1 || len(results[0].Reps) != 2 {
		t.Fatalf("got %d results, want 1 with 2 repetitions", len(results))
	}
	r := results[0]
	wantMode := harness.ModeInProcess
	if child {
		wantMode = harness.ModeChild
	}
	if r.Mode != wantMode {
		t.Errorf("mode %q, want %q", r.Mode, wantMode)
	}
	payloadSize := smallPayload(t, sc, codecName)
	for i, rep := range r.Reps {
		if rep.Messages <= 0 || rep.Messages > p.Messages+slack {
			t.Errorf("rep %d: %d messages, want 1..%d", i, rep.Messages, p.Messages+slack)
		}
		if rep.Elapsed <= 0 || rep.Elapsed > p.Duration+5*time.Second {
			t.Errorf("rep %d: elapsed %v", i, rep.Elapsed)
		}
		if !(0 < rep.P50 && rep.P50 <= rep.P95 && rep.P95 <= rep.P99 && rep.P99 < 5*time.Second) {
			t.Errorf("rep %d: latencies p50 %v p95 %v p99 %v", i, rep.P50, rep.P95, rep.P99)
		}
		perFrame := float64(rep.WireBytes) / float64(rep.Frames)
		// Payloads below 126 bytes take a 2-byte header, plus a 4-byte mask
		// from the client; a broadcast's publish adds 1/members of a frame.
		if lo, hi := float64(payloadSize), float64(payloadSize)+8; perFrame < lo || perFrame > hi+float64(payloadSize)/float64(p.Conns) {
			t.Errorf("rep %d: %.1f wire bytes per frame, want the %d payload bytes plus a header", i, perFrame, payloadSize)
		}
		if rep.ServerCPU <= 0 || rep.ClientCPU <= 0 {
			t.Errorf("rep %d: CPU server %v client %v, want both > 0", i, rep.ServerCPU, rep.ClientCPU)
		}
		if rep.ServerPeakRSS <= 0 || rep.ServerConnBytes == -1 {
			t.Errorf("rep %d: server peak RSS %d, conn bytes %d: want known", i, rep.ServerPeakRSS, rep.ServerConnBytes)
		}
	}
}

// smallPayload returns the payload bytes of one message of sc.
func smallPayload(t *testing.T, sc harness.Scenario, codecName string) int {
	c := codec.Proto()
	if codecName == harness.CodecJSON {
		c = codec.JSON()
	}
	s := payload.New(payload.Small)
	var b []byte
	var err error
	switch sc.Name {
	case "echo":
		b, err = c.AppendPayload(nil, &benchv1.EchoRequest{Sample: s})
	case "push":
		b, err = c.AppendPayload(nil, &benchv1.PushResponse{Sample: s})
	default:
		b, err = c.AppendPayload(nil, s)
	}
	if err != nil {
		t.Fatal(err)
	}
	return len(b)
}

// TestExternalServer loads a server that the harness did not start: only
// client figures are known, and the report says so.
func TestExternalServer(t *testing.T) {
	p := harness.Params{Codec: harness.CodecProto, Size: payload.Small, Conns: 2, InFlight: 2, Messages: 500, Duration: 300 * time.Millisecond}
	srv, err := raw.Echo().NewServer(p)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(harness.Path, srv)
	hs := httptest.NewServer(mux) // loopback
	defer func() {
		hs.Close()
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
	}()
	url := "ws" + strings.TrimPrefix(hs.URL, "http") + harness.Path
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	results, err := harness.Run(ctx, harness.Config{Reps: 1, ServerURL: url}, []harness.Job{{Scenario: raw.Echo(), Params: p}})
	if err != nil {
		t.Fatal(err)
	}
	r := results[0]
	rep := r.Reps[0]
	if r.Mode != harness.ModeExternal || rep.Messages <= 0 || rep.ClientCPU <= 0 {
		t.Errorf("mode %q, %d messages, client CPU %v: want external, > 0, > 0", r.Mode, rep.Messages, rep.ClientCPU)
	}
	if rep.WireBytes != -1 || rep.ServerCPU != -1 || rep.ServerConnBytes != -1 {
		t.Errorf("server figures %d, %v, %d: want unknown (-1)", rep.WireBytes, rep.ServerCPU, rep.ServerConnBytes)
	}
}
