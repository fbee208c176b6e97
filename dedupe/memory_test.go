package dedupe

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
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
	if err != nil || o == nil || o.Codec != "c" || string(o.Payload) != "reply" {
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
		m.Finish(context.Background(), key(1), &Outcome{Codec: "c"})
		if o := <-got; o == nil || o.Codec != "c" {
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
			if m.Len() > 10 {
				t.Fatalf("%d keys after %d", m.Len(), i+1)
			}
		}
		if m.Len() < 5 {
			t.Fatalf("%d keys, want at least the newest 5", m.Len())
		}
		// The newest are kept, the oldest forgotten.
		for i := 95; i < 100; i++ {
			if o, _ := m.Begin(context.Background(), key(i), Fingerprint{}); o == nil {
				t.Errorf("key %d of the newest 5 was forgotten", i)
			}
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
		if m.Len() < 4 {
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
		// A send of the running key waits for it rather than claiming it.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		if o, err := m.Begin(ctx, key(0), Fingerprint{}); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("send of the running key: %v, %v; want it to wait", o, err)
		}
		m.Finish(context.Background(), key(0), &Outcome{Payload: []byte("x")})
		if o, _ := m.Begin(context.Background(), key(0), Fingerprint{}); o == nil || string(o.Payload) != "x" {
			t.Errorf("the running key was forgotten: %v", o)
		}
		if m.Len() > 3 {
			t.Errorf("%d keys, want at most 3", m.Len())
		}
	})
	t.Run("age", func(t *testing.T) {
		now := time.Unix(1000, 0)
		// One shard (a small window), so that every key turns the same
		// generations over.
		m := NewMemory(MemoryConfig{MaxEntries: 100, MaxAge: time.Minute, now: func() time.Time { return now }})
		mustClaim(t, m, key(1), Fingerprint{})
		m.Finish(context.Background(), key(1), &Outcome{})
		now = now.Add(59 * time.Second)
		if o, _ := m.Begin(context.Background(), key(1), Fingerprint{}); o == nil {
			t.Error("forgotten before its age")
		}
		now = now.Add(time.Second)
		mustClaim(t, m, key(1), Fingerprint{9}) // aged out: a new call
		m.Finish(context.Background(), key(1), &Outcome{})
		// Aged-out keys leave memory within two ages.
		for i := 2; i < 5; i++ {
			now = now.Add(2 * time.Minute)
			mustClaim(t, m, key(i), Fingerprint{})
			m.Finish(context.Background(), key(i), &Outcome{})
		}
		if m.Len() > 2 {
			t.Errorf("%d keys after they aged out, want at most 2", m.Len())
		}
	})
}

func TestOutcomeEncoding(t *testing.T) {
	for _, o := range []*Outcome{
		{Codec: "protows.v1.proto"},
		{Codec: "protows.v1.json", Payload: []byte(`{"text":"é"}`), Metadata: map[string]string{"a": "1", "": "", "b": "2"}},
		{Codec: "protows.v1.proto", Error: &protowsv1.Error{Code: 10, Message: "m",
			Details: []*anypb.Any{{TypeUrl: "type.googleapis.com/x.Y", Value: []byte{1, 2}}}}},
	} {
		var table codecTable
		b, err := appendOutcome(nil, table.id(o.Codec), o)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeOutcome(&table, b)
		if err != nil {
			t.Fatal(err)
		}
		if got.Codec != o.Codec || string(got.Payload) != string(o.Payload) || !maps.Equal(got.Metadata, o.Metadata) ||
			(o.Error != nil) != (got.Error != nil) || o.Error != nil && !proto.Equal(got.Error, o.Error) {
			t.Errorf("%v decodes to %v", o, got)
		}
		for i := range b {
			if _, err := decodeOutcome(&table, b[:i]); err == nil {
				t.Errorf("the encoding cut to %d of %d bytes decodes", i, len(b))
			}
		}
	}
}

