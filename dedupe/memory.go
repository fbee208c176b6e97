package dedupe

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

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
	// outcomes (the encoded outcome, the request kept by Claim or the
	// request's fingerprint, and a fixed overhead per key). Zero means
	// DefaultMaxBytes.
	MaxBytes int64

	// now is the clock, for tests; nil means the monotonic clock.
	now func() time.Time
	// start is when the window was made: its times are nanoseconds since.
	start time.Time
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
// The window is built for a full window under a flood of new keys, where
// every call looks up a key the window does not hold. A generation is an
// array of fixed-size entries in the order they came, with an index of its
// own (keyIndex): a lookup of an unknown key reads a byte or a few of each
// generation's index, and no entry. A generation
// is dropped whole rather than key by key: a key forgotten early (aged
// out, or released by its run) is only marked gone, since deleting from
// an open-addressed table leaves tombstones that lengthen every lookup;
// when the generations turn over, the dropped generation's index is
// emptied, and its index, entries and blocks are reused by the next one,
// so that a full window allocates nothing (an outcome sent again is
// copied out of its block). The window holds no
// pointers (keys are 128 bits of two seeded hashes; outcomes, and the
// requests Claim keeps or their fingerprints, are encoded into large
// blocks), so the garbage collector does not scan it.
// Two keys that have the same 128-bit hash under a seed drawn at random
// for each window would be taken for one; that is as good as never. A key
// whose first run is in progress is never forgotten: it is carried into
// the new generation when its own is dropped. The calls running at once
// (bounded by the transport's limits) may take a window past its bounds
// by as many keys.
type Memory struct {
	cfg    MemoryConfig
	seeds  [2]maphash.Seed
	shards []shard
	codecs codecTable
}

// maxShards is the number of independent parts of a window, each with its
// own lock and a share of the bounds, so that calls on many cores rarely
// wait for each other; a small window (under minShardKeys keys or
// minShardBytes per part) has one. maxShards is a power of two.
const (
	maxShards     = 16
	minShardKeys  = 1024
	minShardBytes = 1 << 20
)

// shard is one part of a window, for the keys whose hash selects it.
//
// Its first 64 bytes are what every claim reads first: the lock, the
// current generation, the clock, the bounds, and what Prefetch reads
// (TestShardLayout). A shard need not start a line (the allocator puts a
// header before the slice of shards): Prefetch loads the one or two lines
// those bytes are in, and the lines of both indexes' headers.
type shard struct {
	mu sync.Mutex
	// cur is the current generation: gens[cur]; gens[1-cur] is the
	// previous one.
	cur int
	// now is the latest reading of the clock under the lock: the time a
	// new key is stamped with (see clockLocked).
	now int64
	// ctrls holds the control bytes of both generations' indexes, for
	// Prefetch, which reads it without the lock: stored whenever an index
	// grows (addLocked). A generation's turn keeps its index's memory.
	ctrls atomic.Pointer[[2][]byte]
	// waiters has a channel for each running key a send waits for (most
	// keys never have one), closed when the run finished or was
	// released.
	waiters  map[keyHash]chan struct{}
	cfg      *MemoryConfig
	maxKeys  int   // this shard's share of MaxEntries
	maxBytes int64 // and of MaxBytes
	codecs   *codecTable
	// gens are the generations; a key is in one of them, running
	// (entry.expires 0) or finished.
	gens [2]generation
	_    [64]byte // keeps a shard's fields off the line of the next one's lock
}

var (
	_ Store      = (*Memory)(nil)
	_ ClaimStore = (*Memory)(nil)
)

// keyHash is what the tables are keyed by: 128 bits of two seeded hashes
// of a Key.
type keyHash [2]uint64

// hash returns the keyHash of k: the two seeded hashes of one unambiguous
// encoding of its fields (each length-prefixed), built on the stack for
// the keys of ordinary length. The encoding of such a key, every field
// shorter than 0x80 bytes, is written without appendField's general case,
// which hashLong takes: hashed on every call, the key's code is kept
// short.
func (m *Memory) hash(k Key) keyHash {
	var buf [256]byte
	n := 3 + len(k.Principal) + len(k.Method) + len(k.ID)
	if n > len(buf) || len(k.Principal)|len(k.Method)|len(k.ID) >= 0x80 {
		return m.hashLong(k)
	}
	b := buf[:n]
	b[0] = byte(len(k.Principal))
	i := 1 + copy(b[1:], k.Principal)
	b[i] = byte(len(k.Method))
	i += 1 + copy(b[i+1:], k.Method)
	b[i] = byte(len(k.ID))
	copy(b[i+1:], k.ID)
	return keyHash{maphash.Bytes(m.seeds[0], b), maphash.Bytes(m.seeds[1], b)}
}

