package hub

import (
	"context"
	"time"

	hubv1 "github.com/protows/protows/gen/go/protows/hub/v1"
)

// receive handles a message from another node. The broker calls it one
// message at a time.
func (h *Hub[T]) receive(data []byte) {
	w, err := unmarshalWire(data)
	if err != nil {
		h.log.Warn("protows hub: dropped a broker message", "err", err)
		return
	}
	if w.GetOrigin() == h.node {
		if w.GetIncarnation() != h.incarnation {
			h.log.Error("protows hub: another node uses this node's name", "node", h.node)
		}
		return // our own message, echoed by the broker
	}
	var evs []PresenceEvent
	lost, resync, isNew := false, false, false
	var missed uint64

	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	p := h.peers[w.GetOrigin()]
	switch {
	case p == nil || p.incarnation != w.GetIncarnation():
		if p != nil { // the node restarted: its old members are gone
			evs = appendLeaves(evs, p.members)
		}
		p = &peer{incarnation: w.GetIncarnation(), members: make(map[string]Member)}
		h.peers[w.GetOrigin()] = p
		isNew = true
		// Messages before this one were missed, and whatever was
		// missed is fetched.
		lost = w.GetSeq() > 1
		resync = !(w.GetKind() == hubv1.Kind_KIND_STATE && w.GetPart() == 0) && w.GetKind() != hubv1.Kind_KIND_BYE
	case w.GetSeq() <= p.lastSeq:
		h.mu.Unlock()
		return // a duplicate
	case w.GetSeq() > p.lastSeq+1:
		missed = w.GetSeq() - p.lastSeq - 1
		lost, resync = true, !(w.GetKind() == hubv1.Kind_KIND_STATE && w.GetPart() == 0)
	}
	p.lastSeq = w.GetSeq()
	p.lastSeen = time.Now()

	switch w.GetKind() {
	case hubv1.Kind_KIND_JOIN:
		for _, wm := range w.GetMembers() {
			m := memberOf(w.GetOrigin(), wm)
			if _, ok := p.members[m.ID()]; !ok {
				p.members[m.ID()] = m
				evs = append(evs, PresenceEvent{Member: m, Joined: true})
			}
		}
	case hubv1.Kind_KIND_LEAVE:
		for _, wm := range w.GetMembers() {
			m := memberOf(w.GetOrigin(), wm)
			if old, ok := p.members[m.ID()]; ok {
				delete(p.members, m.ID())
				evs = append(evs, PresenceEvent{Member: old})
			}
		}
	case hubv1.Kind_KIND_STATE:
		if w.GetPart() == 0 {
			p.pending = make(map[string]Member, len(w.GetMembers()))
		} else if lost {
			// A state cut by a loss is incomplete; the loss asked for
			// a new one.
			p.pending = nil
		}
		if p.pending == nil {
			break
		}
		for _, wm := range w.GetMembers() {
			m := memberOf(w.GetOrigin(), wm)
			p.pending[m.ID()] = m
		}
		if w.GetMore() {
			break
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
	case hubv1.Kind_KIND_BYE:
		evs = appendLeaves(evs, p.members)
		delete(h.peers, w.GetOrigin())
	}
	h.mu.Unlock()

	if isNew {
		h.log.Info("protows hub: hearing from a node", "node", w.GetOrigin())
	}
	if lost {
		if !isNew {
			h.log.Warn("protows hub: missed messages from a node", "node", w.GetOrigin(), "missed", missed)
		}
		h.hole()
	}
	if resync {
		_ = h.publish(context.Background(), &hubv1.Message{Kind: hubv1.Kind_KIND_SYNC, Target: w.GetOrigin()})
	}
	h.emit(evs)

	switch w.GetKind() {
	case hubv1.Kind_KIND_BROADCAST:
		h.mu.Lock()
		r := h.rooms[w.GetRoom()]
		h.mu.Unlock()
		if r != nil {
			h.toRoom(r, h.remotePayload(w.GetPayload()))
		}
	case hubv1.Kind_KIND_ALL:
		h.toAllRooms(h.remotePayload(w.GetPayload()))
	case hubv1.Kind_KIND_DIRECT:
		node, connID, callID, ok := parseTarget(w.GetTarget())
		if ok && node == h.node {
			h.toTarget(connID, callID, h.remotePayload(w.GetPayload()))
		}
	case hubv1.Kind_KIND_SYNC:
		if w.GetTarget() == "" || w.GetTarget() == h.node {
			h.publishState()
		}
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
		for m := range set {
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

// heartbeat tells the other nodes this one is alive, and drops the members
// of nodes that stopped doing so.
func (h *Hub[T]) heartbeat() {
	defer h.wg.Done()
	t := time.NewTicker(h.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-h.quit:
			return
		case <-t.C:
		}
		_ = h.publish(context.Background(), &hubv1.Message{Kind: hubv1.Kind_KIND_HEARTBEAT})
		h.expire(time.Now())
	}
}

// expire forgets the nodes not heard from within the presence TTL, with
// leave events for their members.
func (h *Hub[T]) expire(now time.Time) {
	var evs []PresenceEvent
	h.mu.Lock()
	for name, p := range h.peers {
		if now.Sub(p.lastSeen) > h.cfg.PresenceTTL {
			h.log.Warn("protows hub: node stopped answering, dropping its members", "node", name, "members", len(p.members))
			evs = appendLeaves(evs, p.members)
			delete(h.peers, name)
		}
	}
	h.mu.Unlock()
	h.emit(evs)
}
