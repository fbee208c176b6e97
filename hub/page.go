package hub

import (
	"errors"
	"sort"
	"strconv"
	"strings"
	"time"
)

// A listing that fits no single message is read in pages: Rooms and
// Members return everything at once, which a handler cannot always send
// (a reply larger than the transport's message size limit becomes ERROR
// resource_exhausted, PROTOCOL.md section 11). RoomsPage and MembersPage
// return one page and a token for the next, as AIP-158 describes
// (page_size, page_token, next_page_token). Pages are not a snapshot:
// rooms and members that come or go between two calls may be missed or
// seen on a page; what was there throughout is seen exactly once.

// ErrBadPageToken is returned by MembersPage for a page token it did not
// make.
var ErrBadPageToken = errors.New("hub: bad page token")

// RoomsPage returns at most size rooms of Rooms, those whose names sort
// after pageToken ("" for the first page), and the token of the next
// page, "" when this page is the last. A size of 0 or less means no
// limit.
func (h *Hub[T]) RoomsPage(pageToken string, size int) (rooms []RoomInfo, nextPageToken string) {
	all := h.Rooms()
	i := sort.Search(len(all), func(i int) bool { return all[i].Name > pageToken })
	all = all[i:]
	if size <= 0 || len(all) <= size {
		return all, ""
	}
	return all[:size], all[size-1].Name
}

// MembersPage returns at most size members of Members(room), in its order
// (by join time, then ID), from where the page token points ("" for the
// first page), and the token of the next page, "" when this page is the
// last. A size of 0 or less means no limit. A token MembersPage did not
// return gets ErrBadPageToken.
func (h *Hub[T]) MembersPage(room, pageToken string, size int) (members []Member, nextPageToken string, err error) {
	all := h.Members(room)
	if pageToken != "" {
		at, id, err := parseMemberToken(pageToken)
		if err != nil {
			return nil, "", err
		}
		i := sort.Search(len(all), func(i int) bool { return memberAfter(all[i], at, id) })
		all = all[i:]
	}
	if size <= 0 || len(all) <= size {
		return all, "", nil
	}
	last := all[size-1]
	return all[:size], strconv.FormatInt(last.JoinedAt.UnixNano(), 10) + " " + last.ID(), nil
}

// memberAfter reports whether m sorts after the member that joined at at
// with the id id, in Members' order. Join times compare by the wall clock
// (a local JoinedAt also has a monotonic reading, which other nodes'
// times and page tokens lack), so that the order of a page token agrees
// with the order of Members.
func memberAfter(m Member, at time.Time, id string) bool {
	if a, b := m.JoinedAt.UnixNano(), at.UnixNano(); a != b {
		return a > b
	}
	return m.ID() > id
}

// parseMemberToken reads a token of MembersPage: the join time of the
// last member of the page, in Unix nanoseconds, a space, and its ID.
func parseMemberToken(tok string) (time.Time, string, error) {
	ns, id, ok := strings.Cut(tok, " ")
	n, err := strconv.ParseInt(ns, 10, 64)
	if !ok || err != nil || id == "" {
		return time.Time{}, "", ErrBadPageToken
	}
	return time.Unix(0, n), id, nil
}
