package main

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/protows/protows/hub"
)

// Events counts what went wrong, or out of the ordinary, in a server
// process: the hub's drops and gaps (hub.Metrics) and its NATS
// connection's asynchronous errors and reconnections. A clean run has
// none; the report shows them, since a gap in the members' sequence
// numbers has its cause here.
type Events struct {
	mu sync.Mutex
	// Counts by name: "drop/REASON", "gap", "gap/missed" (messages of
	// other nodes lost), "publish_error/KIND", "publish/KIND",
	// "nats/error", "nats/disconnect", "nats/reconnect", "log/MESSAGE"
	// (warnings and errors logged).
	counts map[string]int64
	// First NATS asynchronous error, as text.
	natsErr string
}

var _ hub.Metrics = (*Events)(nil)

func newEvents() *Events { return &Events{counts: make(map[string]int64)} }

func (e *Events) add(name string, n int64) {
	e.mu.Lock()
	e.counts[name] += n
	e.mu.Unlock()
}

// Snapshot returns a copy of the counts.
func (e *Events) Snapshot() (counts map[string]int64, natsErr string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	counts = make(map[string]int64, len(e.counts))
	for k, v := range e.counts {
		counts[k] = v
	}
	return counts, e.natsErr
}

// MemberJoined implements hub.Metrics.
func (e *Events) MemberJoined() {}

// MemberLeft implements hub.Metrics.
func (e *Events) MemberLeft() {}

// Broadcast implements hub.Metrics.
func (e *Events) Broadcast(string, string) {}

// Delivered implements hub.Metrics.
func (e *Events) Delivered(int) {}

// Dropped implements hub.Metrics.
func (e *Events) Dropped(reason string) { e.add("drop/"+reason, 1) }

// Gap implements hub.Metrics.
func (e *Events) Gap(missed uint64) {
	e.add("gap", 1)
	e.add("gap/missed", int64(missed))
}

// Published implements hub.Metrics.
func (e *Events) Published(kind string, _ time.Duration, err error) {
	if err != nil {
		e.add("publish_error/"+kind, 1)
		return
	}
	e.add("publish/"+kind, 1)
}

// natsOptions are the NATS connection's handlers that count into e.
func (e *Events) natsOptions() []nats.Option {
	return []nats.Option{
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			e.mu.Lock()
			e.counts["nats/error"]++
			if e.natsErr == "" && err != nil {
				e.natsErr = err.Error()
			}
			e.mu.Unlock()
		}),
		nats.DisconnectErrHandler(func(*nats.Conn, error) { e.add("nats/disconnect", 1) }),
		nats.ReconnectHandler(func(*nats.Conn) { e.add("nats/reconnect", 1) }),
	}
}

// logCounter is a slog.Handler that counts the warnings and errors of the
// hub and the server into Events ("log/MESSAGE"), since the benchmark
// prints no logs: a node that stopped answering within the presence TTL,
// for one, is only a warning.
type logCounter struct{ events *Events }

var _ slog.Handler = logCounter{}

func (l logCounter) Enabled(_ context.Context, level slog.Level) bool { return level >= slog.LevelWarn }

func (l logCounter) Handle(_ context.Context, r slog.Record) error {
	l.events.add("log/"+r.Message, 1)
	return nil
}

func (l logCounter) WithAttrs([]slog.Attr) slog.Handler { return l }

func (l logCounter) WithGroup(string) slog.Handler { return l }
