package harness

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"html"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/protows/protows/benchmarks/payload"
)

// The implementations the summary compares protows with.
const (
	implProtows    = "protows"
	implGorilla    = "gorilla"
	implCentrifuge = "centrifuge"
)

// summaryScenarios are the scenarios of the summary's table and chart, in
// order: the shapes a user of protows builds on (request/reply, server
// push, room fan-out).
var summaryScenarios = []string{"echo", "push", "broadcast"}

// Paced-latency targets (issue 17): protows's p99 at half the raw
// baseline's peak rate is at most PacedP99Target and at most
// PacedP99Ratio times raw gorilla's p99 at the same rate.
const (
	PacedP99Target = 2.0 // ms
	PacedP99Ratio  = 1.1
)

// ErrNoSummary is returned by WriteSummary and WriteSummarySVG when results
// have nothing the summary shows: no protows echo, push or broadcast (or,
// for the chart, no ratio). The load tool then writes no summary files.
var ErrNoSummary = errors.New("harness: no results for the summary (protows echo, push or broadcast, with a codec or implementation to compare)")

// summaryIndex finds the results of the summary by scenario, impl, codec
// and size.
type summaryIndex map[string]Result

func newSummaryIndex(results []Result) summaryIndex {
	idx := make(summaryIndex, len(results))
	for _, r := range Combine(results) {
		if _, dup := idx[r.ID()]; !dup { // the first of results that differ only in a parameter
			idx[r.ID()] = r
		}
	}
	return idx
}

func (x summaryIndex) get(scenario, impl, codec string, size payload.Size) (Result, bool) {
	r, ok := x[Result{Scenario: scenario, Impl: impl, Codec: codec, Size: size}.ID()]
	return r, ok
}

// median returns m's median for the result, or NaN when there is none.
func (x summaryIndex) median(m Metric, scenario, impl, codec string, size payload.Size) float64 {
	r, ok := x.get(scenario, impl, codec, size)
	if !ok {
		return math.NaN()
	}
	return m.Median(r)
}

