package hub

import (
	"context"
	"time"

	hubv1 "github.com/protows/protows/gen/go/protows/hub/v1"
)

// receive handles a message from another node. The broker calls it one
// message at a time. Handling has three steps: the origin's sequence
// numbers are tracked and its presence updated (under h.mu, in track),
// what tracking found is acted on (note), and the message's payload is
// delivered, or its request answered (route).
func (h *Hub[T]) receive(data []byte) {
	// Counted when handled: the heartbeat compares the count with the
	// broker's backlog (liveness.go).
	defer h.handled.Add(1)
	w, err := unmarshalWire(data)
	if err != nil {
		h.log.Warn("protows hub: dropped a broker message", "err", err)
		h.cfg.Metrics.Dropped("malformed")
		return
	}
	if w.GetOrigin() == h.node {
		if w.GetIncarnation() != h.incarnation {
			h.log.Error("protows hub: another node uses this node's name", "node", h.node)
		}
		return // our own message, echoed by the broker
	}
	t, ok := h.track(w)
	if !ok {
		return
	}
	h.note(w.GetOrigin(), t)
	h.emit(t.events)
	h.route(w)
}

// tracking is what a message told of its origin.
type tracking struct {
	// isNew: the first message of the origin, or of a new incarnation
	// of it.
	isNew bool
	// lost: messages of the origin before this one were lost, missed of
	// them when the origin was known.
	lost   bool
	missed uint64
	// resync: the origin's state must be asked for, to repair the loss.
	resync bool
	// events are the presence changes.
	events []PresenceEvent
}

// track checks w's sequence number and, for a message of presence,
// applies it with the handler of its kind. It returns false when w must be
// dropped: a duplicate, or the hub closed.
func (h *Hub[T]) track(w *hubv1.Message) (tracking, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return tracking{}, false
	}
	p, t, ok := h.sequence(w)
	if !ok {
		return t, false
	}
	switch w.GetKind() {
	case hubv1.Kind_KIND_JOIN:
		t.events = p.join(w, t.events)
	case hubv1.Kind_KIND_LEAVE:
		t.events = p.leave(w, t.events)
	case hubv1.Kind_KIND_STATE:
		t.events = p.state(w, t.lost, t.events)
	case hubv1.Kind_KIND_BYE:
		t.events = appendLeaves(t.events, p.members)
		delete(h.peers, w.GetOrigin())
	}
	return t, true
}

// sequence tracks the message numbers of w's origin. It returns the
// origin's peer, made anew for a node not heard from before or restarted,
// and false for a duplicate. The caller holds h.mu.
func (h *Hub[T]) sequence(w *hubv1.Message) (*peer, tracking, bool) {
	var t tracking
	// The first part of a state replaces all the origin knew of its
	// members, and a goodbye forgets them: after either there is nothing
	// to ask for.
	complete := w.GetKind() == hubv1.Kind_KIND_STATE && w.GetPart() == 0
	p := h.peers[w.GetOrigin()]
	switch {
	case p == nil || p.incarnation != w.GetIncarnation():
		if p != nil { // the node restarted: its old members are gone
			t.events = appendLeaves(t.events, p.members)
		}
		p = &peer{incarnation: w.GetIncarnation(), members: make(map[string]Member)}
		h.peers[w.GetOrigin()] = p
		t.isNew = true
		// Messages before this one were missed, and whatever was
		// missed is fetched.
		t.lost = w.GetSeq() > 1
		t.resync = !complete && w.GetKind() != hubv1.Kind_KIND_BYE
	case w.GetSeq() <= p.lastSeq:
		return nil, t, false
	case w.GetSeq() > p.lastSeq+1:
		t.missed = w.GetSeq() - p.lastSeq - 1
		t.lost, t.resync = true, !complete
	}
	p.lastSeq = w.GetSeq()
	p.lastSeen = time.Now()
	return p, t, true
}

// join adds the members of a join message, with an event for each that is
// new.
func (p *peer) join(w *hubv1.Message, evs []PresenceEvent) []PresenceEvent {
	for _, wm := range w.GetMembers() {
		m := memberOf(w.GetOrigin(), wm)
		if _, ok := p.members[m.ID()]; !ok {
			p.members[m.ID()] = m
			evs = append(evs, PresenceEvent{Member: m, Joined: true})
		}
	}
	return evs
}

// leave removes the members of a leave message, with an event for each
// that was known.
func (p *peer) leave(w *hubv1.Message, evs []PresenceEvent) []PresenceEvent {
	for _, wm := range w.GetMembers() {
		m := memberOf(w.GetOrigin(), wm)
		if old, ok := p.members[m.ID()]; ok {
			delete(p.members, m.ID())
			evs = append(evs, PresenceEvent{Member: old})
		}
	}
	return evs
}

