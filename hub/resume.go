package hub

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	protows "github.com/protows/protows"
	"github.com/protows/protows/codec"
	hubv1 "github.com/protows/protows/gen/go/protows/hub/v1"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"github.com/protows/protows/transport"
	"google.golang.org/protobuf/proto"
)

// Rooms with history (Config.History): broadcasts go to the history store,
// which numbers them and hands them back to deliverEntry, in order, on
// every node that shares it. A member that joins catches up first
// (catchUp): it is added to the room at once, so that nothing broadcast
// from then on escapes it, but takes no live message while it replays
// from the history; it notes them instead (pending), and goes live once
// the replay reached what it noted. Offsets make the seam exact: a member
// is never given an offset twice, nor one below the last it got.

// JoinOption changes how a membership in a room with history starts. The
// REQUEST's resume (docs/PROTOCOL.md, section 14) sets the same things; an
// option overrides it.
type JoinOption func(*joinStart)

// joinStart is how a membership starts.
type joinStart struct {
	// resume: the membership has a start to honour; without it the
	// member goes live at once.
	resume bool
	// epoch and offset are the member's last position; epoch "" for none.
	epoch  string
	offset uint64
	// history: how many of the latest messages to replay when the
	// member does not resume.
	history uint64
	// positions: the member's client understands STREAM_POSITION, and
	// its stream takes encoded envelopes.
	positions bool
}

// WithResume makes the member resume after the position epoch, offset: it
// gets every message of the room after offset, if the history still holds
// them, then the live ones.
func WithResume(epoch string, offset uint64) JoinOption {
	return func(j *joinStart) {
		j.resume, j.epoch, j.offset = true, epoch, offset
	}
}

// WithHistory makes the member get the room's latest n messages first,
// when it does not resume (a first join, or a position the history can no
// longer serve).
func WithHistory(n int) JoinOption {
	return func(j *joinStart) {
		j.resume, j.history = true, uint64(max(n, 0))
	}
}

// pendingEntry is a live message that a catching-up member noted: its
// Protobuf encoding, which does not change, rather than the payload other
// members share under the room's lock.
type pendingEntry struct {
	data   []byte
	offset uint64
	marker bool
}

// maxPending is how many live messages a catching-up member notes; older
// ones are dropped, to be read from the history instead.
const maxPending = 256

// replayBatch is how many entries one read of the history returns.
const replayBatch = 256

func (h *Hub[T]) hasHistory(room string) bool {
	return h.cfg.History != nil && (h.cfg.HistoryRooms == nil || h.cfg.HistoryRooms(room))
}

// broadcastHistory hands a broadcast of a room with history to the store.
func (h *Hub[T]) broadcastHistory(ctx context.Context, room string, pl *payload[T]) error {
	b, err := pl.forCodec(codec.Proto())
	if err != nil {
		return err
	}
	e := &Entry{Room: room, Payload: b, local: pl}
	if err := h.cfg.History.Append(ctx, e); err != nil {
		return protows.Errorf(protows.CodeUnavailable, "hub: broadcast to %s: %w", room, err)
	}
	if h.cfg.History.Shared() {
		return nil
	}
	// Each node keeps its own history of the room: they all get the
	// broadcast through the broker, as in a room without history. pl
	// itself is the members' now (a member catching up encodes it under
	// the room's lock): only its Protobuf bytes, made above, are used.
	if h.cfg.Broker == nil {
		return nil
	}
	return h.publish(ctx, &hubv1.Message{Kind: hubv1.Kind_KIND_BROADCAST, Room: room, Payload: b})
}

// deliverEntry is the store's deliver: it hands a history entry to the
// room's members on this node.
func (h *Hub[T]) deliverEntry(e *Entry) {
	if h.closing.Load() {
		return
	}
	h.mu.Lock()
	r := h.rooms[e.Room]
	h.mu.Unlock()
	if r == nil {
		return
	}
	pl, _ := e.local.(*payload[T])
	if pl == nil {
		pl = h.remotePayload(e.Payload)
	}
	h.toRoomEntry(r, pl, e.Offset, e.Marker)
}

// toRoomEntry delivers an entry of r's history to its members: those that
// catch up note it, those that are live get it unless they had it.
func (h *Hub[T]) toRoomEntry(r *room[T], pl *payload[T], offset uint64, marker bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if offset > r.latest {
		r.latest = offset
	}
	h.cfg.Metrics.Delivered(h.toShards(r.members, pl, 0, entryDelivery{entry: true, offset: offset, marker: marker}))
}

