package harness

import (
	"context"
	"time"
)

// Pacer spaces a publisher's events at a steady rate, for loads that
// measure the cost per message at a given rate rather than the most
// messages per second. Make one with NewPacer; a nil Pacer never waits.
type Pacer struct {
	interval time.Duration
	next     time.Time
}

// NewPacer returns a pacer of rate events per second, or nil (no pacing)
// for a rate of 0 or less.
func NewPacer(rate float64) *Pacer {
	if rate <= 0 {
		return nil
	}
	return &Pacer{interval: time.Duration(float64(time.Second) / rate)}
}

// Wait blocks until the next event is due, or ctx is done (then it returns
// ctx's error). A publisher that fell behind catches up by at most one
// interval's worth of events at once, rather than in a burst.
func (p *Pacer) Wait(ctx context.Context) error {
	if p == nil {
		return ctx.Err()
	}
	now := time.Now()
	if p.next.IsZero() || p.next.Before(now.Add(-p.interval)) {
		p.next = now
	}
	if d := p.next.Sub(now); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
	p.next = p.next.Add(p.interval)
	return ctx.Err()
}
