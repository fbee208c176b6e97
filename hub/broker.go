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

// A BacklogBroker is a Broker that can tell how far behind its hub is.
// A hub whose broker implements it does not take a node for dead while
// that node's messages may still be waiting for it: when the hub falls
// behind, it measures a node's silence up to the last time it had handled
// every message received by then, rather than up to now (see
// docs/GUARANTEES.md, presence across nodes). Without it the hub measures
// silence up to now, and a hub that falls further behind than
// Config.PresenceTTL drops the members of nodes that are alive.
type BacklogBroker interface {
	Broker
	// Backlog returns how many messages the broker has received for the
	// hub and not yet finished handing over: those waiting for receive
	// and the one receive is handling, until it returns. It is called
	// once per heartbeat interval, concurrently with receive.
	Backlog() int
}
