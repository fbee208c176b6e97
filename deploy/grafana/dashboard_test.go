// Package grafana_test checks the Grafana dashboard protows.json against
// the metrics the code exports.
package grafana_test

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	hubmetrics "github.com/protows/protows/hub/prommetrics"
	"github.com/protows/protows/transport/prommetrics"
)

// recorder is a Registerer that keeps what is registered with it.
type recorder struct{ cs []prometheus.Collector }

func (r *recorder) Register(c prometheus.Collector) error   { r.cs = append(r.cs, c); return nil }
func (r *recorder) MustRegister(cs ...prometheus.Collector) { r.cs = append(r.cs, cs...) }
func (r *recorder) Unregister(prometheus.Collector) bool    { return false }

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

// exported returns the names of the metric families the adapters register
// (and the Go and process collectors the demo adds), with the series names
// of histograms (_bucket, _sum, _count), and the families of the protows
// adapters alone.
func exported(t *testing.T) (names map[string]bool, protows []string) {
	t.Helper()
	var r recorder
	if _, err := prommetrics.New(&r); err != nil {
		t.Fatal(err)
	}
	if _, err := hubmetrics.New(&r); err != nil {
		t.Fatal(err)
	}
	ours := len(r.cs)
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	names = make(map[string]bool)
	for i, c := range r.cs {
		ch := make(chan *prometheus.Desc, 64)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			m := fqName.FindStringSubmatch(d.String())
			if m == nil {
				t.Fatalf("no name in %v", d)
			}
			names[m[1]] = true
			if i < ours {
				protows = append(protows, m[1])
			}
			if _, isHist := c.(*prometheus.HistogramVec); isHist {
				for _, s := range []string{"_bucket", "_sum", "_count"} {
					names[m[1]+s] = true
				}
			}
		}
	}
	return names, protows
}

// exprs returns every "expr" and "query" string of the dashboard.
func exprs(v any, out []string) []string {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if s, ok := x.(string); ok && (k == "expr" || k == "query" || k == "definition") {
				out = append(out, s)
				continue
			}
			out = exprs(x, out)
		}
	case []any:
		for _, x := range v {
			out = exprs(x, out)
		}
	}
	return out
}

// metricName matches the metric names a PromQL expression can use from
// our exporters: anything prefixed protows_, go_ or process_.
var metricName = regexp.MustCompile(`\b(?:protows|go|process)_[a-zA-Z0-9_]+`)

// TestDashboardNamesExportedMetrics fails when the dashboard queries a
// metric that the code does not export (a rename, a typo), and when a
// protows metric has no panel.
func TestDashboardNamesExportedMetrics(t *testing.T) {
	b, err := os.ReadFile("protows.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash map[string]any
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatal(err)
	}
	names, ours := exported(t)
	qs := exprs(dash, nil)
	if len(qs) < 20 {
		t.Fatalf("only %d queries in the dashboard", len(qs))
	}
	used := make(map[string]bool)
	for _, q := range qs {
		for _, n := range metricName.FindAllString(q, -1) {
			used[n] = true
			if !names[n] {
				t.Errorf("the dashboard queries %s, which no exporter has: %s", n, q)
			}
		}
	}
	var unused []string
	for _, n := range ours {
		if !used[n] && !used[n+"_bucket"] && !used[n+"_count"] {
			unused = append(unused, n)
		}
	}
	sort.Strings(unused)
	if len(unused) > 0 {
		t.Errorf("metrics with no panel: %v", unused)
	}
}

// TestDashboardShape: the panels have unique ids and all use the data
// source variable, so the dashboard imports into any Grafana.
func TestDashboardShape(t *testing.T) {
	b, err := os.ReadFile("protows.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			ID         int            `json:"id"`
			Type       string         `json:"type"`
			Datasource map[string]any `json:"datasource"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatal(err)
	}
	var ids []int
	for _, p := range dash.Panels {
		if slices.Contains(ids, p.ID) {
			t.Errorf("panel id %d twice", p.ID)
		}
		ids = append(ids, p.ID)
		if p.Type != "row" && !strings.Contains(p.Datasource["uid"].(string), "${datasource}") {
			t.Errorf("panel %d does not use the datasource variable: %v", p.ID, p.Datasource)
		}
	}
}
