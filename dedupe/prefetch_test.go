package dedupe

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unsafe"
)

// TestShardLayout holds what Prefetch's first two lines rely on: a
// shard's lock, current generation, clock, bounds and ctrls in its first
// 64 bytes.
func TestShardLayout(t *testing.T) {
	var sh shard
	for name, f := range map[string]struct{ off, size uintptr }{
		"mu":       {unsafe.Offsetof(sh.mu), unsafe.Sizeof(sh.mu)},
		"cur":      {unsafe.Offsetof(sh.cur), unsafe.Sizeof(sh.cur)},
		"now":      {unsafe.Offsetof(sh.now), unsafe.Sizeof(sh.now)},
		"ctrls":    {unsafe.Offsetof(sh.ctrls), unsafe.Sizeof(sh.ctrls)},
		"waiters":  {unsafe.Offsetof(sh.waiters), unsafe.Sizeof(sh.waiters)},
		"cfg":      {unsafe.Offsetof(sh.cfg), unsafe.Sizeof(sh.cfg)},
		"maxKeys":  {unsafe.Offsetof(sh.maxKeys), unsafe.Sizeof(sh.maxKeys)},
		"maxBytes": {unsafe.Offsetof(sh.maxBytes), unsafe.Sizeof(sh.maxBytes)},
	} {
		if f.off+f.size > 64 {
			t.Errorf("shard.%s at bytes %d to %d: past the first 64", name, f.off, f.off+f.size)
		}
	}
}

// TestPrefetchSeesEveryIndex: the control bytes Prefetch reads without the
// lock (shard.ctrls) are each generation's, as the indexes grow and the
// generations turn over; Prefetch of any key, in an empty window or a
// full one, does nothing else.
func TestPrefetchSeesEveryIndex(t *testing.T) {
	ctx := context.Background()
	m := NewMemory(MemoryConfig{MaxEntries: 3000})
	req := Request{Codec: "c", Payload: []byte("req"), Fingerprinter: &testFingerprinter{}}
	key := func(i int) Key { return Key{Principal: "p", Method: "/s/M", ID: "k-" + strconv.Itoa(i)} }
	m.Prefetch(key(0)) // an empty window: no index yet
	check := func(n int) {
		t.Helper()
		for i := range m.shards {
			sh := &m.shards[i]
			sh.mu.Lock()
			ctrls := sh.ctrls.Load()
			for g := range sh.gens {
				ctrl := sh.gens[g].index.ctrl
				if len(ctrl) == 0 {
					continue
				}
				if ctrls == nil || len(ctrls[g]) != len(ctrl) || unsafe.SliceData(ctrls[g]) != unsafe.SliceData(ctrl) {
					t.Fatalf("after %d keys, shard %d generation %d: Prefetch would read other control bytes than the index's", n, i, g)
				}
			}
			sh.mu.Unlock()
		}
	}
	for i := range 20000 { // several turns of every shard's generations
		m.Prefetch(key(i))
		_, c, err := m.Claim(ctx, key(i), req)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.FinishClaim(ctx, c, &Outcome{Codec: "c", Payload: []byte("r")}); err != nil {
			t.Fatal(err)
		}
		if i%997 == 0 {
			check(i + 1)
		}
	}
	check(20000)
}

