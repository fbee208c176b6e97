package hub

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	protows "github.com/protows/protows"
	"github.com/protows/protows/codec"
	hubv1 "github.com/protows/protows/gen/go/protows/hub/v1"
	"github.com/protows/protows/transport"
	"google.golang.org/protobuf/proto"
)

// Defaults of Config.
const (
	// DefaultHeartbeatInterval is how often a hub with a Broker tells the
	// other nodes it is alive.
	DefaultHeartbeatInterval = time.Second
	// DefaultPresenceTTL is how long a node may stay silent before the
	// other nodes drop its members from their presence.
	DefaultPresenceTTL = 5 * time.Second
)

// MaxSeq is the largest room sequence number. Numbers stay below 2^53 so
// that JavaScript clients read them exactly; at a million broadcasts a
// second a room takes 285 years to get there, after which the number
// stays at MaxSeq.
const MaxSeq = 1<<53 - 1

// MaxRoomLen is the longest room name, in bytes. Room names travel in
// every presence message between nodes, so they are kept short.
const MaxRoomLen = 256

// checkRoom refuses the room names Join and Broadcast do not take, with an
// invalid_argument error that a handler can return as it is.
func checkRoom(room string) error {
	switch {
	case room == "":
		return protows.Errorf(protows.CodeInvalidArgument, "hub: empty room name")
	case len(room) > MaxRoomLen:
		return protows.Errorf(protows.CodeInvalidArgument, "hub: room name longer than %d bytes", MaxRoomLen)
	case !utf8.ValidString(room):
		return protows.Errorf(protows.CodeInvalidArgument, "hub: room name is not UTF-8")
	}
	return nil
}

// Errors of the hub.
var (
	// ErrClosed is returned by Join (wrapped in a protows.Error with code
	// unavailable, so the client knows to subscribe again) when the hub
	// closes, and by every method called after Close.
	ErrClosed = errors.New("hub: closed")
	// ErrUnknownMember is returned by SendTo for a target that the hub
	// does not know.
	ErrUnknownMember = errors.New("hub: unknown member")
)

// Stream is what a server-streaming handler gets to send with; router.Stream
// satisfies it.
type Stream[T any] interface {
	Send(T) error
}

// Config configures a Hub. The zero value is a working hub alone in its
// process, without presence events.
type Config[T proto.Message] struct {
	// Broker carries broadcasts and presence to the hubs of other nodes.
	// Nil means this hub is alone: one process, nothing to install. Use a
	// MemoryNetwork's broker to join hubs of one process, or
	// natsbroker.New to join processes.
	Broker Broker
	// Node names this hub among the nodes of its broker. It must be
	// unique among them and must not contain '/', '#', '.', '*', '>' or
	// white space. Empty means a random name.
	Node string
	// Presence turns a change of a room's membership into a message for
	// the room's members (delivered like a broadcast, with a sequence
	// number), or returns false for none. Nil means no presence messages;
	// Members works either way. It is called without locks held, by
	// whichever goroutine saw the change, and must not block. Each event
	// is a delivery to the whole room, so N members joining a room cost
	// N*N/2 deliveries: leave it nil for rooms of many thousands.
	Presence func(PresenceEvent) (T, bool)
	// HeartbeatInterval is how often the hub tells the other nodes it is
	// alive. Zero means DefaultHeartbeatInterval. Unused without a Broker.
	HeartbeatInterval time.Duration
	// PresenceTTL is how long another node may stay silent before its
	// members are dropped (with leave events); a hub that is behind on a
	// BacklogBroker's messages waits longer, at most 6 times as long
	// (docs/GUARANTEES.md, section 5). Zero means
	// DefaultPresenceTTL; it is raised to at least twice the
	// HeartbeatInterval.
	PresenceTTL time.Duration
	// Logger receives the hub's logs. Nil means slog.Default().
	Logger *slog.Logger
	// Metrics receives the hub's measurements: members, broadcasts,
	// deliveries, drops, gaps and the broker's publishes. Nil means none;
	// package hub/prommetrics adapts them to Prometheus.
	Metrics Metrics
	// History keeps the recent broadcasts of rooms, so that a member that
	// lost its connection gets what it missed when it comes back, and a
	// member that joins may first get the room's latest messages
	// (docs/PROTOCOL.md, section 14). NewMemoryHistory keeps them in the
	// process; natsbroker.NewHistory in NATS JetStream, shared by every
	// node. Nil means no history: rooms are at most once, and a member
	// that reconnects learns only that it missed something.
	History HistoryStore
	// HistoryRooms selects the rooms that have history, or returns false
	// for those that do not. Nil means every room, when History is set.
	// Every node must select the same rooms.
	HistoryRooms func(room string) bool
}

