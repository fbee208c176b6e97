package harness

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/protows/protows/benchmarks/payload"
)

// summaryFixture is a make bench in small: echo in two sizes against raw
// gorilla, a fan-out against Centrifuge, and paced echo, with round figures
// whose ratios are easy to check by hand.
func summaryFixture() []Result {
	r := func(scenario, impl, codec string, size payload.Size, msgs int64, wirePerMsg int64, reps int) Result {
		res := Result{Scenario: scenario, Impl: impl, Codec: codec, Size: size, Conns: 16, InFlight: 8, Mode: ModeChild}
		for range reps {
			res.Reps = append(res.Reps, Rep{Messages: msgs, Elapsed: time.Second, Frames: 2 * msgs, WireBytes: 2 * msgs * wirePerMsg, ServerCPU: -1, ClientCPU: -1, ServerConnBytes: -1})
		}
		return res
	}
	paced := func(impl, codec string, p50, p99, p999 time.Duration) Result {
		res := r("echo-paced", impl, codec, payload.Small, 40_000, 80, 3)
		res.Rate, res.InFlight = 40_000, 0
		for i := range res.Reps {
			res.Reps[i].P50, res.Reps[i].P99, res.Reps[i].P999 = p50, p99, p999
		}
		return res
	}
	return []Result{
		r("echo", "protows", CodecProto, payload.Small, 60_000, 80, 3),
		r("echo", "protows", CodecJSON, payload.Small, 40_000, 200, 3),
		r("echo", "gorilla", CodecProto, payload.Small, 80_000, 70, 3),
		r("echo", "gorilla", CodecJSON, payload.Small, 50_000, 190, 3),
		r("echo", "protows", CodecProto, payload.Medium, 20_000, 1000, 3),
		r("echo", "protows", CodecJSON, payload.Medium, 5_000, 4000, 3),
		r("echo", "gorilla", CodecProto, payload.Medium, 20_000, 990, 3),
		r("broadcast", "protows", CodecProto, payload.Small, 400_000, 70, 5),
		r("broadcast", "protows", CodecJSON, payload.Small, 200_000, 150, 5),
		r("broadcast", "centrifuge", CodecProto, payload.Small, 100_000, 90, 5),
		r("broadcast", "centrifuge", CodecJSON, payload.Small, 100_000, 170, 5),
		r("idle", "protows", CodecProto, payload.Small, 1000, 10, 1), // not in the summary
		paced("protows", CodecProto, 300*time.Microsecond, 1500*time.Microsecond, 4*time.Millisecond),
		paced("gorilla", CodecProto, 250*time.Microsecond, 1400*time.Microsecond, 3*time.Millisecond),
		paced("protows", CodecJSON, 500*time.Microsecond, 2500*time.Microsecond, 6*time.Millisecond),
		paced("gorilla", CodecJSON, 450*time.Microsecond, 2400*time.Microsecond, 5*time.Millisecond),
	}
}

func TestWriteSummaryGolden(t *testing.T) {
	var b bytes.Buffer
	if err := WriteSummary(&b, summaryFixture(), "chart.svg"); err != nil {
		t.Fatal(err)
	}
	golden(t, "summary.md", b.Bytes())
	// The figures the golden file must show, worked out by hand.
	for _, want := range []string{
		// 60k/40k msgs/s; 80/200 bytes; 60k/80k and 40k/50k against gorilla.
		"| echo | small | 60,000 | 40,000 | 1.50× | 80.0 | 200 | 0.40× | 0.75× / 0.80× | – |",
		// No JSON gorilla at medium: only the Protobuf ratio is known.
		"| echo | medium | 20,000 | 5,000 | 4.00× | 1,000 | 4,000 | 0.25× | 1.00× / – | – |",
		"| broadcast | small | 400,000 | 200,000 | 2.00× | 70.0 | 150 | 0.47× | – | 4.00× / 2.00× |",
		"](chart.svg)",
		"| proto | small | 40,000 | 100% / 100% | 0.300 / 1.50 / 4.00 | 0.250 / 1.40 / 3.00 | 1.07× | met |",
		// 2.5 ms is over 2 ms.
		"| json | small | 40,000 | 100% / 100% | 0.500 / 2.50 / 6.00 | 0.450 / 2.40 / 5.00 | 1.04× | missed |",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("summary lacks %q", want)
		}
	}
	for _, absent := range []string{"| idle", "| push", "| echo | large"} {
		if strings.Contains(b.String(), absent) {
			t.Errorf("summary has %q, which has no results", absent)
		}
	}
}

