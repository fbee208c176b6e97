package client

import (
	"math/rand/v2"
	"time"
)

// Backoff configures the delays between reconnection attempts: exponential
// growth with full jitter (each delay is uniform in [0, ceiling), and the
// ceiling grows from Initial by Multiplier up to Max), as in "Exponential
// Backoff And Jitter" (AWS Architecture Blog, 2015). Full jitter spreads the
// clients of a restarted server over the whole window instead of letting them
// return in waves.
type Backoff struct {
	// Initial is the ceiling of the first delay. Zero means 500 ms.
	Initial time.Duration
	// Max caps the ceiling. Zero means 30 s.
	Max time.Duration
	// Multiplier is the growth of the ceiling per failed attempt. Zero (or
	// anything below 1) means 2.
	Multiplier float64
	// ResetAfter is how long a connection must stay up to count as healthy:
	// after a healthy connection drops, the backoff starts again from
	// Initial. Zero means 30 s.
	ResetAfter time.Duration
}

func (b Backoff) withDefaults() Backoff {
	if b.Initial <= 0 {
		b.Initial = 500 * time.Millisecond
	}
	if b.Max <= 0 {
		b.Max = 30 * time.Second
	}
	if b.Max < b.Initial {
		b.Max = b.Initial
	}
	if b.Multiplier < 1 {
		b.Multiplier = 2
	}
	if b.ResetAfter <= 0 {
		b.ResetAfter = 30 * time.Second
	}
	return b
}

// ceiling returns the upper bound of the delay before attempt n (0-based).
func (b Backoff) ceiling(n int) time.Duration {
	c := float64(b.Initial)
	for i := 0; i < n && c < float64(b.Max); i++ {
		c *= b.Multiplier
	}
	if c > float64(b.Max) {
		c = float64(b.Max)
	}
	return time.Duration(c)
}

// delay returns a full-jitter delay for attempt n: uniform in [0, ceiling(n)).
func (b Backoff) delay(n int, rnd func(int64) int64) time.Duration {
	c := b.ceiling(n)
	if c <= 0 {
		return 0
	}
	return time.Duration(rnd(int64(c)))
}

// jitterNow returns the delay for a reconnection "at once, with jitter"
// (close code 1001): uniform in [0, Initial), so that the clients of a
// draining server do not all return in the same millisecond.
func (b Backoff) jitterNow(rnd func(int64) int64) time.Duration {
	return time.Duration(rnd(int64(b.Initial)))
}

// randInt64N is the default source of jitter.
func randInt64N(n int64) int64 { return rand.Int64N(n) }
