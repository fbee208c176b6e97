package dedupe

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"
)

func key(i int) Key { return Key{Principal: "p", Method: "/a.B/C", ID: fmt.Sprint(i)} }

func mustClaim(t *testing.T, m *Memory, k Key, fp Fingerprint) {
	t.Helper()
	o, err := m.Begin(context.Background(), k, fp)
	if err != nil || o != nil {
		t.Fatalf("Begin(%v) = %v, %v; want a claim", k, o, err)
	}
}

func TestMemoryOutcome(t *testing.T) {
	m := NewMemory(MemoryConfig{})
	fp := Fingerprint{1}
	mustClaim(t, m, key(1), fp)
	want := &Outcome{Codec: "c", Payload: []byte("reply")}
	if err := m.Finish(context.Background(), key(1), want); err != nil {
		t.Fatal(err)
	}
	o, err := m.Begin(context.Background(), key(1), fp)
	if err != nil || o != want {
		t.Fatalf("second Begin = %v, %v; want the outcome", o, err)
	}
	if _, err := m.Begin(context.Background(), key(1), Fingerprint{2}); !errors.Is(err, ErrConflict) {
		t.Fatalf("other fingerprint: %v, want ErrConflict", err)
	}
	// Scopes do not collide.
	mustClaim(t, m, Key{Principal: "q", Method: "/a.B/C", ID: "1"}, Fingerprint{2})
	mustClaim(t, m, Key{Principal: "p", Method: "/a.B/D", ID: "1"}, Fingerprint{2})
}

func TestMemoryWaitsForTheFirstRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := NewMemory(MemoryConfig{})
		fp := Fingerprint{1}
		mustClaim(t, m, key(1), fp)
		got := make(chan *Outcome)
		go func() {
			o, err := m.Begin(context.Background(), key(1), fp)
			if err != nil {
				t.Error(err)
			}
			got <- o
		}()
		synctest.Wait() // the second Begin waits
		want := &Outcome{Codec: "c"}
		m.Finish(context.Background(), key(1), want)
		if o := <-got; o != want {
			t.Errorf("waiter got %v", o)
		}

		// A release lets a waiter claim the key; a waiter whose context
		// ends gives up.
		mustClaim(t, m, key(2), fp)
		claimed := make(chan error)
		go func() {
			o, err := m.Begin(context.Background(), key(2), fp)
			if o != nil {
				err = fmt.Errorf("outcome %v", o)
			}
			claimed <- err
		}()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		gaveUp := make(chan error)
		go func() {
			_, err := m.Begin(ctx, key(2), fp)
			gaveUp <- err
		}()
		if err := <-gaveUp; !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("waiter with a deadline: %v", err)
		}
		m.Finish(context.Background(), key(2), nil)
		if err := <-claimed; err != nil {
			t.Errorf("after a release: %v, want a claim", err)
		}
	})
}

func TestMemoryBounds(t *testing.T) {
	t.Run("count", func(t *testing.T) {
		m := NewMemory(MemoryConfig{MaxEntries: 10})
		for i := range 100 {
			mustClaim(t, m, key(i), Fingerprint{})
			m.Finish(context.Background(), key(i), &Outcome{})
		}
		if m.Len() != 10 {
			t.Fatalf("%d keys, want 10", m.Len())
		}
		// The newest are kept, the oldest forgotten.
		if o, _ := m.Begin(context.Background(), key(99), Fingerprint{}); o == nil {
			t.Error("the newest key was forgotten")
		}
		mustClaim(t, m, key(0), Fingerprint{})
	})
	t.Run("bytes", func(t *testing.T) {
		m := NewMemory(MemoryConfig{MaxBytes: 10 << 10})
		for i := range 1000 {
			mustClaim(t, m, key(i), Fingerprint{})
			m.Finish(context.Background(), key(i), &Outcome{Payload: make([]byte, 1000)})
			if m.Bytes() > 10<<10 {
				t.Fatalf("%d bytes after %d keys", m.Bytes(), i+1)
			}
		}
		if m.Len() < 5 {
			t.Errorf("only %d keys held", m.Len())
		}
	})
	t.Run("running keys are kept", func(t *testing.T) {
		m := NewMemory(MemoryConfig{MaxEntries: 2})
		mustClaim(t, m, key(0), Fingerprint{})
		for i := 1; i < 10; i++ {
			mustClaim(t, m, key(i), Fingerprint{})
			m.Finish(context.Background(), key(i), &Outcome{})
		}
		if m.Len() != 2 {
			t.Errorf("%d keys, want the running one and the newest", m.Len())
		}
		m.Finish(context.Background(), key(0), &Outcome{Payload: []byte("x")})
		if o, _ := m.Begin(context.Background(), key(0), Fingerprint{}); o == nil {
			t.Error("the running key was forgotten")
		}
	})
	t.Run("age", func(t *testing.T) {
		now := time.Unix(1000, 0)
		m := NewMemory(MemoryConfig{MaxAge: time.Minute, now: func() time.Time { return now }})
		mustClaim(t, m, key(1), Fingerprint{})
		m.Finish(context.Background(), key(1), &Outcome{})
		now = now.Add(59 * time.Second)
		if o, _ := m.Begin(context.Background(), key(1), Fingerprint{}); o == nil {
			t.Error("forgotten before its age")
		}
		now = now.Add(time.Second)
		mustClaim(t, m, key(1), Fingerprint{9}) // forgotten: a new call
		m.Finish(context.Background(), key(1), &Outcome{})
		now = now.Add(2 * time.Minute)
		mustClaim(t, m, key(2), Fingerprint{}) // ages out the others
		if m.Len() != 1 {
			t.Errorf("%d keys after they aged out, want 1", m.Len())
		}
	})
}
