package transport_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/protows/protows/codec"
	"github.com/protows/protows/transport"
)

// recordHandler keeps the records of the connection lines.
type recordHandler struct {
	level slog.Level
	mu    sync.Mutex
	recs  []slog.Record
}

func (h *recordHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }
func (h *recordHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &attrsHandler{h: h, attrs: as}
}
func (h *recordHandler) WithGroup(string) slog.Handler { return h }
func (h *recordHandler) Handle(_ context.Context, r slog.Record) error {
	if strings.HasPrefix(r.Message, "protows: connection") {
		h.mu.Lock()
		h.recs = append(h.recs, r.Clone())
		h.mu.Unlock()
	}
	return nil
}

// lines returns the connection lines so far, each as its level, message
// and attributes.
func (h *recordHandler) lines() []map[string]any {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []map[string]any
	for _, r := range h.recs {
		m := map[string]any{"level": r.Level, "msg": r.Message}
		r.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value.Any(); return true })
		out = append(out, m)
	}
	return out
}

// attrsHandler adds the logger's attributes (conn, remote) to the record.
type attrsHandler struct {
	h     *recordHandler
	attrs []slog.Attr
}

func (a *attrsHandler) Enabled(ctx context.Context, l slog.Level) bool { return a.h.Enabled(ctx, l) }
func (a *attrsHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &attrsHandler{h: a.h, attrs: append(append([]slog.Attr{}, a.attrs...), as...)}
}
func (a *attrsHandler) WithGroup(string) slog.Handler { return a }
func (a *attrsHandler) Handle(ctx context.Context, r slog.Record) error {
	r = r.Clone()
	r.AddAttrs(a.attrs...)
	return a.h.Handle(ctx, r)
}

// TestConnectionLogs: each connection logs an open and a close line at
// Config.ConnLogLevel, Info by default, the close with its code and how
// long the connection lived; a level below the logger's silences them.
func TestConnectionLogs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		level slog.Level
		want  bool
	}{
		{"default info", 0, true},
		{"debug, quiet at info", slog.LevelDebug, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &recordHandler{level: slog.LevelInfo}
			ts := startServer(t, transport.Config{Logger: slog.New(h), ConnLogLevel: tt.level})
			cl := dial(t, ts.url, codec.JSON(), nil)
			time.Sleep(20 * time.Millisecond) // a measurable life
			_ = cl.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, "bye"), time.Now().Add(time.Second))
			_, _ = cl.next(5 * time.Second) // the server's close
			if !tt.want {
				time.Sleep(50 * time.Millisecond)
				if lines := h.lines(); len(lines) != 0 {
					t.Fatalf("logged %v", lines)
				}
				return
			}
			deadline := time.Now().Add(5 * time.Second)
			for len(h.lines()) < 2 && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			lines := h.lines()
			if len(lines) != 2 {
				t.Fatalf("connection lines: %v", lines)
			}
			open, closed := lines[0], lines[1]
			if open["msg"] != "protows: connection open" || open["level"] != slog.LevelInfo ||
				open["subprotocol"] != codec.JSONName || open["ip"] != "127.0.0.1" || open["conn"] == nil {
				t.Errorf("open line: %v", open)
			}
			if closed["msg"] != "protows: connection closed" || closed["level"] != slog.LevelInfo ||
				closed["code"] != int64(1000) || closed["reason"] != "bye" || closed["conn"] != open["conn"] {
				t.Errorf("close line: %v", closed)
			}
			if d, ok := closed["duration"].(time.Duration); !ok || d < 20*time.Millisecond || d > 5*time.Second {
				t.Errorf("close line's duration: %v", closed["duration"])
			}
		})
	}
}
