package dedupe

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"time"

	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// The defaults of MemoryConfig (docs/PROTOCOL.md, section 11).
const (
	// DefaultMaxEntries is the most keys a memory window holds.
	DefaultMaxEntries = 100_000
	// DefaultMaxAge is how long a key is remembered after its first send.
	DefaultMaxAge = 24 * time.Hour
	// DefaultMaxBytes bounds the bytes of the outcomes and keys held.
	DefaultMaxBytes = 64 << 20
)

// slotOverhead is the estimated memory of a finished key besides its
// encoded outcome: its slot in a hash table.
const slotOverhead = 128

// chunkSize is the size of the blocks a generation keeps its outcomes in.
const chunkSize = 64 << 10

// MemoryConfig bounds a Memory window. Zero fields take the defaults.
type MemoryConfig struct {
	// MaxEntries is the most finished keys held. Zero means
	// DefaultMaxEntries.
	MaxEntries int
	// MaxAge is how long a key is remembered, from the end of its first
	// run. Zero means DefaultMaxAge.
	MaxAge time.Duration
	// MaxBytes bounds the estimated bytes of the finished keys and their
	// outcomes (the encoded outcome and a fixed overhead per key). Zero
	// means DefaultMaxBytes.
	MaxBytes int64

	// now is the clock, for tests.
	now func() time.Time
}

// Memory is a Store that keeps the window in the server's memory: the
// default of a transport.Server, right for a single node.
//
// Finished keys are held in two generations: new outcomes go to the
// current one, and when it holds half of MaxEntries or of MaxBytes, or its
// oldest key is MaxAge old, it becomes the previous generation and the
// previous one is forgotten whole. So the window holds at most MaxEntries
// keys and MaxBytes, and at least about the most recent half of either
// (a large window is split by key hash into parts with their own locks and
// shares of the bounds); a key is never answered after MaxAge, and leaves
// memory when new keys turn its part's generations over.
//
// The window is built for a full window under a flood of new keys: a
// generation is dropped whole rather than key by key (deleting keys one by
// one leaves tombstones that lengthen every lookup of a hash table), and
// it holds no pointers (keys are 128 bits of two seeded hashes, outcomes
// are encoded into large blocks), so the garbage collector does not scan
// it. Two keys that have the same 128-bit hash under a seed drawn at
// random for each window would be taken for one; that is as good as
// never. A key whose first run is in progress is never forgotten: it is
// carried into the new generation when its own is dropped. The calls
// running at once (bounded by the transport's limits) may take a window
// past its bounds by as many keys.
type Memory struct {
	cfg    MemoryConfig
	seeds  [2]maphash.Seed
	shards []shard
}

// maxShards is the number of independent parts of a window, each with its
// own lock and a share of the bounds, so that calls on many cores rarely
// wait for each other; a small window (under minShardKeys keys or
// minShardBytes per part) has one.
const (
	maxShards     = 16
	minShardKeys  = 1024
	minShardBytes = 1 << 20
)

// shard is one part of a window, for the keys whose hash selects it.
type shard struct {
	cfg      *MemoryConfig
	maxKeys  int   // this shard's share of MaxEntries
	maxBytes int64 // and of MaxBytes
	mu       sync.Mutex
	// cur and prev are the generations; a key is in one of them, running
	// (slot.expires 0) or finished.
	cur, prev generation
	// waiters has a channel for each running key a send waits for (most
	// keys never have one), closed when the run finished or was
	// released.
	waiters map[keyHash]chan struct{}
	_       [64]byte // keeps the shards' locks on separate cache lines
}

var _ Store = (*Memory)(nil)

// keyHash is what the tables are keyed by: 128 bits of two seeded hashes
// of a Key.
type keyHash [2]uint64

func (m *Memory) hash(k Key) keyHash {
	return keyHash{maphash.Comparable(m.seeds[0], k), maphash.Comparable(m.seeds[1], k)}
}

// slot is a key of a generation: its request's fingerprint and, once its
// run finished, when it ages out and where its outcome is in the
// generation's blocks. It holds no pointer.
type slot struct {
	fp       Fingerprint
	expires  int64 // Unix nanoseconds; 0 while the first run is in progress
	chunk    uint32
	off, len uint32
}

// generation is a set of keys.
type generation struct {
	slots  map[keyHash]slot
	chunks [][]byte
	bytes  int64
	oldest int64 // Unix nanoseconds when its first key was added
}

