package harness

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

func TestGateWaitsForDeliveries(t *testing.T) {
	g := NewGate()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := g.Wait(ctx, 0); err != nil {
		t.Fatalf("Wait(0) = %v, want nil at once", err)
	}
	const receivers, each = 8, 1000
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range receivers {
		wg.Go(func() {
			<-start
			for range each {
				g.Add()
			}
		})
	}
	// Wait for increasing targets while receivers race to meet them.
	close(start)
	for target := int64(1); target <= receivers*each; target += 997 {
		if err := g.Wait(ctx, target); err != nil {
			t.Fatalf("Wait(%d) = %v", target, err)
		}
		if got := g.Delivered(); got < target {
			t.Fatalf("Wait(%d) returned with %d delivered", target, got)
		}
	}
	wg.Wait()
	if err := g.Wait(ctx, receivers*each); err != nil {
		t.Fatal(err)
	}
}

func TestGateWaitEndsWithContext(t *testing.T) {
	g := NewGate()
	g.Add()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := g.Wait(ctx, 2); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait = %v, want deadline exceeded", err)
	}
	// The abandoned want must not wedge the next Wait.
	done := make(chan error, 1)
	go func() { done <- g.Wait(context.Background(), 3) }()
	g.Add()
	g.Add()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wait(3) did not return after 3 deliveries")
	}
}
