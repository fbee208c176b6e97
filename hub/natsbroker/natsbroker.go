package natsbroker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go"
	"github.com/protows/protows/hub"
)

// DefaultSubject is the NATS subject hubs share when Config.Subject is
// empty.
const DefaultSubject = "protows.hub"

// Config configures a broker.
type Config struct {
	// Subject is the NATS subject every node's hub publishes to and
	// subscribes to. Hubs that must not see each other's rooms (another
	// application, another message type) need different subjects. Empty
	// means DefaultSubject.
	Subject string
}

// New returns a broker for one hub that talks through nc. The caller owns
// nc: it chooses its servers, credentials and reconnect policy, and closes
// it after the hub. To ride out NATS restarts, give nc
// nats.MaxReconnects(-1).
func New(nc *nats.Conn, cfg Config) hub.Broker {
	if cfg.Subject == "" {
		cfg.Subject = DefaultSubject
	}
	return &broker{nc: nc, subject: cfg.Subject}
}

type broker struct {
	nc      *nats.Conn
	subject string

	// mu makes Close wait for a message being delivered, so that
	// nothing is delivered after Close returned.
	mu     sync.RWMutex
	sub    *nats.Subscription
	closed bool
	// open is sub for Backlog, which must not wait for mu: Close holds it
	// while a delivery finishes.
	open atomic.Pointer[nats.Subscription]
}

var _ hub.BacklogBroker = (*broker)(nil)

func (b *broker) Open(_ context.Context, _ string, receive func([]byte)) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.sub != nil || b.closed {
		return errors.New("natsbroker: opened twice")
	}
	// One subscription with a callback: nats.go calls it from one
	// goroutine, in the order the server delivered, and the server keeps
	// each publisher's order.
	sub, err := b.nc.Subscribe(b.subject, func(m *nats.Msg) {
		b.mu.RLock()
		defer b.mu.RUnlock()
		if !b.closed {
			receive(m.Data)
		}
	})
	if err != nil {
		return fmt.Errorf("natsbroker: subscribe %s: %w", b.subject, err)
	}
	// The subscription must reach the server before the hub publishes
	// its first request for the other nodes' members, or their answers
	// could pass it by.
	if err := b.nc.Flush(); err != nil && !errors.Is(err, nats.ErrConnectionReconnecting) {
		_ = sub.Unsubscribe()
		return fmt.Errorf("natsbroker: flush: %w", err)
	}
	b.sub = sub
	b.open.Store(sub)
	return nil
}

// Backlog returns the subscription's pending messages. nats.go counts a
// message of an asynchronous subscription as pending until its callback
// returned, so the one being received is included.
func (b *broker) Backlog() int {
	sub := b.open.Load()
	if sub == nil {
		return 0
	}
	n, _, err := sub.Pending()
	if err != nil {
		return 0
	}
	return n
}

// Publish hands msg to nats.go, which copies it. While NATS is
// unreachable nats.go buffers publications (nats.ReconnectBufSize, 8 MiB
// by default) and sends them after it reconnected; beyond that Publish
// fails.
func (b *broker) Publish(_ context.Context, msg []byte) error {
	if err := b.nc.Publish(b.subject, msg); err != nil {
		return fmt.Errorf("natsbroker: publish: %w", err)
	}
	return nil
}

func (b *broker) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	if b.sub == nil {
		return nil
	}
	if err := b.sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		return fmt.Errorf("natsbroker: unsubscribe: %w", err)
	}
	return nil
}