// Member is one membership of a room: one server stream, on one connection
// of one node.
type Member struct {
	// Node is the hub the connection is on.
	Node string
	// ConnID is the connection's id on its node (transport.Conn.ID).
	ConnID string
	// CallID is the id of the stream call that holds the membership.
	CallID uint32
	// Subject is the authenticated principal's subject, "" when the
	// connection is anonymous.
	Subject string
	// Room is the room.
	Room string
	// JoinedAt is when the member joined, by the clock of its node.
	JoinedAt time.Time
}

// ID names the membership across nodes: "node/conn#call". SendTo takes it.
func (m Member) ID() string {
	return m.Conn() + "#" + strconv.FormatUint(uint64(m.CallID), 10)
}

// Conn names the member's connection across nodes: "node/conn". SendTo
// takes it too, to reach every membership of the connection.
func (m Member) Conn() string { return m.Node + "/" + m.ConnID }

// PresenceEvent is a change of a room's membership.
type PresenceEvent struct {
	// Member joined or left; Member.Room is the room.
	Member Member
	// Joined is true for a join, false for a leave (including members
	// dropped because their node stopped answering).
	Joined bool
}

// enqueuer is the optional interface of a Stream that takes
// STREAM_MESSAGEs already encoded, the way an http.ResponseWriter may be an
// http.Flusher: the streams of router's handlers have it (it is part of
// *transport.Call). Join finds it with a type assertion; without it, a
// member gets its messages through Send.
type enqueuer interface {
	// ID returns the id of the stream's call, which each of its
	// envelopes carries.
	ID() uint32
	// Codec returns the codec the envelopes must be encoded with.
	Codec() codec.Codec
	// EnqueueParts queues one encoded STREAM_MESSAGE of the call without
	// waiting. It refuses once the call ended, atomically with the end,
	// so that a broadcast racing a CANCEL never follows the call's
	// STREAM_END.
	EnqueueParts(elem codec.Parts) error
}

var _ enqueuer = (*transport.Call)(nil)

// Hub is a set of rooms whose members receive broadcasts of type T on
// server streams. Its methods are safe for concurrent use.
type Hub[T proto.Message] struct {
	cfg         Config[T]
	node        string
	incarnation uint64
	log         *slog.Logger
	newT        func() T

	// pubMu orders a node's broker messages: their sequence numbers are
	// assigned and published under it.
	pubMu   sync.Mutex
	pubSeq  uint64
	pubBuf  []byte // the encoding of the message being published
	byeSent bool

	mu     sync.Mutex
	closed bool
	rooms  map[string]*room[T]
	conns  map[string][]*member[T] // local connection id -> memberships, in join order
	peers  map[string]*peer        // other nodes, by name

	closing atomic.Bool // Close began: deliveries from the history store stop
	// epochs counts the history store's epoch changes (EpochWatcher),
	// changed under mu: a member whose start was read in another epoch
	// than the one it joins in is refused.
	epochs   atomic.Uint64
	anon     atomic.Uint64 // ids of memberships without a connection
	marshals atomic.Int64  // payload encodings, for tests
	handled  atomic.Uint64 // broker messages handled (liveness.go)
	live     liveness      // the heartbeat goroutine's own
	quit     chan struct{}
	wg       sync.WaitGroup

	// shards are the delivery workers of large rooms (deliver.go); they
	// end with quit and are waited for with wg.
	shards shardWorkers[T]
}

