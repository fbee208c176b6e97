package hub

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/protows/protows/codec"
	hubv1 "github.com/protows/protows/gen/go/protows/hub/v1"
	"github.com/protows/protows/transport"
	"google.golang.org/protobuf/proto"
)

// payload is one message on its way to members, with its encodings: each
// codec's is made once, by the first member that needs it, and shared by
// all the others. It is used by one goroutine at a time.
type payload[T proto.Message] struct {
	h *Hub[T]
	// mu guards msg, hasMsg and enc while the delivery workers of a large
	// room (toShards) share the payload; a worker takes it only when its
	// own cache (shard) misses.
	mu     sync.Mutex
	msg    T
	hasMsg bool
	enc    map[string][]byte // by codec name
}

func (h *Hub[T]) newPayload(msg T) *payload[T] {
	return &payload[T]{h: h, msg: msg, hasMsg: true}
}

// remotePayload is a message that arrived from another node in the
// Protobuf encoding, which Protobuf members get as it is.
func (h *Hub[T]) remotePayload(pb []byte) *payload[T] {
	return &payload[T]{h: h, enc: map[string][]byte{codec.ProtoName: pb}}
}

// forCodec returns the payload in c's encoding.
func (p *payload[T]) forCodec(c codec.Codec) ([]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.forCodecLocked(c)
}

func (p *payload[T]) forCodecLocked(c codec.Codec) ([]byte, error) {
	if b, ok := p.enc[c.Name()]; ok {
		return b, nil
	}
	msg, err := p.messageLocked()
	if err != nil {
		return nil, err
	}
	b, err := c.AppendPayload(nil, msg)
	if err != nil {
		return nil, err
	}
	p.h.marshals.Add(1)
	if p.enc == nil {
		p.enc = make(map[string][]byte, 2)
	}
	p.enc[c.Name()] = b
	return b, nil
}

// message returns the message, decoding it when it came from a broker.
func (p *payload[T]) message() (T, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.messageLocked()
}

func (p *payload[T]) messageLocked() (T, error) {
	if p.hasMsg {
		return p.msg, nil
	}
	m := p.h.newT()
	if err := codec.Proto().UnmarshalPayload(p.enc[codec.ProtoName], m); err != nil {
		return m, err
	}
	p.msg, p.hasMsg = m, true
	return m, nil
}

// toRoom delivers pl to every member of r with the room's next sequence
// number. In a room with history, whose numbers are the offsets of its
// history (toRoomEntry), pl is not part of it and goes without one.
func (h *Hub[T]) toRoom(r *room[T], pl *payload[T]) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var seq uint64
	if !r.hist {
		if r.seq < MaxSeq {
			r.seq++
		}
		seq = r.seq
	}
	h.cfg.Metrics.Delivered(h.toShards(r.members, pl, seq, entryDelivery{}))
}

// shardMembers is the fewest members a delivery worker of a large room
// takes: below twice this, a room's members are delivered to by the
// broadcasting goroutine alone, since a smaller share is not worth the
// hand-off to a worker and the wait for it.
const shardMembers = 256

// shard is what one delivery worker keeps for itself while it delivers a
// payload to its share of a room's members: the payload's encodings it
// already looked up, and the arena of its members' envelope heads and
// tails (codec.AppendStreamMessage), kept alive until the last of them
// was written. Members whose envelopes are alike share one (shardCodec's
// last), so the arena holds a few, not one per member: a broadcast to a
// large room allocates nothing in proportion to it (48 bytes a member
// before, whose collection was part of every broadcast's cost).
type shard[T proto.Message] struct {
	pl     *payload[T]
	arena  []byte
	codecs [2]shardCodec // the first two codecs met
	msg    T
	hasMsg bool
}

// shardCodec is what a shard keeps of one codec: the payload's encoding,
// and the envelope it last made in it, for call lastID and sequence number
// lastSeq. The next member with the same call id (most members' room
// streams are their connection's first call, so have the same id) is
// queued the same parts, which the writers only read.
type shardCodec struct {
	name    string
	enc     []byte
	last    codec.Parts
	lastID  uint32
	lastSeq uint64
	hasLast bool
}

// message returns the payload's message, from the worker's cache.
func (sh *shard[T]) message() (T, error) {
	if sh.hasMsg {
		return sh.msg, nil
	}
	m, err := sh.pl.message()
	if err == nil {
		sh.msg, sh.hasMsg = m, true
	}
	return m, err
}

