package main

import (
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/protows/protows"
	"github.com/protows/protows/client"
	"github.com/protows/protows/codec"
	chatv1 "github.com/protows/protows/gen/go/examples/chat/v1"
)

// next reads the stream's next event within a few seconds.
func next(t *testing.T, s *client.ServerStream[chatv1.RoomEvent]) *chatv1.RoomEvent {
	t.Helper()
	got := make(chan bool, 1)
	go func() { got <- s.Receive() }()
	select {
	case ok := <-got:
		if !ok {
			t.Fatalf("stream ended: %v", s.Err())
		}
		return s.Msg()
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5s")
		return nil
	}
}

// nextMessage skips presence events until a chat message arrives.
func nextMessage(t *testing.T, s *client.ServerStream[chatv1.RoomEvent]) *chatv1.ChatMessage {
	t.Helper()
	for range 10 {
		if m := next(t, s).GetMessage(); m != nil {
			return m
		}
	}
	t.Fatal("no message among 10 events")
	return nil
}

// waitJoined reads events until name's join in room arrives.
func waitJoined(t *testing.T, s *client.ServerStream[chatv1.RoomEvent], name string) *chatv1.Member {
	t.Helper()
	for range 10 {
		if j := next(t, s).GetJoined(); j.GetName() == name {
			return j
		}
	}
	t.Fatalf("%s never joined", name)
	return nil
}

func names(ms []*chatv1.Member) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.GetName()
	}
	return out
}

// TestChatRoundTrip: two Go clients, one per codec, in one room, through
// the authenticated WebSocket endpoint: presence, messages, rooms, leave.
func TestChatRoundTrip(t *testing.T) {
	t.Parallel()
	n := startTestNode(t, nodeConfig{Name: "solo"})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	alice := dialChat(t, n, "alice", codec.JSON())
	bob := dialChat(t, n, "bob", codec.Proto())

	as, err := alice.Watch(ctx, &chatv1.WatchRequest{Room: "lobby"})
	if err != nil {
		t.Fatal(err)
	}
	defer as.Close()
	me := waitJoined(t, as, "alice")
	if !strings.HasPrefix(me.GetConnectionId(), "solo/") || me.GetJoinedAt() == nil {
		t.Fatalf("own join %v", me)
	}
	bs, err := bob.Watch(ctx, &chatv1.WatchRequest{Room: "lobby"})
	if err != nil {
		t.Fatal(err)
	}
	waitJoined(t, bs, "bob")
	waitJoined(t, as, "bob")

	pres, err := alice.GetPresence(ctx, &chatv1.GetPresenceRequest{Room: "lobby"})
	if err != nil {
		t.Fatal(err)
	}
	if got := names(pres.GetMembers()); !slices.Equal(got, []string{"alice", "bob"}) {
		t.Fatalf("presence %v", got)
	}

	if _, err := bob.Send(ctx, &chatv1.SendRequest{Room: "lobby", Text: "hi «alice» <&>"}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*client.ServerStream[chatv1.RoomEvent]{as, bs} {
		m := nextMessage(t, s)
		if m.GetText() != "hi «alice» <&>" || m.GetAuthor().GetName() != "bob" || !strings.HasPrefix(m.GetAuthor().GetConnectionId(), "solo/") {
			t.Fatalf("message %v", m)
		}
	}

	rooms, err := bob.ListRooms(ctx, &chatv1.ListRoomsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rooms.GetRooms()) != 1 || rooms.GetRooms()[0].GetName() != "lobby" || rooms.GetRooms()[0].GetMembers() != 2 {
		t.Fatalf("rooms %v", rooms.GetRooms())
	}

	// Bob leaves: alice sees it.
	_ = bs.Close()
	for range 10 {
		if l := next(t, as).GetLeft(); l != nil {
			if l.GetName() != "bob" {
				t.Fatalf("left %v", l)
			}
			return
		}
	}
	t.Fatal("no leave event")
}

func TestChatRefusesBadCalls(t *testing.T) {
	t.Parallel()
	n := startTestNode(t, nodeConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := dialChat(t, n, "carol", codec.JSON())
	for _, tc := range []struct {
		name string
		call func() error
		code protows.Code
	}{
		{"send without watching", func() error {
			_, err := c.Send(ctx, &chatv1.SendRequest{Room: "lobby", Text: "hi"})
			return err
		}, protows.CodeFailedPrecondition},
		{"empty text", func() error {
			_, err := c.Send(ctx, &chatv1.SendRequest{Room: "lobby"})
			return err
		}, protows.CodeInvalidArgument},
		{"text too long", func() error {
			_, err := c.Send(ctx, &chatv1.SendRequest{Room: "lobby", Text: strings.Repeat("x", maxTextBytes+1)})
			return err
		}, protows.CodeInvalidArgument},
		{"room too long", func() error {
			_, err := c.GetPresence(ctx, &chatv1.GetPresenceRequest{Room: strings.Repeat("é", maxRoomRunes+1)})
			return err
		}, protows.CodeInvalidArgument},
		{"watch without room", func() error {
			s, err := c.Watch(ctx, &chatv1.WatchRequest{}, client.NoResubscribe())
			if err != nil {
				return err
			}
			defer s.Close()
			for s.Receive() {
			}
			return s.Err()
		}, protows.CodeInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := protows.CodeOf(tc.call()); got != tc.code {
				t.Fatalf("code %v, want %v", got, tc.code)
			}
		})
	}
}

// TestOriginRefused: the WebSocket endpoint takes the demo's own origins
// only, including against DNS rebinding, where Host and Origin agree on a
// foreign name; and a connection without a token gets nothing done.
func TestOriginRefused(t *testing.T) {
	t.Parallel()
	n := startTestNode(t, nodeConfig{})
	wsURL := "ws" + strings.TrimPrefix(n.url, "http") + "/ws"
	port := n.url[strings.LastIndex(n.url, ":")+1:]
	for _, tc := range []struct {
		name, origin, host string
		status             int
	}{
		{"own origin", n.url, "", http.StatusSwitchingProtocols},
		{"localhost", "http://localhost:" + port, "", http.StatusSwitchingProtocols},
		{"foreign", "http://evil.example", "", http.StatusForbidden},
		{"other port", "http://127.0.0.1:1", "", http.StatusForbidden},
		{"https", "https://127.0.0.1:" + port, "", http.StatusForbidden},
		{"DNS rebinding", "http://evil.example:" + port, "evil.example:" + port, http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{"Origin": {tc.origin}}
			if tc.host != "" {
				h.Set("Host", tc.host)
			}
			d := websocket.Dialer{Subprotocols: []string{codec.JSONName}, HandshakeTimeout: 5 * time.Second}
			ws, res, err := d.Dial(wsURL, h)
			if ws != nil {
				_ = ws.Close()
			}
			if res == nil {
				t.Fatalf("no response: %v", err)
			}
			if res.StatusCode != tc.status {
				t.Fatalf("status %d, want %d (%v)", res.StatusCode, tc.status, err)
			}
		})
	}

	t.Run("Go client with a foreign origin", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := client.Dial(ctx, wsURL, client.WithOrigin("http://evil.example"),
			client.WithTokenSource(tokenSource(n, "mallory", nil)), client.WithLogger(quiet))
		if protows.CodeOf(err) != protows.CodePermissionDenied {
			t.Fatalf("dial: %v, want permission_denied", err)
		}
	})
	t.Run("no token", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		cl, err := client.Dial(ctx, wsURL, client.WithLogger(quiet))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		_, err = chatv1.NewChatServiceClient(cl).ListRooms(ctx, &chatv1.ListRoomsRequest{})
		if protows.CodeOf(err) != protows.CodeUnauthenticated {
			t.Fatalf("ListRooms without a token: %v", err)
		}
	})
}