// state collects the parts of a state message; the last one replaces the
// members, with events for the differences. A part that follows a loss
// (lost) drops the state it continues, which is incomplete: the loss asked
// for a new one.
func (p *peer) state(w *hubv1.Message, lost bool, evs []PresenceEvent) []PresenceEvent {
	if w.GetPart() == 0 {
		p.pending = make(map[string]Member, len(w.GetMembers()))
	} else if lost {
		p.pending = nil
	}
	if p.pending == nil {
		return evs
	}
	for _, wm := range w.GetMembers() {
		m := memberOf(w.GetOrigin(), wm)
		p.pending[m.ID()] = m
	}
	if w.GetMore() {
		return evs
	}
	next := p.pending
	p.pending = nil
	for id, m := range next {
		if _, ok := p.members[id]; !ok {
			evs = append(evs, PresenceEvent{Member: m, Joined: true})
		}
	}
	for id, m := range p.members {
		if _, ok := next[id]; !ok {
			evs = append(evs, PresenceEvent{Member: m})
		}
	}
	p.members = next
	return evs
}

// note acts on what tracking found of origin: logs, a gap in every local
// room's sequence for lost messages, and a request for the origin's state.
func (h *Hub[T]) note(origin string, t tracking) {
	if t.isNew {
		h.log.Info("protows hub: hearing from a node", "node", origin)
	}
	if t.lost {
		h.cfg.Metrics.Gap(t.missed)
		if !t.isNew {
			h.log.Warn("protows hub: missed messages from a node", "node", origin, "missed", t.missed)
		}
		h.hole()
	}
	if t.resync {
		_ = h.publish(context.Background(), &hubv1.Message{Kind: hubv1.Kind_KIND_SYNC, Target: origin})
	}
}

// route delivers the payload of w, or answers its request, one handler per
// kind. The kinds of presence were handled by track.
func (h *Hub[T]) route(w *hubv1.Message) {
	switch w.GetKind() {
	case hubv1.Kind_KIND_BROADCAST:
		h.receiveBroadcast(w)
	case hubv1.Kind_KIND_ALL:
		h.cfg.Metrics.Broadcast(kindAll, originRemote)
		h.toAllRooms(h.remotePayload(w.GetPayload()))
	case hubv1.Kind_KIND_DIRECT:
		h.receiveDirect(w)
	case hubv1.Kind_KIND_SYNC:
		if w.GetTarget() == "" || w.GetTarget() == h.node {
			h.publishState()
		}
	}
}

// receiveBroadcast delivers the payload to the local members of the room.
// In a room with history that this node keeps alone, the broadcast goes
// into its history first, which delivers it.
func (h *Hub[T]) receiveBroadcast(w *hubv1.Message) {
	h.cfg.Metrics.Broadcast(kindRoom, originRemote)
	if h.hasHistory(w.GetRoom()) && !h.cfg.History.Shared() {
		e := &Entry{Room: w.GetRoom(), Payload: w.GetPayload()}
		if err := h.cfg.History.Append(context.Background(), e); err != nil {
			h.log.Warn("protows hub: keep a broadcast of another node", "room", w.GetRoom(), "err", err)
		}
		return
	}
	h.mu.Lock()
	r := h.rooms[w.GetRoom()]
	h.mu.Unlock()
	if r != nil {
		h.toRoom(r, h.remotePayload(w.GetPayload()))
	}
}

// receiveDirect delivers the payload to its target, when it is on this
// node.
func (h *Hub[T]) receiveDirect(w *hubv1.Message) {
	node, connID, callID, ok := parseTarget(w.GetTarget())
	if ok && node == h.node {
		h.cfg.Metrics.Broadcast(kindDirect, originRemote)
		h.toTarget(connID, callID, h.remotePayload(w.GetPayload()))
	}
}

func appendLeaves(evs []PresenceEvent, ms map[string]Member) []PresenceEvent {
	for _, m := range ms {
		evs = append(evs, PresenceEvent{Member: m})
	}
	return evs
}

// stateChunk is the most members one state message carries, so that a
// node's state stays far below NATS's default 1 MiB message limit.
const stateChunk = 1000

// publishState publishes the node's complete membership, which replaces
// what the other nodes knew of it. The snapshot is taken under pubMu, so
// that no join or leave is published between the snapshot and the state,
// which would undo it at the receivers.
func (h *Hub[T]) publishState() {
	if h.cfg.Broker == nil {
		return
	}
	h.pubMu.Lock()
	defer h.pubMu.Unlock()
	h.mu.Lock()
	var ms []Member
	for _, set := range h.conns {
		for _, m := range set {
			ms = append(ms, m.info)
		}
	}
	h.mu.Unlock()
	for part := uint64(0); ; part++ {
		n := min(len(ms), stateChunk)
		w := &hubv1.Message{Kind: hubv1.Kind_KIND_STATE, Members: wireMembers(ms[:n]), More: n < len(ms), Part: part}
		if err := h.publishLocked(context.Background(), w); err != nil {
			h.log.Warn("protows hub: publish presence state", "err", err)
			return
		}
		ms = ms[n:]
		if len(ms) == 0 {
			return
		}
	}
}