// TestMemoryHeapBounded floods a window with unique keys and measures the
// heap: what the window holds stays within its byte bound (plus the blocks
// being filled and the tables' own slack), however many keys went through.
func TestMemoryHeapBounded(t *testing.T) {
	const maxBytes = 8 << 20
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	m := NewMemory(MemoryConfig{MaxEntries: 1 << 30, MaxBytes: maxBytes})
	ctx := context.Background()
	payload := make([]byte, 100)
	var peak uint64
	for i := range 300_000 {
		k := Key{Principal: "p", Method: "/a.B/C", ID: strconv.Itoa(i)}
		m.Begin(ctx, k, Fingerprint{})
		m.Finish(ctx, k, &Outcome{Codec: "protows.v1.proto", Payload: payload})
		if i%50_000 == 49_999 {
			if h := heap(); h > peak {
				peak = h
			}
		}
	}
	grown := int64(peak) - int64(before)
	t.Logf("300,000 keys: the window holds %d keys, estimates %d bytes; the heap grew by %d bytes", m.Len(), m.Bytes(), grown)
	if m.Bytes() > maxBytes {
		t.Errorf("estimated %d bytes, bound %d", m.Bytes(), maxBytes)
	}
	// Two generations of 16 parts each keep a partly filled 64 KiB block,
	// and hash tables grow by doubling: allow the bound twice over.
	if grown > 2*maxBytes {
		t.Errorf("the heap grew by %d bytes for a window bounded at %d", grown, maxBytes)
	}
	runtime.KeepAlive(m)
}

// TestMemoryClaimAgain covers the keys that are forgotten early and used
// again: a run released, then claimed and finished, and an aged-out key
// run again, many times over, in a window small enough that the
// generations turn over meanwhile. Each time, the next send gets the
// newest outcome.
func TestMemoryClaimAgain(t *testing.T) {
	now := time.Unix(1000, 0)
	m := NewMemory(MemoryConfig{MaxEntries: 64, MaxAge: time.Minute, now: func() time.Time { return now }})
	ctx := context.Background()
	for round := range 50 {
		k := key(round % 5)
		mustClaim(t, m, k, Fingerprint{1})
		if err := m.Finish(ctx, k, nil); err != nil { // released
			t.Fatal(err)
		}
		mustClaim(t, m, k, Fingerprint{2}) // the key is free: any request
		want := strconv.Itoa(round)
		if err := m.Finish(ctx, k, &Outcome{Payload: []byte(want)}); err != nil {
			t.Fatal(err)
		}
		if o, err := m.Begin(ctx, k, Fingerprint{2}); err != nil || o == nil || string(o.Payload) != want {
			t.Fatalf("round %d: %v, %v; want the outcome %s", round, o, err, want)
		}
		// Other keys turn the generations over.
		for i := range 7 {
			o := key(1000 + 7*round + i)
			mustClaim(t, m, o, Fingerprint{})
			m.Finish(ctx, o, &Outcome{})
		}
		now = now.Add(61 * time.Second) // every key ages out
		if n := m.Len(); n > 64 {
			t.Fatalf("round %d: %d keys held, bound 64", round, n)
		}
	}
}

// TestHashShortKeysAsLong holds hash, which writes the encoding of a key
// whose fields are all shorter than 0x80 bytes on its own, to the general
// encoding of hashLong: a key's hash must not depend on which wrote it.
func TestHashShortKeysAsLong(t *testing.T) {
	m := NewMemory(MemoryConfig{})
	for _, k := range []Key{
		{},
		{Principal: "alice", Method: "/pkg.Service/Method", ID: "k-1"},
		{Principal: strings.Repeat("p", 0x7f), Method: strings.Repeat("m", 0x7f), ID: strings.Repeat("i", 0x7f)}, // 384 bytes: hashLong
		{Principal: strings.Repeat("p", 0x7f), Method: "m", ID: strings.Repeat("i", 0x7e)},                       // 256 bytes
		{Principal: strings.Repeat("p", 0x80), Method: "m", ID: "i"},                                             // a 2-byte length
		{Method: "m", ID: strings.Repeat("i", 0x7f)},
	} {
		if got, want := m.hash(k), m.hashLong(k); got != want {
			t.Errorf("key of %d+%d+%d bytes: hash %x, hashLong %x", len(k.Principal), len(k.Method), len(k.ID), got, want)
		}
	}
	if m.hash(Key{Principal: "ab", ID: "c"}) == m.hash(Key{Principal: "a", ID: "bc"}) {
		t.Error("fields moved across a boundary hash the same")
	}
}