// TestPrefetchWhileClaiming: Prefetch reads the window without its lock
// while other goroutines claim, grow and turn it over (the race detector
// watches), and the claims all finish.
func TestPrefetchWhileClaiming(t *testing.T) {
	ctx := context.Background()
	m := NewMemory(MemoryConfig{MaxEntries: 2000})
	req := Request{Codec: "c", Payload: []byte("req"), Fingerprinter: &testFingerprinter{}}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 3000 {
				k := Key{Method: "/s/M", ID: strconv.Itoa(w) + "-" + strconv.Itoa(i)}
				m.Prefetch(k)
				if w%2 == 1 {
					continue // a prefetcher only
				}
				_, c, err := m.Claim(ctx, k, req)
				if err == nil {
					err = m.FinishClaim(ctx, c, &Outcome{Codec: "c"})
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := m.Len(); n == 0 || n > 2000+4 {
		t.Errorf("%d keys held, want between 1 and the bound", n)
	}
}

// TestClaimTakesHint: a Claim given the Hint of Prefetch of its key, on
// its window, uses the hash the hint holds, not one of its own (a hint
// whose hash is another key's puts the claim where that key's would be);
// a hint of another key, or of another window, is ignored, and the claim
// is the one made without a hint.
func TestClaimTakesHint(t *testing.T) {
	ctx := context.Background()
	m, other := NewMemory(MemoryConfig{}), NewMemory(MemoryConfig{})
	req := func(h Hint) Request {
		return Request{Codec: "c", Payload: []byte("req"), Fingerprinter: &testFingerprinter{}, Hint: &h}
	}
	key := func(id string) Key { return Key{Principal: "p", Method: "/s/M", ID: id} }
	ref := func(k Key, h Hint) [2]uint64 {
		t.Helper()
		o, c, err := m.Claim(ctx, k, req(h))
		if o != nil || err != nil {
			t.Fatalf("claim of new key %v: %v, %v", k, o, err)
		}
		if err := m.FinishClaim(ctx, c, &Outcome{Codec: "c"}); err != nil {
			t.Fatal(err)
		}
		return [2]uint64{c.Ref[0], c.Ref[1]}
	}
	hashOf := func(k Key) [2]uint64 { h := m.hash(k); return [2]uint64{h[0], h[1]} }

	a := key("a")
	if h := m.Prefetch(a); h.m != m || h.k != a || h.h != m.hash(a) {
		t.Fatalf("Prefetch(%v) returned %+v, not its hash on its window", a, h)
	}
	if got, want := ref(a, m.Prefetch(a)), hashOf(a); got != want {
		t.Errorf("claimed with its own hint at %x, want its hash %x", got, want)
	}
	// The hint's hash is used as it is: a hint for key b holding c's
	// hash puts b's claim where c's would be.
	b, c := key("b"), key("c")
	forged := m.Prefetch(b)
	forged.h = m.hash(c)
	if got, want := ref(b, forged), hashOf(c); got != want {
		t.Errorf("claimed with a hint holding another hash at %x, want that hash %x", got, want)
	}
	// An anonymous caller's key: its empty principal need not be the
	// same empty string.
	anon := Key{Method: "/s/M", ID: "anon"}
	hint := m.Prefetch(anon)
	target := key("anon-target")
	hint.h = m.hash(target)                 // used, it lands where target's would
	empty := strconv.Itoa(len(anon.ID))[:0] // its pointer is not nil
	if unsafe.StringData(empty) == unsafe.StringData(anon.Principal) {
		t.Fatal("the two empty principals have the same pointer")
	}
	if got, want := ref(Key{Principal: empty, Method: anon.Method, ID: anon.ID}, hint), hashOf(target); got != want {
		t.Errorf("an anonymous key's own hint ignored: claimed at %x, want the hint's hash %x", got, want)
	}
	// Ignored: a hint that differs from the claim's key in any one part,
	// or is another window's, or none. The keys of a case share their
	// strings but for the part named (string literals are one string),
	// and each hint's hash is forged to a key of its own, so that a hint
	// taken would show.
	id, id1 := "d-shared-id"+strconv.Itoa(7), "d-shared-id"+strconv.Itoa(1)
	for n, c := range []struct {
		name        string
		hint, claim Key
		window      *Memory
	}{
		{"another id", key("x1"), key("d1"), m},
		{"another principal", Key{"p", "/s/M", id1}, Key{"q", "/s/M", id1}, m},
		{"a principal, then none", Key{"p", "/s/M", id}, Key{"", "/s/M", id}, m},
		{"no principal, then one", Key{"", "/s/N", id}, Key{"p", "/s/N", id}, m},
		{"another method", Key{"p", "/s/O", id}, Key{"p", "/s/M", id}, m},
		{"an id that is the start of the hint's, in the same bytes", Key{"p", "/s/P", id}, Key{"p", "/s/P", id[:len(id)-2]}, m},
		{"an equal key in other strings", Key{"p", "/s/Q", id}, Key{"p", "/s/Q", strings.Clone(id)}, m},
		{"another window's", Key{"p", "/s/R", id}, Key{"p", "/s/R", id}, other},
		{"none", Key{}, Key{"p", "/s/S", id}, nil},
	} {
		var h Hint
		if c.window != nil {
			h = c.window.Prefetch(c.hint)
			h.h = m.hash(key("ignored-target-" + strconv.Itoa(n)))
		}
		if got, want := ref(c.claim, h), hashOf(c.claim); got != want {
			t.Errorf("%s: the hint was taken (claimed at %x), want the key's own hash %x", c.name, got, want)
		}
	}
}
