package main

import "math/bits"

// Hist counts latencies (microseconds) in log-linear buckets: exact below
// 128 µs, then 64 buckets per power of two, so a bucket is at most 1/64
// (1.6%) wide. Load processes send theirs to the driver, which adds them:
// percentiles over every member of every process, which the processes'
// own percentiles could not give.
type Hist []int64

const histSub = 64 // buckets per power of two, above 2*histSub

// histIndex is the bucket of v (v >= 0).
func histIndex(v int64) int {
	if v < 2*histSub {
		return int(max(v, 0))
	}
	shift := bits.Len64(uint64(v)) - 7 // v>>shift is in [64, 128)
	return shift*histSub + int(v>>shift)
}

// histUpper is the largest value of bucket i.
func histUpper(i int) int64 {
	if i < 2*histSub {
		return int64(i)
	}
	shift := i/histSub - 1
	mant := int64(i - shift*histSub)
	return (mant+1)<<shift - 1
}

// Add counts v.
func (h *Hist) Add(v int64) {
	i := histIndex(v)
	if i >= len(*h) {
		*h = append(*h, make([]int64, i+1-len(*h))...)
	}
	(*h)[i]++
}

// Merge adds the counts of o.
func (h *Hist) Merge(o Hist) {
	if len(o) > len(*h) {
		*h = append(*h, make([]int64, len(o)-len(*h))...)
	}
	for i, n := range o {
		(*h)[i] += n
	}
}

// Count is the number of values counted.
func (h Hist) Count() int64 {
	var n int64
	for _, c := range h {
		n += c
	}
	return n
}

// Quantile returns the upper bound of the bucket that holds the q-th
// quantile (0 < q <= 1), or 0 for an empty histogram: at most 1.6% above
// the exact value.
func (h Hist) Quantile(q float64) int64 {
	total := h.Count()
	if total == 0 {
		return 0
	}
	// The same rank as the exact percentiles: the value at index
	// floor(q*total) of the sorted values.
	rank := min(int64(q*float64(total)), total-1)
	var seen int64
	for i, c := range h {
		seen += c
		if seen > rank {
			return histUpper(i)
		}
	}
	return histUpper(len(h) - 1)
}