// hashLong is hash for any key: the same encoding (a length shorter than
// 0x80 is its one byte as a uvarint), in a buffer as long as it takes.
func (m *Memory) hashLong(k Key) keyHash {
	b := appendField(nil, k.Principal)
	b = appendField(b, k.Method)
	b = appendField(b, k.ID)
	return keyHash{maphash.Bytes(m.seeds[0], b), maphash.Bytes(m.seeds[1], b)}
}

// appendField appends s to b, after its length (a uvarint).
func appendField(b []byte, s string) []byte {
	if len(s) < 0x80 {
		b = append(b, byte(len(s)))
	} else {
		b = binary.AppendUvarint(b, uint64(len(s)))
	}
	return append(b, s...)
}

// gone is entry.expires of a key forgotten before its generation is
// dropped: aged out, or released by its run.
const gone = -1

// entry is a key of a generation: where its request's record is in the
// generation's blocks, its fingerprint or the request itself as it came
// (lazy: see Claim), and, once its run finished, when it ages out and
// where its outcome is. It holds no pointer, and takes 48 bytes: most
// calls write one, to memory the cache has long forgotten.
type entry struct {
	h        keyHash
	expires  int64 // nanos when it ages out; 0 while the first run is in progress; gone
	chunk    uint32
	off, len uint32
	// The request's record: its fingerprint, or, with lazyRecord set in
	// rlen, its codec and payload.
	rchunk, roff, rlen uint32
}

// lazyRecord is set in entry.rlen when the record is the request as it
// came, not its fingerprint.
const lazyRecord = 1 << 31

// lazy reports whether e keeps its request as it came: its fingerprint is
// not known.
func (e *entry) lazy() bool { return e.rlen&lazyRecord != 0 }

// fingerprint returns the fingerprint of e, an entry of g that is not
// lazy.
func (g *generation) fingerprint(e *entry) Fingerprint {
	return Fingerprint(g.rawRecord(e))
}

// putFingerprint records fp as the request's record of e, an entry of g.
func (g *generation) putFingerprint(e *entry, fp Fingerprint) {
	g.putRecord(e, fp[:], false)
}

// maxLazyRequest is the largest request payload a window keeps in place of
// its fingerprint (Claim): a larger one is fingerprinted on its first send,
// so that large requests do not take the window's bytes.
const maxLazyRequest = 2 << 10

// record returns the request's record of e, an entry of g: its codec and
// payload. A record that does not decode has codec "", which no request
// has.
func (g *generation) record(t *codecTable, e *entry) (codec string, payload []byte) {
	rec := g.rawRecord(e)
	c, n := t.consume(rec)
	if n < 0 {
		return "", nil
	}
	return c, rec[n:]
}

// rawRecord returns the bytes of e's request record.
func (g *generation) rawRecord(e *entry) []byte {
	end := e.roff + e.rlen&^lazyRecord
	return g.chunks[e.rchunk][e.roff:end:end]
}

// recordSize is the size of the record of a request whose codec has id.
func recordSize(id byte, codec string, payload []byte) int {
	return codecSize(id, codec) + len(payload)
}

// roomFor returns the block of g with room for n more bytes, adding one
// when the last is full: a spare one, when it has one that fits.
func (g *generation) roomFor(n int) int {
	last := len(g.chunks) - 1
	if last < 0 || len(g.chunks[last])+n > cap(g.chunks[last]) {
		if s := len(g.spare) - 1; s >= 0 && n <= chunkSize {
			g.chunks = append(g.chunks, g.spare[s])
			g.spare[s] = nil
			g.spare = g.spare[:s]
		} else {
			g.chunks = append(g.chunks, make([]byte, 0, max(chunkSize, n)))
		}
		last++
	}
	return last
}

