package harness

import (
	"math"
	"slices"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(xs ...int) []time.Duration {
		out := make([]time.Duration, len(xs))
		for i, x := range xs {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one", ms(7), 99, 7 * time.Millisecond},
		{"p0 is the minimum", ms(1, 2, 3), 0, time.Millisecond},
		{"p100 is the maximum", ms(1, 2, 3), 100, 3 * time.Millisecond},
		{"median of four is the second", ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{"p50 of 1..100", hundred, 50, 50 * time.Millisecond},
		{"p95 of 1..100", hundred, 95, 95 * time.Millisecond},
		{"p99 of 1..100", hundred, 99, 99 * time.Millisecond},
		{"p99.9 of 1..100 rounds up", hundred, 99.9, 100 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Percentile(tt.sorted, tt.p); got != tt.want {
				t.Errorf("Percentile(%v) = %v, want %v", tt.p, got, tt.want)
			}
		})
	}
}

func TestMedianAndSpread(t *testing.T) {
	tests := []struct {
		name       string
		xs         []float64
		median     float64
		spread     float64
		spreadIsNa bool
	}{
		{name: "none", xs: nil, median: math.NaN(), spread: 0},
		{name: "one", xs: []float64{5}, median: 5, spread: 0},
		{name: "odd", xs: []float64{3, 1, 2}, median: 2, spread: 0.5},
		{name: "even", xs: []float64{4, 1, 3, 2}, median: 2.5, spread: 0.6},
		{name: "equal", xs: []float64{9, 9, 9}, median: 9, spread: 0},
		{name: "zero median", xs: []float64{-1, 0, 1}, median: 0, spreadIsNa: true},
		{name: "within 5%", xs: []float64{95, 100, 105}, median: 100, spread: 0.05},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := append([]float64(nil), tt.xs...)
			m := Median(tt.xs)
			if !(m == tt.median || math.IsNaN(m) && math.IsNaN(tt.median)) {
				t.Errorf("Median = %v, want %v", m, tt.median)
			}
			s := Spread(tt.xs)
			switch {
			case tt.spreadIsNa && !math.IsNaN(s):
				t.Errorf("Spread = %v, want NaN", s)
			case !tt.spreadIsNa && math.Abs(s-tt.spread) > 1e-12:
				t.Errorf("Spread = %v, want %v", s, tt.spread)
			}
			for i := range in {
				if in[i] != tt.xs[i] {
					t.Fatalf("input was modified: %v, was %v", tt.xs, in)
				}
			}
		})
	}
}

func TestReservoirKeepsEverythingUpToCapacity(t *testing.T) {
	r := newReservoir(10, 1)
	for i := range 10 {
		r.add(time.Duration(i))
	}
	if len(r.samples) != 10 {
		t.Fatalf("kept %d samples, want 10", len(r.samples))
	}
	for i, d := range r.samples {
		if d != time.Duration(i) {
			t.Fatalf("sample %d = %v, want %v", i, d, time.Duration(i))
		}
	}
}

// A reservoir over a long uniform stream keeps a sample whose percentiles
// are those of the stream, within sampling error.
func TestReservoirSampleIsUniform(t *testing.T) {
	const n, capacity = 200_000, 5_000
	r := newReservoir(capacity, 42)
	for i := range n {
		r.add(time.Duration(i))
	}
	if len(r.samples) != capacity || r.seen != n {
		t.Fatalf("kept %d of %d, want %d of %d", len(r.samples), r.seen, capacity, n)
	}
	rec := &Recorder{series: []*Series{{res: r}}}
	sorted := rec.sorted()
	for _, p := range []float64{10, 50, 90, 99} {
		got := float64(Percentile(sorted, p))
		want := p / 100 * n
		if math.Abs(got-want) > 0.03*n {
			t.Errorf("p%v = %v, want %v ± 3%%", p, got, want)
		}
	}
}

func TestRecorderCountsAndStopsAtTarget(t *testing.T) {
	calls := 0
	rec := NewRecorder(5, 2, func() { calls++ })
	a, b := rec.Series(), rec.Series()
	var reached []bool
	for i := range 6 {
		s := a
		if i%2 == 1 {
			s = b
		}
		reached = append(reached, s.Record(time.Duration(6-i)*time.Millisecond, 100, 2))
	}
	if want := []bool{false, false, false, false, true, true}; !slices.Equal(reached, want) {
		t.Errorf("Record reported %v, want %v", reached, want)
	}
	if calls != 1 {
		t.Errorf("reached called %d times, want once", calls)
	}
	if rec.Messages() != 6 || rec.payload.Load() != 600 || rec.frames.Load() != 12 {
		t.Errorf("counted %d msgs, %d payload bytes, %d frames; want 6, 600, 12", rec.Messages(), rec.payload.Load(), rec.frames.Load())
	}
	sorted := rec.sorted()
	if len(sorted) != 6 || sorted[0] != time.Millisecond || sorted[5] != 6*time.Millisecond {
		t.Errorf("sorted latencies = %v", sorted)
	}
}
