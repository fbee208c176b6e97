package protowsbench

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/protows/protows/benchmarks/harness"
	"github.com/protows/protows/benchmarks/payload"
)

// TestBroadcastMemberEndFailsRun: a member whose stream ends during the
// run (the server ends a room stream whose reader ran out of credit, say)
// fails the run at once, naming the member, rather than leaving the run
// to wait out the drain for deliveries that will never arrive.
func TestBroadcastMemberEndFailsRun(t *testing.T) {
	srv, err := NewServer()
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	defer func() {
		ts.Close()
		_ = srv.Close()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := harness.Params{Codec: harness.CodecProto, Size: payload.Small, Conns: 3, InFlight: 2, Messages: 1 << 30}
	load, err := connectBroadcast(ctx, "ws"+strings.TrimPrefix(ts.URL, "http")+"/", p, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer load.Close()
	l := load.(*broadcastLoad)
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- l.Run(ctx, harness.NewRecorder(0, p.Conns, nil)) }()
	for l.run.Load() == nil {
		time.Sleep(time.Millisecond)
	}
	// The member's stream ends while the publisher goes on.
	_ = l.streams[1].Close()
	err = <-done
	if err == nil || !strings.Contains(err.Error(), "member 1's stream ended") {
		t.Fatalf("Run returned %v, want the end of member 1's stream", err)
	}
	if d := time.Since(start); d >= ioTimeout {
		t.Errorf("Run returned after %v: it waited out the drain", d)
	}
}