// deliverEntryTo hands the history entry e, whose payload sh has, to m:
// a member that catches up notes it, a live one gets it unless it had it.
// It reports whether it queued it. The caller holds m.room.mu (see
// toShards).
func (h *Hub[T]) deliverEntryTo(m *member[T], sh *shard[T], e entryDelivery) bool {
	switch {
	case m.catching:
		if len(m.pending) == maxPending {
			m.pending = slices.Delete(m.pending, 0, maxPending/4)
		}
		data, _, err := sh.forCodec(codec.Proto(), codec.ProtoName)
		if err != nil {
			h.log.Error("protows hub: encode broadcast", "codec", codec.ProtoName, "err", err)
			return false
		}
		m.pending = append(m.pending, pendingEntry{data: data, offset: e.offset, marker: e.marker})
	case e.offset <= m.sent:
		// Had it from the replay.
	default:
		m.sent = e.offset
		return !e.marker && h.deliver(m, sh, e.offset)
	}
	return false
}

// readStart reads the history m starts from, before m joins the room: the
// position m is given is then at or before every message broadcast after
// it joined, so that none escapes it.
func (h *Hub[T]) readStart(ctx context.Context, m *member[T]) (HistoryPage, error) {
	if !m.start.resume {
		return HistoryPage{}, nil
	}
	return h.cfg.History.Read(ctx, m.info.Room, m.start.offset, replayBatch)
}

// catchUp starts m's membership of a room with history, from page (and
// err), what readStart read: it tells m's client where the stream stands
// (STREAM_POSITION), replays what m asked for from the history, and makes
// m live. It returns an error when m can no longer be sent to.
func (h *Hub[T]) catchUp(ctx context.Context, m *member[T], page HistoryPage, err error) error {
	st := m.start
	if !st.resume {
		return h.goLive(ctx, m, 0, false)
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		h.log.Warn("protows hub: read history", "room", m.info.Room, "err", err)
		m.room.mu.Lock()
		latest := m.room.latest
		m.room.mu.Unlock()
		if err := h.sendPosition(ctx, m, &protowsv1.Position{Offset: latest, Recovery: protowsv1.Recovery_RECOVERY_UNAVAILABLE, Latest: latest}); err != nil {
			return err
		}
		return h.goLive(ctx, m, latest, true)
	}
	recovery := protowsv1.Recovery_RECOVERY_UNSPECIFIED
	from := st.offset
	switch {
	case st.epoch == "":
	case st.epoch != page.Epoch || st.offset > page.Latest:
		recovery = protowsv1.Recovery_RECOVERY_EPOCH_CHANGED
	case st.offset+1 < page.First:
		recovery = protowsv1.Recovery_RECOVERY_TOO_OLD
	default:
		recovery = protowsv1.Recovery_RECOVERY_RECOVERED
	}
	if recovery != protowsv1.Recovery_RECOVERY_RECOVERED {
		// Start with the latest messages asked for, from what the
		// history holds.
		from = page.First - 1
		if page.Latest-from > st.history {
			from = page.Latest - st.history
		}
		page.Entries = nil
	}
	pos := &protowsv1.Position{Epoch: page.Epoch, Offset: from, Recovery: recovery, Latest: page.Latest}
	if err := h.sendPosition(ctx, m, pos); err != nil {
		return err
	}
	sent := from
	entries := page.Entries
	// The page was read before m joined: what came between the read and
	// the join is neither in it nor noted by m. m goes live only after a
	// read made since it joined.
	stale := true
	for {
		if entries == nil {
			stale = false
			p, err := h.cfg.History.Read(ctx, m.info.Room, sent, replayBatch)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				// The rest shows as a gap in the offsets.
				h.log.Warn("protows hub: read history", "room", m.info.Room, "err", err)
				return h.goLive(ctx, m, sent, true)
			}
			entries = p.Entries
		}
		for _, e := range entries {
			if !e.Marker {
				if err := h.replay(ctx, m, e.Room, e.Payload, e.Offset); err != nil {
					return err
				}
			}
			sent = e.Offset
		}
		if len(entries) == replayBatch || stale {
			entries = nil
			continue
		}
		var live bool
		sent, live, err = h.drain(ctx, m, sent, true)
		if live || err != nil {
			return err
		}
		entries = nil
	}
}