// NewMemory returns an empty window bounded by cfg.
func NewMemory(cfg MemoryConfig) *Memory {
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = DefaultMaxEntries
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = DefaultMaxAge
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.now == nil {
		cfg.now = time.Now
	}
	m := &Memory{cfg: cfg, seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}}
	n := maxShards
	if cfg.MaxEntries < maxShards*minShardKeys || cfg.MaxBytes < maxShards*minShardBytes {
		n = 1
	}
	m.shards = make([]shard, n)
	for i := range m.shards {
		sh := &m.shards[i]
		sh.cfg = &m.cfg
		// Each generation of a shard holds half its share.
		sh.maxKeys = max(cfg.MaxEntries/n, 2)
		sh.maxBytes = cfg.MaxBytes / int64(n)
		sh.cur.slots = make(map[keyHash]slot)
		sh.waiters = make(map[keyHash]chan struct{})
	}
	return m
}

// shard returns the shard of h.
func (m *Memory) shard(h keyHash) *shard { return &m.shards[h[0]%uint64(len(m.shards))] }

// Len returns the number of keys held, running or finished.
func (m *Memory) Len() int {
	n := 0
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		n += len(sh.cur.slots) + len(sh.prev.slots)
		sh.mu.Unlock()
	}
	return n
}

// Bytes returns the estimated bytes of the keys held (see
// MemoryConfig.MaxBytes).
func (m *Memory) Bytes() int64 {
	var n int64
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		n += sh.cur.bytes + sh.prev.bytes
		sh.mu.Unlock()
	}
	return n
}

// findLocked returns the slot of h and its generation.
func (sh *shard) findLocked(h keyHash) (slot, *generation, bool) {
	if sl, ok := sh.cur.slots[h]; ok {
		return sl, &sh.cur, true
	}
	sl, ok := sh.prev.slots[h]
	return sl, &sh.prev, ok
}

