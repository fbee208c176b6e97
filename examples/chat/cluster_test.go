package main

import (
	"bufio"
	"context"
	"io"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/protows/protows/codec"
	chatv1 "github.com/protows/protows/gen/go/examples/chat/v1"
)

// TestClusterOverNATS: clients of two nodes joined by an embedded NATS
// server share a room: presence and messages cross between the nodes.
func TestClusterOverNATS(t *testing.T) {
	t.Parallel()
	ns, err := startNATS("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() }) // after the nodes
	n1 := startTestNode(t, nodeConfig{Name: "node-1", NATSURL: ns.ClientURL()})
	n2 := startTestNode(t, nodeConfig{Name: "node-2", NATSURL: ns.ClientURL()})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	alice := dialChat(t, n1, "alice", codec.Proto())
	bob := dialChat(t, n2, "bob", codec.JSON())
	as, err := alice.Watch(ctx, &chatv1.WatchRequest{Room: "lobby"})
	if err != nil {
		t.Fatal(err)
	}
	defer as.Close()
	waitJoined(t, as, "alice")
	bs, err := bob.Watch(ctx, &chatv1.WatchRequest{Room: "lobby"})
	if err != nil {
		t.Fatal(err)
	}
	defer bs.Close()
	if j := waitJoined(t, as, "bob"); !strings.HasPrefix(j.GetConnectionId(), "node-2/") {
		t.Fatalf("bob's join seen on node-1: %v", j)
	}
	// Presence of other nodes is eventually consistent: it arrives with
	// their next message (docs/GUARANTEES.md).
	for _, c := range []*chatv1.ChatServiceClient{alice, bob} {
		waitPresence(t, c, "lobby", "alice", "bob")
	}
	if _, err := bob.Send(ctx, &chatv1.SendRequest{Room: "lobby", Text: "from node 2"}); err != nil {
		t.Fatal(err)
	}
	if m := nextMessage(t, as); m.GetText() != "from node 2" || !strings.HasPrefix(m.GetAuthor().GetConnectionId(), "node-2/") {
		t.Fatalf("message on node-1: %v", m)
	}
	if _, err := alice.Send(ctx, &chatv1.SendRequest{Room: "lobby", Text: "from node 1"}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"from node 2", "from node 1"} {
		if m := nextMessage(t, bs); m.GetText() != want {
			t.Fatalf("message on node-2: %v, want %q", m, want)
		}
	}
}

// lines collects what run prints, line by line.
func lines(t *testing.T) (io.Writer, <-chan string) {
	t.Helper()
	r, w := io.Pipe()
	ch := make(chan string, 16)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			ch <- sc.Text()
		}
	}()
	t.Cleanup(func() { _ = w.Close() })
	return w, ch
}

var nodeLine = regexp.MustCompile(`^chat: node (\S+): open (http://127\.0\.0\.1:\d+)/ `)

// TestRun runs the command as make demo and make demo-cluster do (on
// free ports), talks to every node, and shuts it down as SIGINT would:
// promptly, although a room stream is open.
func TestRun(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		args  []string
		nodes int
	}{
		{"single", []string{"-addr", "127.0.0.1:0"}, 1},
		{"cluster", []string{"-addr", "127.0.0.1:0", "-cluster", "3"}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.args = append(tc.args, "-store", t.TempDir())
			ctx, stop := context.WithCancel(context.Background())
			defer stop()
			out, ch := lines(t)
			done := make(chan error, 1)
			go func() { done <- run(ctx, tc.args, out, io.Discard) }()

			var nodes []*node
			for len(nodes) < tc.nodes {
				select {
				case l := <-ch:
					if m := nodeLine.FindStringSubmatch(l); m != nil {
						nodes = append(nodes, &node{name: m[1], url: m[2]})
					}
				case err := <-done:
					t.Fatalf("run ended: %v", err)
				case <-time.After(10 * time.Second):
					t.Fatal("no node line within 10s")
				}
			}
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			var streams []*chatv1.ChatServiceClient
			for i, n := range nodes {
				c := dialChat(t, n, "user"+n.name, codec.JSON())
				s, err := c.Watch(rctx, &chatv1.WatchRequest{Room: "lobby"})
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				waitJoined(t, s, "user"+n.name)
				streams = append(streams, c)
				if tc.nodes > 1 && n.name != "node-"+string(rune('1'+i)) {
					t.Errorf("node %d is named %q", i, n.name)
				}
			}
			// Every node sees the members of every node (presence
			// crosses NATS in the cluster).
			var want []string
			for _, n := range nodes {
				want = append(want, "user"+n.name)
			}
			slices.Sort(want)
			for _, c := range streams {
				waitPresence(t, c, "lobby", want...)
			}

			start := time.Now()
			stop()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("run: %v", err)
				}
			case <-time.After(8 * time.Second):
				t.Fatal("shutdown took more than 8s")
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("shutdown took %v", d)
			}
		})
	}
}

func TestParseFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		bad  string
	}{
		{nil, ""},
		{[]string{"-origin", "https://chat.example.com, http://127.0.0.1:8080"}, ""},
		{[]string{"-origin", "chat.example.com"}, "origin"},
		{[]string{"-origin", "https://*.example.com"}, "wildcard"},
		{[]string{"-origin", "https://example.com/path"}, "path"},
		{[]string{"-cluster", "3", "-nats", "nats://127.0.0.1:4222"}, "drop -nats"},
		{[]string{"-cluster", "3", "-origin", "https://a.example"}, "drop -origin"},
		{[]string{"-cluster", "17"}, "between"},
		{[]string{"extra"}, "unexpected"},
		{[]string{"-history", "off"}, ""},
		{[]string{"-history", "jetstream"}, "needs -nats"},
		{[]string{"-history", "jetstream", "-nats", "nats://127.0.0.1:4222"}, ""},
		{[]string{"-history", "disk"}, "want memory"},
	} {
		o, err := parseFlags(tc.args, io.Discard)
		switch {
		case tc.bad == "" && err != nil:
			t.Errorf("%q: %v", tc.args, err)
		case tc.bad != "" && (err == nil || !strings.Contains(err.Error(), tc.bad)):
			t.Errorf("%q: error %v, want one about %q", tc.args, err, tc.bad)
		case tc.bad == "" && o.addr != "127.0.0.1:8080":
			t.Errorf("%q: default addr %q", tc.args, o.addr)
		}
	}
}

func TestNextAddrs(t *testing.T) {
	t.Parallel()
	got, err := nextAddrs("127.0.0.1:8080", 3)
	if err != nil || !slices.Equal(got, []string{"127.0.0.1:8080", "127.0.0.1:8081", "127.0.0.1:8082"}) {
		t.Fatalf("%v %v", got, err)
	}
	got, err = nextAddrs("[::1]:0", 2)
	if err != nil || !slices.Equal(got, []string{"[::1]:0", "[::1]:0"}) {
		t.Fatalf("%v %v", got, err)
	}
	if _, err := nextAddrs("127.0.0.1:65535", 2); err == nil {
		t.Fatal("a port past 65535 was accepted")
	}
}

// waitPresence polls GetPresence until the room lists exactly want
// (sorted), for up to 5 s.
func waitPresence(t *testing.T, c *chatv1.ChatServiceClient, room string, want ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var got []string
	for ctx.Err() == nil {
		p, err := c.GetPresence(ctx, &chatv1.GetPresenceRequest{Room: room})
		if err != nil {
			break
		}
		got = names(p.GetMembers())
		slices.Sort(got)
		if slices.Equal(got, want) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("presence of %s: %v, want %v", room, got, want)
}