// drain makes m live once it was given what it noted, after sent, the
// last offset it was given; it returns the last offset given. The noted messages are sent as the replay is,
// waiting for the member's credit and room in its connection (a handler's
// Send), outside the room's lock, while more are noted; m goes live, under
// the lock, when nothing is left to give. strict: when the noted messages
// start further on than sent+1, drain gives up and reports false, for the
// history to be read again; without it they are given anyway (the member
// sees the skip).
func (h *Hub[T]) drain(ctx context.Context, m *member[T], sent uint64, strict bool) (uint64, bool, error) {
	r := m.room
	for {
		r.mu.Lock()
		i := 0
		for i < len(m.pending) && m.pending[i].offset <= sent {
			i++
		}
		rest := m.pending[i:]
		if strict && len(rest) > 0 && rest[0].offset > sent+1 {
			m.pending = slices.Clone(rest)
			r.mu.Unlock()
			return sent, false, nil
		}
		if len(rest) == 0 {
			m.sent, m.pending, m.catching = sent, nil, false
			r.mu.Unlock()
			return sent, true, nil
		}
		batch := slices.Clone(rest)
		m.pending = nil
		r.mu.Unlock()
		for _, pe := range batch {
			if !pe.marker {
				if err := h.replay(ctx, m, m.info.Room, pe.data, pe.offset); err != nil {
					return sent, false, err
				}
			}
			sent = pe.offset
		}
	}
}

// goLive makes m live after its last room message sent; with keep, the
// messages it noted after sent are given to it first, else m starts with
// the first message it noted, or what comes next (a member that asked for
// nothing).
func (h *Hub[T]) goLive(ctx context.Context, m *member[T], sent uint64, keep bool) error {
	if !keep {
		r := m.room
		r.mu.Lock()
		if len(m.pending) > 0 {
			sent = m.pending[0].offset - 1
		} else {
			sent = r.latest
		}
		r.mu.Unlock()
	}
	_, _, err := h.drain(ctx, m, sent, false)
	return err
}

// waiter is the optional interface of a stream that can wait for its
// credit and for room in its connection's send queue, and send a
// STREAM_POSITION (transport.Call has it): a replay answers the member's
// own call, so it waits, as a handler's Send does, rather than overflow
// the queue or the member's window.
type waiter interface {
	EnqueuePartsWait(ctx context.Context, p codec.Parts) error
	SendPosition(ctx context.Context, pos *protowsv1.Position) error
}

var _ waiter = (*transport.Call)(nil)

// send queues an encoded envelope of m's call, waiting for room when the
// stream can.
func (m *member[T]) send(ctx context.Context, p codec.Parts) error {
	if m.ended.Load() {
		return errMemberDone
	}
	if w, ok := m.ep.(waiter); ok {
		return w.EnqueuePartsWait(ctx, p)
	}
	return m.ep.EnqueueParts(p)
}

// errMemberDone stops a replay to a member whose membership ended.
var errMemberDone = errors.New("hub: membership ended")

// sendPosition tells m's client where its stream stands, if it
// understands STREAM_POSITION.
func (h *Hub[T]) sendPosition(ctx context.Context, m *member[T], pos *protowsv1.Position) error {
	if !m.start.positions {
		return nil
	}
	if m.ended.Load() {
		return errMemberDone
	}
	if w, ok := m.ep.(waiter); ok {
		return w.SendPosition(ctx, pos)
	}
	c := m.ep.Codec()
	b, err := c.AppendEnvelope(nil, &protowsv1.Envelope{Id: m.info.CallID, Kind: protowsv1.Kind_KIND_STREAM_POSITION, Position: pos})
	if err != nil {
		return fmt.Errorf("hub: encode stream position: %w", err)
	}
	return m.ep.EnqueueParts(codec.Parts{Body: b})
}