// putRecord puts rec, a request's record, lazy or a fingerprint, into g's
// blocks for e.
func (g *generation) putRecord(e *entry, rec []byte, lazy bool) {
	c := g.roomFor(len(rec))
	e.rchunk, e.roff, e.rlen = uint32(c), uint32(len(g.chunks[c])), uint32(len(rec))
	if lazy {
		e.rlen |= lazyRecord
	}
	g.chunks[c] = append(g.chunks[c], rec...)
	g.bytes += int64(len(rec))
}

// putRequest puts the lazy record of a request, whose codec has id, into
// g's blocks for e.
func (g *generation) putRequest(e *entry, id byte, codec string, payload []byte) {
	n := recordSize(id, codec, payload)
	c := g.roomFor(n)
	e.rchunk, e.roff, e.rlen = uint32(c), uint32(len(g.chunks[c])), uint32(n)|lazyRecord
	g.chunks[c] = append(appendCodec(g.chunks[c], id, codec), payload...)
	g.bytes += int64(n)
}

// codecTable numbers the codecs (subprotocols) of a window's requests and
// outcomes, so that a record holds a byte in place of a codec's name: a
// server has a few codecs, and every call writes a request and an
// outcome. It only grows: a number, once given, names its codec for the
// window's life.
type codecTable struct {
	mu    sync.Mutex // held to add a name
	names atomic.Pointer[[]string]
}

// inlineCodec is the id of a codec past the table's maxCodecs: its
// record holds its name.
const (
	maxCodecs   = 255
	inlineCodec = 255
)

// id returns the id of the codec name, adding it to t if it has room.
func (t *codecTable) id(name string) byte {
	if p := t.names.Load(); p != nil {
		for i, n := range *p {
			if n == name {
				return byte(i)
			}
		}
	}
	return t.add(name)
}

// add is id for a codec the table did not have when id looked.
func (t *codecTable) add(name string) byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	var names []string
	if p := t.names.Load(); p != nil {
		names = *p
	}
	for i, n := range names {
		if n == name {
			return byte(i)
		}
	}
	if len(names) >= maxCodecs {
		return inlineCodec
	}
	grown := append(names[:len(names):len(names)], name)
	t.names.Store(&grown)
	return byte(len(grown) - 1)
}

// codecSize is the size of a codec's part of a record.
func codecSize(id byte, name string) int {
	if id == inlineCodec {
		return 1 + protowire.SizeBytes(len(name))
	}
	return 1
}

// appendCodec appends the codec with id and name to a record.
func appendCodec(dst []byte, id byte, name string) []byte {
	dst = append(dst, id)
	if id == inlineCodec {
		dst = protowire.AppendString(dst, name)
	}
	return dst
}

// consume returns the name of the codec b starts with, and its size, or
// a size < 0 when it does not decode.
func (t *codecTable) consume(b []byte) (string, int) {
	if len(b) == 0 {
		return "", -1
	}
	if id := b[0]; id != inlineCodec {
		p := t.names.Load()
		if p == nil || int(id) >= len(*p) {
			return "", -1
		}
		return (*p)[id], 1
	}
	name, n := protowire.ConsumeBytes(b[1:])
	if n < 0 {
		return "", -1
	}
	return string(name), 1 + n
}

// generation is a set of keys, in the order they were added.
type generation struct {
	entries []entry
	live    int // entries not gone
	running int // entries whose first run is in progress
	chunks  [][]byte
	// spare holds the blocks of the generation's previous life, emptied,
	// for it to fill again: a window under a flood of keys allocates (and
	// the runtime zeroes) no block once both generations have theirs.
	spare  [][]byte
	bytes  int64
	oldest int64 // nanos when its first entry was added
	// index finds the entries by their keys.
	index keyIndex
}

// maxGenEntries is the most entries a generation takes, whatever the
// bounds: its index has fewer than 1<<32 slots (keyIndex.pendingAt).
const maxGenEntries = 1<<30 - 1

