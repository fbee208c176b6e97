package dedupe

import (
	"context"
	"fmt"
	"sync"
	"time"
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

// entryOverhead is the estimated memory of an entry besides its strings
// and outcome: the entry, its map slot and its Outcome.
const entryOverhead = 256

// MemoryConfig bounds a Memory window. Zero fields take the defaults.
type MemoryConfig struct {
	// MaxEntries is the most keys held; beyond it the oldest finished key
	// is forgotten. Zero means DefaultMaxEntries.
	MaxEntries int
	// MaxAge is how long a key is remembered, from its first send. Zero
	// means DefaultMaxAge.
	MaxAge time.Duration
	// MaxBytes bounds the estimated bytes of the keys and outcomes held
	// (Outcome.Size, the strings of the Key, and a fixed overhead per
	// entry); beyond it the oldest finished keys are forgotten. Zero means
	// DefaultMaxBytes.
	MaxBytes int64

	// now is the clock, for tests.
	now func() time.Time
}

// Memory is a Store that keeps the window in the server's memory: the
// default of a transport.Server, right for a single node. Keys are
// forgotten oldest first when a bound (MemoryConfig) is reached, and when
// they age out; a key whose first run is still in progress is never
// forgotten, so the calls running at once (bounded by the transport's
// limits) may take the window past its bounds for their duration.
type Memory struct {
	cfg MemoryConfig

	mu      sync.Mutex
	entries map[Key]*entry
	// oldest and newest are the ends of the list of entries in the
	// order they were claimed.
	oldest, newest *entry
	bytes          int64
}

var _ Store = (*Memory)(nil)

type entry struct {
	key      Key
	fp       Fingerprint
	expires  time.Time
	outcome  *Outcome      // nil while the first run is in progress
	done     chan struct{} // closed when the run finished or was released
	size     int64
	older    *entry
	newer    *entry
	released bool
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
	return &Memory{cfg: cfg, entries: make(map[Key]*entry)}
}

// Len returns the number of keys held, running or finished.
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.entries)
}

// Bytes returns the estimated bytes held (see MemoryConfig.MaxBytes).
func (m *Memory) Bytes() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.bytes
}

// Begin implements Store.
func (m *Memory) Begin(ctx context.Context, k Key, fp Fingerprint) (*Outcome, error) {
	for {
		m.mu.Lock()
		now := m.cfg.now()
		e := m.entries[k]
		if e != nil && e.outcome != nil && !now.Before(e.expires) {
			m.removeLocked(e)
			e = nil
		}
		if e == nil {
			e = &entry{key: k, fp: fp, expires: now.Add(m.cfg.MaxAge), done: make(chan struct{})}
			e.size = int64(entryOverhead + len(k.Principal) + len(k.Method) + len(k.ID))
			m.entries[k] = e
			m.pushLocked(e)
			m.evictLocked(now)
			m.mu.Unlock()
			return nil, nil
		}
		if e.fp != fp {
			m.mu.Unlock()
			return nil, fmt.Errorf("%w: key %q of %s", ErrConflict, k.ID, k.Method)
		}
		if e.outcome != nil {
			o := e.outcome
			m.mu.Unlock()
			return o, nil
		}
		done := e.done
		m.mu.Unlock()
		select {
		case <-done:
			// Finished (the outcome is there) or released (the key is
			// free): look again.
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Finish implements Store.
func (m *Memory) Finish(_ context.Context, k Key, o *Outcome) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.entries[k]
	if e == nil || e.outcome != nil || e.released {
		return nil // not claimed: nothing to finish
	}
	if o == nil {
		e.released = true
		m.removeLocked(e)
	} else {
		e.outcome = o
		m.bytes += int64(o.Size())
		e.size += int64(o.Size())
		m.evictLocked(m.cfg.now())
	}
	close(e.done)
	return nil
}

// pushLocked appends e as the newest entry.
func (m *Memory) pushLocked(e *entry) {
	e.older = m.newest
	if m.newest != nil {
		m.newest.newer = e
	} else {
		m.oldest = e
	}
	m.newest = e
	m.bytes += e.size
}

// removeLocked forgets e.
func (m *Memory) removeLocked(e *entry) {
	if m.entries[e.key] == e {
		delete(m.entries, e.key)
	}
	if e.older != nil {
		e.older.newer = e.newer
	} else if m.oldest == e {
		m.oldest = e.newer
	}
	if e.newer != nil {
		e.newer.older = e.older
	} else if m.newest == e {
		m.newest = e.older
	}
	e.older, e.newer = nil, nil
	m.bytes -= e.size
}

// evictLocked forgets the oldest finished entries while one has aged out
// or the window is over a bound. Entries still running are skipped: they
// are bounded by the calls in flight.
func (m *Memory) evictLocked(now time.Time) {
	for e := m.oldest; e != nil; {
		over := len(m.entries) > m.cfg.MaxEntries || m.bytes > m.cfg.MaxBytes
		if !over && now.Before(e.expires) {
			return
		}
		next := e.newer
		if e.outcome != nil {
			m.removeLocked(e)
		}
		e = next
	}
}
