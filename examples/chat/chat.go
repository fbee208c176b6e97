package main

import (
	"context"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/protows/protows"
	chatv1 "github.com/protows/protows/gen/go/examples/chat/v1"
	"github.com/protows/protows/hub"
	"github.com/protows/protows/router"
	"github.com/protows/protows/transport"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Limits of chat.proto's comments.
const (
	maxRoomRunes = 64
	maxTextBytes = 4096
)

// joinGrace is how long Send waits for its connection to become a member
// of the room. A page that reconnects sends the messages typed while it
// was offline at once (its outbox, with their idempotency keys), while its
// Watch of the room is being re-opened on the same connection: the two
// REQUESTs run concurrently, and the Send must not lose that race. The
// answer of a Send with a key is remembered (docs/PROTOCOL.md section
// 3.7), so failing it would fail the message for good.
const joinGrace = 2 * time.Second

// chatService implements chatv1.ChatServiceHandler on a hub: a Watch call
// is a room membership, Send is a room broadcast.
type chatService struct {
	hub    *hub.Hub[*chatv1.RoomEvent]
	typing *hub.Hub[*chatv1.TypingEvent] // Typing's rooms (typing.go)
	now    func() time.Time
}

var _ chatv1.ChatServiceHandler = (*chatService)(nil)

// memberOf names a membership by its connection on its node
// ("node/conn"), so that ids stay unique across the nodes of a cluster.
func memberOf(m hub.Member) *chatv1.Member {
	return &chatv1.Member{Name: m.Subject, ConnectionId: m.Conn(), JoinedAt: timestamppb.New(m.JoinedAt)}
}

// checkRoom enforces chat.proto's 1 to 64 characters.
func checkRoom(room string) error {
	if n := utf8.RuneCountInString(room); n == 0 || n > maxRoomRunes || !utf8.ValidString(room) {
		return protows.Errorf(protows.CodeInvalidArgument, "room must be 1 to %d characters of UTF-8", maxRoomRunes)
	}
	return nil
}

// Watch makes the caller a member of the room until the call ends: Attach
// returns at once and the stream stays open, holding no goroutine.
func (s *chatService) Watch(ctx context.Context, req *chatv1.WatchRequest, st router.Stream[*chatv1.RoomEvent]) error {
	if err := checkRoom(req.GetRoom()); err != nil {
		return err
	}
	return s.hub.Attach(ctx, req.GetRoom(), st)
}

// Send broadcasts a message to a room the caller watches. Only members
// may post, so that what a room shows comes from the people it lists.
func (s *chatService) Send(ctx context.Context, req *chatv1.SendRequest) (*chatv1.SendResponse, error) {
	if err := checkRoom(req.GetRoom()); err != nil {
		return nil, err
	}
	if n := len(req.GetText()); n == 0 || n > maxTextBytes || !utf8.ValidString(req.GetText()) {
		return nil, protows.Errorf(protows.CodeInvalidArgument, "text must be 1 to %d bytes of UTF-8", maxTextBytes)
	}
	conn, ok := transport.ConnFromContext(ctx)
	if !ok {
		return nil, protows.Errorf(protows.CodeInternal, "Send outside a connection")
	}
	members, i, err := s.membership(ctx, req.GetRoom(), conn.ID())
	if err != nil {
		return nil, err
	}
	ev := &chatv1.RoomEvent{
		Room: req.GetRoom(),
		Time: timestamppb.New(s.now()),
		Event: &chatv1.RoomEvent_Message{Message: &chatv1.ChatMessage{
			Author: memberOf(members[i]),
			Text:   req.GetText(),
		}},
	}
	if err := s.hub.Broadcast(ctx, req.GetRoom(), ev); err != nil {
		// With history in memory, the members of this node have the
		// message and those of other nodes may not (their seq skips);
		// with history in JetStream, nobody has it (it may still be
		// stored, if only the acknowledgement was lost).
		return nil, protows.Errorf(protows.CodeUnavailable, "send: %w", err)
	}
	return &chatv1.SendResponse{}, nil
}

// membership returns the room's members and the index of the connection
// id's membership, waiting up to joinGrace for it to join.
func (s *chatService) membership(ctx context.Context, room, id string) ([]hub.Member, int, error) {
	node := s.hub.Node()
	deadline := time.Now().Add(joinGrace)
	for {
		members := s.hub.Members(room)
		i := slices.IndexFunc(members, func(m hub.Member) bool { return m.Node == node && m.ConnID == id })
		if i >= 0 {
			return members, i, nil
		}
		if time.Now().After(deadline) {
			return nil, 0, protows.Errorf(protows.CodeFailedPrecondition, "watch room %q before sending to it", room)
		}
		t := time.NewTimer(20 * time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, 0, protows.NewError(protows.CodeOf(ctx.Err()), ctx.Err())
		}
	}
}

// GetPresence lists a page of the room's members on every node.
func (s *chatService) GetPresence(_ context.Context, req *chatv1.GetPresenceRequest) (*chatv1.GetPresenceResponse, error) {
	if err := checkRoom(req.GetRoom()); err != nil {
		return nil, err
	}
	members, next, err := s.hub.MembersPage(req.GetRoom(), req.GetPageToken(), pageSize(req.GetPageSize()))
	if err != nil {
		return nil, protows.Errorf(protows.CodeInvalidArgument, "%w", err)
	}
	res := &chatv1.GetPresenceResponse{Members: make([]*chatv1.Member, 0, len(members)), NextPageToken: next}
	for _, m := range members {
		res.Members = append(res.Members, memberOf(m))
	}
	return res, nil
}

// ListRooms lists a page of the rooms that have members on any node, with
// the number of people in each, as presence counts them (one per subject,
// however many connections they have).
func (s *chatService) ListRooms(_ context.Context, req *chatv1.ListRoomsRequest) (*chatv1.ListRoomsResponse, error) {
	rooms, next := s.hub.RoomsPage(req.GetPageToken(), pageSize(req.GetPageSize()))
	res := &chatv1.ListRoomsResponse{Rooms: make([]*chatv1.Room, 0, len(rooms)), NextPageToken: next}
	for _, r := range rooms {
		n := people(s.hub.Members(r.Name))
		if n == 0 {
			continue // its last member left meanwhile
		}
		res.Rooms = append(res.Rooms, &chatv1.Room{Name: r.Name, Members: uint32(n)})
	}
	return res, nil
}

// The page sizes of ListRooms and GetPresence: a page of the largest size
// stays far below the message size limit (1 MiB), with room names of 64
// characters and members of a few hundred bytes.
const (
	defaultPageSize = 100
	maxPageSize     = 1000
)

// pageSize returns the page size a request asks for, within the limits.
func pageSize(n uint32) int {
	switch {
	case n == 0:
		return defaultPageSize
	case n > maxPageSize:
		return maxPageSize
	}
	return int(n)
}

// historyPage is the default and the largest page of GetHistory.
const (
	historyPage    = 50
	maxHistoryPage = hub.MaxHistoryPage
)

// GetHistory returns a page of the room's history, going back from before
// (the latest messages when it is 0).
func (s *chatService) GetHistory(ctx context.Context, req *chatv1.GetHistoryRequest) (*chatv1.GetHistoryResponse, error) {
	if err := checkRoom(req.GetRoom()); err != nil {
		return nil, err
	}
	size := int(req.GetPageSize())
	switch {
	case size == 0:
		size = historyPage
	case size > maxHistoryPage:
		size = maxHistoryPage
	}
	page, err := s.hub.History(ctx, req.GetRoom(), hub.HistoryQuery{Before: req.GetBefore(), Limit: size})
	if err != nil {
		return nil, err
	}
	res := &chatv1.GetHistoryResponse{Epoch: page.Epoch, First: page.First, Events: make([]*chatv1.HistoryEvent, 0, len(page.Messages))}
	for _, m := range page.Messages {
		res.Events = append(res.Events, &chatv1.HistoryEvent{Offset: m.Offset, Event: m.Msg})
	}
	return res, nil
}