func TestWriteSummarySVGGolden(t *testing.T) {
	var b bytes.Buffer
	if err := WriteSummarySVG(&b, summaryFixture()); err != nil {
		t.Fatal(err)
	}
	golden(t, "summary.svg", b.Bytes())
	s := b.String()
	if !strings.HasPrefix(s, "<svg ") || !strings.HasSuffix(s, "</svg>\n") {
		t.Error("not an SVG document")
	}
	// One log scale for all panels, from 0.25× (bytes of echo medium) to
	// 4× (two powers of two either side of 1×): 1× is in the middle of
	// the 500-unit plot that starts at 170, so 4× ends at 670 and 2× at
	// 545.
	for _, want := range []string{
		`class="tick">0.25×</text>`, `class="tick">4×</text>`,
		`<rect x="420.0" y=`,                         // every bar above 1× starts at the 1× line
		`width="250.0" height="12" fill="#0072b2"/>`, // 4×: echo medium Protobuf ÷ JSON, and protows ÷ Centrifuge
		`width="125.0" height="12" fill="#0072b2"/>`, // 2×
		`<rect x="170.0" y=`,                         // 0.25×: echo medium bytes reach the left end
	} {
		if !strings.Contains(s, want) {
			t.Errorf("chart lacks %q", want)
		}
	}
	// Sorted, largest first, within a panel: in msgs/s Protobuf ÷ JSON,
	// echo medium (4×) before broadcast small (2×) before echo small (1.5×).
	i, j, k := strings.Index(s, ">echo medium<"), strings.Index(s, ">broadcast small<"), strings.Index(s, ">echo small<")
	if !(0 <= i && i < j && j < k) {
		t.Errorf("the first panel is not sorted: echo medium at %d, broadcast small at %d, echo small at %d", i, j, k)
	}
}

func TestSummaryNothingToShow(t *testing.T) {
	only := []Result{summaryFixture()[11]} // idle
	if err := WriteSummary(&bytes.Buffer{}, only, "x.svg"); !errors.Is(err, ErrNoSummary) {
		t.Errorf("WriteSummary of idle only = %v, want ErrNoSummary", err)
	}
	if err := WriteSummarySVG(&bytes.Buffer{}, only); !errors.Is(err, ErrNoSummary) {
		t.Errorf("WriteSummarySVG of idle only = %v, want ErrNoSummary", err)
	}
}

func TestSpliceSummary(t *testing.T) {
	doc := "# Results\n\nintro\n\n" + SummaryBegin + "\nold table\n" + SummaryEnd + "\n\n## Notebook\n"
	got, err := SpliceSummary([]byte(doc), []byte("new table\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := "# Results\n\nintro\n\n" + SummaryBegin + "\nnew table\n" + SummaryEnd + "\n\n## Notebook\n"
	if string(got) != want {
		t.Errorf("spliced\n%s\nwant\n%s", got, want)
	}
	// Splicing again replaces, rather than adds.
	again, _ := SpliceSummary(got, []byte("new table\n"))
	if string(again) != want {
		t.Errorf("a second splice changed the page:\n%s", again)
	}
	for _, bad := range []string{"# no markers\n", SummaryEnd + "\n" + SummaryBegin + "\n", SummaryBegin + "\n"} {
		if _, err := SpliceSummary([]byte(bad), []byte("x\n")); err == nil {
			t.Errorf("SpliceSummary accepted %q", bad)
		}
	}
}

// TestWriteSummaryPacedOnly: results of paced echo alone (a run of
// -scenarios echo-paced) make a page of the latency table only, with no
// chart to link; runs at two rates each get a row, protows against raw
// gorilla at the same rate.
func TestWriteSummaryPacedOnly(t *testing.T) {
	var paced []Result
	for _, r := range summaryFixture() {
		if r.Scenario == "echo-paced" && r.Codec == CodecProto {
			paced = append(paced, r)
			slow := r
			slow.Rate, slow.Reps = 20_000, slices.Clone(r.Reps)
			for i := range slow.Reps {
				slow.Reps[i].Messages /= 2
				slow.Reps[i].P99 /= 2
			}
			paced = append(paced, slow)
		}
	}
	var b bytes.Buffer
	if err := WriteSummary(&b, paced, "chart.svg"); err != nil {
		t.Fatal(err)
	}
	s := b.String()
	if !strings.HasPrefix(s, "### Latency of paced echo") || strings.Contains(s, "chart.svg") || strings.Contains(s, "| scenario |") {
		t.Errorf("a paced-only page has more than the latency table:\n%s", s)
	}
	for _, want := range []string{
		"| proto | small | 40,000 | 100% / 100% | 0.300 / 1.50 / 4.00 | 0.250 / 1.40 / 3.00 | 1.07× | met |",
		"| proto | small | 20,000 | 100% / 100% | 0.300 / 0.750 / 4.00 | 0.250 / 0.700 / 3.00 | 1.07× | met |",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("page lacks %q:\n%s", want, s)
		}
	}
	if i, j := strings.Index(s, "| 40,000 |"), strings.Index(s, "| 20,000 |"); i > j {
		t.Error("rows not sorted by rate, highest first")
	}
}
