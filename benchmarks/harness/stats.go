package harness

import (
	"math"
	"slices"
	"time"
)

// Percentile returns the p-th percentile (0 <= p <= 100) of sorted, by the
// nearest-rank method: the smallest sample such that at least p percent of
// the samples are less than or equal to it. It returns 0 for no samples.
// Nearest rank rather than interpolation, so that a reported latency is one
// that was actually observed.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// Median returns the median of xs (the mean of the two middle values for an
// even count), or NaN for none. xs is not modified.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// Spread returns half the range of xs relative to their median: 0.05 means
// the repetitions lay within about ±5% of the median. It returns 0 for fewer
// than two values and NaN when the median is 0 but the values differ.
func Spread(xs []float64) float64 {
	if len(xs) < 2 {
		return 0
	}
	lo, hi := slices.Min(xs), slices.Max(xs)
	if lo == hi {
		return 0
	}
	m := Median(xs)
	if m == 0 {
		return math.NaN()
	}
	return (hi - lo) / 2 / math.Abs(m)
}

// reservoir keeps a uniform random sample of at most cap latencies from a
// stream of any length (Vitter's algorithm R), so that percentiles stay
// accurate for long runs in bounded memory.
type reservoir struct {
	samples []time.Duration
	seen    int64
	cap     int
	rng     uint64 // xorshift state; deterministic, no shared global source
}

func newReservoir(capacity int, seed uint64) *reservoir {
	return &reservoir{cap: capacity, rng: seed | 1, samples: make([]time.Duration, 0, min(capacity, 1024))}
}

func (r *reservoir) add(d time.Duration) {
	r.seen++
	if len(r.samples) < r.cap {
		r.samples = append(r.samples, d)
		return
	}
	r.rng ^= r.rng << 13
	r.rng ^= r.rng >> 7
	r.rng ^= r.rng << 17
	if j := r.rng % uint64(r.seen); j < uint64(r.cap) {
		r.samples[j] = d
	}
}