// peer is what a hub knows of another node.
type peer struct {
	incarnation uint64
	lastSeq     uint64
	lastSeen    time.Time
	members     map[string]Member // by ID
	pending     map[string]Member // a state arriving in several messages
}

// room is a room with members on this node.
type room[T proto.Message] struct {
	name string

	// mu orders deliveries to the room: a sequence number is taken and
	// the message queued to every member under it, so every member gets
	// the room's messages in sequence order.
	mu      sync.Mutex
	seq     uint64
	members []*member[T]
	// hist: the room has history; its messages carry the offsets of the
	// history store instead of seq, and latest is the last offset
	// delivered here.
	hist   bool
	latest uint64
}

// member is a local membership.
type member[T proto.Message] struct {
	info   Member
	room   *room[T]
	ctx    context.Context
	stream Stream[T]
	ep     enqueuer // the stream's, nil when it has none: deliver through Send
	// codec is ep's codec, and codecName its name, read once at the join:
	// a broadcast looks them up for every member, and a call's codec is
	// its connection's, fixed for its life.
	codec     codec.Codec
	codecName string

	// In a room with history (resume.go), under room.mu: a member that
	// catches up (replays from the history) gets no live message but
	// keeps the latest of them in pending; sent is the offset of the last
	// room message it was given, so that none is given twice.
	catching bool
	sent     uint64
	pending  []pendingEntry
	start    joinStart // how the membership starts, from Join's options
	epochs   uint64    // Hub.epochs when its start was read

	// ended is set, and done (made by Join only: Attach needs no channel
	// to wait on) closed, when the membership ends.
	ended atomic.Bool
	done  chan struct{}
	once  sync.Once
	err   error

	// Set for an attached member (Attach), before it is added: its
	// detached call, which ends with the membership, and the
	// cancellation of its catch-up, nil when it has none.
	call      *transport.Call
	stopCatch context.CancelFunc
}

// end ends the membership: Join returns err; an attached member's call
// ends with what Join would have returned.
func (m *member[T]) end(err error) {
	m.once.Do(func() {
		m.err = err
		m.ended.Store(true)
		if m.done != nil {
			close(m.done)
		}
		if m.stopCatch != nil {
			m.stopCatch()
		}
		if m.call != nil {
			m.call.Finish(joinResult(err))
		}
	})
}

// joinResult is what Join returns for a membership that ended with err.
func joinResult(err error) error {
	if errors.Is(err, ErrClosed) {
		return protows.Errorf(protows.CodeUnavailable, "%w", err)
	}
	return err
}

// New returns a hub. With a Broker it opens it and starts its heartbeat;
// call Close to stop them.
func New[T proto.Message](cfg Config[T]) (*Hub[T], error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NopMetrics{}
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if cfg.PresenceTTL <= 0 {
		cfg.PresenceTTL = DefaultPresenceTTL
	}
	if cfg.PresenceTTL < 2*cfg.HeartbeatInterval {
		cfg.PresenceTTL = 2 * cfg.HeartbeatInterval
	}
	var rnd [16]byte
	_, _ = rand.Read(rnd[:]) // crypto/rand.Read never fails
	if cfg.Node == "" {
		cfg.Node = hex.EncodeToString(rnd[:6])
	}
	if strings.ContainsAny(cfg.Node, "/#.*> \t\r\n") {
		return nil, fmt.Errorf("hub: node name %q contains a reserved character", cfg.Node)
	}
	var zero T
	typ := zero.ProtoReflect().Type()
	h := &Hub[T]{
		cfg:         cfg,
		node:        cfg.Node,
		incarnation: binary.LittleEndian.Uint64(rnd[8:]),
		log:         cfg.Logger.With("hub", cfg.Node),
		newT:        func() T { return typ.New().Interface().(T) },
		rooms:       make(map[string]*room[T]),
		conns:       make(map[string][]*member[T]),
		peers:       make(map[string]*peer),
		quit:        make(chan struct{}),
	}
	if cfg.History != nil {
		if w, ok := cfg.History.(EpochWatcher); ok {
			w.OnEpochChange(h.epochChanged)
		}
		if err := cfg.History.Open(context.Background(), h.node, h.deliverEntry); err != nil {
			return nil, fmt.Errorf("hub: open history: %w", err)
		}
	}
	if cfg.Broker != nil {
		if err := cfg.Broker.Open(context.Background(), h.node, h.receive); err != nil {
			if cfg.History != nil {
				_ = cfg.History.Close()
			}
			return nil, fmt.Errorf("hub: open broker: %w", err)
		}
		// Ask every node for its members now rather than at its next
		// heartbeat.
		_ = h.publish(context.Background(), &hubv1.Message{Kind: hubv1.Kind_KIND_SYNC})
		h.wg.Add(1)
		go h.heartbeat()
	}
	return h, nil
}