// WriteSummary writes the short results page: one table of protows's
// msgs/s and bytes on the wire per codec and payload size, with the ratios
// against raw gorilla/websocket and Centrifuge and of Protobuf against
// JSON; the chart (an image at chartPath, drawn by WriteSummarySVG); and the
// latency of paced echo, when results have it. Every figure is a median
// over the repetitions of results.
func WriteSummary(w io.Writer, results []Result, chartPath string) error {
	idx := newSummaryIndex(results)
	var b strings.Builder
	if writeRatioTable(&b, idx) {
		b.WriteString("\nPayloads: small is about 64 bytes in Protobuf, medium about 1 KB, large about 64 KB (benchmarks/payload). ")
		b.WriteString("Above 1× protows (or Protobuf) is faster; a bytes ratio below 1× means Protobuf is smaller.\n\n")
	}
	if _, panels := summaryPanels(idx); len(panels) > 0 {
		fmt.Fprintf(&b, "![msgs/s and bytes on the wire: the ratios, sorted, on one scale](%s)\n", chartPath)
	}
	writePacedSummary(&b, results)
	if b.Len() == 0 {
		return ErrNoSummary
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeRatioTable writes the table of msgs/s, bytes and ratios, and
// reports whether it had a row.
func writeRatioTable(out *strings.Builder, idx summaryIndex) bool {
	var b strings.Builder
	b.WriteString("Medians over the repetitions of one `make bench`; the ratios divide medians of the same run.\n")
	b.WriteString("msgs/s counts calls completed (echo) or messages delivered (push, fan-out); wire B/msg is the TCP bytes, both ways, per WebSocket message that carries a payload.\n\n")
	b.WriteString("| scenario | payload | protows msgs/s, Protobuf | protows msgs/s, JSON | Protobuf ÷ JSON, msgs/s | wire B/msg, Protobuf | wire B/msg, JSON | Protobuf ÷ JSON, bytes | protows ÷ raw gorilla, msgs/s (Protobuf / JSON) | protows ÷ Centrifuge, msgs/s (Protobuf / JSON) |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	rows := 0
	for _, sc := range summaryScenarios {
		for _, size := range payload.Sizes {
			pm := idx.median(msgsPerSec, sc, implProtows, CodecProto, size)
			jm := idx.median(msgsPerSec, sc, implProtows, CodecJSON, size)
			if math.IsNaN(pm) && math.IsNaN(jm) {
				continue
			}
			rows++
			pw := idx.median(wirePerMsg, sc, implProtows, CodecProto, size)
			jw := idx.median(wirePerMsg, sc, implProtows, CodecJSON, size)
			vs := func(other string) string {
				p := pm / idx.median(msgsPerSec, sc, other, CodecProto, size)
				j := jm / idx.median(msgsPerSec, sc, other, CodecJSON, size)
				if !finite(p) && !finite(j) {
					return "–"
				}
				return formatRatio(p) + " / " + formatRatio(j)
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", sc, size,
				formatNumber(pm), formatNumber(jm), formatRatio(pm/jm),
				formatNumber(pw), formatNumber(jw), formatRatio(pw/jw),
				vs(implGorilla), vs(implCentrifuge))
		}
	}
	if rows == 0 {
		return false
	}
	out.WriteString(b.String())
	return true
}

// writePacedSummary adds the table of paced echo, when results have it:
// latency percentiles of protows and raw gorilla at the same open-loop
// rate, and whether protows meets the targets. Runs at several rates each
// get a row.
func writePacedSummary(b *strings.Builder, results []Result) {
	type row struct {
		prot, raw Result
	}
	var rows []row
	all := Combine(results)
	for _, p := range all {
		if p.Scenario != "echo-paced" || p.Impl != implProtows {
			continue
		}
		for _, g := range all {
			if g.Scenario == p.Scenario && g.Impl == implGorilla && g.Codec == p.Codec && g.Size == p.Size && g.Rate == p.Rate {
				rows = append(rows, row{p, g})
				break
			}
		}
	}
	if len(rows) == 0 {
		return
	}
	order := func(c string) int { return slices.Index([]string{CodecProto, CodecJSON}, c) }
	slices.SortStableFunc(rows, func(x, y row) int {
		return cmp.Or(cmp.Compare(order(x.prot.Codec), order(y.prot.Codec)),
			cmp.Compare(slices.Index(payload.Sizes, x.prot.Size), slices.Index(payload.Sizes, y.prot.Size)),
			cmp.Compare(y.prot.Rate, x.prot.Rate))
	})
	if b.Len() > 0 {
		b.WriteString("\n")
	}
	b.WriteString("### Latency of paced echo\n\n")
	b.WriteString("Echo calls sent on an open-loop schedule (each latency runs from the time its call was due, so queueing behind a slow reply counts), ")
	b.WriteString("protows and raw gorilla at the same rate: in `make bench`, half the msgs/s of saturated raw gorilla echo in the same run. ")
	b.WriteString("Completed is the share of the calls due that completed. ")
	fmt.Fprintf(b, "Target at half the peak: protows p99 ≤ %.0f ms and ≤ %.1f× raw gorilla's.\n\n", PacedP99Target, PacedP99Ratio)
	b.WriteString("| codec | payload | calls/s due | completed, protows / gorilla | protows p50 / p99 / p999 ms | raw gorilla p50 / p99 / p999 ms | p99 protows ÷ gorilla | target |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---|\n")
	for _, r := range rows {
		pct := func(x Result) string {
			return formatNumber(p50.Median(x)) + " / " + formatNumber(p99.Median(x)) + " / " + formatNumber(p999.Median(x))
		}
		pp, gp := p99.Median(r.prot), p99.Median(r.raw)
		verdict := "met"
		if !(pp <= PacedP99Target && pp <= PacedP99Ratio*gp) {
			verdict = "missed"
		}
		// A rate that was not kept up means the machine, or the
		// implementation, could not take it: the latencies are then queues.
		rate := r.prot.Rate
		kept := fmt.Sprintf("%.0f%% / %.0f%%", 100*msgsPerSec.Median(r.prot)/rate, 100*msgsPerSec.Median(r.raw)/rate)
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", r.prot.Codec, r.prot.Size, formatNumber(rate), kept, pct(r.prot), pct(r.raw), formatRatio(pp/gp), verdict)
	}
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

func formatRatio(v float64) string {
	if !finite(v) {
		return "–"
	}
	return fmt.Sprintf("%.2f×", v)
}

// A bar of the summary chart: one ratio.
type summaryBar struct {
	label string
	value float64
}

// summaryPanels returns the chart's panels, each sorted largest first:
// Protobuf against JSON (msgs/s, then bytes on the wire), protows against
// raw gorilla and against Centrifuge (msgs/s).
func summaryPanels(idx summaryIndex) (titles []string, panels [][]summaryBar) {
	var pj, bytesPJ, vsRaw, vsCent []summaryBar
	for _, sc := range summaryScenarios {
		for _, size := range payload.Sizes {
			label := fmt.Sprintf("%s %s", sc, size)
			add := func(to *[]summaryBar, label string, v float64) {
				if finite(v) && v > 0 {
					*to = append(*to, summaryBar{label, v})
				}
			}
			add(&pj, label, idx.median(msgsPerSec, sc, implProtows, CodecProto, size)/idx.median(msgsPerSec, sc, implProtows, CodecJSON, size))
			add(&bytesPJ, label, idx.median(wirePerMsg, sc, implProtows, CodecProto, size)/idx.median(wirePerMsg, sc, implProtows, CodecJSON, size))
			for _, c := range []string{CodecProto, CodecJSON} {
				l := label + " " + c
				add(&vsRaw, l, idx.median(msgsPerSec, sc, implProtows, c, size)/idx.median(msgsPerSec, sc, implGorilla, c, size))
				add(&vsCent, l, idx.median(msgsPerSec, sc, implProtows, c, size)/idx.median(msgsPerSec, sc, implCentrifuge, c, size))
			}
		}
	}
	all := [][]summaryBar{pj, bytesPJ, vsRaw, vsCent}
	names := []string{
		"msgs/s, Protobuf ÷ JSON (protows)",
		"bytes on the wire per message, Protobuf ÷ JSON (protows)",
		"msgs/s, protows ÷ raw gorilla/websocket",
		"msgs/s, protows ÷ Centrifuge",
	}
	for i, p := range all {
		if len(p) == 0 {
			continue
		}
		slices.SortStableFunc(p, func(a, b summaryBar) int { return cmp.Compare(b.value, a.value) })
		titles = append(titles, names[i])
		panels = append(panels, p)
	}
	return titles, panels
}

// Summary chart geometry, in SVG user units.
const (
	sumWidth     = 760
	sumLabelW    = 170
	sumPlotW     = 500
	sumBarH      = 12
	sumRowGap    = 4
	sumPanelGap  = 22
	sumAxisTicks = 16 // at most this many ×2 gridlines either side of 1×
)

// WriteSummarySVG draws the ratios of the summary as horizontal bars on
// one logarithmic scale shared by every panel, each bar growing from the
// 1× line (right: protows or Protobuf ahead; left: behind or, for bytes,
// smaller), each panel sorted largest first.
func WriteSummarySVG(w io.Writer, results []Result) error {
	titles, panels := summaryPanels(newSummaryIndex(results))
	if len(panels) == 0 {
		return ErrNoSummary
	}
	// The common scale: powers of two around 1× that hold every ratio.
	lo, hi := 1.0, 1.0
	for _, p := range panels {
		for _, bar := range p {
			lo, hi = math.Min(lo, bar.value), math.Max(hi, bar.value)
		}
	}
	loExp := max(math.Floor(math.Log2(lo)), -sumAxisTicks)
	hiExp := min(math.Ceil(math.Log2(hi)), sumAxisTicks)
	if loExp == hiExp {
		loExp, hiExp = loExp-1, hiExp+1
	}
	x := func(v float64) float64 {
		e := min(max(math.Log2(v), loExp), hiExp)
		return sumLabelW + (e-loExp)/(hiExp-loExp)*sumPlotW
	}
	var body bytes.Buffer
	y := 44
	for i, p := range panels {
		fmt.Fprintf(&body, `<text x="10" y="%d" class="panel">%s</text>`+"\n", y, html.EscapeString(titles[i]))
		y += 8
		// Grid lines first, so that the bars are drawn over them.
		bottom := y + len(p)*(sumBarH+sumRowGap)
		for e := loExp; e <= hiExp; e++ {
			gx := sumLabelW + (e-loExp)/(hiExp-loExp)*sumPlotW
			class := "grid"
			if e == 0 {
				class = "one"
			}
			fmt.Fprintf(&body, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" class="%s"/>`+"\n", gx, y-2, gx, bottom, class)
		}
		for _, bar := range p {
			x0, x1 := x(1), x(bar.value)
			color := colorProto
			if bar.value < 1 {
				x0, x1 = x1, x0
				color = colorJSON
			}
			fmt.Fprintf(&body, `<text x="%d" y="%d" class="label">%s</text>`+"\n", sumLabelW-6, y+sumBarH-2, html.EscapeString(bar.label))
			fmt.Fprintf(&body, `<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", x0, y, math.Max(x1-x0, 1), sumBarH, color)
			fmt.Fprintf(&body, `<text x="%.1f" y="%d" class="value">%.2f×</text>`+"\n", math.Max(x0, x1)+4, y+sumBarH-2, bar.value)
			y += sumBarH + sumRowGap
		}
		y += sumPanelGap
	}
	// The scale, once at the bottom.
	for e := loExp; e <= hiExp; e++ {
		gx := sumLabelW + (e-loExp)/(hiExp-loExp)*sumPlotW
		fmt.Fprintf(&body, `<text x="%.1f" y="%d" class="tick">%s×</text>`+"\n", gx, y-sumPanelGap+14, strconv.FormatFloat(math.Exp2(e), 'g', -1, 64))
	}
	height := y
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n", sumWidth, height, sumWidth, height)
	b.WriteString(`<style>.panel{font-weight:bold;font-size:13px}.label{text-anchor:end}.value{fill:#333}.tick{text-anchor:middle;fill:#555}.grid{stroke:#ddd}.one{stroke:#000}.note{text-anchor:end;fill:#555}</style>` + "\n")
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#fff"/>`+"\n", sumWidth, height)
	b.WriteString(`<text x="10" y="20" class="panel">protows: the ratios of one make bench, sorted, on one log scale</text>` + "\n")
	fmt.Fprintf(&b, `<text x="%d" y="20" class="note">right of 1×: more (msgs/s or bytes); left: fewer</text>`+"\n", sumWidth-10)
	b.Write(body.Bytes())
	b.WriteString("</svg>\n")
	_, err := w.Write(b.Bytes())
	return err
}

// Markers of the generated part of a results page (SpliceSummary).
const (
	SummaryBegin = "<!-- BEGIN summary: generated by protows-load -summary-into; do not edit -->"
	SummaryEnd   = "<!-- END summary -->"
)

// SpliceSummary returns doc with the text between its summary markers
// replaced by summary: how `make bench-results` puts the short page at the
// top of benchmarks/RESULTS.md and keeps what is written around it. It
// fails when doc lacks the markers, in order.
func SpliceSummary(doc, summary []byte) ([]byte, error) {
	i := bytes.Index(doc, []byte(SummaryBegin))
	j := bytes.Index(doc, []byte(SummaryEnd))
	if i < 0 || j < i {
		return nil, fmt.Errorf("harness: the page lacks the lines %q and %q, in that order", SummaryBegin, SummaryEnd)
	}
	var out bytes.Buffer
	out.Write(doc[:i+len(SummaryBegin)])
	out.WriteString("\n")
	out.Write(summary)
	out.Write(doc[j:])
	return out.Bytes(), nil
}
