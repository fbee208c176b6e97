package hub

import (
	"context"
	"errors"
	"slices"
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
	h      *Hub[T]
	msg    T
	hasMsg bool
	enc    map[string][]byte // by codec name
	// arena holds the members' envelope heads and tails (codec.AppendStreamMessage):
	// one allocation per broadcast, kept alive until the last member's
	// connection wrote its envelope.
	arena []byte
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
	if b, ok := p.enc[c.Name()]; ok {
		return b, nil
	}
	msg, err := p.message()
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
	// Room for the envelope heads and tails of most members, short ids and
	// sequence numbers; codec.AppendStreamMessage grows it when that is not enough.
	pl.arena = slices.Grow(pl.arena, 24*len(r.members))
	n := 0
	for _, m := range r.members {
		if h.deliver(m, pl, seq) {
			n++
		}
	}
	h.cfg.Metrics.Delivered(n)
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
	for m := range h.conns[connID] {
		if callID == 0 || m.info.CallID == callID {
			ms = append(ms, m)
		}
	}
	h.mu.Unlock()
	n := 0
	for _, m := range ms {
		// Under the room's lock, so that it does not overtake or split a
		// room delivery, and is not sent after the member left.
		m.room.mu.Lock()
		if h.deliver(m, pl, 0) {
			n++
		}
		m.room.mu.Unlock()
	}
	h.cfg.Metrics.Delivered(n)
	return len(ms)
}

// deliver queues pl to m and reports whether it did; a member that is
// leaving is skipped, a failure counted as a drop. The caller holds
// m.room.mu.
func (h *Hub[T]) deliver(m *member[T], pl *payload[T], seq uint64) bool {
	select {
	case <-m.done:
		return false
	default:
	}
	if m.ctx.Err() != nil {
		return false // the call ended; Join is about to remove m
	}
	if m.ep == nil {
		msg, err := pl.message()
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
	c := m.ep.Codec()
	b, err := pl.forCodec(c)
	if err != nil {
		h.log.Error("protows hub: encode broadcast", "codec", c.Name(), "err", err)
		h.cfg.Metrics.Dropped("encode")
		return false
	}
	elem, arena, err := codec.AppendStreamMessage(c, pl.arena, m.info.CallID, b, seq)
	if err != nil {
		h.log.Error("protows hub: encode broadcast", "codec", c.Name(), "err", err)
		h.cfg.Metrics.Dropped("encode")
		return false
	}
	pl.arena = arena
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
