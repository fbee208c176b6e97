package natsbroker

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/protows/protows/hub"
)

// Defaults of HistoryConfig.
const (
	// DefaultHistoryStream is the JetStream stream of a history when
	// HistoryConfig.Stream is empty.
	DefaultHistoryStream = "PROTOWS_HISTORY"
	// DefaultHistorySubject is the prefix of its subjects.
	DefaultHistorySubject = "protows.history"
)

// Headers of the messages of a history stream.
const (
	// offsetHeader holds a message's offset in its room.
	offsetHeader = "Protows-Offset"
	// markerHeader marks an entry that carries no message (hub.Entry.Marker).
	markerHeader = "Protows-Marker"
)

// HistoryConfig configures a history kept in NATS JetStream.
type HistoryConfig struct {
	// Stream is the JetStream stream that holds the history, one per hub
	// (per application and message type, as Config.Subject). It is
	// created, or updated to these limits, when the hub starts. Empty
	// means DefaultHistoryStream.
	Stream string
	// Subject prefixes the stream's subjects: a room's messages go to
	// Subject + "." + the room's name in unpadded base64url, which any
	// room name fits. Empty means DefaultHistorySubject.
	Subject string
	// Limits bound each room's history: the stream's MaxMsgsPerSubject
	// and MaxAge.
	Limits hub.HistoryLimits
	// Replicas is the stream's replica count in a JetStream cluster. Zero
	// means 1.
	Replicas int
	// Memory keeps the stream in the NATS servers' memory instead of
	// files: faster, and lost when they restart (a new epoch).
	Memory bool
	// Timeout bounds each operation on JetStream (a publication with its
	// retries, a read), unless its context ends first. Zero means 5
	// seconds.
	Timeout time.Duration
	// CheckInterval is how often a node checks that the stream is still
	// the one it opened; it also checks at once when JetStream reports
	// its consumer deleted or a publication or read fails. A stream
	// deleted (and made anew by an operator, or by this check) is a new
	// epoch: the hub ends its members' streams, for their clients to
	// resume and be told (hub.EpochWatcher). Zero means 5 seconds.
	CheckInterval time.Duration
}

// NewHistory returns a history store kept in a JetStream stream, shared by
// the hubs of every node that uses the same stream: a broadcast on any node
// is numbered and stored by JetStream and delivered from it, in one order,
// on every node, and a member may resume on any node, after a restart of
// any of them. The caller owns nc (see New); the stream needs JetStream
// enabled on the NATS servers.
//
// Offsets are made consistent across nodes by optimistic concurrency: a
// node publishes a room's next message on the condition that the room's
// last message is the one it knows (Nats-Expected-Last-Subject-Sequence),
// and learns the new last one when the condition fails. A room's messages
// are published one at a time per node.
//
// While NATS is disconnected, Broadcast to a room with history fails at
// once (an unavailable error wrapping hub.ErrHistoryUnavailable) and the
// message is delivered nowhere: no member ever gets a message that is not
// in the history. A publication whose acknowledgement does not come within
// the timeout (JetStream stopped, NATS lost mid-way) fails the same way,
// but its outcome is unknown: it may still be stored, and then delivered
// to every member, in order, like any other. Members that resume while
// the history cannot be read get RECOVERY_UNAVAILABLE and go on live.
func NewHistory(nc *nats.Conn, cfg HistoryConfig) hub.HistoryStore {
	if cfg.Stream == "" {
		cfg.Stream = DefaultHistoryStream
	}
	if cfg.Subject == "" {
		cfg.Subject = DefaultHistorySubject
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.CheckInterval <= 0 {
		cfg.CheckInterval = 5 * time.Second
	}
	cfg.Limits = cfg.Limits.WithDefaults()
	return &history{nc: nc, cfg: cfg, chains: make(map[string]*chain),
		poke: make(chan struct{}, 1), quit: make(chan struct{})}
}

type history struct {
	nc      *nats.Conn
	cfg     HistoryConfig
	js      jetstream.JetStream
	deliver func(*hub.Entry)
	onEpoch func(epoch string)

	// streamMu guards the stream this node opened, its epoch and its
	// consumer; gen numbers the consumers, so that a stopped one's late
	// messages are dropped.
	streamMu sync.RWMutex
	stream   jetstream.Stream
	epoch    string
	cc       jetstream.ConsumeContext
	gen      atomic.Uint64

	// poke asks the watcher to check the stream now; quit stops it.
	// missing is when it found the stream missing, zero when it did not.
	poke    chan struct{}
	missing time.Time
	quit    chan struct{}
	wg      sync.WaitGroup

	// mu makes Close wait for an entry being delivered, so that nothing
	// is delivered after Close returned.
	mu     sync.RWMutex
	closed bool

	chainsMu sync.Mutex
	chains   map[string]*chain
}

var _ hub.HistoryStore = (*history)(nil)

// chain is what this node knows of a room's last message: publishing the
// next one on the condition that it is still the last makes offsets
// consistent across nodes.
type chain struct {
	mu     sync.Mutex
	known  bool
	seq    uint64 // its stream sequence, 0 when the room has none
	offset uint64
}

// maxChains is how many rooms' last messages a node remembers; past it,
// it forgets them all and asks JetStream again when it publishes.
const maxChains = 100_000

func (s *history) Shared() bool { return true }

// ctx bounds an operation by the configured timeout, or ctx's deadline if
// it comes first.
func (s *history) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.cfg.Timeout)
}

