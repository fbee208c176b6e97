package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/protows/protows/codec"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, strings.TrimSpace(string(b))
}

// TestProbes: the demo serves /readyz and /healthz; during its graceful
// shutdown readiness has failed by the time a client gets its 1001, and
// the HTTP server still answers the probes then.
func TestProbes(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n, err := startNode(nodeConfig{Listener: ln, TokenTTL: time.Minute, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, n.url+"/readyz"); code != http.StatusOK || body != "ready" {
		t.Errorf("readyz: %d %q", code, body)
	}
	if code, body := get(t, n.url+"/healthz"); code != http.StatusOK || body != "live" {
		t.Errorf("healthz: %d %q", code, body)
	}

	d := websocket.Dialer{Subprotocols: []string{codec.JSONName}}
	ws, _, err := d.Dial("ws"+strings.TrimPrefix(n.url, "http")+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	// Hold back our close frame, so that the server waits for it (up to
	// a second) before it drops the connection and moves on to stopping
	// its HTTP server.
	ws.SetCloseHandler(func(int, string) error { return nil })

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- n.shutdown(ctx)
	}()
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := ws.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseGoingAway) {
		t.Fatalf("want close 1001, got %v", err)
	}
	if code, body := get(t, n.url+"/readyz"); code != http.StatusServiceUnavailable || !strings.HasPrefix(body, "not ready") {
		t.Errorf("readyz during the drain: %d %q", code, body)
	}
	if code, _ := get(t, n.url+"/healthz"); code != http.StatusOK {
		t.Errorf("healthz during the drain: %d", code)
	}
	ws.Close()
	if err := <-done; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}