// waitUnlock waits for the running key of hash h to finish (its outcome
// kept) or be released (the key free again), and releases sh.mu, which
// must be held, while it waits. It returns ctx's error when ctx ends
// first; the caller looks the key up again otherwise.
func (sh *shard) waitUnlock(ctx context.Context, h keyHash) error {
	done := sh.waiters[h]
	if done == nil {
		done = make(chan struct{})
		sh.waiters[h] = done
	}
	sh.mu.Unlock()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// findLocked returns the entry of h (not gone) and its generation, or nil.
func (sh *shard) findLocked(h keyHash) (*entry, *generation) {
	tag := h[0] >> 32
	c := ctrlOf(tag)
	// The current generation first: a key sent again is most often recent.
	for _, gi := range [2]int{sh.cur, 1 - sh.cur} {
		g := &sh.gens[gi]
		x := &g.index
		if x.size() == 0 {
			continue
		}
		mask := uint64(x.size() - 1)
		for p := home(tag, mask); x.ctrl[p] != 0; p = (p + 1) & mask {
			if x.ctrl[p] != c {
				continue
			}
			s := x.slot(p)
			if slotTag(s) != tag {
				continue
			}
			// A key may have gone entries besides its live one (it was
			// released and claimed again): they are passed over.
			if e := &g.entries[slotPlace(s)]; e.h == h && e.expires != gone {
				return e, g
			}
		}
	}
	return nil, nil
}

// addLocked appends e to the current generation and the index, growing
// the index when it would be more than half full.
func (sh *shard) addLocked(e entry) *entry {
	g := &sh.gens[sh.cur]
	g.entries = append(g.entries, e)
	g.live++
	if e.expires == 0 {
		g.running++
	}
	if g.index.add(slot(e.h, len(g.entries)-1), len(g.entries)) {
		sh.ctrls.Store(&[2][]byte{sh.gens[0].index.ctrl, sh.gens[1].index.ctrl})
	}
	return &g.entries[len(g.entries)-1]
}

// Prefetch starts loading into the processor's caches the lines of the
// window that Claim of k will read first, and returns at once: its part's
// lock, the headers of its indexes, and their lines where k would be. A
// server calls it as soon as it knows the key, before it decodes the
// request, so that the claim that follows does not wait for memory the
// caches have forgotten (under a flood of new keys, nearly every lookup
// reads a line of each generation's index that is not in any cache). On
// an architecture without a prefetch (prefetch_other.go) it loads nothing.
//
// It returns the Hint a Claim of k takes in its Request, so that the key
// is hashed once.
func (m *Memory) Prefetch(k Key) Hint {
	h := m.hash(k)
	if havePrefetch {
		sh := m.shard(h)
		p := uintptr(unsafe.Pointer(sh))
		prefetch(p)
		prefetch(p + 63) // the first 64 bytes may span two lines
		for i := range sh.gens {
			prefetch(uintptr(unsafe.Pointer(&sh.gens[i].index)))
		}
		if ctrls := sh.ctrls.Load(); ctrls != nil {
			tag := h[0] >> 32
			for _, c := range ctrls {
				if len(c) > 0 {
					prefetch(uintptr(unsafe.Pointer(&c[home(tag, uint64(len(c)-1))])))
				}
			}
		}
	}
	return Hint{m: m, k: k, h: h}
}

// isFor reports whether x is m's hint for k, made of the same strings (a
// server's claim of a key it prefetched); a claim then takes its hash
// rather than work it out. The strings are compared by where their bytes
// are, which tells the same strings without reading them (an anonymous
// caller's empty principals are the same whatever their pointers): an
// equal key of other strings is hashed again. It inlines into Claim, at
// the compiler's budget exactly.
func (x *Hint) isFor(m *Memory, k Key) bool {
	return x != nil && x.m == m && sameString(x.k.ID, k.ID) && sameString(x.k.Method, k.Method) &&
		(x.k.Principal == "" && k.Principal == "" || sameString(x.k.Principal, k.Principal))
}

// sameString reports whether a and b are the same bytes in memory. (Two
// empty strings may not be: Go leaves their pointers unspecified.)
func sameString(a, b string) bool {
	return len(a) == len(b) && unsafe.StringData(a) == unsafe.StringData(b)
}

// nanos returns the time in nanoseconds since the window was made: on the
// monotonic clock, which one call reads (time.Now reads the wall clock as
// well), and which the wall clock's steps do not move.
func (c *MemoryConfig) nanos() int64 {
	if c.now != nil {
		return int64(c.now().Sub(c.start))
	}
	return int64(time.Since(c.start))
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
	cfg.start = time.Now()
	if cfg.now != nil {
		cfg.start = cfg.now()
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
		sh.codecs = &m.codecs
		// Each generation of a shard holds half its share.
		sh.maxKeys = max(cfg.MaxEntries/n, 2)
		sh.maxBytes = cfg.MaxBytes / int64(n)
		sh.waiters = make(map[keyHash]chan struct{})
	}
	return m
}

// shard returns the shard of h: chosen by its second hash, since the
// first places it in the index. The number of shards is a power of two.
func (m *Memory) shard(h keyHash) *shard { return &m.shards[h[1]&uint64(len(m.shards)-1)] }

// Len returns the number of keys held, running or finished.
func (m *Memory) Len() int {
	n := 0
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		n += sh.gens[0].live + sh.gens[1].live
		sh.mu.Unlock()
	}
	return n
}

