package client

import (
	"testing"
	"time"
)

func TestBackoffDefaults(t *testing.T) {
	t.Parallel()
	b := Backoff{}.withDefaults()
	want := Backoff{Initial: 500 * time.Millisecond, Max: 30 * time.Second, Multiplier: 2, ResetAfter: 30 * time.Second}
	if b != want {
		t.Errorf("defaults = %+v, want %+v", b, want)
	}
	if b := (Backoff{Initial: time.Minute, Max: time.Second}).withDefaults(); b.Max != time.Minute {
		t.Errorf("Max below Initial becomes %v, want Initial", b.Max)
	}
}

func TestBackoffCeiling(t *testing.T) {
	t.Parallel()
	b := Backoff{Initial: 100 * time.Millisecond, Max: time.Second, Multiplier: 3}.withDefaults()
	want := []time.Duration{100, 300, 900, 1000, 1000, 1000}
	for n, w := range want {
		if got := b.ceiling(n); got != w*time.Millisecond {
			t.Errorf("ceiling(%d) = %v, want %v", n, got, w*time.Millisecond)
		}
	}
	// Huge attempt counts neither overflow nor loop for long.
	if got := b.ceiling(1 << 30); got != time.Second {
		t.Errorf("ceiling(1<<30) = %v", got)
	}
}

// TestBackoffFullJitter: delays are uniform in [0, ceiling): the jitter
// source is asked for exactly the ceiling, and the real source stays in
// range.
func TestBackoffFullJitter(t *testing.T) {
	t.Parallel()
	b := Backoff{Initial: 100 * time.Millisecond, Max: time.Second}.withDefaults()
	for n := range 6 {
		var asked int64
		b.delay(n, func(x int64) int64 { asked = x; return 0 })
		if time.Duration(asked) != b.ceiling(n) {
			t.Errorf("attempt %d: jitter over [0, %v), want [0, %v)", n, time.Duration(asked), b.ceiling(n))
		}
		var lo, hi time.Duration = time.Hour, 0
		for range 200 {
			d := b.delay(n, randInt64N)
			lo, hi = min(lo, d), max(hi, d)
		}
		if lo < 0 || hi >= b.ceiling(n) {
			t.Errorf("attempt %d: delays in [%v, %v], want within [0, %v)", n, lo, hi, b.ceiling(n))
		}
		// 200 uniform draws cover most of the range.
		if hi-lo < b.ceiling(n)/2 {
			t.Errorf("attempt %d: delays in [%v, %v] are not spread", n, lo, hi)
		}
	}
	if d := b.jitterNow(func(x int64) int64 { return x - 1 }); d >= b.Initial {
		t.Errorf("jitterNow = %v, want below Initial %v", d, b.Initial)
	}
}

func TestTokenRefreshAt(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		tok   tokenState
		want  time.Time // zero: never
		stale bool      // at now
	}{
		{"none", tokenState{}, time.Time{}, true},
		{"no expiry", tokenState{value: "t", obtained: now}, time.Time{}, false},
		{"short: a fifth before", tokenState{value: "t", obtained: now, expiry: now.Add(10 * time.Second)}, now.Add(8 * time.Second), false},
		{"long: a minute before", tokenState{value: "t", obtained: now, expiry: now.Add(time.Hour)}, now.Add(59 * time.Minute), false},
		{"expired", tokenState{value: "t", obtained: now.Add(-time.Hour), expiry: now.Add(-time.Second)}, now.Add(-time.Minute - time.Second), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.tok.refreshAt(); !got.Equal(tt.want) {
				t.Errorf("refreshAt = %v, want %v", got, tt.want)
			}
			if got := tt.tok.stale(now); got != tt.stale {
				t.Errorf("stale = %v, want %v", got, tt.stale)
			}
		})
	}
}

func TestTruncateReason(t *testing.T) {
	t.Parallel()
	long := ""
	for range 60 {
		long += "é" // 2 bytes each
	}
	got := truncateReason(long)
	if len(got) > 123 || len(got)%2 != 0 {
		t.Errorf("truncated to %d bytes, cutting a rune", len(got))
	}
	if truncateReason("short") != "short" {
		t.Error("short reason changed")
	}
}

func TestStateString(t *testing.T) {
	t.Parallel()
	for s, want := range map[State]string{StateConnecting: "connecting", StateConnected: "connected",
		StateReconnecting: "reconnecting", StateClosed: "closed", 0: "state_0", 9: "state_9"} {
		if s.String() != want {
			t.Errorf("%d.String() = %q, want %q", int(s), s.String(), want)
		}
	}
}