// TestTokenRefreshKeepsTheConnection: with 2 s tokens the client fetches
// new ones in band and its connection outlives several of them.
func TestTokenRefreshKeepsTheConnection(t *testing.T) {
	t.Parallel()
	n := startTestNode(t, nodeConfig{TokenTTL: minTokenTTL})
	var fetched atomic.Int32
	var reconnects atomic.Int32
	c := dialChat(t, n, "dora", codec.Proto(),
		client.WithTokenSource(tokenSource(n, "dora", &fetched)),
		client.WithStateFunc(func(s client.State, _ error) {
			if s == client.StateReconnecting {
				reconnects.Add(1)
			}
		}))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := c.Watch(ctx, &chatv1.WatchRequest{Room: "r"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	waitJoined(t, s, "dora")
	time.Sleep(3 * minTokenTTL / 2) // past the first token's expiry
	if _, err := c.Send(ctx, &chatv1.SendRequest{Room: "r", Text: "still here"}); err != nil {
		t.Fatal(err)
	}
	if m := nextMessage(t, s); m.GetText() != "still here" {
		t.Fatalf("message %v", m)
	}
	if s.Gap() {
		t.Fatal("the stream was re-opened: the connection did not survive")
	}
	if fetched.Load() < 2 || reconnects.Load() != 0 {
		t.Fatalf("tokens fetched %d (want >= 2), reconnects %d (want 0)", fetched.Load(), reconnects.Load())
	}
}

func TestPage(t *testing.T) {
	t.Parallel()
	n := startTestNode(t, nodeConfig{})
	for _, tc := range []struct {
		path, contentType, contains string
		status                      int
	}{
		{"/", "text/html", `src="app.js"`, 200},
		{"/app.js", "text/javascript", `"/token"`, 200},
		{"/style.css", "text/css", "#messages", 200},
		{"/favicon.svg", "image/svg+xml", "<svg", 200},
		{"/missing.js", "", "", 404},
		{"/token", "", "", 405},
	} {
		t.Run(tc.path, func(t *testing.T) {
			res, err := http.Get(n.url + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			body := new(strings.Builder)
			_, _ = io.Copy(body, res.Body)
			res.Body.Close()
			if res.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", res.StatusCode, tc.status)
			}
			if tc.status != 200 {
				return
			}
			if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, tc.contentType) {
				t.Errorf("Content-Type %q", ct)
			}
			if !strings.Contains(body.String(), tc.contains) {
				t.Errorf("body lacks %q", tc.contains)
			}
			if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "connect-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
				t.Errorf("CSP %q", csp)
			}
			if res.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Error("no nosniff")
			}
		})
	}
}

// TestSendWaitsForTheJoin: a Send that comes just before its connection's
// Watch joined the room (a page that reconnects sends its queued messages
// while the Watch is re-opened) waits for the membership and is delivered,
// once, with its idempotency key.
func TestSendWaitsForTheJoin(t *testing.T) {
	n := startTestNode(t, nodeConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	alice := dialChat(t, n, "alice", codec.Proto())
	sent := make(chan error, 1)
	go func() {
		_, err := alice.Send(ctx, &chatv1.SendRequest{Room: "lobby", Text: "queued"}, client.ExactlyOnce())
		sent <- err
	}()
	time.Sleep(100 * time.Millisecond) // the Send waits on the server
	as, err := alice.Watch(ctx, &chatv1.WatchRequest{Room: "lobby"})
	if err != nil {
		t.Fatal(err)
	}
	defer as.Close()
	if err := <-sent; err != nil {
		t.Fatalf("send before the join: %v", err)
	}
	if m := nextMessage(t, as); m.GetText() != "queued" {
		t.Fatalf("message %v", m)
	}
}
