package hub

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/protows/protows/codec"
)

// joinAt makes a fake connection a member of room, as joinFake does, with
// the given join time.
func joinAt(t *testing.T, h *Hub[*msg], room, conn string, at time.Time) *joined {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	m := fakeMember(t, ctx, h, room, newFake(conn, codec.Proto()).call(1), conn)
	m.info.JoinedAt = at
	j := &joined{cancel: cancel, err: make(chan error, 1), id: m.info.ID()}
	go func() { j.err <- h.join(ctx, m) }()
	waitFor(t, func() bool { return hasMember(h.Members(room), j.id) })
	t.Cleanup(func() {
		cancel()
		_ = j.end(t)
	})
	return j
}

// TestRoomsPage: pages of RoomsPage list every room once, in Rooms' order.
func TestRoomsPage(t *testing.T) {
	t.Parallel()
	h := newHub(t, Config[*msg]{})
	var want []string
	for i := range 250 {
		room := fmt.Sprintf("room-%03d", i)
		joinAt(t, h, room, "c"+room, time.Now())
		want = append(want, room)
	}
	for _, size := range []int{1, 7, 100, 250, 1000} {
		var got []string
		pages, token := 0, ""
		for {
			rooms, next := h.RoomsPage(token, size)
			pages++
			if len(rooms) > size {
				t.Fatalf("size %d: a page of %d", size, len(rooms))
			}
			for _, r := range rooms {
				got = append(got, r.Name)
				if r.Members != 1 {
					t.Fatalf("%s: %d members", r.Name, r.Members)
				}
			}
			if next == "" {
				break
			}
			token = next
		}
		if !slices.Equal(got, want) {
			t.Fatalf("size %d: %d rooms in %d pages, want the %d rooms once each", size, len(got), pages, len(want))
		}
		if wantPages := (len(want) + size - 1) / size; pages != wantPages {
			t.Fatalf("size %d: %d pages, want %d", size, pages, wantPages)
		}
	}
	if rooms, next := h.RoomsPage("", 0); len(rooms) != len(want) || next != "" {
		t.Fatalf("no limit: %d rooms, next %q", len(rooms), next)
	}
	if rooms, next := h.RoomsPage("zzz", 10); len(rooms) != 0 || next != "" {
		t.Fatalf("past the end: %v, next %q", rooms, next)
	}
}

// TestMembersPage: pages of MembersPage list the members in Members' order,
// each once, members who joined at the same time included; a member who
// leaves between two pages does not shift the others; a token that is not
// MembersPage's is refused.
func TestMembersPage(t *testing.T) {
	t.Parallel()
	h := newHub(t, Config[*msg]{})
	base := time.Now()
	var joins []*joined
	for i := range 25 {
		// Five members share each join time: the ID breaks the ties.
		at := base.Add(time.Duration(i/5) * time.Millisecond)
		joins = append(joins, joinAt(t, h, "r", fmt.Sprintf("c%02d", 24-i), at))
	}
	want := h.Members("r")
	ids := func(ms []Member) []string {
		out := make([]string, len(ms))
		for i, m := range ms {
			out[i] = m.ID()
		}
		return out
	}
	for _, size := range []int{1, 4, 5, 7, 25, 30} {
		var got []Member
		token := ""
		for {
			page, next, err := h.MembersPage("r", token, size)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, page...)
			if next == "" {
				break
			}
			token = next
		}
		if !slices.Equal(ids(got), ids(want)) {
			t.Fatalf("size %d: %v, want %v", size, ids(got), ids(want))
		}
	}
	// A member of the first page leaves before the second is read.
	page, next, err := h.MembersPage("r", "", 10)
	if err != nil || len(page) != 10 {
		t.Fatalf("first page: %d, %v", len(page), err)
	}
	for _, j := range joins {
		if j.id == page[3].ID() {
			j.cancel() // its cleanup waits for the end of Join
		}
	}
	waitFor(t, func() bool { return len(h.Members("r")) == 24 })
	rest, _, err := h.MembersPage("r", next, 0)
	if err != nil || !slices.Equal(ids(rest), ids(want[10:])) {
		t.Fatalf("after a leave: %v (%v), want %v", ids(rest), err, ids(want[10:]))
	}
	for _, bad := range []string{"x", "12", "12 ", "abc c#1"} {
		if _, _, err := h.MembersPage("r", bad, 5); !errors.Is(err, ErrBadPageToken) {
			t.Errorf("token %q: %v, want ErrBadPageToken", bad, err)
		}
	}
}
