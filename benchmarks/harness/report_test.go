package harness

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// fixture is a fixed set of results covering every column, a missing codec,
// unknown figures and each mode.
func fixture() []Result {
	rep := func(msgs int64, elapsed time.Duration) Rep {
		return Rep{
			Messages: msgs, Elapsed: elapsed, PayloadBytes: msgs * 120, Frames: 2 * msgs,
			WireBytes: msgs * 2 * 75, ServerWrites: msgs / 2, P50: 800 * time.Microsecond, P95: 2 * time.Millisecond, P99: 3500 * time.Microsecond,
			ServerCPU: time.Duration(msgs) * 10 * time.Microsecond, ClientCPU: time.Duration(msgs) * 8 * time.Microsecond,
			ServerPeakRSS: 30e6, ClientPeakRSS: 40e6, ServerConnBytes: 16 * 20_000, Conns: 16,
		}
	}
	// keyed makes a repetition of protows-keyed: 12 µs of server CPU a
	// call where protows takes 10, and 10 µs of client CPU where it takes 8.
	keyed := func(r Rep) Rep {
		r.ServerCPU = time.Duration(r.Messages) * 12 * time.Microsecond
		r.ClientCPU = time.Duration(r.Messages) * 10 * time.Microsecond
		return r
	}
	return []Result{
		{Scenario: "echo", Impl: "protows", Codec: CodecProto, Size: "small", Conns: 16, InFlight: 8, Mode: ModeChild,
			Reps: []Rep{rep(100_000, time.Second), rep(90_000, time.Second), rep(110_000, time.Second)}},
		{Scenario: "echo", Impl: "protows", Codec: CodecJSON, Size: "small", Conns: 16, InFlight: 8, Mode: ModeChild,
			Reps: []Rep{rep(50_000, time.Second), rep(50_000, time.Second), rep(50_000, time.Second)}},
		{Scenario: "echo", Impl: "protows-keyed", Codec: CodecProto, Size: "small", Conns: 16, InFlight: 8, Mode: ModeChild,
			Reps: []Rep{keyed(rep(80_000, time.Second)), keyed(rep(100_000, time.Second)), keyed(rep(90_000, time.Second))}},
		{Scenario: "echo", Impl: "gorilla", Codec: CodecProto, Size: "small", Conns: 16, InFlight: 8, Mode: ModeInProcess,
			Reps: []Rep{rep(120_000, time.Second)}},
		{Scenario: "idle", Impl: "protows", Codec: CodecProto, Size: "small", Conns: 1000, InFlight: 1, Mode: ModeChild,
			Reps: []Rep{{Messages: 1000, Elapsed: time.Second, Frames: 2000, WireBytes: -1, ServerCPU: 30 * time.Millisecond, ClientCPU: -1, ServerConnBytes: 10e6, ServerConnHeap: 7e6, Conns: 1000}}},
		{Scenario: "idle", Impl: "gorilla", Codec: CodecProto, Size: "small", Conns: 1000, InFlight: 1, Mode: ModeChild,
			Reps: []Rep{{Messages: 1000, Elapsed: time.Second, Frames: 2000, WireBytes: -1, ServerCPU: 20 * time.Millisecond, ClientCPU: -1, ServerConnBytes: 20e6, ServerConnHeap: 16e6, Conns: 1000}}},
		{Scenario: "broadcast-steady", Impl: "protows", Codec: CodecProto, Size: "small", Conns: 1000, InFlight: 8, Rate: 20, Mode: ModeChild,
			Reps: []Rep{{Messages: 40_000, Elapsed: 2 * time.Second, Frames: 40_000, WireBytes: 40_000 * 67, ServerCPU: 400 * time.Millisecond,
				ClientCPU: 500 * time.Millisecond, ServerConnBytes: 20e6, Conns: 1000, Counters: map[string]int64{CounterMarshals: 40}}}},
		{Scenario: "push", Impl: "gorilla", Codec: CodecProto, Size: "large", Conns: 4, Mode: ModeExternal,
			Reps: []Rep{{Messages: 1234, Elapsed: 2 * time.Second, PayloadBytes: 1234 * 65_000, Frames: 1234, WireBytes: -1,
				ServerCPU: -1, ClientCPU: 500 * time.Millisecond, ServerConnBytes: -1, Conns: 4, P50: 40 * time.Millisecond}}},
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it):\n%s", name, got)
	}
}

func TestWriteMarkdownGolden(t *testing.T) {
	var b bytes.Buffer
	if err := WriteMarkdown(&b, fixture()); err != nil {
		t.Fatal(err)
	}
	golden(t, "report.md", b.Bytes())
	// The figures the golden file must show, spelled out so that a wrong
	// golden file cannot pass unnoticed.
	for _, want := range []string{
		"| echo | protows | proto | small | 16 × 8 | child | 3 | 100,000 ±10% | 12.0 | 0.800 | 2.00 | 3.50 | 75.0 | 0.500 | 10.0 | 8.00 | 30.0 | 40.0 | 20,000 |",
		"| echo | gorilla | proto | small | 16 × 8 | in-process | 1 | 120,000 | 14.4 | 0.800 | 2.00 | 3.50 | 75.0 | 0.500 | 10.0 | – | 30.0 | – | 20,000 |",
		"| push | gorilla | proto | large | 4 | external | 1 | 617 | 40.1 | 40.0 | 0 | 0 | – | – | – | 405 | – | – | – |",
		"| echo proto small: protows / gorilla | 0.83× | 1.00× | – |",
		// The key's cost: 100,000 / 90,000 calls/s, 12 / 10 µs, 10 / 8 µs.
		"| echo proto small: protows | 1.11× | 1.20× | 1.25× |",
		"| echo protows small: proto / json | 2.00× | 1.00× | – |",
		"| idle proto small: protows / gorilla | 1.00× | 1.50× | 0.50× |",
		"| idle | gorilla | proto | small | 1000 × 1 | child | 1 | 1,000 | 0 | 0 | 0 | 0 | – | – | 20.0 | – | – | – | 20,000 |",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q", want)
		}
	}
}

