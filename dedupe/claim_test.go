package dedupe

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
)

// testFingerprinter fingerprints a request as the SHA-256 of its payload
// with the codec's prefix "up:" taken away and the rest upper-cased in the
// codec "up" (so that one request has two encodings), and counts its
// calls.
type testFingerprinter struct{ calls int }

func (f *testFingerprinter) Fingerprint(codec string, payload []byte) (Fingerprint, error) {
	f.calls++
	switch codec {
	case "plain":
		return sha256.Sum256(payload), nil
	case "up":
		return sha256.Sum256(bytes.ToLower(payload)), nil
	}
	return Fingerprint{}, errors.New("unknown codec " + codec)
}

func claim(t *testing.T, m *Memory, k Key, codec, payload string, f *testFingerprinter) Claim {
	t.Helper()
	o, c, err := m.Claim(context.Background(), k, Request{Codec: codec, Payload: []byte(payload), Fingerprinter: f})
	if err != nil || o != nil {
		t.Fatalf("Claim(%v) = %v, %v; want a claim", k, o, err)
	}
	return c
}

func TestMemoryClaimFingerprintsLazily(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name          string
		codec, again  string
		payload, pay2 string
		wantConflict  bool
		wantCalls     int
	}{
		{"same bytes", "plain", "plain", "req", "req", false, 0},
		{"same request, other codec", "plain", "up", "req", "REQ", false, 2},
		{"other request, same codec", "plain", "plain", "req", "other", true, 2},
		{"other request, other codec", "plain", "up", "req", "OTHER", true, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMemory(MemoryConfig{})
			f := &testFingerprinter{}
			c := claim(t, m, key(1), tc.codec, tc.payload, f)
			if err := m.FinishClaim(ctx, c, &Outcome{Codec: tc.codec, Payload: []byte("reply")}); err != nil {
				t.Fatal(err)
			}
			o, _, err := m.Claim(ctx, key(1), Request{Codec: tc.again, Payload: []byte(tc.pay2), Fingerprinter: f})
			if tc.wantConflict {
				if !errors.Is(err, ErrConflict) {
					t.Fatalf("Claim = %v, %v; want ErrConflict", o, err)
				}
			} else if err != nil || o == nil || string(o.Payload) != "reply" {
				t.Fatalf("Claim = %v, %v; want the outcome", o, err)
			}
			if f.calls != tc.wantCalls {
				t.Fatalf("%d fingerprints computed, want %d", f.calls, tc.wantCalls)
			}
			// The first request's fingerprint, once computed, is kept.
			before := f.calls
			m.Claim(ctx, key(1), Request{Codec: tc.again, Payload: []byte(tc.pay2), Fingerprinter: f})
			if tc.wantCalls > 0 && f.calls != before+1 {
				t.Fatalf("%d fingerprints for a third send, want 1", f.calls-before)
			}
		})
	}
}

