package harness

import (
	"fmt"
	"html"
	"io"
	"math"
	"strings"
)

// Chart geometry, in SVG user units.
const (
	chartWidth  = 760
	labelWidth  = 190
	barMaxWidth = 400
	barHeight   = 11
	rowGap      = 8
	panelGap    = 26
)

// The Okabe–Ito colours: distinguishable with every common colour-vision
// deficiency.
const (
	colorJSON  = "#e69f00"
	colorProto = "#0072b2"
)

// WriteSVG draws msgs/s (medians), JSON against Protobuf: one panel per
// scenario, one row per implementation and payload size, with the two bars
// of a row scaled to the row's larger value (the figures differ by orders of
// magnitude between sizes) and the Protobuf/JSON ratio at its end. Rows
// that lack one of the codecs are left out. Results are drawn in the order
// given.
func WriteSVG(w io.Writer, results []Result) error {
	type row struct {
		label      string
		json, prot float64
	}
	type panel struct {
		name string
		rows []*row
	}
	var panels []*panel
	find := func(name string) *panel {
		for _, p := range panels {
			if p.name == name {
				return p
			}
		}
		p := &panel{name: name}
		panels = append(panels, p)
		return p
	}
	for _, r := range results {
		p := find(r.Scenario)
		label := fmt.Sprintf("%s %s", r.Impl, r.Size)
		var rw *row
		for _, x := range p.rows {
			if x.label == label {
				rw = x
			}
		}
		if rw == nil {
			rw = &row{label: label, json: math.NaN(), prot: math.NaN()}
			p.rows = append(p.rows, rw)
		}
		switch r.Codec {
		case CodecJSON:
			rw.json = msgsPerSec.Median(r)
		case CodecProto:
			rw.prot = msgsPerSec.Median(r)
		}
	}

	var body strings.Builder
	y := 48
	for _, p := range panels {
		var rows []*row
		for _, rw := range p.rows {
			if rw.json > 0 && rw.prot > 0 {
				rows = append(rows, rw)
			}
		}
		if len(rows) == 0 {
			continue
		}
		fmt.Fprintf(&body, `<text x="10" y="%d" class="panel">%s</text>`+"\n", y, html.EscapeString(p.name))
		y += 10
		for _, rw := range rows {
			fmt.Fprintf(&body, `<text x="%d" y="%d" class="label">%s</text>`+"\n", labelWidth-8, y+barHeight+rowGap/4, html.EscapeString(rw.label))
			top := math.Max(rw.json, rw.prot)
			for i, v := range []float64{rw.json, rw.prot} {
				color := colorJSON
				if i == 1 {
					color = colorProto
				}
				by := y + i*barHeight
				width := int(math.Round(v / top * barMaxWidth))
				fmt.Fprintf(&body, `<rect x="%d" y="%d" width="%d" height="%d" fill="%s"/>`+"\n", labelWidth, by, width, barHeight-1, color)
				fmt.Fprintf(&body, `<text x="%d" y="%d" class="value">%s</text>`+"\n", labelWidth+width+4, by+barHeight-2, formatNumber(v))
			}
			fmt.Fprintf(&body, `<text x="%d" y="%d" class="ratio">%.2f×</text>`+"\n", chartWidth-10, y+barHeight+rowGap/4, rw.prot/rw.json)
			y += 2*barHeight + rowGap
		}
		y += panelGap
	}
	height := y
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n", chartWidth, height, chartWidth, height)
	b.WriteString(`<style>.panel{font-weight:bold;font-size:13px}.label{text-anchor:end}.value{fill:#333}.ratio{text-anchor:end;font-weight:bold}</style>` + "\n")
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#fff"/>`+"\n", chartWidth, height)
	b.WriteString(`<text x="10" y="20" class="panel">msgs/s, JSON vs Protobuf (bars scaled per row)</text>` + "\n")
	fmt.Fprintf(&b, `<rect x="400" y="10" width="12" height="12" fill="%s"/><text x="416" y="20">JSON</text>`+"\n", colorJSON)
	fmt.Fprintf(&b, `<rect x="470" y="10" width="12" height="12" fill="%s"/><text x="486" y="20">Protobuf</text>`+"\n", colorProto)
	fmt.Fprintf(&b, `<text x="%d" y="20" class="ratio">Protobuf / JSON</text>`+"\n", chartWidth-10)
	b.WriteString(body.String())
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}
