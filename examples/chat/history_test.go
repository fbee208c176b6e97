package main

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/protows/protows/client"
	"github.com/protows/protows/codec"
	chatv1 "github.com/protows/protows/gen/go/examples/chat/v1"
)

// sendN sends texts "prefix 1" to "prefix n" to room.
func sendN(t *testing.T, ctx context.Context, c *chatv1.ChatServiceClient, room, prefix string, n int) {
	t.Helper()
	for i := 1; i <= n; i++ {
		if _, err := c.Send(ctx, &chatv1.SendRequest{Room: room, Text: fmt.Sprintf("%s %d", prefix, i)}); err != nil {
			t.Fatal(err)
		}
	}
}

// historyTexts returns the texts of a GetHistory page.
func historyTexts(res *chatv1.GetHistoryResponse) []string {
	var out []string
	for _, e := range res.GetEvents() {
		out = append(out, e.GetEvent().GetMessage().GetText())
	}
	return out
}

// TestChatHistory: a member that joins asks for the room's latest
// messages and gets them before the live ones; GetHistory pages back
// through the history. On one node (history in memory) and on two nodes
// sharing it in JetStream, where the history and its offsets are the same
// whichever node answers.
func TestChatHistory(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cluster bool
	}{{"memory", false}, {"jetstream", true}} {
		t.Run(tc.name, func(t *testing.T) {
			n1, n2 := startHistoryNodes(t, tc.cluster)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			alice := dialChat(t, n1, "alice", codec.Proto())
			as, err := alice.Watch(ctx, &chatv1.WatchRequest{Room: "lobby"})
			if err != nil {
				t.Fatal(err)
			}
			defer as.Close()
			waitJoined(t, as, "alice")
			sendN(t, ctx, alice, "lobby", "hello", 5)

			bob := dialChat(t, n2, "bob", codec.JSON())
			bs, err := bob.Watch(ctx, &chatv1.WatchRequest{Room: "lobby"}, client.WithHistory(3))
			if err != nil {
				t.Fatal(err)
			}
			defer bs.Close()
			var got []string
			for len(got) < 3 {
				if m := next(t, bs).GetMessage(); m != nil {
					got = append(got, m.GetText())
				}
			}
			if want := []string{"hello 3", "hello 4", "hello 5"}; !slices.Equal(got, want) {
				t.Fatalf("bob joined with history 3: %v, want %v", got, want)
			}

			page, err := bob.GetHistory(ctx, &chatv1.GetHistoryRequest{Room: "lobby", PageSize: 2})
			if err != nil {
				t.Fatal(err)
			}
			if got := historyTexts(page); !slices.Equal(got, []string{"hello 4", "hello 5"}) {
				t.Fatalf("latest page: %v", got)
			}
			before := page.GetEvents()[0].GetOffset()
			older, err := alice.GetHistory(ctx, &chatv1.GetHistoryRequest{Room: "lobby", Before: before, PageSize: 10})
			if err != nil {
				t.Fatal(err)
			}
			if got := historyTexts(older); len(got) == 0 || !slices.Equal(got, []string{"hello 1", "hello 2", "hello 3"}) ||
				older.GetEvents()[0].GetOffset() != older.GetFirst() || older.GetEpoch() != page.GetEpoch() {
				t.Fatalf("the page before %d: %v (first %d, epochs %s %s)", before, got, older.GetFirst(), older.GetEpoch(), page.GetEpoch())
			}
		})
	}
}

// startHistoryNodes returns two nodes: with cluster, two nodes sharing
// their rooms and history through an embedded NATS server with
// JetStream; else one node (twice) with its history in memory.
func startHistoryNodes(t *testing.T, cluster bool) (*node, *node) {
	t.Helper()
	if !cluster {
		n := startTestNode(t, nodeConfig{Name: "solo", History: historyMemory})
		return n, n
	}
	ns, err := startNATS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() }) // after the nodes
	n1 := startTestNode(t, nodeConfig{Name: "node-1", NATSURL: ns.ClientURL(), History: historyJetStream})
	n2 := startTestNode(t, nodeConfig{Name: "node-2", NATSURL: ns.ClientURL(), History: historyJetStream})
	return n1, n2
}
