package main

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/protows/protows/client"
	"github.com/protows/protows/codec"
	chatv1 "github.com/protows/protows/gen/go/examples/chat/v1"
	"github.com/protows/protows/hub"
)

// TestPresenceEvent: the hook posts a person's first join and last leave
// only, per room, and counts each anonymous membership as a person.
func TestPresenceEvent(t *testing.T) {
	t.Parallel()
	at := time.Unix(1700000000, 0)
	p := newPresence(func() time.Time { return at })
	member := func(subject, conn, room string) hub.Member {
		return hub.Member{Node: "n", ConnID: conn, CallID: 1, Subject: subject, Room: room}
	}
	for i, tc := range []struct {
		m      hub.Member
		joined bool
		posted string // "joined", "left" or "" for nothing
	}{
		{member("bob", "1", "lobby"), true, "joined"},
		{member("bob", "2", "lobby"), true, ""},       // a second tab
		{member("bob", "3", "other"), true, "joined"}, // another room
		{member("bob", "1", "lobby"), false, ""},      // the first tab closes
		{member("alice", "4", "lobby"), true, "joined"},
		{member("bob", "2", "lobby"), false, "left"},  // the last one
		{member("bob", "5", "lobby"), true, "joined"}, // back again
		{member("", "6", "lobby"), true, "joined"},    // anonymous: each one a person
		{member("", "7", "lobby"), true, "joined"},
		{member("", "6", "lobby"), false, "left"},
	} {
		ev, ok := p.event(hub.PresenceEvent{Member: tc.m, Joined: tc.joined})
		got := ""
		switch {
		case ok && ev.GetJoined() != nil:
			got = "joined"
		case ok && ev.GetLeft() != nil:
			got = "left"
		case ok:
			got = "?"
		}
		if got != tc.posted {
			t.Fatalf("step %d (%s %v): posted %q, want %q", i, tc.m.ID(), tc.joined, got, tc.posted)
		}
		if ok && (ev.GetRoom() != tc.m.Room || !ev.GetTime().AsTime().Equal(at)) {
			t.Fatalf("step %d: event %v", i, ev)
		}
	}
	// What remains: bob's "other" membership and 5 in lobby, alice, anon 7.
	if len(p.counts) != 4 {
		t.Fatalf("counts %v", p.counts)
	}
}

// expectMessage fails unless the next event of s is the message want: a
// presence event that should not have been sent would come first.
func expectMessage(t *testing.T, s *client.ServerStream[chatv1.RoomEvent], want string) {
	t.Helper()
	ev := next(t, s)
	if ev.GetMessage().GetText() != want {
		t.Fatalf("got %v, want only the message %q", ev, want)
	}
}

