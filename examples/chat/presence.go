package main

import (
	"context"
	"sync"
	"time"

	chatv1 "github.com/protows/protows/gen/go/examples/chat/v1"
	"github.com/protows/protows/hub"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// presence turns the hub's membership changes into the room's joined and
// left events per person rather than per connection: a person is in a
// room from their first membership (their first tab, say) until their
// last ends. A second tab, or the page switching codec (it opens the new
// connection and joins the room before it closes the old one), is no news
// for the room, so the others see nothing.
//
// It counts the memberships of each (room, person) of every node, in the
// hub's Presence hook, which the hub calls once for each join and each
// leave it learns of, local or remote: the counts are the hub's view and
// need no timer. They are as consistent as that view: a second connection
// on another node, made before that node heard of the first, is news
// there. A person is an authenticated subject; each anonymous membership
// is a person of its own.
type presence struct {
	now func() time.Time

	mu     sync.Mutex
	hub    *hub.Hub[*chatv1.RoomEvent] // nil until setHub
	counts map[person]int
}

// person is who a membership belongs to, in one room.
type person struct {
	room    string
	subject string
	anon    string // the membership's ID when the subject is ""
}

func newPresence(now func() time.Time) *presence {
	return &presence{now: now, counts: make(map[person]int)}
}

// setHub gives the hook the hub it serves, which exists only after the
// hook was configured: until then, no membership is local.
func (p *presence) setHub(h *hub.Hub[*chatv1.RoomEvent]) {
	p.mu.Lock()
	p.hub = h
	p.mu.Unlock()
}

func personOf(m hub.Member) person {
	k := person{room: m.Room, subject: m.Subject}
	if m.Subject == "" {
		k.anon = m.ID()
	}
	return k
}

// event is the hub's Presence hook. The event of a person's first join
// and last leave goes to the room. A further join goes to the joining
// stream alone: its client learns that it is in (the page waits for its
// first event before it posts), the others learn nothing.
func (p *presence) event(ev hub.PresenceEvent) (*chatv1.RoomEvent, bool) {
	k := personOf(ev.Member)
	p.mu.Lock()
	n := p.counts[k]
	if ev.Joined {
		n++
	} else {
		n--
	}
	if n > 0 {
		p.counts[k] = n
	} else {
		delete(p.counts, k)
	}
	h := p.hub
	p.mu.Unlock()

	out := roomEventOf(ev, p.now())
	if (ev.Joined && n == 1) || (!ev.Joined && n <= 0) {
		return out, true
	}
	if ev.Joined && h != nil && ev.Member.Node == h.Node() {
		// A local membership is known to the hub by now (it calls the
		// hook after adding it), so this only fails when the stream
		// ended meanwhile, and then nobody is left to tell.
		_ = h.SendTo(context.Background(), ev.Member.ID(), out)
	}
	return nil, false
}

// roomEventOf is the RoomEvent of a membership change.
func roomEventOf(ev hub.PresenceEvent, now time.Time) *chatv1.RoomEvent {
	out := &chatv1.RoomEvent{Room: ev.Member.Room, Time: timestamppb.New(now)}
	m := memberOf(ev.Member)
	if ev.Joined {
		out.Event = &chatv1.RoomEvent_Joined{Joined: m}
	} else {
		out.Event = &chatv1.RoomEvent_Left{Left: m}
	}
	return out
}

// people counts the distinct persons among members.
func people(members []hub.Member) int {
	seen := make(map[person]struct{}, len(members))
	for _, m := range members {
		seen[personOf(m)] = struct{}{}
	}
	return len(seen)
}
