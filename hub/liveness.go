package hub

import (
	"context"
	"time"

	hubv1 "github.com/protows/protows/gen/go/protows/hub/v1"
)

// presenceCap is how many presence TTLs a node may stay silent before the
// hub drops its members even while it is behind on its broker's messages:
// a hub that stays overloaded must not keep a dead node's members forever.
const presenceCap = 6

// liveness is what the heartbeat goroutine knows of how far behind the
// hub is on its broker's messages. Only that goroutine uses it.
type liveness struct {
	// caughtUp is the last time up to which the hub had handled every
	// message its broker had received by then.
	caughtUp time.Time
	// marks are samples not yet reached, oldest first.
	marks []mark
	// behind: an expiry is being put off, which was logged.
	behind bool
}

// mark is a sample of the broker's backlog: at is caught up to once the
// hub has handled handled messages.
type mark struct {
	at      time.Time
	handled uint64
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
// leave events for their members. A node's silence runs up to the time the
// hub had caught up to, not up to now: while the hub is behind, the
// node's messages may be waiting in the broker, behind the ones it is
// handling. A silence longer than presenceCap TTLs up to now ends the node
// anyway.
func (h *Hub[T]) expire(now time.Time) {
	caught := h.caughtUp(now)
	limit := presenceCap * h.cfg.PresenceTTL
	var evs []PresenceEvent
	deferred := false
	h.mu.Lock()
	for name, p := range h.peers {
		switch {
		case caught.Sub(p.lastSeen) > h.cfg.PresenceTTL || now.Sub(p.lastSeen) > limit:
			h.log.Warn("protows hub: node stopped answering, dropping its members", "node", name, "members", len(p.members), "silent", now.Sub(p.lastSeen))
			evs = appendLeaves(evs, p.members)
			delete(h.peers, name)
		case now.Sub(p.lastSeen) > h.cfg.PresenceTTL:
			deferred = true
		}
	}
	h.mu.Unlock()
	if deferred && !h.live.behind {
		h.log.Warn("protows hub: behind on other nodes' messages, not taking nodes for dead while theirs may be waiting", "behind", now.Sub(caught))
	} else if !deferred && h.live.behind {
		h.log.Info("protows hub: caught up on other nodes' messages")
	}
	h.live.behind = deferred
	h.emit(evs)
}

// caughtUp returns the last time up to which the hub had handled every
// message its broker had received by then: now, when the broker cannot
// tell its backlog or has none. Otherwise each call leaves a mark, the
// count of messages handled once those received by now are, and returns
// the time of the latest mark reached.
func (h *Hub[T]) caughtUp(now time.Time) time.Time {
	b, ok := h.cfg.Broker.(BacklogBroker)
	if !ok {
		return now
	}
	l := &h.live
	if l.caughtUp.IsZero() {
		// The first tick, one interval after the hub started: no node
		// it heard from can have been silent for a TTL (two intervals
		// at least) by then.
		l.caughtUp = now
	}
	// The backlog is read before the count: a message handled between the
	// two reads is counted twice, which delays the mark, and none is
	// missed (receive counts a message before the broker stops counting
	// it).
	n := b.Backlog()
	handled := h.handled.Load()
	if n <= 0 {
		l.caughtUp, l.marks = now, l.marks[:0]
		return now
	}
	reached := -1
	for i, m := range l.marks {
		if m.handled <= handled {
			reached = i
		}
	}
	if reached >= 0 {
		l.caughtUp = l.marks[reached].at
		l.marks = append(l.marks[:0], l.marks[reached+1:]...)
	}
	// Marks older than the cap no longer matter: every node silent since
	// before them is dropped by the cap.
	old := 0
	for old < len(l.marks) && now.Sub(l.marks[old].at) > presenceCap*h.cfg.PresenceTTL {
		old++
	}
	l.marks = append(l.marks[:0], l.marks[old:]...)
	l.marks = append(l.marks, mark{at: now, handled: handled + uint64(n)})
	return l.caughtUp
}
