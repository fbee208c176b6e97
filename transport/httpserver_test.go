package transport_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gorilla/websocket"
	"github.com/protows/protows/codec"
	testv1 "github.com/protows/protows/gen/go/protows/test/v1"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"github.com/protows/protows/internal/memnet"
	"github.com/protows/protows/internal/testservice"
	"github.com/protows/protows/router"
	"github.com/protows/protows/transport"
)

func TestNewHTTPServerDefaults(t *testing.T) {
	t.Parallel()
	h := http.NewServeMux()
	hs := transport.NewHTTPServer("127.0.0.1:0", h)
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"Addr", hs.Addr, "127.0.0.1:0"},
		{"Handler", hs.Handler, http.Handler(h)},
		{"ReadHeaderTimeout", hs.ReadHeaderTimeout, 5 * time.Second},
		{"ReadTimeout", hs.ReadTimeout, 30 * time.Second},
		{"IdleTimeout", hs.IdleTimeout, 60 * time.Second},
		{"MaxHeaderBytes", hs.MaxHeaderBytes, 64 << 10},
		{"WriteTimeout", hs.WriteTimeout, time.Duration(0)},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
}

// TestSlowloris: a client that dribbles its request headers is cut off by
// ReadHeaderTimeout, while a WebSocket served by the same http.Server
// outlives it, and ReadTimeout and WriteTimeout too.
func TestSlowloris(t *testing.T) {
	t.Parallel()
	synctest.Test(t, testSlowloris)
}

func testSlowloris(t *testing.T) {
	r := router.New(router.WithLogger(quietLogger()))
	if err := testservice.Register(r); err != nil {
		t.Fatal(err)
	}
	srv := transport.NewServer(r, transport.Config{Logger: quietLogger()})
	hs := transport.NewHTTPServer("", srv)
	const headerTimeout = 300 * time.Millisecond
	hs.ReadHeaderTimeout = headerTimeout
	// Shorter: a cut at headerTimeout is ReadHeaderTimeout's.
	hs.ReadTimeout = headerTimeout / 2
	hs.WriteTimeout = headerTimeout / 2
	// In memory, so that the timeouts run on the bubble's clock.
	ln := memnet.Listen()
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(ctx)
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	}()
	url := "ws://" + ln.Addr().String() + "/ws"

	// A WebSocket opened first lives longer than the http.Server's
	// timeouts.
	ws := dialOn(t, websocket.Dialer{NetDialContext: ln.DialContext}, url, codec.Proto(), nil)
	opened := time.Now()

	conn, err := ln.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	if _, err := io.WriteString(conn, "GET /ws HTTP/1.1\r\nHost: "+ln.Addr().String()+"\r\n"); err != nil {
		t.Fatal(err)
	}
	// Dribble a header byte every 20 ms, for up to 10 s, until the server
	// hangs up; the reader sees the end.
	cut := make(chan time.Duration, 1)
	go func() {
		_, _ = io.Copy(io.Discard, conn)
		cut <- time.Since(start)
	}()
	ticker := time.NewTicker(20 * time.Millisecond)
	defer ticker.Stop()
	header := []byte("X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
	var after time.Duration
	for i := 0; ; i++ {
		select {
		case after = <-cut:
		case <-ticker.C:
			if time.Since(start) > 10*time.Second {
				t.Fatal("a client dribbling its headers was not cut off")
			}
			_ = conn.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = conn.Write(header[i%len(header) : i%len(header)+1])
			continue
		}
		break
	}
	if after != headerTimeout {
		t.Fatalf("cut off after %v, want at the header timeout %v", after, headerTimeout)
	}

	time.Sleep(headerTimeout) // on the bubble's clock
	if time.Since(opened) <= headerTimeout {
		t.Fatal("the WebSocket is not older than the timeouts yet")
	}
	if e := ws.call(1, testservice.EchoMethod, &testv1.EchoRequest{Text: "alive"}); e.GetKind() != protowsv1.Kind_KIND_REPLY {
		t.Fatalf("the WebSocket did not outlive the http.Server's timeouts: %v", e)
	}
	ws.ws.Close()
}
