package conformance

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/protows/protows/codec"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
)

// Limits every frame a peer sends is checked against (PROTOCOL.md
// sections 9 and 10).
const (
	maxCloseReason     = 123
	maxBatchEnvelopes  = codec.MaxEnvelopesPerFrame
	maxBatchBytes      = 64 << 10
	defaultEOFWithin   = 5 * time.Second
	eventQueueCapacity = 1 << 16
)

// item is one thing a peer sent, as the steps consume it.
type item struct {
	ev   event
	envs []map[string]any // a message's envelopes, in the case form
	raw  []*protowsv1.Envelope
}

// peer is the runner's end of one connection: it reads in the background,
// decodes messages with the case's codec and checks every frame against
// the protocol's general rules.
type peer struct {
	ws       *wsConn
	codec    codec.Codec
	events   chan event
	autoPong atomic.Bool
	calls    map[uint32]string // id -> method of the calls on this connection
	log      *transcript
	checkOut bool // check outgoing batches (the peer is a server)

	pending []item
	ended   bool // the read loop ended
	closed  *event
	wg      sync.WaitGroup

	vmu        sync.Mutex
	violations []string
}

func newPeer(ws *wsConn, c codec.Codec, log *transcript, autoPong, isServer bool) *peer {
	p := &peer{ws: ws, codec: c, events: make(chan event, eventQueueCapacity), calls: map[uint32]string{}, log: log, checkOut: isServer}
	p.autoPong.Store(autoPong)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		ws.readLoop(p.events, p.autoPong.Load)
	}()
	return p
}

// shutdown ends the connection and waits for the reader.
func (p *peer) shutdown() {
	_ = p.ws.nc.Close()
	p.wg.Wait()
}

func (p *peer) violate(format string, args ...any) {
	p.vmu.Lock()
	defer p.vmu.Unlock()
	p.violations = append(p.violations, fmt.Sprintf(format, args...))
}

// violation returns the first protocol violation seen, if any.
func (p *peer) violation() error {
	p.vmu.Lock()
	defer p.vmu.Unlock()
	if len(p.violations) == 0 {
		return nil
	}
	return errors.New("protocol violation by the peer: " + p.violations[0])
}

// next returns the next item, waiting until the deadline. A message is
// decoded and checked.
func (p *peer) next(ctx context.Context, deadline time.Time) (item, error) {
	if len(p.pending) > 0 {
		it := p.pending[0]
		p.pending = p.pending[1:]
		return it, nil
	}
	if p.ended {
		return item{}, errors.New("the connection has ended")
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return item{}, ctx.Err()
		case <-t.C:
			return item{}, errTimeout
		case ev, ok := <-p.events:
			if !ok {
				p.ended = true
				return item{}, errors.New("the connection has ended")
			}
			it, skip := p.convert(ev)
			if skip {
				continue
			}
			return it, nil
		}
	}
}

// errTimeout is what next returns when nothing came in time.
var errTimeout = errors.New("timed out")

// unread puts an item back.
func (p *peer) unread(it item) {
	p.pending = append([]item{it}, p.pending...)
}

func (p *peer) convert(ev event) (item, bool) {
	it := item{ev: ev}
	switch ev.kind {
	case eventViolation:
		p.violate("%s", ev.data)
		p.log.add("!! %s", ev.data)
		return it, true
	case eventEnd:
		p.ended = true
		p.log.add("<- connection ended (%v)", ev.err)
	case eventClose:
		if len(ev.data) > maxCloseReason {
			p.violate("a close reason of %d bytes (at most %d)", len(ev.data), maxCloseReason)
		}
		if !utf8.Valid(ev.data) {
			p.violate("a close reason that is not UTF-8")
		}
		p.log.add("<- close %d %q", ev.code, ev.data)
	case eventPing:
		p.log.add("<- websocket ping")
	case eventPong:
		p.log.add("<- websocket pong")
	case eventMessage:
		wantOp := byte(opText)
		if p.codec.Binary() {
			wantOp = opBinary
		}
		if ev.opcode != wantOp {
			p.violate("a %s message on %s", opName(ev.opcode), p.codec.Name())
		}
		envs, err := p.codec.DecodeFrame(ev.data)
		if err != nil {
			p.violate("an undecodable frame (%v): %s", err, shortHex(ev.data))
			p.log.add("<- undecodable frame %s", shortHex(ev.data))
			return it, false
		}
		if p.checkOut && len(envs) > maxBatchEnvelopes {
			p.violate("a frame of %d envelopes (at most %d)", len(envs), maxBatchEnvelopes)
		}
		if p.checkOut && len(envs) > 1 && len(ev.data) > maxBatchBytes+1024 {
			// The server batches up to 64 KiB of envelopes; the last one
			// may carry it over by its own size, so allow one envelope's
			// worth beyond.
			largest := 0
			for _, e := range envs {
				largest = max(largest, len(e.GetPayload())+64)
			}
			if len(ev.data) > maxBatchBytes+largest {
				p.violate("a batch of %d bytes (at most 64 KiB unless one envelope is larger)", len(ev.data))
			}
		}
		it.raw = envs
		for _, e := range envs {
			f := envelopeForm(e, p.codec, p.calls)
			it.envs = append(it.envs, f)
		}
		if len(envs) == 1 {
			p.log.add("<- %s", show(it.envs[0]))
		} else {
			p.log.add("<- frame of %d envelopes, first %s", len(envs), show(it.envs[0]))
		}
	}
	return it, false
}

func opName(op byte) string {
	switch op {
	case opText:
		return "text"
	case opBinary:
		return "binary"
	}
	return "opcode " + strconv.Itoa(int(op))
}

func shortHex(b []byte) string {
	if len(b) > 32 {
		return hex.EncodeToString(b[:32]) + fmt.Sprintf("…(%d bytes)", len(b))
	}
	return hex.EncodeToString(b)
}

// transcript records what happened in a case, for the report.
type transcript struct {
	mu    sync.Mutex
	start time.Time
	lines []string
	more  int
}

const maxTranscript = 120

func newTranscript() *transcript { return &transcript{start: time.Now()} }

func (t *transcript) add(format string, args ...any) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.lines) >= maxTranscript {
		t.more++
		return
	}
	line := fmt.Sprintf(format, args...)
	if len(line) > 300 {
		line = line[:300] + "…"
	}
	t.lines = append(t.lines, fmt.Sprintf("%7.3fs %s", time.Since(t.start).Seconds(), line))
}

func (t *transcript) text() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := append([]string(nil), t.lines...)
	if t.more > 0 {
		out = append(out, fmt.Sprintf("… %d more lines", t.more))
	}
	return out
}