// Node returns the hub's node name.
func (h *Hub[T]) Node() string { return h.node }

// Join makes the stream call of ctx a member of room until the call ends:
// the connection closes, the client cancels, Leave or Close. It blocks for
// as long, so a server-streaming handler could subscribe its client to a
// room with
//
//	func (s *server) Watch(ctx context.Context, req *chatv1.WatchRequest, st router.Stream[*chatv1.RoomEvent]) error {
//		return s.hub.Join(ctx, req.GetRoom(), st)
//	}
//
// Attach is that without the wait: it returns at once, the call stays open
// and the membership holds no goroutine, where Join keeps the handler's
// goroutine parked: with its stack, about 5.5 KiB more server memory per
// member (benchmarks/RESULTS.md). Use Attach when the handler has nothing to do after the
// membership ends, as above; use Join when it does (it logs the end,
// releases something, sends a last message), or when an interceptor must
// see the whole life of the stream: a handler that returns after Attach
// ends its interceptors' view of the call then, while the call goes on.
// An interceptor that wraps the stream without its enqueuer methods makes
// Attach wait like Join.
//
// Broadcasts then reach the client as STREAM_MESSAGEs of the call, encoded
// once per codec for all members and carrying the room's sequence number
// (docs/GUARANTEES.md). Join returns nil after Leave, the context's error
// when the call ended, transport.ErrSlowConsumer when the member's
// connection was dropped for not reading, and an unavailable error when the
// hub closed.
//
// Messages go to s: when s takes encoded envelopes, as the router's
// streams do (router.Stream documents how), they are queued on it already
// encoded, bypassing Send, so interceptors that wrap a stream's Send do not
// see them. Any other stream (a fake in a test, a stream wrapped by an
// interceptor) gets them through Send, once per member and without
// sequence numbers; its Send must then not block. The membership is named
// after the connection and call of ctx (Member); outside a protows server
// it gets a connection id of its own. Join in a unary handler returns an
// error.
func (h *Hub[T]) Join(ctx context.Context, room string, s Stream[T], opts ...JoinOption) error {
	m, err := h.newMember(ctx, room, s)
	if err != nil {
		return err
	}
	for _, o := range opts {
		o(&m.start)
	}
	return h.join(ctx, m)
}

// newMember returns the membership of s in room, not yet added.
func (h *Hub[T]) newMember(ctx context.Context, room string, s Stream[T]) (*member[T], error) {
	if err := checkRoom(room); err != nil {
		return nil, err
	}
	call, inCall := transport.CallFromContext(ctx)
	if inCall && !call.ServerStream() {
		return nil, fmt.Errorf("hub: Join in %s, which is not a server-streaming method", call.Method())
	}
	if s == nil {
		return nil, errors.New("hub: Join needs a Stream")
	}
	m := &member[T]{
		ctx:    ctx,
		stream: s,
		info:   Member{Node: h.node, Room: room, JoinedAt: time.Now()},
	}
	m.ep, _ = s.(enqueuer)
	if m.ep != nil {
		m.info.CallID = m.ep.ID()
		m.codec = m.ep.Codec()
		m.codecName = m.codec.Name()
	}
	if !inCall {
		m.info.ConnID = "local-" + strconv.FormatUint(h.anon.Add(1), 10)
		return m, nil
	}
	if m.ep != nil && m.info.CallID != call.ID() {
		// Envelopes would go to one call, SendTo and Leave to another.
		return nil, fmt.Errorf("hub: Join with the stream of call %d in call %d", m.info.CallID, call.ID())
	}
	if r := call.Resume(); r != nil {
		m.start = joinStart{resume: true, epoch: r.GetEpoch(), offset: r.GetOffset(), history: uint64(r.GetHistory()), positions: m.ep != nil}
	}
	conn := call.Conn()
	m.info.ConnID = conn.ID()
	m.info.CallID = call.ID()
	if p := conn.Principal(); p != nil {
		m.info.Subject = p.Subject
	}
	return m, nil
}

