package transport

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"testing/synctest"
	"time"
)

// TestLiveWedged: a server whose lock stays held fails its liveness probe
// after liveLockWait, and recovers once the lock is free.
func TestLiveWedged(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		s := NewServer(nil, Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		h := s.LiveHandler()

		s.mu.Lock() // a wedged server
		start := time.Now()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
		if rec.Code != http.StatusServiceUnavailable || time.Since(start) < liveLockWait {
			t.Errorf("wedged: %d %q after %v", rec.Code, rec.Body.String(), time.Since(start))
		}
		s.mu.Unlock()

		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
		if rec.Code != http.StatusOK {
			t.Errorf("free: %d %q", rec.Code, rec.Body.String())
		}
		if err := s.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
}
