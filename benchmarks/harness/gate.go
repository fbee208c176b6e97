package harness

import (
	"context"
	"sync/atomic"
)

// Gate is a flow-control window for fan-out loads: receivers Add each
// delivery, and the publisher Waits until enough deliveries arrived before
// it publishes more, so that a broadcast benchmark measures throughput rather
// than the depth of the server's queues. Make one with NewGate.
type Gate struct {
	delivered atomic.Int64
	want      atomic.Int64 // the target a Wait sleeps on; 0 when none
	ch        chan struct{}
}

// NewGate returns a Gate with no deliveries counted.
func NewGate() *Gate { return &Gate{ch: make(chan struct{}, 1)} }

// Add counts one delivery.
func (g *Gate) Add() {
	n := g.delivered.Add(1)
	if w := g.want.Load(); w > 0 && n >= w && g.want.CompareAndSwap(w, 0) {
		g.ch <- struct{}{}
	}
}

// AddN counts n deliveries at once.
func (g *Gate) AddN(n int64) {
	d := g.delivered.Add(n)
	if w := g.want.Load(); w > 0 && d >= w && g.want.CompareAndSwap(w, 0) {
		g.ch <- struct{}{}
	}
}

// Delivered returns the deliveries counted so far.
func (g *Gate) Delivered() int64 { return g.delivered.Load() }

// Wait blocks until at least target deliveries were counted, or ctx is done
// (then it returns ctx's error). Only one goroutine may Wait at a time.
func (g *Gate) Wait(ctx context.Context, target int64) error {
	if g.delivered.Load() >= target {
		return nil
	}
	g.want.Store(target)
	if g.delivered.Load() >= target && g.want.CompareAndSwap(target, 0) {
		return nil
	}
	// Either a receiver will signal, or one already took the want and is
	// sending.
	select {
	case <-g.ch:
		return nil
	case <-ctx.Done():
		if !g.want.CompareAndSwap(target, 0) {
			<-g.ch // a receiver took the want: consume its signal
		}
		return ctx.Err()
	}
}