func TestWriteSVGGolden(t *testing.T) {
	var b bytes.Buffer
	if err := WriteSVG(&b, fixture()); err != nil {
		t.Fatal(err)
	}
	golden(t, "chart.svg", b.Bytes())
	s := b.String()
	if !strings.HasPrefix(s, "<svg ") || !strings.HasSuffix(s, "</svg>\n") {
		t.Error("not an SVG document")
	}
	// Bars are scaled per row: the Protobuf bar of protows small (twice the
	// JSON figure) spans the full width and the JSON bar half of it, with
	// the ratio at the end. Rows without both codecs (gorilla's echo, the
	// push and idle rows) are left out, and so are their panels.
	for _, want := range []string{
		`<rect x="190" y="58" width="200" height="10" fill="#e69f00"/>`,
		`<rect x="190" y="69" width="400" height="10" fill="#0072b2"/>`,
		`class="ratio">2.00×</text>`,
		`>echo</text>`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("chart lacks %q", want)
		}
	}
	for _, absent := range []string{"gorilla small", ">push</text>", ">idle</text>"} {
		if strings.Contains(s, absent) {
			t.Errorf("chart has %q, a row or panel without both codecs", absent)
		}
	}
}

func TestJSONLRoundTrip(t *testing.T) {
	var b bytes.Buffer
	if err := WriteJSONL(&b, fixture()); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(b.String(), "\n"); n != len(fixture()) {
		t.Fatalf("%d lines, want %d", n, len(fixture()))
	}
	got, err := ReadJSONL(strings.NewReader(b.String() + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	var again bytes.Buffer
	if err := WriteJSONL(&again, got); err != nil {
		t.Fatal(err)
	}
	if again.String() != b.String() {
		t.Errorf("round trip changed the results:\n%s\nwant\n%s", again.String(), b.String())
	}
	if _, err := ReadJSONL(strings.NewReader("{\"scenario\":\n")); err == nil {
		t.Error("ReadJSONL accepted a broken line")
	}
}

func TestFormatNumber(t *testing.T) {
	tests := map[float64]string{
		1234567: "1,234,567", -4321: "-4,321", 999.6: "1,000", 123.4: "123", 12.34: "12.3",
		1.234: "1.23", 0.01234: "0.0123", 0.8: "0.800", 0: "0",
	}
	for v, want := range tests {
		if got := formatNumber(v); got != want {
			t.Errorf("formatNumber(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestCombine(t *testing.T) {
	rep := func(n int64) Rep { return Rep{Messages: n, Elapsed: time.Second} }
	a1 := Result{Scenario: "broadcast", Impl: "protows", Codec: CodecProto, Size: "small", Conns: 101, Mode: ModeChild, Reps: []Rep{rep(1)}}
	b1 := Result{Scenario: "broadcast", Impl: "centrifuge", Codec: CodecProto, Size: "small", Conns: 101, Mode: ModeChild, Reps: []Rep{rep(10)}}
	a2, b2, a3 := a1, b1, a1
	a2.Reps, b2.Reps, a3.Reps = []Rep{rep(2)}, []Rep{rep(20)}, []Rep{rep(3)}
	other := a1
	other.Rate, other.Reps = 20, []Rep{rep(99)}

	got := Combine([]Result{a1, b1, a2, b2, other, a3})
	if len(got) != 3 {
		t.Fatalf("%d results, want 3: %+v", len(got), got)
	}
	for i, want := range [][]int64{{1, 2, 3}, {10, 20}, {99}} {
		var msgs []int64
		for _, r := range got[i].Reps {
			msgs = append(msgs, r.Messages)
		}
		if !slices.Equal(msgs, want) {
			t.Errorf("result %d (%s, rate %v): reps %v, want %v", i, got[i].ID(), got[i].Rate, msgs, want)
		}
	}
	if len(a1.Reps) != 1 {
		t.Error("Combine modified its input")
	}
	if m := msgsPerSec.Median(got[0]); m != 2 {
		t.Errorf("median of the combined reps %v, want 2", m)
	}
}

// TestRatiosAtEqualConns: a scenario run at several connection counts is
// compared at equal counts, with the count in the label.
func TestRatiosAtEqualConns(t *testing.T) {
	rep := func(msgs int64) []Rep {
		return []Rep{{Messages: msgs, Elapsed: time.Second, ServerCPU: -1, ServerConnBytes: -1}}
	}
	var results []Result
	for _, n := range []int{1000, 5000} {
		for _, impl := range []string{"protows", "gorilla"} {
			msgs := int64(n)
			if impl == "protows" {
				msgs /= 2
			}
			results = append(results, Result{Scenario: "serverfanout", Impl: impl, Codec: CodecProto, Size: "small", Conns: n, Reps: rep(msgs)})
		}
	}
	rows := ratios(results)
	if len(rows) != 2 {
		t.Fatalf("%d ratio rows, want 2: %+v", len(rows), rows)
	}
	for i, n := range []int{1000, 5000} {
		want := fmt.Sprintf("serverfanout proto small, %d conns: protows / gorilla", n)
		if rows[i].label != want || rows[i].values[0] != 0.5 {
			t.Errorf("row %d: %q %v, want %q 0.5", i, rows[i].label, rows[i].values[0], want)
		}
	}
}
