package dedupe

import (
	"context"
	"strconv"
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