// replay sends m a message of room at offset, from its Protobuf encoding
// data: an entry of the history, or a live message m noted.
func (h *Hub[T]) replay(ctx context.Context, m *member[T], room string, data []byte, offset uint64) error {
	pl := h.remotePayload(data)
	if m.ep == nil {
		if m.ended.Load() {
			return errMemberDone
		}
		msg, err := pl.message()
		if err != nil {
			h.log.Error("protows hub: decode history entry", "room", room, "err", err)
			return nil
		}
		return m.stream.Send(msg)
	}
	c := m.ep.Codec()
	b, err := pl.forCodec(c)
	if err != nil {
		h.log.Error("protows hub: encode history entry", "room", room, "codec", c.Name(), "err", err)
		return nil
	}
	elem, _, err := codec.AppendStreamMessage(c, nil, m.info.CallID, b, offset)
	if err != nil {
		h.log.Error("protows hub: encode history entry", "room", room, "codec", c.Name(), "err", err)
		return nil
	}
	err = m.send(ctx, elem)
	if errors.Is(err, transport.ErrMessageTooLarge) {
		// As a live message too large for the member's connection: the
		// member misses it (its offsets skip) and stays.
		h.log.Warn("protows hub: history entry larger than the message size limit", "room", room, "member", m.info.ID(), "bytes", elem.Len())
		h.cfg.Metrics.Dropped("too_large")
		return nil
	}
	return err
}

// HistoryQuery selects part of a room's history for Hub.History.
type HistoryQuery struct {
	// After selects the messages with offsets above it; 0 with Before 0
	// means the latest Limit messages.
	After uint64
	// Before, when not 0, selects the Limit messages just before it
	// (offsets below it), to page backwards.
	Before uint64
	// Limit is the most messages returned. Zero means 100; at most
	// MaxHistoryPage.
	Limit int
}

// MaxHistoryPage is the most messages one Hub.History call returns.
const MaxHistoryPage = 1000

// HistoryMessage is one message of a room's history.
type HistoryMessage[T proto.Message] struct {
	// Offset is the message's offset in the room (its seq on streams).
	Offset uint64
	// Time is when the history took it.
	Time time.Time
	// Msg is the message.
	Msg T
}

// HistoryResult is a page of a room's history.
type HistoryResult[T proto.Message] struct {
	// Epoch names the history (docs/PROTOCOL.md, section 14).
	Epoch string
	// First and Latest are the offsets of the room's oldest message in
	// the history (Latest+1 when it holds none) and of its latest.
	First, Latest uint64
	// Messages are the selected messages, in offset order.
	Messages []HistoryMessage[T]
}

// History returns part of the history of room, for a unary method that
// pages through it (a client that scrolls back, say). It returns a
// failed_precondition error for a room without history, and an unavailable
// error when the store cannot be read.
func (h *Hub[T]) History(ctx context.Context, room string, q HistoryQuery) (HistoryResult[T], error) {
	if err := checkRoom(room); err != nil {
		return HistoryResult[T]{}, err
	}
	if !h.hasHistory(room) {
		return HistoryResult[T]{}, protows.Errorf(protows.CodeFailedPrecondition, "hub: room %q has no history", room)
	}
	limit := q.Limit
	switch {
	case limit <= 0:
		limit = 100
	case limit > MaxHistoryPage:
		limit = MaxHistoryPage
	}
	after := q.After
	var page HistoryPage
	var err error
	if q.After == 0 || q.Before != 0 {
		// Offsets are consecutive but for the gaps of lost messages: the
		// bounds first, then the page that ends where asked.
		page, err = h.cfg.History.Read(ctx, room, MaxSeq, 0)
		if err != nil {
			return HistoryResult[T]{}, protows.Errorf(protows.CodeUnavailable, "hub: history of %s: %w", room, err)
		}
		end := page.Latest
		if q.Before != 0 && q.Before-1 < end {
			end = q.Before - 1
		}
		after = page.First - 1
		if end > after+uint64(limit) {
			after = end - uint64(limit)
		}
	}
	page, err = h.cfg.History.Read(ctx, room, after, limit)
	if err != nil {
		return HistoryResult[T]{}, protows.Errorf(protows.CodeUnavailable, "hub: history of %s: %w", room, err)
	}
	res := HistoryResult[T]{Epoch: page.Epoch, First: page.First, Latest: page.Latest}
	for _, e := range page.Entries {
		if e.Marker || (q.Before != 0 && e.Offset >= q.Before) {
			continue
		}
		msg := h.newT()
		if err := codec.Proto().UnmarshalPayload(e.Payload, msg); err != nil {
			return HistoryResult[T]{}, protows.Errorf(protows.CodeDataLoss, "hub: history of %s: offset %d: %w", room, e.Offset, err)
		}
		res.Messages = append(res.Messages, HistoryMessage[T]{Offset: e.Offset, Time: e.Time, Msg: msg})
	}
	return res, nil
}
