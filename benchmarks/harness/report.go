package harness

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
)

// WriteMarkdown writes results as a Markdown table of medians over their
// repetitions (msgs/s with its spread), followed by the ratios the targets
// are stated in: protows against each other implementation, Protobuf
// against JSON, and the cost of idempotency keys (an implementation named
// with KeyedSuffix against the one without).
func WriteMarkdown(w io.Writer, results []Result) error {
	var b strings.Builder
	metrics := Metrics()
	b.WriteString("| scenario | impl | codec | size | conns × in flight (or window) | mode | reps |")
	for _, m := range metrics {
		b.WriteString(" " + m.Name + " |")
	}
	b.WriteString("\n|---|---|---|---|---|---|---|")
	for range metrics {
		b.WriteString("---:|")
	}
	b.WriteString("\n")
	for _, r := range results {
		shape := strconv.Itoa(r.Conns)
		if r.InFlight > 0 {
			shape += " × " + strconv.Itoa(r.InFlight)
		}
		if r.Burst > 0 {
			shape += " (" + strconv.Itoa(r.Burst) + "/stream)"
		}
		if r.Rate > 0 {
			shape += " @ " + formatNumber(r.Rate) + "/s"
		}
		mode := r.Mode
		if r.Interleave > 0 {
			mode += ", turns of " + r.Interleave.String()
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %d |", r.Scenario, r.Impl, r.Codec, r.Size, shape, mode, len(r.Reps))
		for _, m := range metrics {
			b.WriteString(" " + formatNumber(m.Median(r)))
			if m.Name == msgsPerSec.Name {
				if s := m.Spread(r); s > 0 && !math.IsNaN(s) {
					fmt.Fprintf(&b, " ±%.0f%%", 100*s)
				}
			}
			b.WriteString(" |")
		}
		b.WriteString("\n")
	}
	writeRatios(&b, "| ratio of medians | msgs/s | server CPU s/M | server B/conn | server heap B/conn |\n|---|---:|---:|---:|---:|\n", ratios(results))
	writeRatios(&b, "| cost of idempotency keys (target: at most 1.10×) | calls/s unkeyed / keyed | server CPU per call keyed / unkeyed | client CPU per call keyed / unkeyed |\n|---|---:|---:|---:|\n", keyedCosts(results))
	_, err := io.WriteString(w, b.String())
	return err
}

// KeyedSuffix ends the name of an implementation that makes every call
// with an idempotency key (protows-keyed): the report sets it beside the
// implementation without the suffix, as the cost of the key.
const KeyedSuffix = "-keyed"

// writeRatios writes a table of ratio rows under head (its header and
// separator lines), after a blank line, or nothing when there are none.
func writeRatios(b *strings.Builder, head string, rows []ratio) {
	if len(rows) == 0 {
		return
	}
	b.WriteString("\n" + head)
	for _, row := range rows {
		fmt.Fprintf(b, "| %s |", row.label)
		for _, v := range row.values {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				b.WriteString(" – |")
			} else {
				fmt.Fprintf(b, " %.2f× |", v)
			}
		}
		b.WriteString("\n")
	}
}

// keyedCosts compares each implementation named with KeyedSuffix with the
// one without, for the same scenario, codec and size: calls/s as
// unkeyed / keyed, CPU per call as keyed / unkeyed, so that every figure
// is the key's cost (1.00× is free).
func keyedCosts(results []Result) []ratio {
	byID := make(map[string]Result, len(results))
	for _, r := range results {
		byID[r.ID()] = r
	}
	var out []ratio
	for _, k := range results {
		base, ok := strings.CutSuffix(k.Impl, KeyedSuffix)
		if !ok {
			continue
		}
		u := k
		u.Impl = base
		if u, ok = byID[u.ID()]; !ok {
			continue
		}
		row := ratio{
			label: fmt.Sprintf("%s %s %s: %s", k.Scenario, k.Codec, k.Size, base),
			values: []float64{
				msgsPerSec.Median(u) / msgsPerSec.Median(k),
				serverCPU.Median(k) / serverCPU.Median(u),
				clientCPU.Median(k) / clientCPU.Median(u),
			},
		}
		if rate, cpu, ok := turnRatios(u, k); ok {
			row.values[0], row.values[1] = rate, cpu
		}
		out = append(out, row)
	}
	return out
}