// Bytes returns the estimated bytes of the keys held (see
// MemoryConfig.MaxBytes). A key forgotten early counts until its
// generation is dropped: its entry and outcome are in memory until then.
func (m *Memory) Bytes() int64 {
	var n int64
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		n += sh.gens[0].bytes + sh.gens[1].bytes
		sh.mu.Unlock()
	}
	return n
}

// curLocked returns the current generation.
func (sh *shard) curLocked() *generation { return &sh.gens[sh.cur] }

// forget marks e, an entry of g, gone.
func (g *generation) forget(e *entry) {
	if e.expires == 0 {
		g.running--
	}
	e.expires = gone
	g.live--
}

// Begin implements Store.
func (m *Memory) Begin(ctx context.Context, k Key, fp Fingerprint) (*Outcome, error) {
	h := m.hash(k)
	sh := m.shard(h)
	for {
		sh.mu.Lock()
		e, g := sh.findLocked(h)
		if e != nil && e.expires != 0 && sh.clockLocked() >= e.expires {
			// Aged out: forget it now, so that a new outcome of the key
			// has the tables to itself.
			g.forget(e)
			e = nil
		}
		if e == nil {
			sh.turnLocked(int64(slotOverhead + len(fp)))
			e = sh.addLocked(entry{h: h})
			g = sh.curLocked()
			g.bytes += slotOverhead
			g.putFingerprint(e, fp)
			sh.mu.Unlock()
			return nil, nil
		}
		if e.lazy() {
			// Only Claim, which is given the way to fingerprints, can
			// compare a request kept as it came.
			sh.mu.Unlock()
			return nil, fmt.Errorf("dedupe: key %q of %s was claimed by Claim: Begin cannot compare its request", k.ID, k.Method)
		}
		if g.fingerprint(e) != fp {
			sh.mu.Unlock()
			return nil, conflict(k)
		}
		if e.expires == 0 {
			// The first run is in progress: wait for it, then look again.
			if err := sh.waitUnlock(ctx, h); err != nil {
				return nil, err
			}
			continue
		}
		o, err := g.outcome(&m.codecs, e)
		sh.mu.Unlock()
		return o, err
	}
}

// Claim implements ClaimStore. A request of at most maxLazyRequest bytes
// is kept as it came, in place of its fingerprint, which is computed only
// when another send of the key comes with other bytes (another codec, say):
// most keys are sent once, and a retry most often sends the same bytes.
// Such fingerprints are computed under the lock of the key's part of the
// window, which their size bounds.
func (m *Memory) Claim(ctx context.Context, k Key, req Request) (*Outcome, Claim, error) {
	var (
		fp     Fingerprint
		haveFP bool
	)
	lazy := len(req.Payload) <= maxLazyRequest
	var id byte // the request's codec, for a lazy record
	if lazy {
		id = m.codecs.id(req.Codec)
	}
	if !lazy {
		var err error
		if fp, err = req.Fingerprinter.Fingerprint(req.Codec, req.Payload); err != nil {
			return nil, Claim{}, err
		}
		haveFP = true
	}
	var h keyHash
	if req.Hint.isFor(m, k) {
		h = req.Hint.h
	} else {
		h = m.hash(k)
	}
	sh := m.shard(h)
	for {
		sh.mu.Lock()
		e, g := sh.findLocked(h)
		if e != nil && e.expires != 0 && sh.clockLocked() >= e.expires {
			g.forget(e)
			e = nil
		}
		if e == nil {
			size := int64(slotOverhead + len(fp))
			if lazy {
				size = int64(slotOverhead + recordSize(id, req.Codec, req.Payload))
			}
			sh.turnLocked(size)
			e = sh.addLocked(entry{h: h})
			g = sh.curLocked()
			g.bytes += slotOverhead
			if lazy {
				g.putRequest(e, id, req.Codec, req.Payload)
			} else {
				g.putFingerprint(e, fp)
			}
			c := Claim{Key: k, Ref: [3]uint64{h[0], h[1], uint64(len(g.entries))<<1 | uint64(sh.cur)}}
			sh.mu.Unlock()
			return nil, c, nil
		}
		o, again, err := m.claimFoundLocked(ctx, sh, k, e, g, req, &fp, &haveFP)
		if !again {
			return o, Claim{}, err
		}
	}
}

