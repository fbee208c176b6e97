// Package natsbroker carries the broadcasts and presence of protows hubs
// between server nodes over NATS (github.com/nats-io/nats.go), so that
// clients connected to different nodes share rooms.
//
//	nc, err := nats.Connect("nats://127.0.0.1:4222", nats.MaxReconnects(-1))
//	...
//	h, err := hub.New(hub.Config[*chatv1.RoomEvent]{
//		Broker: natsbroker.New(nc, natsbroker.Config{Subject: "chat.rooms"}),
//	})
//	defer nc.Close()
//	defer h.Close()
//
// It is a package of its own so that only servers that import it depend on
// nats.go.
//
// # What travels
//
// Every hub publishes on one subject (Config.Subject) and subscribes to it:
// broadcasts, direct sends, presence changes and heartbeats. Core NATS is
// at-most-once: the hub numbers each node's messages, so a receiver that
// misses some (a NATS restart, a subscription that fell behind and hit
// nats.go's pending limits) notices at the next message from that node,
// makes its rooms' sequence numbers skip, and asks that node for its
// members again. docs/GUARANTEES.md describes what is lost and how clients
// see it.
//
// # NATS restarts
//
// nats.go reconnects by itself when the connection allows it
// (nats.MaxReconnects(-1) retries forever). While it is disconnected,
// local members of a room still get the node's own broadcasts; publications
// to other nodes are buffered by nats.go (nats.ReconnectBufSize) and sent
// after the reconnection, and reach only the nodes whose subscription is
// back by then; broadcasts of other nodes during the gap are lost for this
// node. A node silent for longer than hub.Config.PresenceTTL has its
// members dropped from presence, and listed again once it is heard from.
// The broker tells the hub its subscription's backlog (hub.BacklogBroker),
// so that a hub behind on its messages does not take the nodes whose
// heartbeats wait in it for silent.
//
// # History in JetStream
//
// NewHistory keeps the history of rooms (hub.Config.History) in a
// JetStream stream that every node shares: one stream per hub, one subject
// per room, each room bounded by MaxMsgsPerSubject and MaxAge. A broadcast
// to a room with history is stored by JetStream and delivered from it on
// every node, in one order, with the same offsets everywhere; a client may
// resume on any node, after any node restarted, and recovers what was
// broadcast meanwhile. Presence and direct sends still travel on the
// broker's subject.
//
// The stream's creation time names the history's epoch. When the stream
// is deleted while the nodes run, each node notices (at once when
// JetStream reports its consumer deleted, else within
// HistoryConfig.CheckInterval), makes the stream anew if nobody did, and
// ends the streams of its members of rooms with history
// (hub.ErrEpochChanged): their clients re-open them and are told the epoch
// changed.
//
//	h, err := hub.New(hub.Config[*chatv1.RoomEvent]{
//		Broker:  natsbroker.New(nc, natsbroker.Config{Subject: "chat.rooms"}),
//		History: natsbroker.NewHistory(nc, natsbroker.HistoryConfig{Stream: "CHAT_HISTORY", Subject: "chat.history"}),
//	})
package natsbroker