// turnRatios returns the medians, over the turns of a and b that were
// next to each other in time (Rep.Turns), of a's calls/s over b's and of
// b's server CPU per call over a's; ok is false unless a and b took turns
// on one server in every repetition. A turn of a fraction of a second
// next to the other load's meets the same machine; the median of the
// pairs passes over the few that a burst of the host's other work hit.
func turnRatios(a, b Result) (rate, cpu float64, ok bool) {
	if a.Interleave == 0 || a.Interleave != b.Interleave || len(a.Reps) != len(b.Reps) {
		return 0, 0, false
	}
	var rates, cpus []float64
	for i, ra := range a.Reps {
		rb := b.Reps[i]
		if len(ra.Turns) == 0 || len(ra.Turns) != len(rb.Turns) {
			return 0, 0, false
		}
		for j, ta := range ra.Turns {
			tb := rb.Turns[j]
			if ta.Messages == 0 || tb.Messages == 0 {
				continue
			}
			rates = append(rates, perSecond(ta.Messages, ta.Elapsed)/perSecond(tb.Messages, tb.Elapsed))
			cpus = append(cpus, cpuPerMillion(tb.ServerCPU, tb.Messages)/cpuPerMillion(ta.ServerCPU, ta.Messages))
		}
	}
	if len(cpus) == 0 {
		return 0, 0, false
	}
	return Median(rates), Median(cpus), true
}

// minConnsForMemory is the fewest connections whose memory the ratio table
// compares: below it, the growth of resident memory is mostly noise (page
// granularity, pools, the runtime's own growth).
const minConnsForMemory = 100

// ratioMetrics are the columns of the ratio table.
var ratioMetrics = []Metric{msgsPerSec, serverCPU, serverBytesPerConn, serverHeapPerConn}

type ratio struct {
	label  string
	values []float64 // a/b for each of ratioMetrics
}

// ratios compares protows with every other implementation of the same
// scenario, codec and size, and Protobuf with JSON for the same scenario,
// implementation and size: the comparisons the targets are stated in.
func ratios(results []Result) []ratio {
	// Results of one scenario at several connection counts (serverfanout
	// at 1,000 and 5,000 members) are compared at equal counts, and their
	// labels say which.
	type runKey struct {
		id    string
		conns int
	}
	byID := make(map[runKey]Result, len(results))
	counts := make(map[string]map[int]bool)
	for _, r := range results {
		byID[runKey{r.ID(), r.Conns}] = r
		k := r.Scenario + "/" + string(r.Size)
		if counts[k] == nil {
			counts[k] = make(map[int]bool)
		}
		counts[k][r.Conns] = true
	}
	at := func(r Result) string {
		if len(counts[r.Scenario+"/"+string(r.Size)]) > 1 {
			return fmt.Sprintf(", %d conns", r.Conns)
		}
		return ""
	}
	var out []ratio
	add := func(label string, a, b Result) {
		row := ratio{label: label}
		for _, m := range ratioMetrics {
			v := m.Median(a) / m.Median(b)
			if (m.Name == serverBytesPerConn.Name || m.Name == serverHeapPerConn.Name) && min(a.Conns, b.Conns) < minConnsForMemory {
				v = math.NaN() // a few connections are lost in the noise of RSS
			}
			row.values = append(row.values, v)
		}
		out = append(out, row)
	}
	for _, r := range results {
		if r.Impl != "protows" {
			continue
		}
		for _, o := range results {
			// The keyed implementation has a table of its own
			// (keyedCosts).
			if o.Impl != "protows" && !strings.HasSuffix(o.Impl, KeyedSuffix) && o.Scenario == r.Scenario && o.Codec == r.Codec && o.Size == r.Size && o.Conns == r.Conns {
				add(fmt.Sprintf("%s %s %s%s: protows / %s", r.Scenario, r.Codec, r.Size, at(r), o.Impl), r, o)
			}
		}
	}
	for _, r := range results {
		if r.Codec != CodecProto {
			continue
		}
		j := r
		j.Codec = CodecJSON
		if o, ok := byID[runKey{j.ID(), r.Conns}]; ok {
			add(fmt.Sprintf("%s %s %s%s: proto / json", r.Scenario, r.Impl, r.Size, at(r)), r, o)
		}
	}
	return out
}

// formatNumber writes v with about three significant digits, thousands
// grouped, and "–" for unknown.
func formatNumber(v float64) string {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return "–"
	case math.Abs(math.Round(v)) >= 1000:
		return groupThousands(int64(math.Round(v)))
	case math.Abs(v) >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case math.Abs(v) >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case math.Abs(v) >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	case v == 0:
		return "0"
	}
	// Below 1: three significant digits, trailing zeros kept.
	return fmt.Sprintf("%#.3g", v)
}

func groupThousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var parts []string
	for len(s) > 3 {
		parts = append(parts, s[len(s)-3:])
		s = s[:len(s)-3]
	}
	parts = append(parts, s)
	slices.Reverse(parts)
	out := strings.Join(parts, ",")
	if neg {
		out = "-" + out
	}
	return out
}
