package transport

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// ErrDraining is Ready's error once Shutdown has started.
var ErrDraining = errors.New("transport: server is draining")

// Ready reports whether the server accepts new connections: nil until
// Shutdown starts, ErrDraining from then on. The flag is set before any
// connection is told to go (STREAM_END unavailable, close 1001), so a load
// balancer that polls ReadyHandler stops sending clients here no later than
// they are told to leave.
func (s *Server) Ready() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		return ErrDraining
	}
	return nil
}

// ReadyCheck is one more condition of readiness (ReadyHandler), such as the
// hub's broker being connected. It gets the probe request's context and
// returns nil when the server may take new clients.
type ReadyCheck func(ctx context.Context) error

// ReadyHandler serves a load balancer's readiness probe (mount it at
// /readyz): 200 "ready" while Ready and every check return nil, 503 with
// the first failure otherwise. It fails from the moment Shutdown starts,
// while existing connections drain, so the balancer sends new connections
// elsewhere; the clients told to leave with 1001 reconnect through it.
func (s *Server) ReadyHandler(checks ...ReadyCheck) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := s.Ready()
		for _, check := range checks {
			if err != nil {
				break
			}
			err = check(r.Context())
		}
		if err != nil {
			probeAnswer(w, http.StatusServiceUnavailable, "not ready: "+err.Error())
			return
		}
		probeAnswer(w, http.StatusOK, "ready")
	})
}

// liveLockWait is how long LiveHandler waits for the server's lock before
// it reports the server wedged.
const liveLockWait = time.Second

// LiveHandler serves a liveness probe (mount it at /healthz): 200 "live"
// while the server's bookkeeping answers, 503 when its lock, which every
// handshake and every connection's end take briefly, stayed held for a
// second: a wedged server that only a restart repairs. Liveness does not
// fail while the server drains: an orchestrator that restarted a draining
// process would cut its drain short.
func (s *Server) LiveHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := s.live(r.Context()); err != nil {
			probeAnswer(w, http.StatusServiceUnavailable, "not live: "+err.Error())
			return
		}
		probeAnswer(w, http.StatusOK, "live")
	})
}

// live takes and releases the server's lock, polling so that a probe of a
// wedged server leaves no goroutine behind.
func (s *Server) live(ctx context.Context) error {
	deadline := time.Now().Add(liveLockWait)
	for !s.mu.TryLock() {
		if time.Now().After(deadline) {
			return fmt.Errorf("the server's lock was held for %v", liveLockWait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	s.mu.Unlock()
	return nil
}

// probeAnswer writes a probe's plain-text answer, never cached.
func probeAnswer(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = fmt.Fprintln(w, msg)
}