// join adds m, waits for the end of its membership and removes it.
func (h *Hub[T]) join(ctx context.Context, m *member[T]) error {
	m.done = make(chan struct{})
	var (
		page HistoryPage
		rerr error
	)
	hist := h.hasHistory(m.info.Room)
	if hist {
		m.epochs = h.epochs.Load()
		page, rerr = h.readStart(ctx, m)
	}
	if err := h.add(m); err != nil {
		return err
	}
	defer h.remove(m)
	if hist {
		// The catch-up waits for the member's credit and connection: it
		// stops when the membership ends (Leave, Close), not only when
		// the call does.
		cctx, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-m.done:
				cancel()
			case <-cctx.Done():
			}
		}()
		err := h.catchUp(cctx, m, page, rerr)
		cancel()
		if err != nil {
			m.end(err)
		}
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-m.done:
		return joinResult(m.err)
	}
}

func (h *Hub[T]) add(m *member[T]) error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return protows.Errorf(protows.CodeUnavailable, "%w", ErrClosed)
	}
	if h.hasHistory(m.info.Room) && m.epochs != h.epochs.Load() {
		// Its start was read in an epoch that ended since.
		h.mu.Unlock()
		return protows.Errorf(protows.CodeUnavailable, "%w", ErrEpochChanged)
	}
	r := h.rooms[m.info.Room]
	if r == nil {
		r = &room[T]{name: m.info.Room, hist: h.hasHistory(m.info.Room)}
		h.rooms[r.name] = r
	}
	m.room = r
	r.mu.Lock()
	// A member of a room with history catches up before it takes live
	// messages (resume.go); until then it only notes them.
	m.catching = r.hist
	r.members = append(r.members, m)
	r.mu.Unlock()
	h.conns[m.info.ConnID] = append(h.conns[m.info.ConnID], m)
	h.mu.Unlock()
	h.cfg.Metrics.MemberJoined()

	_ = h.publish(context.Background(), &hubv1.Message{Kind: hubv1.Kind_KIND_JOIN, Members: wireMembers([]Member{m.info})})
	h.emit([]PresenceEvent{{Member: m.info, Joined: true}})
	return nil
}

func (h *Hub[T]) remove(m *member[T]) {
	m.end(nil)
	h.mu.Lock()
	r := m.room
	r.mu.Lock()
	for i, x := range r.members {
		if x == m {
			r.members = append(r.members[:i], r.members[i+1:]...)
			break
		}
	}
	empty := len(r.members) == 0
	r.mu.Unlock()
	if empty && h.rooms[r.name] == r {
		delete(h.rooms, r.name)
	}
	if set := h.conns[m.info.ConnID]; len(set) > 0 {
		if i := slices.Index(set, m); i >= 0 {
			set = slices.Delete(set, i, i+1)
		}
		if len(set) == 0 {
			delete(h.conns, m.info.ConnID)
		} else {
			h.conns[m.info.ConnID] = set
		}
	}
	h.mu.Unlock()
	h.cfg.Metrics.MemberLeft()

	_ = h.publish(context.Background(), &hubv1.Message{Kind: hubv1.Kind_KIND_LEAVE, Members: wireMembers([]Member{m.info})})
	h.emit([]PresenceEvent{{Member: m.info, Joined: false}})
}