// claimFoundLocked is Claim for a key found in the window, e of g, with
// sh locked, which it unlocks: the request must be the same as the one
// the key was claimed with; then the outcome is returned, or, while the
// key's run is in progress, the lock is waited for, and again tells
// Claim to look once more.
func (m *Memory) claimFoundLocked(ctx context.Context, sh *shard, k Key, e *entry, g *generation, req Request, fp *Fingerprint, haveFP *bool) (o *Outcome, again bool, err error) {
	same, err := sameLocked(&m.codecs, e, g, req, fp, haveFP)
	if err != nil {
		sh.mu.Unlock()
		return nil, false, err
	}
	if !same {
		sh.mu.Unlock()
		return nil, false, conflict(k)
	}
	if e.expires == 0 {
		if err := sh.waitUnlock(ctx, e.h); err != nil {
			return nil, false, err
		}
		return nil, true, nil
	}
	o, err = g.outcome(&m.codecs, e)
	sh.mu.Unlock()
	return o, false, err
}

// outcome decodes the outcome of e, a finished entry of g, into memory of
// its own: the block it is in is reused once g is dropped.
func (g *generation) outcome(t *codecTable, e *entry) (*Outcome, error) {
	o, err := decodeOutcome(t, g.chunks[e.chunk][e.off:e.off+e.len:e.off+e.len])
	if err != nil {
		return nil, err
	}
	o.Payload = bytes.Clone(o.Payload)
	return o, nil
}

// clockLocked reads the clock, and keeps the reading as the time new
// keys are stamped with. A new key is stamped with the latest reading
// instead of one of its own, which spares most calls one of their two
// readings (finish takes the other): a generation's oldest key then
// seems older than it is, so that the generations turn over a little
// early, but never before their keys aged out. Every finished key of
// the generation a turn drops was finished at or before the reading the
// following generation's first key was stamped with (later finishes go
// to that generation), and so aged out MaxAge after it. A key found is
// aged on a reading of its own.
func (sh *shard) clockLocked() int64 {
	sh.now = max(sh.now, sh.cfg.nanos())
	return sh.now
}

// sameLocked reports whether req is the request of e, an entry of g: the
// same codec and bytes as e's kept request, or else the same fingerprint.
// It computes the fingerprints it needs, and keeps e's.
func sameLocked(t *codecTable, e *entry, g *generation, req Request, fp *Fingerprint, haveFP *bool) (bool, error) {
	if e.lazy() {
		codec, payload := g.record(t, e)
		if codec == req.Codec && bytes.Equal(payload, req.Payload) {
			return true, nil
		}
		first, err := req.Fingerprinter.Fingerprint(codec, payload)
		if err != nil {
			return false, fmt.Errorf("dedupe: fingerprint the first send's request: %w", err)
		}
		// The first send's fingerprint replaces its request, in its
		// generation's blocks (appended: what they hold stays while the
		// generation lives).
		g.putFingerprint(e, first)
	}
	if !*haveFP {
		var err error
		if *fp, err = req.Fingerprinter.Fingerprint(req.Codec, req.Payload); err != nil {
			return false, err
		}
		*haveFP = true
	}
	return g.fingerprint(e) == *fp, nil
}

func conflict(k Key) error {
	return fmt.Errorf("%w: key %q of %s", ErrConflict, k.ID, k.Method)
}

// Finish implements Store.
func (m *Memory) Finish(_ context.Context, k Key, o *Outcome) error {
	return m.finish(m.hash(k), 0, o)
}

// FinishClaim implements ClaimStore: it finds the claim where Claim put
// it, unless the generations turned over since.
func (m *Memory) FinishClaim(ctx context.Context, c Claim, o *Outcome) error {
	if c.Ref == ([3]uint64{}) {
		return m.Finish(ctx, c.Key, o)
	}
	return m.finish(keyHash{c.Ref[0], c.Ref[1]}, c.Ref[2], o)
}

