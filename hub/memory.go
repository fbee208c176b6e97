package hub

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
)

// DefaultMemoryQueue is the number of messages a MemoryNetwork holds for a
// node that has not yet received them. Beyond it messages to that node are
// dropped (and counted), as a real broker drops for a slow subscriber.
const DefaultMemoryQueue = 4096

// ErrBrokerClosed is returned by a broker's Publish after Close.
var ErrBrokerClosed = errors.New("hub: broker closed")

// MemoryNetwork connects the hubs of one process, as NATS connects those of
// several: every Broker it hands out delivers what it publishes to all the
// others. A hub configured without a Broker uses a network of its own,
// where it is alone.
//
// It exists for single-process servers and for tests of multi-node
// behaviour without a NATS server.
type MemoryNetwork struct {
	queue int

	mu    sync.Mutex
	nodes map[*memoryBroker]struct{}
}

// NewMemoryNetwork returns an empty network whose nodes each queue at most
// DefaultMemoryQueue undelivered messages.
func NewMemoryNetwork() *MemoryNetwork {
	return &MemoryNetwork{queue: DefaultMemoryQueue, nodes: make(map[*memoryBroker]struct{})}
}

// Broker returns a new broker on the network, for one hub.
func (n *MemoryNetwork) Broker() Broker {
	return &memoryBroker{net: n}
}

type memoryBroker struct {
	net *MemoryNetwork

	ch      chan []byte
	quit    chan struct{}
	done    chan struct{}
	closed  atomic.Bool
	dropped atomic.Int64
	// backlog counts the messages queued to the broker and the one being
	// received, until receive returns.
	backlog atomic.Int64
}

var _ BacklogBroker = (*memoryBroker)(nil)

func (b *memoryBroker) Open(_ context.Context, _ string, receive func([]byte)) error {
	if b.ch != nil {
		return errors.New("hub: broker opened twice")
	}
	b.ch = make(chan []byte, b.net.queue)
	b.quit = make(chan struct{})
	b.done = make(chan struct{})
	go func() {
		defer close(b.done)
		for {
			select {
			case <-b.quit:
				return
			case msg := <-b.ch:
				receive(msg)
				b.backlog.Add(-1)
			}
		}
	}()
	b.net.mu.Lock()
	b.net.nodes[b] = struct{}{}
	b.net.mu.Unlock()
	return nil
}

func (b *memoryBroker) Publish(_ context.Context, msg []byte) error {
	if b.closed.Load() {
		return ErrBrokerClosed
	}
	cp := append([]byte(nil), msg...) // the caller may reuse msg
	b.net.mu.Lock()
	defer b.net.mu.Unlock()
	for peer := range b.net.nodes {
		if peer == b {
			continue
		}
		// Counted before it is queued, so that the count never misses a
		// message the receiver already took.
		peer.backlog.Add(1)
		select {
		case peer.ch <- cp:
		default:
			peer.backlog.Add(-1)
			peer.dropped.Add(1)
		}
	}
	return nil
}

// Backlog returns the number of messages queued to the hub, with the one
// it is receiving.
func (b *memoryBroker) Backlog() int { return int(b.backlog.Load()) }

func (b *memoryBroker) Close() error {
	if b.closed.Swap(true) || b.ch == nil {
		return nil
	}
	b.net.mu.Lock()
	delete(b.net.nodes, b)
	b.net.mu.Unlock()
	close(b.quit)
	<-b.done
	return nil
}