// Leave ends the memberships of the local connection connID
// (transport.Conn.ID) in room; their Join calls return nil, so their streams
// end successfully. It returns how many memberships ended.
func (h *Hub[T]) Leave(room, connID string) int {
	h.mu.Lock()
	var ms []*member[T]
	for _, m := range h.conns[connID] {
		if m.info.Room == room {
			ms = append(ms, m)
		}
	}
	h.mu.Unlock()
	for _, m := range ms {
		m.end(nil)
	}
	return len(ms)
}

// Broadcast sends msg to every member of room, on every node. Members on
// this node have it queued when Broadcast returns; an error means the
// broker did not take it, so members on other nodes may miss it (and see a
// gap in the room's sequence). msg must not be modified afterwards.
//
// In a room with history (Config.History) msg is stored first, and takes
// the room's next offset. With a store shared by the nodes (JetStream),
// Broadcast returns once it is stored, and every node's members get it
// from the store, this node's too; an error (unavailable, wrapping
// ErrHistoryUnavailable) means it was not stored and is delivered nowhere,
// or, when the store's acknowledgement did not come, that it may have been
// (docs/GUARANTEES.md, section 1.8).
func (h *Hub[T]) Broadcast(ctx context.Context, room string, msg T) error {
	if err := checkRoom(room); err != nil {
		return err
	}
	if h.isClosed() {
		return ErrClosed
	}
	h.cfg.Metrics.Broadcast(kindRoom, originLocal)
	pl := h.newPayload(msg)
	if h.hasHistory(room) {
		return h.broadcastHistory(ctx, room, pl)
	}
	h.mu.Lock()
	r := h.rooms[room]
	h.mu.Unlock()
	if r != nil {
		h.toRoom(r, pl)
	}
	return h.publishPayload(ctx, &hubv1.Message{Kind: hubv1.Kind_KIND_BROADCAST, Room: room}, pl)
}

// BroadcastAll sends msg to every member of every room, on every node: a
// connection in several rooms gets it once per membership, each with its
// room's next sequence number. In rooms with history it is not part of the
// history, and carries no sequence number (0).
func (h *Hub[T]) BroadcastAll(ctx context.Context, msg T) error {
	if h.isClosed() {
		return ErrClosed
	}
	h.cfg.Metrics.Broadcast(kindAll, originLocal)
	pl := h.newPayload(msg)
	h.toAllRooms(pl)
	return h.publishPayload(ctx, &hubv1.Message{Kind: hubv1.Kind_KIND_ALL}, pl)
}

// SendTo sends msg to one membership (a Member.ID, "node/conn#call") or to
// every membership of one connection (a Member.Conn, "node/conn"), on any
// node. Direct messages carry no sequence number (0): they are not part of
// the room's sequence. It returns ErrUnknownMember when the hub knows no
// such member.
func (h *Hub[T]) SendTo(ctx context.Context, target string, msg T) error {
	if h.isClosed() {
		return ErrClosed
	}
	node, connID, callID, ok := parseTarget(target)
	if !ok {
		return fmt.Errorf("%w: malformed target %q", ErrUnknownMember, target)
	}
	h.cfg.Metrics.Broadcast(kindDirect, originLocal)
	pl := h.newPayload(msg)
	if node == h.node {
		if h.toTarget(connID, callID, pl) == 0 {
			return fmt.Errorf("%w: %s", ErrUnknownMember, target)
		}
		return nil
	}
	if !h.knows(node, connID, callID) {
		return fmt.Errorf("%w: %s", ErrUnknownMember, target)
	}
	return h.publishPayload(ctx, &hubv1.Message{Kind: hubv1.Kind_KIND_DIRECT, Target: target}, pl)
}

// parseTarget splits "node/conn" or "node/conn#call"; callID 0 means every
// membership of the connection.
func parseTarget(s string) (node, connID string, callID uint32, ok bool) {
	node, rest, ok := strings.Cut(s, "/")
	if !ok || node == "" || rest == "" {
		return "", "", 0, false
	}
	connID, call, hasCall := strings.Cut(rest, "#")
	if hasCall {
		n, err := strconv.ParseUint(call, 10, 32)
		if err != nil || n == 0 {
			return "", "", 0, false
		}
		callID = uint32(n)
	}
	return node, connID, callID, connID != ""
}