// forCodec returns the payload in c's encoding, whose name the caller
// knows (a member's codecName), and the shard's cache of c, nil for a
// third codec, which goes to the payload each time.
func (sh *shard[T]) forCodec(c codec.Codec, name string) ([]byte, *shardCodec, error) {
	for i := range sh.codecs {
		if sc := &sh.codecs[i]; sc.name == name {
			return sc.enc, sc, nil
		}
	}
	b, err := sh.pl.forCodec(c)
	if err != nil {
		return nil, nil, err
	}
	for i := range sh.codecs {
		if sc := &sh.codecs[i]; sc.name == "" {
			sc.name, sc.enc = name, b
			return b, sc, nil
		}
	}
	return b, nil, nil
}

// entryDelivery says which history entry a delivery is (toRoomEntry).
type entryDelivery struct {
	entry  bool // false: a room message without history, numbered seq
	offset uint64
	marker bool
}

// maxShards bounds the delivery workers of one room's delivery.
const maxShards = 8

// shardWorkers are a hub's delivery workers, GOMAXPROCS-1 goroutines that
// take a share of a large room's delivery (toShards), started with the
// first such delivery and ended by Close.
type shardWorkers[T proto.Message] struct {
	// mu guards starting the workers. It is taken under a room's lock,
	// so it must be a leaf: never Hub.mu, which Leave and remove hold
	// while they take a room's lock.
	mu      sync.Mutex
	started atomic.Bool
	tasks   chan shardTask[T]
	jobs    sync.Pool // of *shardJob, so that a delivery allocates nothing
}

// shardTask is a worker's share of a delivery.
type shardTask[T proto.Message] struct {
	ms  []*member[T]
	pl  *payload[T]
	seq uint64
	e   entryDelivery
	job *shardJob
	i   int
}

// shardJob is what the workers of one delivery report to it.
type shardJob struct {
	wg     sync.WaitGroup
	counts [maxShards]int
}

