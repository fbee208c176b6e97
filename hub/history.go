package hub

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Defaults of HistoryLimits.
const (
	// DefaultHistoryMessages is how many messages a room's history keeps.
	DefaultHistoryMessages = 1000
	// DefaultHistoryAge is how long a room's history keeps a message.
	DefaultHistoryAge = 10 * time.Minute
)

// HistoryLimits bound each room's history. The zero value means the
// defaults.
type HistoryLimits struct {
	// Messages is the most messages kept per room: older ones leave the
	// history as new ones arrive. Zero means DefaultHistoryMessages.
	Messages int
	// Age is how long a message is kept. Zero means DefaultHistoryAge.
	Age time.Duration
}

// WithDefaults returns l with its zero fields set to the defaults.
func (l HistoryLimits) WithDefaults() HistoryLimits {
	if l.Messages <= 0 {
		l.Messages = DefaultHistoryMessages
	}
	if l.Age <= 0 {
		l.Age = DefaultHistoryAge
	}
	return l
}

// Entry is one broadcast in a room's history.
type Entry struct {
	// Room is the room.
	Room string
	// Offset numbers the entry in its room: each entry of a room is one
	// more than the one before, within the store's epoch
	// (docs/PROTOCOL.md, section 14).
	Offset uint64
	// Time is when the store took it.
	Time time.Time
	// Payload is the message in its Protobuf encoding. It must not be
	// modified.
	Payload []byte
	// Marker is true for an entry that holds a room's place in the
	// offsets and carries no message: a store that shares its history
	// between nodes writes one when a member's position is taken in a
	// room that holds no entry, so that the room's next message is the
	// position's offset plus one. Members never receive markers.
	Marker bool

	// local is the broadcast the entry was made from, on the node that
	// made it: the hub's in-memory store hands it back to deliver, so
	// that its encodings are made once for the store and the members.
	local any
}

// HistoryPage is a part of a room's history.
type HistoryPage struct {
	// Epoch names the store's history: offsets of one epoch name the same
	// entries. It changes when the history is lost (a node that kept it
	// in memory restarted).
	Epoch string
	// First is the offset of the room's oldest message in the history
	// (markers are not messages);
	// Latest+1 when the history holds none.
	First uint64
	// Latest is the offset of the room's latest entry, or the offset its
	// next entry follows.
	Latest uint64
	// Entries are the entries asked for, in offset order.
	Entries []Entry
}

// HistoryStore keeps the recent broadcasts of the rooms that have history
// (Config.History), numbers them and hands them to the hub in order. The
// hub delivers what the store hands it, so the store's order is the one
// every member sees. NewMemoryHistory keeps history in the process;
// natsbroker.NewHistory keeps it in NATS JetStream, shared by every node.
//
// A HistoryStore serves one hub: New calls Open once, and Close calls
// Close.
type HistoryStore interface {
	// Open starts the store. From then on it calls deliver with every
	// entry appended to a room, one call at a time per room, in offset
	// order: for a shared store the entries of every node, else those of
	// this node's Append. deliver must not be called after Close
	// returned.
	Open(ctx context.Context, node string, deliver func(*Entry)) error
	// Append adds a broadcast of e.Room with e.Payload to the history,
	// and sets e.Offset and e.Time. A store that is not shared calls
	// deliver with e before Append returns.
	Append(ctx context.Context, e *Entry) error
	// Read returns up to limit entries of room with offsets above after,
	// in order, with the room's epoch and bounds.
	Read(ctx context.Context, room string, after uint64, limit int) (HistoryPage, error)
	// Shared reports whether the store is shared by every node of the
	// hub's Broker, and delivers every node's entries on each. The
	// broadcasts of rooms with history then travel through the store
	// only; a hub with a store that is not shared sends them through its
	// Broker as well, and each node keeps its own history of them.
	Shared() bool
	// Close releases the store's resources.
	Close() error
}

// ErrHistoryUnavailable is returned (wrapped) by a store that cannot reach
// where it keeps history.
var ErrHistoryUnavailable = errors.New("hub: history unavailable")

// EpochWatcher is the optional interface of a HistoryStore whose history
// may be lost while the hub runs, as a shared store deleted and made anew
// (natsbroker.NewHistory). New calls OnEpochChange before Open.
//
// When the store's epoch changes, it calls f with the new epoch, once Read
// answers with it. The hub then ends the membership of every member of a
// room with history on this node: Join returns an unavailable error
// wrapping ErrEpochChanged, so that the clients re-open their streams
// (docs/PROTOCOL.md, section 8) and learn from the new STREAM_POSITION
// that the epoch changed; members that were catching up start again the
// same way.
type EpochWatcher interface {
	OnEpochChange(f func(epoch string))
}

// ErrEpochChanged ends the memberships of rooms with history when the
// history store's epoch changes under them (EpochWatcher): Join returns an
// unavailable error that wraps it.
var ErrEpochChanged = errors.New("hub: the history was lost (its epoch changed)")

// skipper is the optional interface of a store that is not shared: Skip
// makes every room's next offset skip one, because messages from another
// node were lost on their way, so that members see the gap.
type skipper interface {
	Skip()
}

// NewMemoryHistory returns a store that keeps history in the process's
// memory: nothing to install, but the history is this node's alone (each
// node of a Broker keeps its own, with its own epoch) and is lost when the
// process exits, which a new epoch tells the members that resume.
func NewMemoryHistory(limits HistoryLimits) HistoryStore {
	var rnd [6]byte
	_, _ = rand.Read(rnd[:]) // crypto/rand.Read never fails
	return &memoryHistory{
		limits:   limits.WithDefaults(),
		epoch:    "m-" + hex.EncodeToString(rnd[:]),
		now:      time.Now,
		rooms:    make(map[string]*memoryRoom),
		maxRooms: maxMemoryRooms,
	}
}