// OnEpochChange implements hub.EpochWatcher.
func (s *history) OnEpochChange(f func(epoch string)) { s.onEpoch = f }

var _ hub.EpochWatcher = (*history)(nil)

func (s *history) Open(ctx context.Context, _ string, deliver func(*hub.Entry)) error {
	js, err := jetstream.New(s.nc)
	if err != nil {
		return fmt.Errorf("natsbroker: jetstream: %w", err)
	}
	s.js, s.deliver = js, deliver
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	st, err := s.createStream(ctx)
	if err != nil {
		return err
	}
	s.streamMu.Lock()
	err = s.consume(ctx, st)
	s.streamMu.Unlock()
	if err != nil {
		return err
	}
	s.wg.Add(1)
	go s.watch()
	return nil
}

// createStream makes the stream, or updates it to the configured limits.
func (s *history) createStream(ctx context.Context) (jetstream.Stream, error) {
	storage := jetstream.FileStorage
	if s.cfg.Memory {
		storage = jetstream.MemoryStorage
	}
	st, err := s.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:              s.cfg.Stream,
		Description:       "protows room history",
		Subjects:          []string{s.cfg.Subject + ".>"},
		Storage:           storage,
		Replicas:          s.cfg.Replicas,
		Retention:         jetstream.LimitsPolicy,
		Discard:           jetstream.DiscardOld,
		MaxMsgsPerSubject: int64(s.cfg.Limits.Messages),
		MaxAge:            s.cfg.Limits.Age,
		AllowDirect:       true,
	})
	if err != nil {
		return nil, fmt.Errorf("natsbroker: history stream %s: %w", s.cfg.Stream, err)
	}
	return st, nil
}

// epochOf names a stream: one made anew (deleted and created again) has
// another creation time.
func epochOf(st jetstream.Stream) string {
	return "j-" + strconv.FormatInt(st.CachedInfo().Created.UnixNano(), 36)
}

// consume makes st the node's stream and delivers its messages from now
// on, after stopping the consumer of the stream before it, if any.
// s.streamMu must be held.
func (s *history) consume(ctx context.Context, st jetstream.Stream) error {
	if s.cc != nil {
		s.cc.Stop()
		<-s.cc.Closed()
		s.cc = nil
	}
	gen := s.gen.Add(1)
	s.stream, s.epoch = st, epochOf(st)
	// An ordered consumer delivers every message from now on, in stream
	// order, and starts again where it was after a loss or a NATS
	// restart.
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{s.cfg.Subject + ".>"},
		DeliverPolicy:  jetstream.DeliverNewPolicy,
	})
	if err != nil {
		return fmt.Errorf("natsbroker: history consumer: %w", err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		e, err := s.entry(m.Subject(), m.Headers(), m.Data())
		if err != nil {
			return
		}
		if md, err := m.Metadata(); err == nil {
			e.Time = md.Timestamp
		}
		s.mu.RLock()
		defer s.mu.RUnlock()
		// A replaced consumer may still hand over a message, of the
		// stream made anew: it is not of its epoch.
		if !s.closed && s.gen.Load() == gen {
			s.deliver(e)
		}
	}, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrNoHeartbeat) {
			// The stream may have been deleted with it.
			s.check()
		}
	}))
	if err != nil {
		return fmt.Errorf("natsbroker: history consumer: %w", err)
	}
	s.cc = cc
	return nil
}