// finish ends the run of the key of hash h, whose claim's entry was at
// at (1 + its place in its generation, then the generation's bit), 0 for
// unknown.
func (m *Memory) finish(h keyHash, at uint64, o *Outcome) error {
	// A reply is encoded straight into the generation's block, under the
	// lock, its size known beforehand; an error, which takes a Protobuf
	// encoding of its own, is encoded before (finishError).
	if o == nil {
		return m.finishLocking(h, at, nil, 0, nil, 0)
	}
	if o.Error != nil {
		return m.finishError(h, at, o)
	}
	id := m.codecs.id(o.Codec)
	return m.finishLocking(h, at, o, id, nil, replySize(id, o))
}

// finishError is finish for an outcome that is an error: encoded first,
// into a pooled buffer.
func (m *Memory) finishError(h keyHash, at uint64, o *Outcome) error {
	id := m.codecs.id(o.Codec)
	bp := encodeBufs.Get().(*[]byte)
	defer encodeBufs.Put(bp)
	enc, err := appendOutcome((*bp)[:0], id, o)
	if err != nil {
		return err
	}
	if cap(enc) <= chunkSize {
		*bp = enc
	}
	return m.finishLocking(h, at, o, id, enc, len(enc))
}

// finishLocking is the part of finish under the shard's lock: the outcome
// o, of codec id, encoded in enc (nil for a reply, written in place), of
// size bytes, goes to the claim's entry.
func (m *Memory) finishLocking(h keyHash, at uint64, o *Outcome, id byte, enc []byte, size int) error {
	sh := m.shard(h)
	sh.mu.Lock()
	var (
		e *entry
		g *generation
	)
	if at != 0 {
		// The claim's entry, unless it moved: a running key has one
		// entry, so an entry of h still running is the claim's.
		gg := &sh.gens[at&1]
		if i := at>>1 - 1; i < uint64(len(gg.entries)) && gg.entries[i].h == h && gg.entries[i].expires == 0 {
			e, g = &gg.entries[i], gg
		}
	}
	if e == nil {
		e, g = sh.findLocked(h)
	}
	if e == nil || e.expires != 0 {
		sh.mu.Unlock()
		return nil // not claimed: nothing to finish
	}
	expires := sh.clockLocked() + int64(sh.cfg.MaxAge)
	switch {
	case o == nil:
		g.forget(e)
	case g == sh.curLocked() && !sh.fullLocked(int64(size)):
		// The common case: the outcome goes where the claim is.
		g.putLocked(e, o, id, enc, size, expires)
	default:
		e, g = sh.moveLocked(e, g, h, size)
		g.putLocked(e, o, id, enc, size, expires)
	}
	var done chan struct{}
	if len(sh.waiters) > 0 {
		if done = sh.waiters[h]; done != nil {
			delete(sh.waiters, h)
		}
	}
	sh.mu.Unlock()
	if done != nil {
		close(done)
	}
	return nil
}

// moveLocked makes room for an outcome of size bytes of e, the running
// entry of h in g, when it cannot go where e is: the generations turn over
// first, or turned over since the claim. The claim leaves g for the
// current generation, with its request's record, copied first: the turn
// may give the record's block to the new generation. It returns the
// entry's new place.
func (sh *shard) moveLocked(e *entry, g *generation, h keyHash, size int) (*entry, *generation) {
	lazy, rec := e.lazy(), bytes.Clone(g.rawRecord(e))
	g.forget(e)
	sh.turnLocked(int64(size+len(rec)) + slotOverhead)
	e = sh.addLocked(entry{h: h})
	g = sh.curLocked()
	g.bytes += slotOverhead
	g.putRecord(e, rec, lazy)
	return e, g
}

