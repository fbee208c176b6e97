package harness

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestPacerRate(t *testing.T) {
	if NewPacer(0) != nil {
		t.Fatal("NewPacer(0) paces")
	}
	var none *Pacer
	if err := none.Wait(context.Background()); err != nil {
		t.Fatalf("nil Pacer: %v", err)
	}
	p := NewPacer(200) // 5 ms apart
	start := time.Now()
	for range 21 {
		if err := p.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	// 21 events span 20 intervals: 100 ms, give or take the scheduler.
	if took := time.Since(start); took < 95*time.Millisecond || took > 2*time.Second {
		t.Errorf("21 events at 200/s took %v, want about 100ms", took)
	}
}

func TestPacerStopsWithContext(t *testing.T) {
	p := NewPacer(0.1) // 10 s apart
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := p.Wait(ctx); err != nil {
		t.Fatalf("first Wait = %v, want nil at once", err)
	}
	if err := p.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second Wait = %v, want deadline exceeded", err)
	}
}