// check asks the watcher to check the stream now.
func (s *history) check() {
	select {
	case s.poke <- struct{}{}:
	default:
	}
}

// watch checks the stream every CheckInterval, and when asked, until
// Close.
func (s *history) watch() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.CheckInterval)
	defer t.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-s.quit
		cancel()
	}()
	for {
		select {
		case <-s.quit:
			return
		case <-t.C:
		case <-s.poke:
		}
		if err := s.verify(ctx); err != nil && ctx.Err() == nil {
			// Tried again at the next tick; meanwhile publications and
			// reads fail as they do.
			continue
		}
	}
}

// verify makes sure the node uses the stream that JetStream has: when it
// was deleted it makes it anew, and when it is not the one the node
// opened (its epoch changed) it starts consuming it and tells the hub.
func (s *history) verify(ctx context.Context) error {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	st, err := s.js.Stream(ctx, s.cfg.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		// Made anew only when it is still missing a check later: the
		// consumer's deletion is reported while the stream's is under
		// way, and a stream made then is unusable (nats-server 2.15
		// takes the old one's last sequence, and leaves publications
		// unanswered).
		now := time.Now()
		if s.missing.IsZero() {
			s.missing = now
		}
		if now.Sub(s.missing) < s.cfg.CheckInterval {
			return err
		}
		st, err = s.createStream(ctx)
	}
	if err != nil {
		return err
	}
	s.missing = time.Time{}
	s.streamMu.RLock()
	same := epochOf(st) == s.epoch
	s.streamMu.RUnlock()
	if same {
		return nil
	}
	// A stream just made answers direct gets a moment later: the members
	// that the hub sends to read it again must find it readable.
	for {
		_, err := st.GetLastMsgForSubject(ctx, s.cfg.Subject+".-")
		if err == nil || errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("natsbroker: history stream %s made anew, not readable: %w", s.cfg.Stream, err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	s.streamMu.Lock()
	if epochOf(st) == s.epoch {
		s.streamMu.Unlock()
		return nil
	}
	// What the node knew of the rooms' last messages was of the old
	// stream.
	s.chainsMu.Lock()
	s.chains = make(map[string]*chain)
	s.chainsMu.Unlock()
	err = s.consume(ctx, st)
	epoch := s.epoch
	s.streamMu.Unlock()
	if err != nil {
		return err
	}
	if s.onEpoch != nil {
		s.onEpoch(epoch)
	}
	return nil
}

// current returns the stream the node uses and its epoch.
func (s *history) current() (jetstream.Stream, string) {
	s.streamMu.RLock()
	defer s.streamMu.RUnlock()
	return s.stream, s.epoch
}

func (s *history) Close() error {
	s.mu.Lock()
	already := s.closed
	s.closed = true
	s.mu.Unlock()
	if already {
		return nil
	}
	if s.js != nil {
		close(s.quit)
		s.wg.Wait()
	}
	s.streamMu.Lock()
	defer s.streamMu.Unlock()
	if s.cc != nil {
		s.cc.Stop()
		<-s.cc.Closed()
	}
	return nil
}

// subject returns the subject of room's messages.
func (s *history) subject(room string) string {
	return s.cfg.Subject + "." + base64.RawURLEncoding.EncodeToString([]byte(room))
}

// entry decodes a message of the stream.
func (s *history) entry(subject string, h nats.Header, data []byte) (*hub.Entry, error) {
	token, ok := strings.CutPrefix(subject, s.cfg.Subject+".")
	if !ok {
		return nil, fmt.Errorf("natsbroker: history message on %s", subject)
	}
	room, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return nil, fmt.Errorf("natsbroker: history message on %s: %w", subject, err)
	}
	off, err := strconv.ParseUint(h.Get(offsetHeader), 10, 64)
	if err != nil || off == 0 {
		return nil, fmt.Errorf("natsbroker: history message on %s without an offset", subject)
	}
	return &hub.Entry{Room: string(room), Offset: off, Payload: data, Marker: h.Get(markerHeader) != ""}, nil
}

func unavailable(what string, err error) error {
	return fmt.Errorf("%w: %s: %w", hub.ErrHistoryUnavailable, what, err)
}

func (s *history) Append(ctx context.Context, e *hub.Entry) error {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	c := s.chain(e.Room)
	c.mu.Lock()
	defer c.mu.Unlock()
	return s.appendLocked(ctx, c, e)
}

// chain returns the chain of room.
func (s *history) chain(room string) *chain {
	s.chainsMu.Lock()
	defer s.chainsMu.Unlock()
	c := s.chains[room]
	if c == nil {
		if len(s.chains) >= maxChains {
			s.chains = make(map[string]*chain)
		}
		c = &chain{}
		s.chains[room] = c
	}
	return c
}

// appendLocked publishes e as the room's next message. c.mu must be held.
//
// When other nodes publish to the room at the same time, the node whose
// publication was overtaken learns the new last message and tries again,
// until ctx ends: a node that publishes a burst may make the others wait
// for its end, but nothing is lost or numbered twice.
func (s *history) appendLocked(ctx context.Context, c *chain, e *hub.Entry) error {
	subj := s.subject(e.Room)
	for attempt := 0; ; attempt++ {
		if attempt > 2 {
			// Let the other publishers' bursts pass, with jitter so
			// that contending nodes do not keep meeting.
			d := time.Duration(rand.Int64N(int64(min(attempt, 25)) * int64(200*time.Microsecond)))
			select {
			case <-time.After(d):
			case <-ctx.Done():
				return unavailable("publish", fmt.Errorf("room %q: overtaken by other nodes %d times: %w", e.Room, attempt, ctx.Err()))
			}
		}
		if !c.known {
			if err := s.learn(ctx, c, subj); err != nil {
				return err
			}
		}
		if !s.nc.IsConnected() {
			// nats.go would hold the publication until it reconnects,
			// and send it then, after Append reported a failure: fail
			// now, and publish nothing.
			c.known = false
			return unavailable("publish", nats.ErrConnectionReconnecting)
		}
		m := nats.NewMsg(subj)
		m.Data = e.Payload
		m.Header.Set(offsetHeader, strconv.FormatUint(c.offset+1, 10))
		ack, err := s.js.PublishMsg(ctx, m, jetstream.WithExpectLastSequencePerSubject(c.seq))
		var apiErr *jetstream.APIError
		switch {
		case err == nil:
			c.seq, c.offset = ack.Sequence, c.offset+1
			e.Offset, e.Time = c.offset, time.Now()
			return nil
		case errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant):
			// Another node published to the room meanwhile.
			c.known = false
		default:
			c.known = false
			s.check() // the stream may be gone
			return unavailable("publish", err)
		}
	}
}