// startShards starts the hub's delivery workers unless they run, and
// reports whether they do (not once Close began).
func (h *Hub[T]) startShards() bool {
	s := &h.shards
	if s.started.Load() {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started.Load() {
		return true
	}
	// Close sets closing, then takes s.mu before it waits for the hub's
	// goroutines: workers are either added to h.wg before that, or not
	// started.
	if h.closing.Load() {
		return false
	}
	s.tasks = make(chan shardTask[T])
	for range runtime.GOMAXPROCS(0) - 1 {
		h.wg.Add(1)
		go h.shardWorker()
	}
	s.started.Store(true)
	return true
}

func (h *Hub[T]) shardWorker() {
	defer h.wg.Done()
	for {
		select {
		case t := <-h.shards.tasks:
			t.job.counts[t.i] = h.deliverAll(t.ms, t.pl, t.seq, t.e)
			t.job.wg.Done()
		case <-h.quit:
			return
		}
	}
}

// toShards delivers pl to the members ms (with seq, or as the history
// entry e), split between up to GOMAXPROCS delivery workers in a large
// room, one of them the calling goroutine, each over a contiguous share
// in order; a share no worker is free for (they serve every room of the
// hub) the calling goroutine delivers too. It returns how many members it
// queued pl to, once every share is done: the caller holds the room's
// lock throughout, so a room's messages still reach each member in the
// order they took the lock, and a member removed under the lock is never
// delivered to after.
func (h *Hub[T]) toShards(ms []*member[T], pl *payload[T], seq uint64, e entryDelivery) int {
	workers := min(runtime.GOMAXPROCS(0), len(ms)/shardMembers, maxShards)
	if workers <= 1 || !h.startShards() {
		return h.deliverAll(ms, pl, seq, e)
	}
	job, _ := h.shards.jobs.Get().(*shardJob)
	if job == nil {
		job = new(shardJob)
	}
	per := (len(ms) + workers - 1) / workers
	var mine [maxShards][]*member[T]
	for i := 1; i < workers; i++ {
		part := ms[min(i*per, len(ms)):min((i+1)*per, len(ms))]
		job.counts[i] = 0
		job.wg.Add(1)
		select {
		case h.shards.tasks <- shardTask[T]{ms: part, pl: pl, seq: seq, e: e, job: job, i: i}:
		default:
			job.wg.Done()
			mine[i] = part
		}
	}
	n := h.deliverAll(ms[:per], pl, seq, e)
	for i := 1; i < workers; i++ {
		if mine[i] != nil {
			n += h.deliverAll(mine[i], pl, seq, e)
		}
	}
	job.wg.Wait()
	for i := 1; i < workers; i++ {
		if mine[i] == nil {
			n += job.counts[i]
		}
	}
	h.shards.jobs.Put(job)
	return n
}

// deliverAll is one delivery worker's share of toShards.
func (h *Hub[T]) deliverAll(ms []*member[T], pl *payload[T], seq uint64, e entryDelivery) int {
	sh := shard[T]{pl: pl}
	n := 0
	for _, m := range ms {
		var ok bool
		if e.entry {
			ok = h.deliverEntryTo(m, &sh, e)
		} else {
			ok = h.deliver(m, &sh, seq)
		}
		if ok {
			n++
		}
	}
	return n
}

func (h *Hub[T]) toAllRooms(pl *payload[T]) {
	h.mu.Lock()
	rooms := make([]*room[T], 0, len(h.rooms))
	for _, r := range h.rooms {
		rooms = append(rooms, r)
	}
	h.mu.Unlock()
	for _, r := range rooms {
		h.toRoom(r, pl)
	}
}

// toTarget delivers pl, without a sequence number, to the memberships of a
// local connection (all of them when callID is 0). It returns how many it
// found.
func (h *Hub[T]) toTarget(connID string, callID uint32, pl *payload[T]) int {
	h.mu.Lock()
	var ms []*member[T]
	for _, m := range h.conns[connID] {
		if callID == 0 || m.info.CallID == callID {
			ms = append(ms, m)
		}
	}
	h.mu.Unlock()
	n := 0
	sh := &shard[T]{pl: pl}
	for _, m := range ms {
		// Under the room's lock, so that it does not overtake or split a
		// room delivery, and is not sent after the member left.
		m.room.mu.Lock()
		if h.deliver(m, sh, 0) {
			n++
		}
		m.room.mu.Unlock()
	}
	h.cfg.Metrics.Delivered(n)
	return len(ms)
}

// deliver queues sh's payload to m and reports whether it did; a member
// that is leaving is skipped, a failure counted as a drop. The caller holds
// m.room.mu (for a sharded delivery, the goroutine that started the
// workers does).
//
// A member with an enqueuer is not asked whether its context ended: a call
// that ended refuses the envelope itself (ErrCallEnded, atomically with
// its end), which ends the membership here, so that the next broadcasts
// skip it at m.ended; one whose context was cancelled but whose call goes
// on gets the message ahead of its STREAM_END, as it would have a moment
// earlier. That spares the broadcast a walk up each member's context chain.
func (h *Hub[T]) deliver(m *member[T], sh *shard[T], seq uint64) bool {
	if m.ended.Load() {
		return false
	}
	if m.ep == nil {
		if m.ctx.Err() != nil {
			return false // the call ended; Join is about to remove m
		}
		msg, err := sh.message()
		if err != nil {
			h.log.Error("protows hub: decode broadcast", "err", err)
			h.cfg.Metrics.Dropped("encode")
			return false
		}
		if err := m.stream.Send(msg); err != nil {
			if errors.Is(err, transport.ErrMessageTooLarge) {
				h.log.Warn("protows hub: broadcast larger than the message size limit", "room", m.info.Room, "member", m.info.ID())
				h.cfg.Metrics.Dropped("too_large")
				return false // as below: a missed message, the membership stays
			}
			h.cfg.Metrics.Dropped("send")
			m.end(err)
			return false
		}
		return true
	}
	elem, ok := sh.envelope(h, m, seq)
	if !ok {
		return false
	}
	if err := m.ep.EnqueueParts(elem); err != nil {
		if errors.Is(err, transport.ErrMessageTooLarge) {
			// Larger than the connection sends (its message size limit):
			// this member misses the message, which its next message
			// shows (seq skips), and stays.
			h.log.Warn("protows hub: broadcast larger than the message size limit", "room", m.info.Room, "member", m.info.ID(), "bytes", elem.Len())
			h.cfg.Metrics.Dropped("too_large")
			return false
		}
		// The transport closes the connection (4008 when its queue was
		// full) or ends the member's stream (resource_exhausted when it
		// had no credit); the other members are not held up.
		if errors.Is(err, transport.ErrSlowConsumer) || errors.Is(err, transport.ErrNoCredit) {
			h.cfg.Metrics.Dropped("slow_consumer")
		} else {
			h.cfg.Metrics.Dropped("closed")
		}
		m.end(err)
		return false
	}
	return true
}

// envelope returns m's STREAM_MESSAGE of sh's payload, numbered seq: the
// one made last in m's codec when it was for the same call id, a new one
// otherwise. It logs and counts a message that does not encode, and
// reports false.
func (sh *shard[T]) envelope(h *Hub[T], m *member[T], seq uint64) (codec.Parts, bool) {
	b, sc, err := sh.forCodec(m.codec, m.codecName)
	if err == nil {
		if sc != nil && sc.hasLast && sc.lastID == m.info.CallID && sc.lastSeq == seq {
			return sc.last, true
		}
		if sh.arena == nil {
			// Room for the envelope heads and tails of a few members (a
			// JSON head and tail takes about 50 bytes, a Protobuf one
			// about 12): most members share theirs.
			sh.arena = make([]byte, 0, 256)
		}
		var elem codec.Parts
		elem, sh.arena, err = codec.AppendStreamMessage(m.codec, sh.arena, m.info.CallID, b, seq)
		if err == nil {
			if sc != nil {
				sc.last, sc.lastID, sc.lastSeq, sc.hasLast = elem, m.info.CallID, seq, true
			}
			return elem, true
		}
	}
	h.log.Error("protows hub: encode broadcast", "codec", m.codecName, "err", err)
	h.cfg.Metrics.Dropped("encode")
	return codec.Parts{}, false
}

// hole makes every local room skip a sequence number, so that members see
// a gap where messages from another node may have been lost.
func (h *Hub[T]) hole() {
	h.mu.Lock()
	rooms := make([]*room[T], 0, len(h.rooms))
	for _, r := range h.rooms {
		rooms = append(rooms, r)
	}
	h.mu.Unlock()
	for _, r := range rooms {
		r.mu.Lock()
		if r.seq < MaxSeq {
			r.seq++
		}
		r.mu.Unlock()
	}
	// Rooms with history of a store this node alone keeps took the lost
	// messages into their history, with offsets of their own: skip one.
	if sk, ok := h.cfg.History.(skipper); ok {
		sk.Skip()
	}
}

// emit delivers presence events to the local members of their rooms.
func (h *Hub[T]) emit(evs []PresenceEvent) {
	if h.cfg.Presence == nil {
		return
	}
	for _, ev := range evs {
		msg, ok := h.cfg.Presence(ev)
		if !ok {
			continue
		}
		h.mu.Lock()
		r := h.rooms[ev.Member.Room]
		h.mu.Unlock()
		if r != nil {
			h.toRoom(r, h.newPayload(msg))
		}
	}
}

// publishPayload publishes w with pl's Protobuf encoding.
func (h *Hub[T]) publishPayload(ctx context.Context, w *hubv1.Message, pl *payload[T]) error {
	if h.cfg.Broker == nil {
		return nil
	}
	b, err := pl.forCodec(codec.Proto())
	if err != nil {
		return err
	}
	w.Payload = b
	return h.publish(ctx, w)
}

// publish numbers w and hands it to the broker.
func (h *Hub[T]) publish(ctx context.Context, w *hubv1.Message) error {
	if h.cfg.Broker == nil {
		return nil
	}
	h.pubMu.Lock()
	defer h.pubMu.Unlock()
	return h.publishLocked(ctx, w)
}

func (h *Hub[T]) publishLocked(ctx context.Context, w *hubv1.Message) error {
	if h.byeSent {
		// Nothing follows a goodbye: the other nodes forgot this one.
		return ErrClosed
	}
	h.pubSeq++
	w.Origin, w.Incarnation, w.Seq = h.node, h.incarnation, h.pubSeq
	h.byeSent = w.GetKind() == hubv1.Kind_KIND_BYE
	// The broker does not keep the message, so one buffer serves them all
	// but the largest (a state message can be big).
	h.pubBuf = appendWire(h.pubBuf[:0], w)
	start := time.Now()
	err := h.cfg.Broker.Publish(ctx, h.pubBuf)
	h.cfg.Metrics.Published(kindNames[w.GetKind()], time.Since(start), err)
	if cap(h.pubBuf) > maxPubBuf {
		h.pubBuf = nil
	}
	return err
}

// maxPubBuf is the largest encoding buffer a hub keeps between messages.
const maxPubBuf = 64 << 10
