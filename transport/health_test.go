package transport_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	protows "github.com/protows/protows"
	"github.com/protows/protows/codec"
	testv1 "github.com/protows/protows/gen/go/protows/test/v1"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"github.com/protows/protows/internal/testservice"
	"github.com/protows/protows/router"
	"github.com/protows/protows/transport"
	"google.golang.org/protobuf/types/known/durationpb"
)

// probe GETs url and returns the status and body.
func probe(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, strings.TrimSpace(string(b))
}

// probeServer serves the transport at /ws and its probes at /readyz and
// /healthz, as the demo and the test server do.
func probeServer(t *testing.T, checks ...transport.ReadyCheck) (*transport.Server, *httptest.Server) {
	t.Helper()
	r := router.New(router.WithLogger(quietLogger()))
	if err := testservice.Register(r); err != nil {
		t.Fatal(err)
	}
	srv := transport.NewServer(r, transport.Config{Logger: quietLogger()})
	mux := http.NewServeMux()
	mux.Handle("/ws", srv)
	mux.Handle("GET /readyz", srv.ReadyHandler(checks...))
	mux.Handle("GET /healthz", srv.LiveHandler())
	hs := httptest.NewServer(mux)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		hs.Close()
	})
	return srv, hs
}

// TestProbesDuringShutdown is a load balancer's view of a graceful
// shutdown: it polls /readyz while a client has a call running. Readiness
// turns 503 as soon as Shutdown starts, before the connection gets its
// 1001, and liveness stays 200 throughout the drain.
func TestProbesDuringShutdown(t *testing.T) {
	srv, hs := probeServer(t)
	if code, body := probe(t, hs.URL+"/readyz"); code != http.StatusOK || body != "ready" {
		t.Fatalf("readyz before shutdown: %d %q", code, body)
	}
	if code, body := probe(t, hs.URL+"/healthz"); code != http.StatusOK || body != "live" {
		t.Fatalf("healthz before shutdown: %d %q", code, body)
	}

	cl := dial(t, "ws"+strings.TrimPrefix(hs.URL, "http")+"/ws", codec.Proto(), nil)
	// A call that keeps the connection open for a while into the drain:
	// the 1001 waits for its reply.
	cl.send(cl.request(1, testv1.TestServiceSleepMethod, &testv1.SleepRequest{Delay: durationpb.New(300 * time.Millisecond)}))

	// The balancer polls every 5 ms.
	type sample struct {
		sent, answered time.Time
		status         int
	}
	var (
		mu      sync.Mutex
		samples []sample
		stop    = make(chan struct{})
		polled  sync.WaitGroup
	)
	polled.Add(1)
	go func() {
		defer polled.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			sent := time.Now()
			res, err := http.Get(hs.URL + "/readyz")
			if err != nil {
				continue
			}
			res.Body.Close()
			mu.Lock()
			samples = append(samples, sample{sent, time.Now(), res.StatusCode})
			mu.Unlock()
		}
	}()
	time.Sleep(50 * time.Millisecond) // some samples of the ready server

	shutdownStart := time.Now()
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		shut <- srv.Shutdown(ctx)
	}()
	// drainAt: from here on every probe must fail.
	for srv.Ready() == nil {
		time.Sleep(time.Millisecond)
	}
	drainAt := time.Now()

	// While the call runs the process is live and not ready.
	time.Sleep(50 * time.Millisecond)
	if code, _ := probe(t, hs.URL+"/healthz"); code != http.StatusOK {
		t.Errorf("healthz during the drain: %d, want 200", code)
	}

	var closedAt time.Time
	for closedAt.IsZero() {
		e, err := cl.next(5 * time.Second)
		var ce *websocket.CloseError
		switch {
		case errors.As(err, &ce):
			if protows.CloseCode(ce.Code) != protows.CloseGoingAway {
				t.Fatalf("closed with %d, want 1001", ce.Code)
			}
			closedAt = time.Now()
			// At the moment the client holds its 1001, readiness
			// has failed already.
			if code, body := probe(t, hs.URL+"/readyz"); code != http.StatusServiceUnavailable || body != "not ready: "+transport.ErrDraining.Error() {
				t.Errorf("readyz when the 1001 arrived: %d %q", code, body)
			}
		case err != nil:
			t.Fatal(err)
		case e.GetKind() != protowsv1.Kind_KIND_REPLY:
			t.Fatalf("the running call got %v, want its REPLY", e)
		}
	}
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	close(stop)
	polled.Wait()

	mu.Lock()
	defer mu.Unlock()
	var readyBefore bool
	var firstFail time.Time
	for _, s := range samples {
		if s.status == http.StatusOK && s.answered.Before(shutdownStart) {
			readyBefore = true
		}
		if s.status == http.StatusServiceUnavailable && firstFail.IsZero() {
			firstFail = s.answered
		}
		if s.sent.After(drainAt) && s.status != http.StatusServiceUnavailable {
			t.Errorf("readyz answered %d to a probe sent %v after the drain started", s.status, s.sent.Sub(drainAt))
		}
	}
	if !readyBefore {
		t.Error("the balancer never saw the server ready")
	}
	if firstFail.IsZero() || !firstFail.Before(closedAt) {
		t.Errorf("the balancer saw readiness fail at %v, the client got 1001 at %v (since Shutdown)",
			firstFail.Sub(shutdownStart), closedAt.Sub(shutdownStart))
	}
	t.Logf("%d samples; the balancer saw readiness fail %v after Shutdown started, the client got 1001 %v after",
		len(samples), firstFail.Sub(shutdownStart), closedAt.Sub(shutdownStart))
}

// TestReadyChecks: a failing check makes the server not ready, with its
// error; liveness does not depend on it.
func TestReadyChecks(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	brokerErr := errors.New("broker disconnected")
	var failing bool
	check := func(context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		if failing {
			return brokerErr
		}
		return nil
	}
	_, hs := probeServer(t, check)
	if code, _ := probe(t, hs.URL+"/readyz"); code != http.StatusOK {
		t.Errorf("readyz with a passing check: %d", code)
	}
	mu.Lock()
	failing = true
	mu.Unlock()
	if code, body := probe(t, hs.URL+"/readyz"); code != http.StatusServiceUnavailable || body != "not ready: broker disconnected" {
		t.Errorf("readyz with a failing check: %d %q", code, body)
	}
	if code, _ := probe(t, hs.URL+"/healthz"); code != http.StatusOK {
		t.Errorf("healthz with a failing readiness check: %d", code)
	}
}