// learn asks JetStream for the room's last message. A room without one
// starts its offsets above the stream's last sequence, which is above
// every offset the room ever had (an offset never exceeds its message's
// stream sequence), so that offsets never go back.
func (s *history) learn(ctx context.Context, c *chain, subj string) error {
	stream, _ := s.current()
	last, err := stream.GetLastMsgForSubject(ctx, subj)
	switch {
	case err == nil:
		off, perr := strconv.ParseUint(last.Header.Get(offsetHeader), 10, 64)
		if perr != nil {
			return unavailable("read", fmt.Errorf("last message of %s has no offset", subj))
		}
		c.seq, c.offset = last.Sequence, off
	case errors.Is(err, jetstream.ErrMsgNotFound):
		info, ierr := stream.Info(ctx)
		if ierr != nil {
			return unavailable("stream info", ierr)
		}
		c.seq, c.offset = 0, info.State.LastSeq
	default:
		s.check()
		return unavailable("read", err)
	}
	c.known = true
	return nil
}

func (s *history) Read(ctx context.Context, room string, after uint64, limit int) (hub.HistoryPage, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	subj := s.subject(room)
	stream, epoch := s.current()
	p := hub.HistoryPage{Epoch: epoch}
	for p.Latest == 0 {
		last, err := stream.GetLastMsgForSubject(ctx, subj)
		switch {
		case err == nil:
			off, perr := strconv.ParseUint(last.Header.Get(offsetHeader), 10, 64)
			if perr != nil || off == 0 {
				return p, unavailable("read", fmt.Errorf("last message of %s has no offset", subj))
			}
			p.Latest = off
		case errors.Is(err, jetstream.ErrMsgNotFound):
			// A room without messages gets a marker, so that a position
			// taken now is followed by the room's next message. Another
			// node may publish first: read again either way.
			if err := s.mark(ctx, room); err != nil {
				return p, err
			}
		default:
			s.check()
			return p, unavailable("read", err)
		}
	}
	first, err := s.batch(ctx, subj, 1, 1)
	if err != nil {
		return p, err
	}
	p.First = p.Latest + 1
	if len(first.entries) > 0 {
		p.First = first.entries[0].Offset
		if first.entries[0].Marker {
			// A marker holds no message: the first one is after it.
			p.First++
		}
	}
	if limit <= 0 || after >= p.Latest {
		return p, nil
	}
	// A message's offset never exceeds its stream sequence: those above
	// after are at stream sequences above it too.
	seq := after + 1
	for len(p.Entries) < limit {
		b, err := s.batch(ctx, subj, seq, min(limit-len(p.Entries)+16, 256))
		if err != nil {
			return p, err
		}
		for _, e := range b.entries {
			if e.Offset > after && len(p.Entries) < limit {
				p.Entries = append(p.Entries, e)
			}
		}
		if len(b.entries) == 0 || b.pending == 0 {
			break
		}
		seq = b.lastSeq + 1
	}
	return p, nil
}

