package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	protows "github.com/protows/protows"
	"github.com/protows/protows/codec"
	chatv1 "github.com/protows/protows/gen/go/examples/chat/v1"
)

// sink is a room member's stream that drops what it is sent: a member
// that costs a goroutine and no connection.
type sink struct{}

func (sink) Send(*chatv1.RoomEvent) error { return nil }

// fill makes n members join rooms named by room(i), and leaves them when
// the test ends.
func fill(t *testing.T, nd *node, n int, room func(i int) string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, n)
	for i := range n {
		go func() {
			_ = nd.hub.Join(ctx, room(i), sink{})
			done <- struct{}{}
		}()
	}
	t.Cleanup(func() {
		cancel()
		for range n {
			<-done
		}
	})
}

// TestListingPages: ListRooms and GetPresence answer a page at a time, so
// that a node with more rooms or members than one reply can carry (16,000
// rooms made a 1.07 MiB ListRooms reply, over the 1 MiB message size
// limit) still lists them all: pages of the size asked for (100 by
// default, at most 1000), each room and member once.
func TestListingPages(t *testing.T) {
	n := startTestNode(t, nodeConfig{})
	const rooms = 1200
	roomName := func(i int) string { return fmt.Sprintf("%04d-%s", i, strings.Repeat("r", 59)) } // 64 characters
	fill(t, n, rooms, roomName)
	fill(t, n, 250, func(int) string { return "crowded" })
	deadline := time.Now().Add(10 * time.Second)
	for len(n.hub.Rooms()) < rooms+1 || len(n.hub.Members("crowded")) < 250 {
		if time.Now().After(deadline) {
			t.Fatalf("%d rooms joined", len(n.hub.Rooms()))
		}
		time.Sleep(10 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := dialChat(t, n, "alice", codec.JSON())
	for _, tc := range []struct {
		size, wantPage int
	}{{0, 100}, {7, 7}, {1000, 1000}, {5000, 1000}} {
		seen := map[string]int{}
		token, pages := "", 0
		for {
			res, err := c.ListRooms(ctx, &chatv1.ListRoomsRequest{PageSize: uint32(tc.size), PageToken: token})
			if err != nil {
				t.Fatal(err)
			}
			pages++
			if len(res.GetRooms()) > tc.wantPage || (res.GetNextPageToken() != "" && len(res.GetRooms()) != tc.wantPage) {
				t.Fatalf("page size %d: a page of %d rooms", tc.size, len(res.GetRooms()))
			}
			for _, r := range res.GetRooms() {
				seen[r.GetName()]++
			}
			if token = res.GetNextPageToken(); token == "" {
				break
			}
		}
		if len(seen) != rooms+1 {
			t.Fatalf("page size %d: %d rooms in %d pages, want %d", tc.size, len(seen), pages, rooms+1)
		}
		for name, k := range seen {
			if k != 1 {
				t.Fatalf("page size %d: %s listed %d times", tc.size, name, k)
			}
		}
	}
	members := map[string]bool{}
	token, pages := "", 0
	for {
		res, err := c.GetPresence(ctx, &chatv1.GetPresenceRequest{Room: "crowded", PageSize: 100, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, m := range res.GetMembers() {
			members[m.GetConnectionId()] = true
		}
		if token = res.GetNextPageToken(); token == "" {
			break
		}
	}
	if len(members) != 250 || pages != 3 {
		t.Fatalf("GetPresence: %d members in %d pages, want 250 in 3", len(members), pages)
	}
	if _, err := c.GetPresence(ctx, &chatv1.GetPresenceRequest{Room: "crowded", PageToken: "not a token"}); protows.CodeOf(err) != protows.CodeInvalidArgument {
		t.Fatalf("GetPresence with a page token it did not make: %v", err)
	}
}
