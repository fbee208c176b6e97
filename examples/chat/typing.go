package main

import (
	"context"
	"errors"
	"io"

	"github.com/protows/protows"
	chatv1 "github.com/protows/protows/gen/go/examples/chat/v1"
	"github.com/protows/protows/hub"
	"github.com/protows/protows/router"
	"github.com/protows/protows/transport"
)

// Typing runs one caller's typing indicator: the call is a membership of
// the room in the typing hub (a hub of its own, so that typing events do
// not take room sequence numbers or reach Watch streams), and each of the
// caller's messages is broadcast to that room as a TypingEvent.
func (s *chatService) Typing(ctx context.Context, st router.BidiStream[*chatv1.TypingRequest, *chatv1.TypingEvent]) error {
	first, err := st.Receive()
	if errors.Is(err, io.EOF) {
		return nil // half-closed before naming a room: nothing to do
	}
	if err != nil {
		return err
	}
	room := first.GetRoom()
	if err := checkRoom(room); err != nil {
		return err
	}
	name := ""
	if conn, ok := transport.ConnFromContext(ctx); ok && conn.Principal() != nil {
		name = conn.Principal().Subject
	}
	if name == "" {
		return protows.Errorf(protows.CodeUnauthenticated, "Typing needs an authenticated caller")
	}

	// The membership runs until the caller's messages end (or the call
	// does); Join returns when its context ends.
	joinCtx, leave := context.WithCancel(ctx)
	joined := make(chan error, 1)
	go func() { joined <- s.typing.Join(joinCtx, room, st) }()
	defer func() {
		leave()
		<-joined
	}()

	announce := func(now bool) error {
		return s.typing.Broadcast(ctx, room, &chatv1.TypingEvent{Room: room, Name: name, Typing: now})
	}
	// The membership's own join event (typingPresence) tells the caller
	// it is in; others need hear only of typing.
	if first.GetTyping() {
		if err := announce(true); err != nil {
			return err
		}
	}
	for {
		req, err := st.Receive()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if r := req.GetRoom(); r != "" && r != room {
			return protows.Errorf(protows.CodeInvalidArgument, "a Typing call stays in its room %q; open another for %q", room, r)
		}
		if err := announce(req.GetTyping()); err != nil {
			return err
		}
	}
}

// newTypingHub makes the hub of typing indicators, beside the room hub and
// on the same broker (under its own subject) when there is one.
func newTypingHub(cfg hub.Config[*chatv1.RoomEvent], broker hub.Broker) (*hub.Hub[*chatv1.TypingEvent], error) {
	return hub.New(hub.Config[*chatv1.TypingEvent]{
		Broker:   broker,
		Node:     cfg.Node,
		Logger:   cfg.Logger,
		Presence: typingPresence,
	})
}

// typingPresence turns a Typing membership's join and leave into "not
// typing" events of its subject: the join tells the caller its membership
// is in, and the leave makes sure that nobody keeps showing as typing a
// caller whose call ended mid-sentence (a dropped connection, a closed
// page).
func typingPresence(ev hub.PresenceEvent) (*chatv1.TypingEvent, bool) {
	return &chatv1.TypingEvent{Room: ev.Member.Room, Name: ev.Member.Subject}, true
}
