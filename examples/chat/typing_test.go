package main

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/protows/protows"
	"github.com/protows/protows/client"
	"github.com/protows/protows/codec"
	chatv1 "github.com/protows/protows/gen/go/examples/chat/v1"
)

// nextTyping reads the typing stream's next event within a few seconds.
func nextTyping(t *testing.T, s *client.BidiStream[chatv1.TypingRequest, chatv1.TypingEvent]) *chatv1.TypingEvent {
	t.Helper()
	type result struct {
		ev  *chatv1.TypingEvent
		err error
	}
	got := make(chan result, 1)
	go func() {
		ev, err := s.Receive()
		got <- result{ev, err}
	}()
	select {
	case r := <-got:
		if r.err != nil {
			t.Fatalf("typing stream ended: %v", r.err)
		}
		return r.ev
	case <-time.After(5 * time.Second):
		t.Fatal("no typing event within 5s")
		return nil
	}
}

// TestTyping: two callers of Typing in one room, one per codec, see each
// other's typing state; a caller that leaves while typing is announced as
// done; a caller switching rooms mid-call is refused; a half-close ends
// the call cleanly.
func TestTyping(t *testing.T) {
	n := startTestNode(t, nodeConfig{Name: "solo"})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	alice := dialChat(t, n, "alice", codec.JSON())
	bob := dialChat(t, n, "bob", codec.Proto())

	bs, err := bob.Typing(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := bs.Send(&chatv1.TypingRequest{Room: "lobby"}); err != nil {
		t.Fatal(err)
	}
	// Bob's own event says his membership is in.
	if ev := nextTyping(t, bs); ev.GetName() != "bob" || ev.GetTyping() || ev.GetRoom() != "lobby" {
		t.Fatalf("first event %v, want bob not typing in lobby", ev)
	}

	as, err := alice.Typing(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Alice's membership is announced as "not typing" to bob too.
	if err := as.Send(&chatv1.TypingRequest{Room: "lobby"}); err != nil {
		t.Fatal(err)
	}
	if ev := nextTyping(t, bs); ev.GetName() != "alice" || ev.GetTyping() {
		t.Fatalf("bob saw %v, want alice not typing", ev)
	}
	if ev := nextTyping(t, as); ev.GetName() != "alice" {
		t.Fatalf("alice saw %v first, want her own join", ev)
	}
	for _, typing := range []bool{true, false, true} {
		if err := as.Send(&chatv1.TypingRequest{Room: "lobby", Typing: typing}); err != nil {
			t.Fatal(err)
		}
		ev := nextTyping(t, bs)
		if ev.GetName() != "alice" || ev.GetTyping() != typing {
			t.Fatalf("bob saw %v, want alice typing=%v", ev, typing)
		}
	}
	// Alice goes away mid-sentence.
	if err := as.Close(); err != nil {
		t.Fatal(err)
	}
	if ev := nextTyping(t, bs); ev.GetName() != "alice" || ev.GetTyping() {
		t.Fatalf("bob saw %v, want alice no longer typing", ev)
	}

	// Another room on the same call is refused.
	if err := bs.Send(&chatv1.TypingRequest{Room: "elsewhere", Typing: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := bs.Receive(); protows.CodeOf(err) != protows.CodeInvalidArgument {
		t.Fatalf("room switch: %v, want invalid_argument", err)
	}

	// A half-close ends the call cleanly.
	cs, err := bob.Typing(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := cs.Send(&chatv1.TypingRequest{Room: "lobby"}); err != nil {
		t.Fatal(err)
	}
	nextTyping(t, cs)
	if err := cs.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.Receive(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the half-close: %v, want io.EOF", err)
	}
}