func TestMemoryClaimLargeRequest(t *testing.T) {
	m := NewMemory(MemoryConfig{})
	f := &testFingerprinter{}
	big := strings.Repeat("x", maxLazyRequest+1)
	c := claim(t, m, key(1), "plain", big, f)
	if f.calls != 1 {
		t.Fatalf("%d fingerprints for a large first send, want 1", f.calls)
	}
	if m.Bytes() >= int64(len(big)) {
		t.Fatalf("the window holds %d bytes: a large request is not kept", m.Bytes())
	}
	if err := m.FinishClaim(context.Background(), c, &Outcome{Codec: "plain"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.Claim(context.Background(), key(1), Request{Codec: "plain", Payload: []byte(big + "y"), Fingerprinter: f}); !errors.Is(err, ErrConflict) {
		t.Fatalf("other large request: %v, want ErrConflict", err)
	}
}

// A claim kept across turns of the generations keeps its request: the
// outcome is found, and the request still compared, after its entry moved.
func TestMemoryClaimAcrossTurns(t *testing.T) {
	ctx := context.Background()
	for _, finishAt := range []int{0, 5, 50} {
		m := NewMemory(MemoryConfig{MaxEntries: 16})
		f := &testFingerprinter{}
		c := claim(t, m, key(-1), "plain", "first", f)
		for i := range 50 {
			if i == finishAt {
				if err := m.FinishClaim(ctx, c, &Outcome{Codec: "plain", Payload: []byte("kept")}); err != nil {
					t.Fatal(err)
				}
			}
			k := claim(t, m, key(i), "plain", "filler", f)
			m.FinishClaim(ctx, k, &Outcome{Codec: "plain"})
		}
		if finishAt == 50 {
			if err := m.FinishClaim(ctx, c, &Outcome{Codec: "plain", Payload: []byte("kept")}); err != nil {
				t.Fatal(err)
			}
			// Finished after the turns: it went to the current generation.
			o, _, err := m.Claim(ctx, key(-1), Request{Codec: "up", Payload: []byte("FIRST"), Fingerprinter: f})
			if err != nil || o == nil || string(o.Payload) != "kept" {
				t.Fatalf("finished after the turns: Claim = %v, %v; want the outcome", o, err)
			}
			if _, _, err := m.Claim(ctx, key(-1), Request{Codec: "up", Payload: []byte("SECOND"), Fingerprinter: f}); !errors.Is(err, ErrConflict) {
				t.Fatalf("other request: %v, want ErrConflict", err)
			}
			continue
		}
		// Finished early: the turns forgot it.
		if o, _, err := m.Claim(ctx, key(-1), Request{Codec: "plain", Payload: []byte("first"), Fingerprinter: f}); err != nil || o != nil {
			t.Fatalf("finished at %d: Claim = %v, %v; want a new claim", finishAt, o, err)
		}
	}
}

// A run claimed by Claim and still running when the generations turn over
// twice keeps its request and its claim.
func TestMemoryRunningClaimCarried(t *testing.T) {
	ctx := context.Background()
	m := NewMemory(MemoryConfig{MaxEntries: 8})
	f := &testFingerprinter{}
	c := claim(t, m, key(-1), "plain", "first", f)
	for i := range 40 {
		k := claim(t, m, key(i), "plain", "filler", f)
		m.FinishClaim(ctx, k, &Outcome{Codec: "plain"})
	}
	if _, _, err := m.Claim(ctx, key(-1), Request{Codec: "up", Payload: []byte("OTHER"), Fingerprinter: f}); !errors.Is(err, ErrConflict) {
		t.Fatalf("other request while running: %v, want ErrConflict", err)
	}
	if err := m.FinishClaim(ctx, c, &Outcome{Codec: "plain", Payload: []byte("kept")}); err != nil {
		t.Fatal(err)
	}
	o, _, err := m.Claim(ctx, key(-1), Request{Codec: "plain", Payload: []byte("first"), Fingerprinter: f})
	if err != nil || o == nil || string(o.Payload) != "kept" {
		t.Fatalf("Claim = %v, %v; want the outcome", o, err)
	}
	if m.Len() > 8+1 {
		t.Fatalf("%d keys held, at most 8 (and the running one)", m.Len())
	}
}

func TestMemoryClaimAndBegin(t *testing.T) {
	ctx := context.Background()
	m := NewMemory(MemoryConfig{})
	f := &testFingerprinter{}
	c := claim(t, m, key(1), "plain", "req", f)
	m.FinishClaim(ctx, c, &Outcome{Codec: "plain", Payload: []byte("reply")})
	if _, err := m.Begin(ctx, key(1), sha256.Sum256([]byte("req"))); err == nil || errors.Is(err, ErrConflict) {
		t.Fatalf("Begin on a key claimed by Claim: %v, want an error other than ErrConflict", err)
	}
	// A key claimed by Begin is compared by fingerprint, and a claim
	// without a place is finished by key.
	mustClaim(t, m, key(2), sha256.Sum256([]byte("req")))
	if err := m.FinishClaim(ctx, Claim{Key: key(2)}, &Outcome{Codec: "plain", Payload: []byte("two")}); err != nil {
		t.Fatal(err)
	}
	o, _, err := m.Claim(ctx, key(2), Request{Codec: "up", Payload: []byte("REQ"), Fingerprinter: f})
	if err != nil || o == nil || string(o.Payload) != "two" {
		t.Fatalf("Claim of a key begun = %v, %v; want the outcome", o, err)
	}
	// A released claim frees the key.
	c = claim(t, m, key(3), "plain", "req", f)
	m.FinishClaim(ctx, c, nil)
	claim(t, m, key(3), "plain", "other", f)
}