// TestPresencePerPerson: a person's second connection to a room, on the
// same node or on another, is announced to nobody but itself, and the
// end of either of the two is announced to nobody; the end of the last
// one is. This is what a codec switch on the page does: it joins on a
// new connection, then closes the old one.
func TestPresencePerPerson(t *testing.T) {
	t.Parallel()
	ns, err := startNATS("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() }) // after the nodes
	n1 := startTestNode(t, nodeConfig{Name: "node-1", NATSURL: ns.ClientURL()})
	n2 := startTestNode(t, nodeConfig{Name: "node-2", NATSURL: ns.ClientURL()})

	for _, tc := range []struct {
		name   string
		second *node
		room   string
	}{
		{"same node", n1, "same"},
		{"other node", n2, "other"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			alice := dialChat(t, n1, "alice", codec.Proto())
			as, err := alice.Watch(ctx, &chatv1.WatchRequest{Room: tc.room})
			if err != nil {
				t.Fatal(err)
			}
			defer as.Close()
			waitJoined(t, as, "alice")

			bob1 := dialChat(t, n1, "bob", codec.Proto())
			b1, err := bob1.Watch(ctx, &chatv1.WatchRequest{Room: tc.room})
			if err != nil {
				t.Fatal(err)
			}
			defer b1.Close()
			first := waitJoined(t, b1, "bob")
			waitJoined(t, as, "bob")

			// Bob's second connection is told it is in, and its join is
			// the first thing on its stream.
			bob2 := dialChat(t, tc.second, "bob", codec.JSON())
			// Nodes learn of each other's members eventually: until
			// node-2 has heard of bob's first connection, his second
			// one there is his first as far as node-2 knows.
			waitPresence(t, bob2, tc.room, "alice", "bob")
			b2, err := bob2.Watch(ctx, &chatv1.WatchRequest{Room: tc.room})
			if err != nil {
				t.Fatal(err)
			}
			defer b2.Close()
			ack := next(t, b2).GetJoined()
			if ack.GetName() != "bob" || ack.GetConnectionId() == first.GetConnectionId() ||
				!strings.HasPrefix(ack.GetConnectionId(), tc.second.name+"/") {
				t.Fatalf("second stream's first event: joined %v (first connection %s)", ack, first.GetConnectionId())
			}
			if b2.Seq() != 0 {
				t.Fatalf("the join sent to one member has seq %d, want 0", b2.Seq())
			}
			// Presence counts bob's two connections as one person in
			// ListRooms, and lists both in GetPresence.
			waitPresence(t, alice, tc.room, "alice", "bob", "bob")
			if n := roomPeople(ctx, t, alice, tc.room); n != 2 {
				t.Fatalf("ListRooms counts %d people in %s, want 2", n, tc.room)
			}

			// The old connection goes: nobody hears of it.
			_ = b1.Close()
			waitPresence(t, alice, tc.room, "alice", "bob")
			if _, err := bob2.Send(ctx, &chatv1.SendRequest{Room: tc.room, Text: "still bob"}); err != nil {
				t.Fatal(err)
			}
			expectMessage(t, as, "still bob")
			expectMessage(t, b2, "still bob")

			// The last one goes: bob left.
			_ = b2.Close()
			if l := next(t, as).GetLeft(); l.GetName() != "bob" {
				t.Fatalf("after bob's last stream: %v, want bob's leave", l)
			}
		})
	}
}

func roomPeople(ctx context.Context, t *testing.T, c *chatv1.ChatServiceClient, room string) uint32 {
	t.Helper()
	res, err := c.ListRooms(ctx, &chatv1.ListRoomsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res.GetRooms() {
		if r.GetName() == room {
			return r.GetMembers()
		}
	}
	t.Fatalf("ListRooms lacks %s: %v", room, res.GetRooms())
	return 0
}

// TestMetrics: GET /metrics serves the node's transport figures in the
// Prometheus text format, counting this test's connection by codec.
func TestMetrics(t *testing.T) {
	t.Parallel()
	n := startTestNode(t, nodeConfig{})
	c := dialChat(t, n, "erin", codec.JSON())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.ListRooms(ctx, &chatv1.ListRoomsRequest{}); err != nil {
		t.Fatal(err)
	}
	want := []string{
		`(?m)^protows_connections_open\{subprotocol="protows.v1.json"\} 1$`,
		`(?m)^protows_messages_received_total\{subprotocol="protows.v1.json"\} [1-9]`,
		`(?m)^protows_handler_duration_seconds_count\{method="/examples.chat.v1.ChatService/ListRooms",outcome="ok"\} 1$`,
		`(?m)^go_goroutines `,
		`(?m)^protows_hub_members 0$`,
	}
	// The transport counts a call just after its reply leaves: poll.
	var missing []string
	var body []byte
	for deadline := time.Now().Add(5 * time.Second); ; {
		res, err := http.Get(n.url + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, err = io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/plain") {
			t.Fatalf("status %d, Content-Type %q", res.StatusCode, res.Header.Get("Content-Type"))
		}
		missing = missing[:0]
		for _, w := range want {
			if !regexp.MustCompile(w).Match(body) {
				missing = append(missing, w)
			}
		}
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics lacks %q:\n%s", missing, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
