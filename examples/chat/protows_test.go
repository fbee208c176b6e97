package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/protows/protows/codec"
	chatv1 "github.com/protows/protows/gen/go/examples/chat/v1"
)

// TestProtowsCommand runs the protows command (cmd/protows, built here)
// against the demo with -reflection: it lists, describes and calls the
// chat service with a token from POST /token, and listens to a room while
// a Go client posts to it. Its exit statuses are those of the real binary.
func TestProtowsCommand(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "protows")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/protows").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	n := startTestNode(t, nodeConfig{Name: "solo", Reflection: true})
	ws := "ws" + strings.TrimPrefix(n.url, "http") + "/ws"
	res, body := postToken(t, n, "cli", "")
	var tok tokenResponse
	if err := json.Unmarshal(body, &tok); err != nil || res.StatusCode != 200 {
		t.Fatalf("token: %d %s", res.StatusCode, body)
	}
	protows := func(ctx context.Context, args ...string) (stdout, stderr string, status int) {
		t.Helper()
		var o, e bytes.Buffer
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		var exit *exec.ExitError
		switch {
		case errors.As(err, &exit):
			status = exit.ExitCode()
		case err != nil:
			t.Fatal(err)
		}
		return o.String(), e.String(), status
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	for _, c := range []string{"proto", "json"} {
		auth := []string{"--codec", c, "--token", tok.Token}
		out, errOut, status := protows(ctx, append([]string{"list", ws}, auth...)...)
		if want := "examples.chat.v1.ChatService\nprotows.reflection.v1.ReflectionService\n"; status != 0 || out != want {
			t.Errorf("%s list: status %d, stdout %q, stderr %q", c, status, out, errOut)
		}
		out, errOut, status = protows(ctx, append([]string{"describe", ws, "examples.chat.v1.ChatService"}, auth...)...)
		if status != 0 || !strings.Contains(out, "  rpc Watch(examples.chat.v1.WatchRequest) returns (stream examples.chat.v1.RoomEvent);\n") {
			t.Errorf("%s describe: status %d, stdout %q, stderr %q", c, status, out, errOut)
		}
		out, errOut, status = protows(ctx, append([]string{"describe", ws, "examples.chat.v1.RoomEvent"}, auth...)...)
		if status != 0 || !strings.Contains(out, "  oneof event {\n") || !strings.Contains(out, "google.protobuf.Timestamp time = ") {
			t.Errorf("%s describe RoomEvent: status %d, stdout %q, stderr %q", c, status, out, errOut)
		}
		out, errOut, status = protows(ctx, append([]string{"call", ws, "/examples.chat.v1.ChatService/ListRooms", "{}"}, auth...)...)
		if status != 0 || out != "{}\n" {
			t.Errorf("%s call ListRooms: status %d, stdout %q, stderr %q", c, status, out, errOut)
		}
		// Send needs a Watch on the same connection: the command's
		// connection has none, and the exit status carries the code.
		out, errOut, status = protows(ctx, append([]string{"call", ws, "/examples.chat.v1.ChatService/Send", `{"room":"lobby","text":"hi"}`}, auth...)...)
		if status != 64+9 || out != "" || errOut != "failed_precondition: watch room \"lobby\" before sending to it\n" {
			t.Errorf("%s call Send: status %d, stdout %q, stderr %q", c, status, out, errOut)
		}
		// Without a token the demo refuses the handshake.
		_, errOut, status = protows(ctx, "list", "--codec", c, ws)
		if status != 64+16 || !strings.HasPrefix(errOut, "unauthenticated: ") {
			t.Errorf("%s list without a token: status %d, stderr %q", c, status, errOut)
		}
	}

	// listen: the command's own join, then a message a Go client posts.
	alice := dialChat(t, n, "alice", codec.JSON())
	as, err := alice.Watch(ctx, &chatv1.WatchRequest{Room: "lobby"})
	if err != nil {
		t.Fatal(err)
	}
	defer as.Close()
	waitJoined(t, as, "alice")
	type outcome struct {
		stdout, stderr string
		status         int
	}
	done := make(chan outcome, 1)
	go func() {
		o, e, s := protows(ctx, "listen", "--count", "2", "--token", tok.Token, ws, "/examples.chat.v1.ChatService/Watch", `{"room":"lobby"}`)
		done <- outcome{o, e, s}
	}()
	waitJoined(t, as, "cli")
	if _, err := alice.Send(ctx, &chatv1.SendRequest{Room: "lobby", Text: "hello «cli»"}); err != nil {
		t.Fatal(err)
	}
	var got outcome
	select {
	case got = <-done:
	case <-ctx.Done():
		t.Fatal("listen did not end")
	}
	lines := strings.Split(strings.TrimSuffix(got.stdout, "\n"), "\n")
	if got.status != 0 || len(lines) != 2 {
		t.Fatalf("listen: status %d, stdout %q, stderr %q", got.status, got.stdout, got.stderr)
	}
	var evs [2]struct {
		Seq     uint64 `json:"seq"`
		Message struct {
			Room   string `json:"room"`
			Joined *struct {
				Name string `json:"name"`
			} `json:"joined"`
			Message *struct {
				Text string `json:"text"`
			} `json:"message"`
		} `json:"message"`
	}
	for i, l := range lines {
		if err := json.Unmarshal([]byte(l), &evs[i]); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
	}
	if evs[0].Message.Joined == nil || evs[0].Message.Joined.Name != "cli" || evs[0].Message.Room != "lobby" {
		t.Errorf("first event %s, want the command's own join", lines[0])
	}
	if evs[1].Message.Message == nil || evs[1].Message.Message.Text != "hello «cli»" {
		t.Errorf("second event %s, want alice's message", lines[1])
	}
	// The rooms keep history (docs/PROTOCOL.md section 14): a message
	// carries its offset in the room; presence events are not part of the
	// history and carry none.
	if evs[0].Seq != 0 || evs[1].Seq == 0 {
		t.Errorf("seqs %d, %d: want 0 for the join and the room offset for the message", evs[0].Seq, evs[1].Seq)
	}
}

// TestHelpExitsZero: -help prints the usage and is a success; a bad flag
// or argument is a usage error (2); the flags include -reflection.
func TestHelpExitsZero(t *testing.T) {
	t.Parallel()
	var stderr bytes.Buffer
	err := run(context.Background(), []string{"-help"}, &bytes.Buffer{}, &stderr)
	if !errors.Is(err, flag.ErrHelp) || exitStatus(err) != 0 {
		t.Errorf("-help: %v, exit status %d", err, exitStatus(err))
	}
	if !strings.Contains(stderr.String(), "-reflection") {
		t.Errorf("usage %q does not show -reflection", stderr.String())
	}
	for _, args := range [][]string{{"-nope"}, {"extra"}, {"-cluster", "17"}, {"-origin", "chat.example.com"}} {
		err := run(context.Background(), args, &bytes.Buffer{}, &bytes.Buffer{})
		if exitStatus(err) != 2 {
			t.Errorf("%q: %v, exit status %d, want 2", args, err, exitStatus(err))
		}
	}
	if exitStatus(nil) != 0 || exitStatus(errors.New("listen tcp: address in use")) != 1 {
		t.Error("exitStatus of nil or of a failure")
	}
}