// maxMemoryRooms is how many rooms a memory store keeps before it forgets
// those whose history is empty.
const maxMemoryRooms = 100_000

type memoryHistory struct {
	limits  HistoryLimits
	epoch   string
	now     func() time.Time
	deliver func(*Entry)

	mu       sync.Mutex
	closed   bool
	rooms    map[string]*memoryRoom
	maxRooms int
	// count is every offset taken so far, in every room, skips included.
	// A room the store forgot and meets again starts its offsets above
	// it, so that a room's offsets never go back: a member's old position
	// is then too old, never mistaken for a new one.
	count uint64
	skips uint64
}

var (
	_ HistoryStore = (*memoryHistory)(nil)
	_ skipper      = (*memoryHistory)(nil)
)

type memoryRoom struct {
	mu      sync.Mutex
	dead    bool // forgotten: the next user looks the room up again
	offset  uint64
	skips   uint64 // the store's skips this room has taken
	entries []Entry
	head    int // entries[head:] are kept
}

func (s *memoryHistory) Open(_ context.Context, _ string, deliver func(*Entry)) error {
	if s.deliver != nil {
		return errors.New("hub: history store opened twice")
	}
	s.deliver = deliver
	return nil
}

func (s *memoryHistory) Shared() bool { return false }

func (s *memoryHistory) Close() error {
	s.mu.Lock()
	s.closed = true
	s.rooms = make(map[string]*memoryRoom)
	s.mu.Unlock()
	return nil
}

// room returns the room's record, locked, made when missing. appending
// counts an offset taken.
func (s *memoryHistory) room(name string, appending bool) (*memoryRoom, error) {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return nil, fmt.Errorf("%w: store closed", ErrHistoryUnavailable)
		}
		r := s.rooms[name]
		if r == nil {
			if len(s.rooms) >= s.maxRooms {
				s.forgetLocked()
			}
			r = &memoryRoom{offset: s.count, skips: s.skips}
			s.rooms[name] = r
		}
		if appending {
			s.count++
		}
		skips := s.skips
		s.mu.Unlock()
		r.mu.Lock()
		if r.dead {
			r.mu.Unlock()
			continue
		}
		if r.skips < skips {
			// Messages of another node were lost since this room's
			// last entry: its offsets skip one, so members see a gap.
			r.offset++
			r.skips = skips
		}
		return r, nil
	}
}

// forgetLocked drops the records of rooms whose history is empty, the
// store having more rooms than it keeps. s.mu must be held.
func (s *memoryHistory) forgetLocked() {
	now := s.now()
	for name, r := range s.rooms {
		r.mu.Lock()
		r.expire(now, s.limits)
		if r.head == len(r.entries) {
			r.dead = true
			delete(s.rooms, name)
		}
		r.mu.Unlock()
	}
}

// expire drops the entries past the limits. r.mu must be held.
func (r *memoryRoom) expire(now time.Time, l HistoryLimits) {
	for r.head < len(r.entries) &&
		(len(r.entries)-r.head > l.Messages || now.Sub(r.entries[r.head].Time) > l.Age) {
		r.entries[r.head] = Entry{}
		r.head++
	}
	// Compact once the dropped part outweighs the kept one.
	if r.head > 64 && r.head >= len(r.entries)/2 {
		n := copy(r.entries, r.entries[r.head:])
		clear(r.entries[n:])
		r.entries = r.entries[:n]
		r.head = 0
	}
}

func (s *memoryHistory) Append(_ context.Context, e *Entry) error {
	r, err := s.room(e.Room, true)
	if err != nil {
		return err
	}
	defer r.mu.Unlock()
	if r.offset < MaxSeq {
		r.offset++
	}
	e.Offset = r.offset
	e.Time = s.now()
	kept := *e
	kept.local = nil // kept entries are read by other goroutines
	r.entries = append(r.entries, kept)
	r.expire(e.Time, s.limits)
	// Under the room's lock: the room's entries reach deliver in offset
	// order, and a reader that sees an entry knows deliver had it.
	s.deliver(e)
	return nil
}

// Skip makes every room's next offset skip one.
func (s *memoryHistory) Skip() {
	s.mu.Lock()
	s.skips++
	s.count++
	s.mu.Unlock()
}

func (s *memoryHistory) Read(_ context.Context, room string, after uint64, limit int) (HistoryPage, error) {
	// A room read before its first message gets a record now, so that
	// the position a member takes in it is followed by the room's first
	// message.
	r, err := s.room(room, false)
	if err != nil {
		return HistoryPage{}, err
	}
	defer r.mu.Unlock()
	r.expire(s.now(), s.limits)
	kept := r.entries[r.head:]
	p := HistoryPage{Epoch: s.epoch, Latest: r.offset, First: r.offset + 1}
	if len(kept) > 0 {
		p.First = kept[0].Offset
	}
	// Entries are in offset order, not always consecutive (skips): find
	// the first above after.
	i := len(kept)
	for lo, hi := 0, len(kept); lo < hi; {
		mid := (lo + hi) / 2
		if kept[mid].Offset > after {
			i, hi = mid, mid
		} else {
			lo = mid + 1
		}
	}
	n := min(len(kept)-i, max(limit, 0))
	if n > 0 {
		p.Entries = append([]Entry(nil), kept[i:i+n]...)
	}
	return p, nil
}
