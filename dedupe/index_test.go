package dedupe

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"unsafe"
)

// TestKeyIndex: every slot added is found by a probe from its home, its
// batch written or not, in indexes crowded with keys of the same home,
// whose probes wrap around the end; growing keeps them all, and a reset
// empties the index.
func TestKeyIndex(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 500 {
		bits := 3 + rng.IntN(5)
		n := 1 << bits // 8 to 128 slots
		x := &keyIndex{}
		x.grow(n)
		homes := 1 + rng.IntN(n/2) // few homes: long probes
		var want []uint64
		for i := range n / 2 {
			h := rng.IntN(homes)
			if rng.IntN(3) == 0 {
				h = n - 1 - rng.IntN(2) // the last slots: probes wrap
			}
			tag := uint64(rng.IntN(1<<20))<<bits | uint64(h)
			s := tag<<32 | uint64(i+1)
			x.add(s, i+1)
			want = append(want, s)
		}
		if x.size() != n {
			t.Fatalf("round %d: %d slots at most half full grew the index to %d", round, len(want), x.size())
		}
		if round%2 == 0 {
			x.grow(2 * n)
		}
		for _, s := range want {
			if !probe(x, s) {
				t.Fatalf("round %d: slot %x not found from its home", round, s)
			}
		}
		checkIndex(t, x)
		x.reset()
		for _, s := range want {
			if probe(x, s) {
				t.Fatalf("round %d: slot %x found after a reset", round, s)
			}
		}
	}
}

// probe reports whether a probe of x from the home of slot s finds it, as
// findLocked probes.
func probe(x *keyIndex, s uint64) bool {
	mask := uint64(x.size() - 1)
	for p := home(slotTag(s), mask); x.ctrl[p] != 0; p = (p + 1) & mask {
		if x.ctrl[p] == ctrlOf(slotTag(s)) && x.slot(p) == s {
			return true
		}
	}
	return false
}

// checkIndex fails t unless every used slot of x, its pending ones
// written, has the ctrl byte of its tag.
func checkIndex(t *testing.T, x *keyIndex) {
	t.Helper()
	x.flush()
	for p, c := range x.ctrl {
		if s := x.slots[p]; c != 0 && c != ctrlOf(slotTag(s)) {
			t.Fatalf("slot %d (%x) has ctrl byte %#x, want %#x", p, s, c, ctrlOf(slotTag(s)))
		}
	}
}