// Begin implements Store.
func (m *Memory) Begin(ctx context.Context, k Key, fp Fingerprint) (*Outcome, error) {
	h := m.hash(k)
	sh := m.shard(h)
	for {
		sh.mu.Lock()
		sl, g, ok := sh.findLocked(h)
		if ok && sl.expires != 0 && sh.cfg.now().UnixNano() >= sl.expires {
			// Aged out: forget it now, so that a new outcome of the key
			// has the tables to itself.
			delete(g.slots, h)
			g.bytes -= int64(sl.len) + slotOverhead
			ok = false
		}
		if !ok {
			now := sh.cfg.now().UnixNano()
			sh.turnLocked(now, slotOverhead)
			sh.cur.slots[h] = slot{fp: fp}
			sh.cur.bytes += slotOverhead
			sh.mu.Unlock()
			return nil, nil
		}
		if sl.fp != fp {
			sh.mu.Unlock()
			return nil, conflict(k)
		}
		if sl.expires == 0 {
			// The first run is in progress: wait for it.
			done := sh.waiters[h]
			if done == nil {
				done = make(chan struct{})
				sh.waiters[h] = done
			}
			sh.mu.Unlock()
			select {
			case <-done:
				// Finished (the outcome is kept) or released (the key
				// is free): look again.
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		b := g.chunks[sl.chunk][sl.off : sl.off+sl.len : sl.off+sl.len]
		sh.mu.Unlock()
		// The blocks are only appended to, and a dropped generation's are
		// never reused: b can be read without the lock.
		return decodeOutcome(b)
	}
}

func conflict(k Key) error {
	return fmt.Errorf("%w: key %q of %s", ErrConflict, k.ID, k.Method)
}

// Finish implements Store.
func (m *Memory) Finish(_ context.Context, k Key, o *Outcome) error {
	h := m.hash(k)
	sh := m.shard(h)
	var enc []byte
	if o != nil {
		bp := encodeBufs.Get().(*[]byte)
		defer encodeBufs.Put(bp)
		var err error
		if enc, err = appendOutcome((*bp)[:0], o); err != nil {
			return err
		}
		if cap(enc) <= chunkSize {
			*bp = enc
		}
	}
	sh.mu.Lock()
	sl, g, ok := sh.findLocked(h)
	if !ok || sl.expires != 0 {
		sh.mu.Unlock()
		return nil // not claimed: nothing to finish
	}
	now := sh.cfg.now().UnixNano()
	switch {
	case o == nil:
		delete(g.slots, h)
		g.bytes -= slotOverhead
	case g == &sh.cur && !sh.fullLocked(now, int64(len(enc))):
		// The common case: the outcome goes where the claim is.
		sh.cur.putLocked(h, sl.fp, enc, now+int64(sh.cfg.MaxAge))
	default:
		// The generations turn over first, or turned over since the
		// claim: the outcome goes to the current one, and the claim
		// leaves the generation it was in.
		delete(g.slots, h)
		g.bytes -= slotOverhead
		sh.turnLocked(now, int64(len(enc))+slotOverhead)
		sh.cur.putLocked(h, sl.fp, enc, now+int64(sh.cfg.MaxAge))
		sh.cur.bytes += slotOverhead
	}
	done := sh.waiters[h]
	if done != nil {
		delete(sh.waiters, h)
	}
	sh.mu.Unlock()
	if done != nil {
		close(done)
	}
	return nil
}

// encodeBufs holds the buffers outcomes are encoded in before they are
// copied into a generation's block.
var encodeBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// turnLocked turns the generations over when adding size bytes and a key
// would take the current one past half the shard's bounds, or when its
// oldest key is MaxAge old: the current generation becomes the previous
// one, and the previous one is forgotten, but for its running keys, which
// move to the new current generation.
func (sh *shard) turnLocked(now, size int64) {
	if !sh.fullLocked(now, size) {
		if len(sh.cur.slots) == 0 {
			sh.cur.oldest = now
		}
		return
	}
	dropped := sh.prev
	sh.prev = sh.cur
	sh.cur = generation{slots: make(map[keyHash]slot, len(sh.prev.slots)), oldest: now}
	for h, sl := range dropped.slots {
		if sl.expires == 0 {
			sh.cur.slots[h] = sl
			sh.cur.bytes += slotOverhead
		}
	}
}

// fullLocked reports whether the current generation must turn over before
// it takes a key and size more bytes: it holds half the shard's keys or
// bytes, or its oldest key is MaxAge old.
func (sh *shard) fullLocked(now, size int64) bool {
	return len(sh.cur.slots) >= sh.maxKeys/2 || sh.cur.bytes+size > sh.maxBytes/2 ||
		len(sh.cur.slots) > 0 && now-sh.cur.oldest >= int64(sh.cfg.MaxAge)
}

// putLocked records the outcome enc of the key h in g: in place of its
// claim, or as a new key.
func (g *generation) putLocked(h keyHash, fp Fingerprint, enc []byte, expires int64) {
	last := len(g.chunks) - 1
	if last < 0 || len(g.chunks[last])+len(enc) > cap(g.chunks[last]) {
		g.chunks = append(g.chunks, make([]byte, 0, max(chunkSize, len(enc))))
		last++
	}
	off := len(g.chunks[last])
	g.chunks[last] = append(g.chunks[last], enc...)
	g.slots[h] = slot{fp: fp, expires: expires, chunk: uint32(last), off: uint32(off), len: uint32(len(enc))}
	g.bytes += int64(len(enc))
}

// appendOutcome appends the encoding of o to dst: its codec, then either
// the REPLY's payload and metadata or the ERROR's protows.v1.Error.
func appendOutcome(dst []byte, o *Outcome) ([]byte, error) {
	dst = protowire.AppendString(dst, o.Codec)
	if o.Error != nil {
		b, err := proto.Marshal(o.Error)
		if err != nil {
			return nil, fmt.Errorf("dedupe: encode the outcome: %w", err)
		}
		dst = append(dst, 1)
		return protowire.AppendBytes(dst, b), nil
	}
	dst = append(dst, 0)
	dst = protowire.AppendBytes(dst, o.Payload)
	dst = protowire.AppendVarint(dst, uint64(len(o.Metadata)))
	for k, v := range o.Metadata {
		dst = protowire.AppendString(dst, k)
		dst = protowire.AppendString(dst, v)
	}
	return dst, nil
}

// decodeOutcome decodes what appendOutcome wrote. The payload aliases b.
func decodeOutcome(b []byte) (*Outcome, error) {
	bad := errors.New("dedupe: corrupt outcome")
	codec, n := protowire.ConsumeBytes(b)
	if n < 0 || len(b) == n {
		return nil, bad
	}
	o := &Outcome{Codec: string(codec)}
	b = b[n:]
	kind := b[0]
	b = b[1:]
	if kind == 1 {
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return nil, bad
		}
		o.Error = &protowsv1.Error{}
		if err := proto.Unmarshal(v, o.Error); err != nil {
			return nil, fmt.Errorf("dedupe: decode the outcome: %w", err)
		}
		return o, nil
	}
	v, n := protowire.ConsumeBytes(b)
	if n < 0 {
		return nil, bad
	}
	o.Payload, b = v, b[n:]
	count, n := protowire.ConsumeVarint(b)
	if n < 0 {
		return nil, bad
	}
	b = b[n:]
	if count > 0 {
		o.Metadata = make(map[string]string, min(count, 64))
	}
	for range count {
		k, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return nil, bad
		}
		b = b[n:]
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return nil, bad
		}
		b = b[n:]
		o.Metadata[string(k)] = string(v)
	}
	return o, nil
}
