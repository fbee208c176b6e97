package hub

import "context"

// Broker carries a hub's messages to the hubs of the other server nodes
// (broadcasts, direct sends and presence). It moves opaque bytes: the hub
// encodes and decodes them, numbers them and detects losses, so a broker
// can be small. The in-memory broker (MemoryNetwork) joins hubs of one
// process; package natsbroker joins processes over NATS.
//
// A Broker serves one hub: New calls Open once, and Close calls Close.
type Broker interface {
	// Open starts delivery: from then on the broker calls receive with
	// every message another node published, one call at a time, and the
	// messages of one publishing node in the order it published them. A
	// broker may also deliver the node's own messages back to it; the hub
	// ignores them. A broker may lose messages (the hub detects it, see
	// docs/GUARANTEES.md) but must never reorder those of one publisher.
	// receive must not be called after Close returned. The hub keeps
	// parts of msg after receive returns (a broadcast's payload, queued
	// to connections), so msg must not be modified afterwards.
	Open(ctx context.Context, node string, receive func(msg []byte)) error
	// Publish sends msg to every other node. It must not keep msg after
	// it returns, and should not block for long: the hub calls it while
	// holding the lock that orders a node's messages.
	Publish(ctx context.Context, msg []byte) error
	// Close stops delivery and releases the broker's resources.
	Close() error
}