// mark writes a marker as the first message of room, unless the room has
// one: a marker is never between two messages, whose offsets members see
// as consecutive.
func (s *history) mark(ctx context.Context, room string) error {
	subj := s.subject(room)
	c := s.chain(room)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.known = false
	if err := s.learn(ctx, c, subj); err != nil {
		return err
	}
	if c.seq != 0 {
		return nil
	}
	m := nats.NewMsg(subj)
	m.Header.Set(offsetHeader, strconv.FormatUint(c.offset+1, 10))
	m.Header.Set(markerHeader, "1")
	ack, err := s.js.PublishMsg(ctx, m, jetstream.WithExpectLastSequencePerSubject(0))
	var apiErr *jetstream.APIError
	switch {
	case err == nil:
		c.seq, c.offset = ack.Sequence, c.offset+1
	case errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant):
		c.known = false // another node published first: no marker needed
	default:
		c.known = false
		return unavailable("publish", err)
	}
	return nil
}

// batchResult is one answer of a batched direct get.
type batchResult struct {
	entries []hub.Entry
	lastSeq uint64 // the stream sequence of the last entry
	pending uint64 // the room's messages after it
}

// directGetRequest is JetStream's direct get request (the
// JSApiMsgGetRequest of nats-server).
type directGetRequest struct {
	Seq     uint64 `json:"seq,omitempty"`
	NextFor string `json:"next_by_subj,omitempty"`
	Batch   int    `json:"batch,omitempty"`
}

// batch reads up to n of subj's messages from stream sequence seq on, in
// one direct get request (nats-server 2.11 and later), which answers with
// the messages and an end-of-batch status.
func (s *history) batch(ctx context.Context, subj string, seq uint64, n int) (batchResult, error) {
	var res batchResult
	req, err := json.Marshal(directGetRequest{Seq: seq, NextFor: subj, Batch: n})
	if err != nil {
		return res, err
	}
	inbox := s.nc.NewRespInbox()
	sub, err := s.nc.SubscribeSync(inbox)
	if err != nil {
		return res, unavailable("read", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := s.nc.PublishRequest("$JS.API.DIRECT.GET."+s.cfg.Stream, inbox, req); err != nil {
		return res, unavailable("read", err)
	}
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return res, unavailable("read", err)
		}
		switch status := m.Header.Get("Status"); status {
		case "":
		case "404": // no message from seq on
			return res, nil
		case "204": // end of the batch
			res.pending, _ = strconv.ParseUint(m.Header.Get("Nats-Num-Pending"), 10, 64)
			return res, nil
		default:
			return res, unavailable("read", fmt.Errorf("direct get: status %s %s", status, m.Header.Get("Description")))
		}
		e, err := s.entry(m.Header.Get("Nats-Subject"), m.Header, m.Data)
		if err != nil {
			continue
		}
		if ts, err := time.Parse(time.RFC3339Nano, m.Header.Get("Nats-Time-Stamp")); err == nil {
			e.Time = ts
		}
		res.lastSeq, _ = strconv.ParseUint(m.Header.Get("Nats-Sequence"), 10, 64)
		res.entries = append(res.entries, *e)
	}
}
