package dedupe

import (
	"context"
	"strconv"
	"testing"
)

// BenchmarkMemory measures a call's use of a full window: Begin of a new
// key, then Finish with a small reply, evicting the oldest key.
func BenchmarkMemory(b *testing.B) {
	m := NewMemory(MemoryConfig{})
	ctx := context.Background()
	o := &Outcome{Codec: "protows.v1.proto", Payload: make([]byte, 64)}
	keys := make([]Key, DefaultMaxEntries*2)
	for i := range keys {
		keys[i] = Key{Method: "/protows.bench.v1.BenchService/Echo", ID: "0b9c5d6e-1a2b-4c3d-8e9f-" + strconv.Itoa(1e11+i)}
	}
	for i := range DefaultMaxEntries {
		m.Begin(ctx, keys[i], Fingerprint{})
		m.Finish(ctx, keys[i], o)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		k := keys[i%len(keys)]
		i++
		m.Begin(ctx, k, Fingerprint{})
		m.Finish(ctx, k, o)
	}
}

// BenchmarkMemoryClaim is BenchmarkMemory through ClaimStore: Claim of a
// new key with a small request kept as it came, then FinishClaim.
func BenchmarkMemoryClaim(b *testing.B) {
	m := NewMemory(MemoryConfig{})
	ctx := context.Background()
	o := &Outcome{Codec: "protows.v1.proto", Payload: make([]byte, 64)}
	req := Request{Codec: "protows.v1.proto", Payload: make([]byte, 64), Fingerprinter: &testFingerprinter{}}
	keys := make([]Key, DefaultMaxEntries*2)
	for i := range keys {
		keys[i] = Key{Method: "/protows.bench.v1.BenchService/Echo", ID: "0b9c5d6e-1a2b-4c3d-8e9f-" + strconv.Itoa(1e11+i)}
	}
	for i := range DefaultMaxEntries {
		_, c, _ := m.Claim(ctx, keys[i], req)
		m.FinishClaim(ctx, c, o)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		k := keys[i%len(keys)]
		i++
		_, c, _ := m.Claim(ctx, k, req)
		m.FinishClaim(ctx, c, o)
	}
}

// BenchmarkMemoryClaimCold is BenchmarkMemoryClaim with the caches the
// window would have in a server: between calls, 4 KiB of other memory
// is written (a server's frames, buffers and stacks), which pushes the
// window's lines out, and each key is made as a server makes it, from the
// request. Its figure less the writes' own is what a keyed call's window
// costs a busy server; BenchmarkMemoryClaim's is the warm case.
func BenchmarkMemoryClaimCold(b *testing.B) {
	m := NewMemory(MemoryConfig{})
	ctx := context.Background()
	o := &Outcome{Codec: "protows.v1.proto", Payload: make([]byte, 40)}
	req := Request{Codec: "protows.v1.proto", Payload: make([]byte, 40), Fingerprinter: &testFingerprinter{}}
	const prefix = "0b9c5d6e-1a2b-4c3d-8e9f-"
	for i := range DefaultMaxEntries {
		_, c, _ := m.Claim(ctx, Key{Method: "/protows.bench.v1.BenchService/Echo", ID: prefix + strconv.Itoa(1e11+i)}, req)
		m.FinishClaim(ctx, c, o)
	}
	other := make([]byte, 16<<20)
	at := 0
	var id [64]byte
	b.ReportAllocs()
	i := DefaultMaxEntries
	for b.Loop() {
		for j := 0; j < 4096; j += 64 {
			other[at+j]++
		}
		at = (at + 4096) % len(other)
		k := Key{Method: "/protows.bench.v1.BenchService/Echo", ID: string(strconv.AppendInt(append(id[:0], prefix...), int64(1e11+i), 10))}
		i++
		_, c, _ := m.Claim(ctx, k, req)
		m.FinishClaim(ctx, c, o)
	}
}
