// Package hub gives protows servers rooms: join, leave, broadcast to a
// room, broadcast to all, send to one member or connection, and presence
// (who is in a room, join and leave events), on one server or on several
// joined by a Broker.
//
// A room member is a server stream: a client joins a room by calling a
// server-streaming method whose handler calls Attach (or Join), and
// receives the room's broadcasts as typed stream messages of that call, in
// the generated Go and TypeScript clients alike.
//
//	// chat.proto: rpc Watch(WatchRequest) returns (stream RoomEvent);
//	h, err := hub.New(hub.Config[*chatv1.RoomEvent]{})
//	...
//	func (s *chatServer) Watch(ctx context.Context, req *chatv1.WatchRequest, st router.Stream[*chatv1.RoomEvent]) error {
//		return s.hub.Attach(ctx, req.GetRoom(), st) // the stream lasts until the client leaves
//	}
//	func (s *chatServer) Send(ctx context.Context, req *chatv1.SendRequest) (*chatv1.SendResponse, error) {
//		err := s.hub.Broadcast(ctx, req.GetRoom(), &chatv1.RoomEvent{Text: req.GetText()})
//		return &chatv1.SendResponse{}, err
//	}
//
// Attach returns at once and leaves the call open, holding no goroutine:
// an idle member costs its server little more than its connection
// (benchmarks/RESULTS.md). Join does the same but blocks until the
// membership ends, for handlers that do work after it (Join's doc says when
// each fits). A connection leaves its rooms when it closes, when the client
// cancels the stream, or when a handler calls Leave. Members lists a room's members on
// every node and Rooms the rooms that have any; MembersPage and RoomsPage
// list them a page at a time, for replies that must stay below the
// transport's message size limit. Config.Presence turns joins and leaves
// into messages for the room.
//
// # Encode once
//
// A broadcast encodes its message once per codec in use among the members
// (Protobuf, JSON), not once per member: each member then gets a
// STREAM_MESSAGE made of a few bytes for its call id and the sequence
// number around the shared encoding, which its connection's writer copies
// straight into the frame it writes (codec.AppendStreamMessage,
// codec.Parts). Those few bytes are made once for a run of members of the
// same codec and call id (most room streams are their connection's first
// call, so have the same id), not once per member. A node
// that receives a broadcast from another node passes the Protobuf bytes it
// got on to its Protobuf members without decoding them.
//
// # Sequence numbers and gaps
//
// Every message delivered to a room on a node takes the room's next
// sequence number, which travels in the envelope's seq field
// (docs/PROTOCOL.md): a stream's messages carry consecutive numbers unless
// messages were lost on the way from another node, in which case the number
// skips. Direct messages (SendTo) carry 0. The numbers are per room and per
// node: compare them within one stream only. docs/GUARANTEES.md lists
// every way a message can be lost and how each one shows.
//
// # History and resume
//
// With Config.History, rooms keep their recent broadcasts, and a member
// that lost its connection gets what it missed when it comes back
// (docs/PROTOCOL.md, section 14): the clients keep each room stream's
// position (an epoch and the offset of the last message) and send it when
// they re-open the stream; Attach and Join replay what followed from the history,
// then the live messages, with no duplicate and no hole between them, or
// says why it cannot (the history was lost, or no longer holds them). A
// member may also ask for the room's latest messages when it joins, and
// History reads the history a page at a time.
//
//	h, err := hub.New(hub.Config[*chatv1.RoomEvent]{
//		History: hub.NewMemoryHistory(hub.HistoryLimits{Messages: 1000, Age: time.Hour}),
//	})
//
// NewMemoryHistory keeps the history in the process, each node its own;
// natsbroker.NewHistory keeps it in NATS JetStream, shared by every node,
// so that a client resumes on any node, after any node restarted. In a
// room with history the sequence number of a message is its offset in the
// history, the same on every node that shares it; presence events,
// BroadcastAll and SendTo are not part of it and carry 0.
//
// # Slow members
//
// Delivery never waits for a member: messages go to the member's connection
// send queue. A member whose queue is full is dropped, its connection
// closed with 4008 (slow consumer), and the broadcast goes on to the
// others. A member whose stream is flow-controlled (docs/PROTOCOL.md,
// section 4.6; both protows clients grant a window) and whose client
// granted no credit for another message is dropped alone: its stream ends
// with resource_exhausted, its connection stays.
//
// # Several nodes
//
// Without a Broker a hub is alone in its process. With one, broadcasts,
// direct sends and presence reach the hubs of the other nodes:
// MemoryNetwork joins hubs of one process, and package natsbroker joins
// processes through NATS. Each node tells the others it is alive every
// HeartbeatInterval (1 s); a node not heard from for PresenceTTL (5 s) is
// taken for dead and its members leave. A hub that is behind on its
// broker's messages (a BacklogBroker tells) counts that silence only up
// to the messages it has handled, so that a live node's heartbeats waiting
// behind broadcasts do not make it look dead, but drops a node silent for
// 6 TTLs anyway (docs/GUARANTEES.md, section 5). Hub.Close says goodbye, so a node
// that shuts down cleanly leaves at once.
//
// # Ordering
//
// The messages one goroutine broadcasts to a room reach every member in the
// order broadcast, on every node. Broadcasts from different goroutines or
// nodes are not ordered with each other, but every member of a node sees
// one order, the one of the room's sequence numbers there.
//
// # Metrics
//
// Config.Metrics receives the hub's measurements: members, broadcasts by
// kind and origin, deliveries, drops by reason (slow consumers above all),
// gaps in the messages of other nodes, and the broker's publishes with
// their errors and latency. Package hub/prommetrics adapts them to
// Prometheus; deploy/grafana has a dashboard.
//
// # Concurrency
//
// A Hub's methods are safe for concurrent use, from any handler. Join
// blocks for as long as the membership lasts. A broadcast queues its
// message to every member of the room on this node before it returns,
// except in a room with a history shared by the nodes, where it returns
// once the history stored it and every node, this one included, delivers
// it from there. In a room of 512 members or more on a machine of
// several cores, the members are split between up to GOMAXPROCS delivery
// workers (GOMAXPROCS-1 goroutines of the hub, started by the first such
// broadcast and ended by Close, and the broadcasting goroutine): each
// queues the message to its share while the room stays locked, so the
// order of the room's messages, the membership a broadcast reaches and the
// handling of slow consumers are those of a single loop.
package hub
