package main_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	protows "github.com/protows/protows"
	"github.com/protows/protows/client"
	"github.com/protows/protows/codec"
	reflectionv1 "github.com/protows/protows/gen/go/protows/reflection/v1"
	testv1 "github.com/protows/protows/gen/go/protows/test/v1"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"github.com/protows/protows/internal/testservice"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/types/known/durationpb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestTestServer builds and runs the binary as other test suites do: it
// reads the address line, mints a token, calls Whoami with it, and sees
// the 1001 close of a graceful shutdown on SIGTERM.
func TestTestServer(t *testing.T) {
	t.Parallel()
	cmd, base := start(t, "-auth", "jwt")
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()

	resp, err := http.Post(base+"/token?sub=alice&ttl=1m", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-Expires-At") == "" {
		t.Fatalf("token: %d %s", resp.StatusCode, tok)
	}

	wsURL := "ws" + strings.TrimPrefix(base, "http") + "/ws"
	// Without a token: in-band authentication is required.
	d := websocket.Dialer{Subprotocols: []string{codec.JSONName}}
	ws, _, err := d.Dial(wsURL, http.Header{"Authorization": {"Bearer " + string(tok)}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	c := codec.JSON()
	frame, _ := codec.MarshalFrame(c, &protowsv1.Envelope{Id: 1, Kind: protowsv1.Kind_KIND_REQUEST, Method: testservice.WhoamiMethod})
	if err := ws.WriteMessage(websocket.TextMessage, frame); err != nil {
		t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, b, err := ws.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	envs, err := c.DecodeFrame(b)
	if err != nil {
		t.Fatal(err)
	}
	var who testv1.WhoamiResponse
	if err := c.UnmarshalPayload(envs[0].GetPayload(), &who); err != nil {
		t.Fatal(err)
	}
	if who.GetSubject() != "alice" || who.GetSubprotocol() != codec.JSONName || who.GetConnectionId() == "" {
		t.Fatalf("whoami %v", &who)
	}
	// A bad token is refused at the handshake.
	if _, resp, err := d.Dial(wsURL, http.Header{"Authorization": {"Bearer x"}}); err == nil || resp.StatusCode != 401 {
		t.Fatalf("bad token: %v", resp)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_, _, err = ws.ReadMessage()
	if !websocket.IsCloseError(err, websocket.CloseGoingAway) {
		t.Fatalf("want close 1001, got %v", err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v", err)
	}
}

// TestProbes: the test server serves /readyz and /healthz; on SIGTERM
// readiness fails while a call still runs, before its connection gets the
// 1001 close, and liveness stays up.
func TestProbes(t *testing.T) {
	t.Parallel()
	cmd, base := start(t)
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	probe := func(path string) int {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if probe("/readyz") != 200 || probe("/healthz") != 200 {
		t.Fatal("not ready and live at start")
	}
	d := websocket.Dialer{Subprotocols: []string{codec.JSONName}}
	ws, _, err := d.Dial("ws"+strings.TrimPrefix(base, "http")+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	c := codec.JSON()
	payload, _ := c.AppendPayload(nil, &testv1.SleepRequest{Delay: durationpb.New(time.Second)})
	frame, _ := codec.MarshalFrame(c, &protowsv1.Envelope{Id: 1, Kind: protowsv1.Kind_KIND_REQUEST, Method: testservice.SleepMethod, Payload: payload})
	if err := ws.WriteMessage(websocket.TextMessage, frame); err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	go func() {
		_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				closed <- err
				return
			}
		}
	}()
	time.Sleep(100 * time.Millisecond) // the call runs
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); probe("/readyz") != http.StatusServiceUnavailable; {
		if time.Now().After(deadline) {
			t.Fatal("readyz never failed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case err := <-closed:
		t.Fatalf("the connection ended before readiness failed: %v", err)
	default:
	}
	if probe("/healthz") != 200 {
		t.Error("healthz failed during the drain")
	}
	if err := <-closed; !websocket.IsCloseError(err, websocket.CloseGoingAway) {
		t.Fatalf("want close 1001, got %v", err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v", err)
	}
}

// start builds the binary, runs it with args and returns it with its base
// URL, read from its first line.
func start(t *testing.T, args ...string) (*exec.Cmd, string) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "protows-testserver")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, args...)
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatal(err)
	}
	base, ok := strings.CutPrefix(strings.TrimSpace(line), "listening on ")
	if !ok || !strings.HasPrefix(base, "http://127.0.0.1:") {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("first line %q", line)
	}
	return cmd, base
}

// TestReflectionFlag: -reflection serves the reflection service, which
// is off without it.
func TestReflectionFlag(t *testing.T) {
	t.Parallel()
	for _, on := range []bool{false, true} {
		var args []string
		if on {
			args = []string{"-reflection"}
		}
		cmd, base := start(t, args...)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := client.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/ws")
		if err != nil {
			t.Fatal(err)
		}
		res, err := reflectionv1.NewReflectionServiceClient(c).ListServices(ctx, &reflectionv1.ListServicesRequest{})
		want := []string{"protows.reflection.v1.ReflectionService", "protows.test.v1.TestService"}
		switch {
		case on && (err != nil || !slices.Equal(res.GetServices(), want)):
			t.Errorf("-reflection: %v, %v", res, err)
		case !on && protows.CodeOf(err) != protows.CodeUnimplemented:
			t.Errorf("without -reflection: %v, want unimplemented", err)
		}
		_ = c.Close()
		cancel()
		_ = cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Errorf("exit: %v", err)
		}
	}
}