// encodeBufs holds the buffers outcomes are encoded in before they are
// copied into a generation's block.
var encodeBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// turnLocked turns the generations over when adding size bytes and a key
// would take the current one past half the shard's bounds, or when its
// oldest key is MaxAge old: the current generation becomes the previous
// one, and the previous one is forgotten, but for its running keys, which
// move to the new current generation. The new generation reuses the
// forgotten one's entries and blocks (nothing reads a block without the
// lock), and its index is emptied. A generation made is stamped with
// the shard's latest clock reading (clockLocked).
func (sh *shard) turnLocked(size int64) {
	now := sh.now
	cur := sh.curLocked()
	if !sh.fullLocked(size) {
		if len(cur.entries) == 0 {
			cur.oldest = now
		}
		return
	}
	dropped := &sh.gens[1-sh.cur]
	var (
		running []entry
		recs    []byte // the running keys' request records, copied out of the blocks the new generation reuses
	)
	for i := 0; dropped.running > 0 && i < len(dropped.entries); i++ {
		if e := &dropped.entries[i]; e.expires == 0 {
			running = append(running, *e)
			recs = append(recs, dropped.rawRecord(e)...)
		}
	}
	dropped.index.reset()
	// The dropped generation's blocks are the new one's to fill again.
	spare := dropped.spare[:0]
	for _, b := range dropped.chunks {
		if cap(b) == chunkSize {
			spare = append(spare, b[:0])
		}
	}
	clear(dropped.chunks)
	*dropped = generation{entries: dropped.entries[:0], chunks: dropped.chunks[:0], spare: spare, oldest: now, index: dropped.index}
	sh.cur = 1 - sh.cur
	for _, e := range running {
		n := e.rlen &^ lazyRecord
		ne := sh.addLocked(entry{h: e.h})
		dropped.bytes += slotOverhead
		dropped.putRecord(ne, recs[:n:n], e.lazy())
		recs = recs[n:]
	}
}

// fullLocked reports whether the current generation must turn over before
// it takes a key and size more bytes: it holds half the shard's keys
// (counting those forgotten early, whose entries it still holds) or
// bytes, or its oldest key is MaxAge old at the shard's latest clock
// reading.
func (sh *shard) fullLocked(size int64) bool {
	cur := sh.curLocked()
	return len(cur.entries) >= min(sh.maxKeys/2, maxGenEntries) || cur.bytes+size > sh.maxBytes/2 ||
		len(cur.entries) > 0 && sh.now-cur.oldest >= int64(sh.cfg.MaxAge)
}

// putLocked records an outcome of size bytes in e, a running entry of g:
// enc, o encoded, or else o, a reply whose codec has id, which it encodes
// in place.
func (g *generation) putLocked(e *entry, o *Outcome, id byte, enc []byte, size int, expires int64) {
	last := g.roomFor(size)
	off := len(g.chunks[last])
	if enc != nil {
		g.chunks[last] = append(g.chunks[last], enc...)
	} else {
		// A reply encodes without error, within the room made for it.
		g.chunks[last], _ = appendOutcome(g.chunks[last], id, o)
		size = len(g.chunks[last]) - off
	}
	e.expires, e.chunk, e.off, e.len = expires, uint32(last), uint32(off), uint32(size)
	g.bytes += int64(size)
	g.running--
}

// replySize is the size of appendOutcome's encoding of o, a reply whose
// codec has id.
func replySize(id byte, o *Outcome) int {
	n := codecSize(id, o.Codec) + 1 + protowire.SizeBytes(len(o.Payload)) +
		protowire.SizeVarint(uint64(len(o.Metadata)))
	if len(o.Metadata) == 0 {
		return n // most replies: no map iterator to set up
	}
	for k, v := range o.Metadata {
		n += protowire.SizeBytes(len(k)) + protowire.SizeBytes(len(v))
	}
	return n
}

// appendOutcome appends the encoding of o to dst: its codec, which has
// id, then either the REPLY's payload and metadata or the ERROR's
// protows.v1.Error.
func appendOutcome(dst []byte, id byte, o *Outcome) ([]byte, error) {
	dst = appendCodec(dst, id, o.Codec)
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
	if len(o.Metadata) == 0 {
		return dst, nil
	}
	for k, v := range o.Metadata {
		dst = protowire.AppendString(dst, k)
		dst = protowire.AppendString(dst, v)
	}
	return dst, nil
}

// decodeOutcome decodes what appendOutcome wrote, its codec numbered in t.
// The payload aliases b.
func decodeOutcome(t *codecTable, b []byte) (*Outcome, error) {
	bad := errors.New("dedupe: corrupt outcome")
	codec, n := t.consume(b)
	if n < 0 || len(b) == n {
		return nil, bad
	}
	o := &Outcome{Codec: codec}
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