// TestIndexFindsPendingSlots: a key is found by Claim while its slot is
// still pending, and its ctrl byte tells it from other keys that share
// its home; the index grows, and turns over, with slots pending.
func TestIndexFindsPendingSlots(t *testing.T) {
	ctx := context.Background()
	m := NewMemory(MemoryConfig{MaxEntries: 256})
	f := &testFingerprinter{}
	for i := range 2000 {
		c := claim(t, m, key(i), "plain", "r", f)
		// Found at once, before its batch is written.
		if _, _, err := m.Claim(ctx, key(i), Request{Codec: "plain", Payload: []byte("other"), Fingerprinter: f}); !errors.Is(err, ErrConflict) {
			t.Fatalf("key %d claimed, then sent with another request: %v, want a conflict", i, err)
		}
		if err := m.FinishClaim(ctx, c, &Outcome{Codec: "plain", Payload: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
		if o, _, err := m.Claim(ctx, key(i), Request{Codec: "plain", Payload: []byte("r"), Fingerprinter: f}); err != nil || o == nil || o.Payload[0] != byte(i) {
			t.Fatalf("key %d: %v, %v; want its outcome", i, o, err)
		}
	}
	for i := range m.shards {
		for g := range m.shards[i].gens {
			checkIndex(t, &m.shards[i].gens[g].index)
		}
	}
}

// TestMemoryTurnsOverKeepingKeys: through many turns of the generations,
// every key of the last generation's worth is still found, with its
// outcome, and a forgotten key claims anew; the running count lets the
// turn skip the scan for running keys, so a key running across turns
// must still be carried.
func TestMemoryTurnsOverKeepingKeys(t *testing.T) {
	ctx := context.Background()
	m := NewMemory(MemoryConfig{MaxEntries: 64})
	f := &testFingerprinter{}
	running := claim(t, m, key(-1), "plain", "long", f)
	for i := range 1000 {
		c := claim(t, m, key(i), "plain", "r", f)
		if err := m.FinishClaim(ctx, c, &Outcome{Codec: "plain", Payload: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
		// The last 16 keys (at least a quarter of the window) are known.
		for j := max(0, i-15); j <= i; j++ {
			o, _, err := m.Claim(ctx, key(j), Request{Codec: "plain", Payload: []byte("r"), Fingerprinter: f})
			if err != nil || o == nil || len(o.Payload) != 1 || o.Payload[0] != byte(j) {
				t.Fatalf("after %d: key %d: %v, %v; want its outcome", i, j, o, err)
			}
		}
	}
	// The first keys were forgotten: they claim again.
	o, c, err := m.Claim(ctx, key(0), Request{Codec: "plain", Payload: []byte("r"), Fingerprinter: f})
	if err != nil || o != nil {
		t.Fatalf("key 0 after 1000 more: %v, %v; want a new claim", o, err)
	}
	m.FinishClaim(ctx, c, nil)
	// The running key was carried through every turn.
	if err := m.FinishClaim(ctx, running, &Outcome{Codec: "plain", Payload: []byte("done")}); err != nil {
		t.Fatal(err)
	}
	o, _, err = m.Claim(ctx, key(-1), Request{Codec: "plain", Payload: []byte("long"), Fingerprinter: f})
	if err != nil || o == nil || string(o.Payload) != "done" {
		t.Fatalf("the long run's key: %v, %v; want its outcome", o, err)
	}
	for i := range m.shards {
		sh := &m.shards[i]
		for gi := range sh.gens {
			g := &sh.gens[gi]
			n := 0
			for _, e := range g.entries {
				if e.expires == 0 {
					n++
				}
			}
			if n != g.running {
				t.Errorf("shard %d generation %d: %d running entries, counted %d", i, gi, n, g.running)
			}
		}
	}
}

// TestEntrySize: an entry takes 48 bytes, which most calls write to memory
// the cache has forgotten; a field added to it should be weighed.
func TestEntrySize(t *testing.T) {
	if n := unsafe.Sizeof(entry{}); n != 48 {
		t.Errorf("an entry takes %d bytes, want 48", n)
	}
}

// TestMemoryCopiesWhatItKeeps: Claim's request and FinishClaim's outcome
// are the caller's again once the calls return (a server reuses the
// buffers: the request's copy for the next call, the REPLY the outcome's
// payload is a part of for the next frame). Scribbling over them changes
// nothing the window answers with, nor makes it fingerprint a send of the
// same bytes.
func TestMemoryCopiesWhatItKeeps(t *testing.T) {
	ctx := context.Background()
	m := NewMemory(MemoryConfig{})
	f := &testFingerprinter{}
	reqBuf := []byte("the request")
	outBuf := []byte("the reply")
	md := map[string]string{"k": "v"}
	_, c, err := m.Claim(ctx, key(1), Request{Codec: "plain", Payload: reqBuf, Fingerprinter: f})
	if err != nil {
		t.Fatal(err)
	}
	o := &Outcome{Codec: "plain", Payload: outBuf, Metadata: md}
	if err := m.FinishClaim(ctx, c, o); err != nil {
		t.Fatal(err)
	}
	copy(reqBuf, "XXXXXXXXXXX")
	copy(outBuf, "YYYYYYYYY")
	md["k"] = "changed"
	*o = Outcome{Codec: "other"}
	got, _, err := m.Claim(ctx, key(1), Request{Codec: "plain", Payload: []byte("the request"), Fingerprinter: f})
	if err != nil || got == nil {
		t.Fatalf("Claim again = %v, %v; want the outcome", got, err)
	}
	if got.Codec != "plain" || string(got.Payload) != "the reply" || got.Metadata["k"] != "v" {
		t.Errorf("kept outcome %s %q %v, want plain %q map[k:v]", got.Codec, got.Payload, got.Metadata, "the reply")
	}
	if f.calls != 0 {
		t.Errorf("%d fingerprints for a send of the same bytes, want none", f.calls)
	}
}

// TestCodecTable: records name their codec by a number of the window's
// table, and past maxCodecs codecs by name; either way a request is
// compared, and an outcome given back, with its codec, whichever
// goroutine numbered it first.
func TestCodecTable(t *testing.T) {
	ctx := context.Background()
	m := NewMemory(MemoryConfig{MaxEntries: 4096})
	const codecs = maxCodecs + 45
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range codecs {
				m.codecs.id(fmt.Sprintf("codec-%d", (i*7+w)%codecs))
			}
		})
	}
	wg.Wait()
	if p := m.codecs.names.Load(); p == nil || len(*p) != maxCodecs {
		t.Fatalf("table of %v names, want %d", p, maxCodecs)
	}
	seen := map[string]byte{}
	for i := range codecs {
		name := fmt.Sprintf("codec-%d", i)
		id := m.codecs.id(name)
		if prev, ok := seen[name]; ok && prev != id {
			t.Fatalf("%s numbered %d, then %d", name, prev, id)
		}
		seen[name] = id
	}
	f := &testFingerprinter{}
	for i := range codecs {
		name := fmt.Sprintf("codec-%d", i)
		payload := fmt.Sprintf("request %d", i)
		_, c, err := m.Claim(ctx, key(i), Request{Codec: name, Payload: []byte(payload), Fingerprinter: f})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.FinishClaim(ctx, c, &Outcome{Codec: name, Payload: []byte("reply " + name)}); err != nil {
			t.Fatal(err)
		}
		o, _, err := m.Claim(ctx, key(i), Request{Codec: name, Payload: []byte(payload), Fingerprinter: f})
		if err != nil || o == nil || o.Codec != name || string(o.Payload) != "reply "+name {
			t.Fatalf("%s (id %d): %v, %v; want its outcome", name, seen[name], o, err)
		}
	}
	if f.calls != 0 {
		t.Errorf("%d fingerprints for sends of the same codec and bytes, want none", f.calls)
	}
	if got := m.codecs.id(fmt.Sprintf("codec-%d", codecs+1)); got != inlineCodec {
		t.Errorf("a codec past a full table numbered %d, want inline", got)
	}
}