// knows reports whether the presence of node lists the connection (and
// call, when not 0).
func (h *Hub[T]) knows(node, connID string, callID uint32) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := h.peers[node]
	if p == nil {
		return false
	}
	for _, m := range p.members {
		if m.ConnID == connID && (callID == 0 || m.CallID == callID) {
			return true
		}
	}
	return false
}

// Members returns the members of room on every node the hub knows, ordered
// by join time. Members of other nodes are as of the last presence message
// from them (see docs/GUARANTEES.md).
func (h *Hub[T]) Members(room string) []Member {
	h.mu.Lock()
	var out []Member
	if r := h.rooms[room]; r != nil {
		r.mu.Lock()
		for _, m := range r.members {
			out = append(out, m.info)
		}
		r.mu.Unlock()
	}
	for _, p := range h.peers {
		for _, m := range p.members {
			if m.Room == room {
				out = append(out, m)
			}
		}
	}
	h.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		return memberAfter(out[j], out[i].JoinedAt, out[i].ID())
	})
	return out
}

// RoomInfo summarizes a room.
type RoomInfo struct {
	// Name is the room's name.
	Name string
	// Members counts its members on every node the hub knows.
	Members int
}

// Rooms returns the rooms that have members on any node the hub knows,
// sorted by name.
func (h *Hub[T]) Rooms() []RoomInfo {
	count := make(map[string]int)
	h.mu.Lock()
	for name, r := range h.rooms {
		r.mu.Lock()
		count[name] += len(r.members)
		r.mu.Unlock()
	}
	for _, p := range h.peers {
		for _, m := range p.members {
			count[m.Room]++
		}
	}
	h.mu.Unlock()
	out := make([]RoomInfo, 0, len(count))
	for name, n := range count {
		if n > 0 {
			out = append(out, RoomInfo{Name: name, Members: n})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Nodes returns the names of the other nodes the hub hears from, sorted.
func (h *Hub[T]) Nodes() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]string, 0, len(h.peers))
	for n := range h.peers {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Close ends every membership (their Join calls return an unavailable
// error), tells the other nodes that this node's members left, and closes
// the broker. It returns the broker's Close error.
func (h *Hub[T]) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	h.closing.Store(true)
	var ms []*member[T]
	for _, set := range h.conns {
		ms = append(ms, set...)
	}
	h.mu.Unlock()
	// A delivery starting the workers of large rooms has added them to
	// h.wg by now, or sees closing (startShards).
	h.shards.mu.Lock()
	h.shards.mu.Unlock()
	close(h.quit)
	h.wg.Wait()
	for _, m := range ms {
		m.end(ErrClosed)
	}
	var herr error
	if h.cfg.History != nil {
		herr = h.cfg.History.Close()
	}
	if h.cfg.Broker == nil {
		return herr
	}
	_ = h.publish(context.Background(), &hubv1.Message{Kind: hubv1.Kind_KIND_BYE})
	return errors.Join(h.cfg.Broker.Close(), herr)
}

// epochChanged is the history store's OnEpochChange: the members of rooms
// with history were given offsets of the lost history, which the new one
// does not continue; their streams end, for their clients to re-open them
// and be told (EpochWatcher).
func (h *Hub[T]) epochChanged(epoch string) {
	h.mu.Lock()
	h.epochs.Add(1)
	var ms []*member[T]
	for _, r := range h.rooms {
		if !r.hist {
			continue
		}
		r.mu.Lock()
		ms = append(ms, r.members...)
		r.latest = 0
		r.mu.Unlock()
	}
	h.mu.Unlock()
	h.log.Warn("protows hub: the history was lost: members of rooms with history re-open their streams", "epoch", epoch, "members", len(ms))
	for _, m := range ms {
		m.end(protows.Errorf(protows.CodeUnavailable, "%w", ErrEpochChanged))
	}
}

func (h *Hub[T]) isClosed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closed
}
