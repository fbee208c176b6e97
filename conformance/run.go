package conformance

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/protows/protows/codec"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
)

// caseRun is one case in one codec: its connections, variables and
// transcript.
type caseRun struct {
	ctx       context.Context
	c         *Case
	codecName string
	codec     codec.Codec
	vars      map[string]any
	log       *transcript

	// server mode
	server *ServerTarget
	peers  map[string]*peer

	// client mode
	script  *scriptedServer
	driver  *Driver
	client  string
	current *peer
	events  map[string][]map[string]any // driver events by call, not yet consumed

	bg sync.WaitGroup
}

func newCaseRun(ctx context.Context, c *Case, codecName string) *caseRun {
	cd := Codecs[codecName]
	return &caseRun{
		ctx: ctx, c: c, codecName: codecName, codec: cd,
		// key is an idempotency key fresh for each run of the case, so that
		// runs against one server do not share it (PROTOCOL.md section 3.7).
		vars:  map[string]any{"codec": codecName, "subprotocol": cd.Name(), "key": rand.Text()},
		log:   newTranscript(),
		peers: map[string]*peer{},
	}
}

// cleanup ends every connection.
func (r *caseRun) cleanup() {
	for _, p := range r.peers {
		p.shutdown()
	}
	if r.current != nil {
		r.current.shutdown()
	}
	r.bg.Wait()
}

// runSteps takes the case's steps in order.
func (r *caseRun) runSteps(steps []*Step) error {
	for i, s := range steps {
		if err := r.ctx.Err(); err != nil {
			return err
		}
		var err error
		if r.c.Mode == ModeServer {
			err = r.serverStep(s)
		} else {
			err = r.clientStep(s)
		}
		if err == nil {
			err = r.violations()
		}
		if err != nil {
			return fmt.Errorf("step %d (%s): %w", i+1, describeStep(s), err)
		}
	}
	return r.violations()
}

func (r *caseRun) violations() error {
	for _, p := range r.peers {
		if err := p.violation(); err != nil {
			return err
		}
	}
	if r.current != nil {
		return r.current.violation()
	}
	return nil
}

func describeStep(s *Step) string {
	b, _ := marshalJSON(s)
	d := string(b)
	if len(d) > 160 {
		d = d[:160] + "…"
	}
	return d
}

// commonStep takes the steps both modes share, on connection p.
func (r *caseRun) commonStep(p *peer, s *Step) error {
	switch {
	case s.Send != nil:
		return r.send(p, s.Send)
	case s.SendRaw != nil:
		return r.sendRaw(p, s.SendRaw)
	case s.Expect != nil:
		return r.expect(p, s.Expect, time.Now().Add(s.within()))
	case s.ExpectRaw != nil:
		return r.expectRaw(p, s.ExpectRaw, time.Now().Add(s.within()))
	case s.ExpectClose != nil:
		return r.expectClose(p, s.ExpectClose, s.within())
	case s.ExpectSilence != 0:
		return r.expectSilence(p, time.Duration(s.ExpectSilence))
	case s.Close != nil:
		r.log.add("-> close %d %q", s.Close.Code, s.Close.Reason)
		return p.ws.writeFrames(frame{fin: true, opcode: opClose, payload: closePayload(s.Close.Code, s.Close.Reason)})
	case s.Cut:
		r.log.add("-> cut the TCP connection")
		return p.ws.nc.Close()
	case s.Wait != 0:
		r.log.add("-- wait %v", time.Duration(s.Wait))
		return sleep(r.ctx, time.Duration(s.Wait))
	case s.Stall != 0:
		r.log.add("-- stop reading for %v", time.Duration(s.Stall))
		p.ws.gate.Lock()
		defer p.ws.gate.Unlock()
		return sleep(r.ctx, time.Duration(s.Stall))
	}
	return errors.New("not a step of this mode")
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// dataOpcode is the opcode of the codec's messages.
func (r *caseRun) dataOpcode() byte {
	if r.codec.Binary() {
		return opBinary
	}
	return opText
}

// send encodes envelopes with the case's codec and writes them, all frames
// in one write.
func (r *caseRun) send(p *peer, s *Send) error {
	var frames [][]map[string]any
	if len(s.Envelopes) > 0 {
		var f []map[string]any
		for _, e := range s.Envelopes {
			f = append(f, substituteMap(e, r.vars, 0))
		}
		frames = append(frames, f)
	}
	if s.Repeat != nil {
		per := s.Repeat.PerFrame
		if per <= 0 {
			per = s.Repeat.Count
		}
		var f []map[string]any
		for i := 1; i <= s.Repeat.Count; i++ {
			f = append(f, substituteMap(s.Repeat.Envelope, r.vars, i))
			if len(f) == per || i == s.Repeat.Count {
				frames = append(frames, f)
				f = nil
			}
		}
	}
	var out []frame
	for _, f := range frames {
		encoded := make([][]byte, 0, len(f))
		for _, m := range f {
			e, err := buildEnvelope(m, r.codec, p.calls)
			if err != nil {
				return err
			}
			b, err := r.codec.AppendEnvelope(nil, e)
			if err != nil {
				return fmt.Errorf("encoding %s: %w", show(m), err)
			}
			encoded = append(encoded, b)
		}
		data := codec.AppendFrame(r.codec, nil, encoded...)
		if len(f) == 1 {
			r.log.add("-> %s", show(f[0]))
		} else {
			r.log.add("-> frame of %d envelopes, first %s", len(f), show(f[0]))
		}
		f0 := frame{fin: true, opcode: r.dataOpcode(), payload: data}
		if s.Compress {
			f0.payload, f0.rsv1 = compress(data), true
		}
		out = append(out, f0)
	}
	if len(out) == 0 {
		return errors.New("nothing to send")
	}
	return p.ws.writeFrames(out...)
}

func (r *caseRun) rawOpcode(v any) (byte, error) {
	switch o := v.(type) {
	case nil:
		return r.dataOpcode(), nil
	case string:
		switch o {
		case "codec":
			return r.dataOpcode(), nil
		case "text":
			return opText, nil
		case "binary":
			return opBinary, nil
		case "ping":
			return opPing, nil
		case "pong":
			return opPong, nil
		case "other":
			// The opcode of the codec a connection did not negotiate.
			if r.codec.Binary() {
				return opText, nil
			}
			return opBinary, nil
		}
	default:
		n, err := toUint32(v)
		if err == nil && n < 16 {
			return byte(n), nil
		}
	}
	return 0, fmt.Errorf("bad opcode %v", v)
}

// sendRaw writes bytes as a message or as they are.
func (r *caseRun) sendRaw(p *peer, raw *Raw) error {
	data, err := hex.DecodeString(strings.ReplaceAll(raw.Hex, " ", ""))
	if err != nil {
		return fmt.Errorf("hex: %w", err)
	}
	data = append(data, r.expand(raw.Text)...)
	if raw.Fill != nil {
		b, err := hex.DecodeString(raw.Fill.Byte)
		if err != nil || len(b) != 1 {
			return fmt.Errorf("fill byte %q", raw.Fill.Byte)
		}
		data = append(data, strings.Repeat(string(b), raw.Fill.Count)...)
	}
	var wire []byte
	if raw.Wire {
		wire = data
		r.log.add("-> raw bytes %s", shortHex(data))
	} else {
		op, err := r.rawOpcode(raw.Opcode)
		if err != nil {
			return err
		}
		rsv1 := false
		if raw.Compress {
			data, rsv1 = compress(data), true
		}
		n := max(raw.Fragments, 1)
		var fs []frame
		size := (len(data) + n - 1) / n
		for i := range n {
			part := data[min(i*size, len(data)):min((i+1)*size, len(data))]
			f := frame{fin: i == n-1, opcode: op, payload: part}
			if i > 0 {
				f.opcode = opContinuation
			} else {
				f.rsv1 = rsv1
			}
			fs = append(fs, f)
			if raw.PingBetween && i < n-1 {
				fs = append(fs, frame{fin: true, opcode: opPing, payload: []byte("between")})
			}
		}
		for _, f := range fs {
			wire = appendFrame(wire, f, p.ws.client)
		}
		reps := max(raw.Repeat, 1)
		if reps > 1 {
			one := wire
			wire = make([]byte, 0, len(one)*reps)
			for range reps {
				wire = append(wire, one...)
			}
		}
		r.log.add("-> %s message of %d bytes in %d frame(s) x%d: %s", opName(op), len(data), n, reps, shortHex(data))
	}
	if raw.Background {
		r.bg.Go(func() { _ = p.ws.writeRaw(wire) })
		return nil
	}
	return p.ws.writeRaw(wire)
}

// expect receives envelopes until every pattern matched. Envelopes that
// match a Skip pattern are ignored; any other is a failure.
func (r *caseRun) expect(p *peer, x *Expect, deadline time.Time) error {
	var want []map[string]any
	for _, e := range x.Envelopes {
		want = append(want, substituteMap(e, r.vars, 0))
	}
	if x.Repeat != nil {
		for i := 1; i <= x.Repeat.Count; i++ {
			want = append(want, substituteMap(x.Repeat.Envelope, r.vars, i))
		}
	}
	var skip []map[string]any
	for _, e := range x.Skip {
		skip = append(skip, substituteMap(e, r.vars, 0))
	}
	matched := 0
	done := make([]bool, len(want))
	for matched < len(want) {
		it, err := p.next(r.ctx, deadline)
		if err != nil {
			if errors.Is(err, errTimeout) {
				return fmt.Errorf("timed out waiting for %s (%d of %d matched)", show(want[firstFalse(done)]), matched, len(want))
			}
			return err
		}
		switch it.ev.kind {
		case eventPing, eventPong:
			continue
		case eventClose:
			return fmt.Errorf("the peer closed with %d %q while %d envelope(s) were expected, next %s", it.ev.code, it.ev.data, len(want)-matched, show(want[firstFalse(done)]))
		case eventEnd:
			return fmt.Errorf("the connection ended (%v) while %d envelope(s) were expected", it.ev.err, len(want)-matched)
		}
		if it.envs == nil {
			return errors.New("an undecodable frame")
		}
		for k, got := range it.envs {
			if matched == len(want) {
				// The rest of the frame is for the next steps.
				p.unread(item{ev: it.ev, envs: it.envs[k:], raw: it.raw[k:]})
				break
			}
			if r.answerPing(p, it.raw[k]) {
				continue
			}
			ok := false
			var firstErr error
			for i := range want {
				if done[i] {
					continue
				}
				err := match(want[i], got, r.vars)
				if err == nil {
					done[i], ok = true, true
					matched++
					break
				}
				if firstErr == nil {
					firstErr = err
				}
				if !x.Unordered {
					break
				}
			}
			if ok {
				continue
			}
			for _, sk := range skip {
				if match(sk, got, r.vars) == nil {
					ok = true
					break
				}
			}
			if !ok {
				return fmt.Errorf("unexpected envelope %s: %v", show(got), firstErr)
			}
		}
	}
	return nil
}

// answerPing answers a client's PING with PONG in client mode, when the
// connection does so automatically.
func (r *caseRun) answerPing(p *peer, e *protowsv1.Envelope) bool {
	if r.c.Mode != ModeClient || e.GetKind() != protowsv1.Kind_KIND_PING || !p.autoPong.Load() {
		return false
	}
	b, err := codec.MarshalFrame(r.codec, &protowsv1.Envelope{Id: e.GetId(), Kind: protowsv1.Kind_KIND_PONG})
	if err == nil {
		_ = p.ws.writeFrames(frame{fin: true, opcode: r.dataOpcode(), payload: b})
		r.log.add("-> pong %d (automatic)", e.GetId())
	}
	return true
}

func firstFalse(b []bool) int {
	for i, v := range b {
		if !v {
			return i
		}
	}
	return 0
}

// expectRaw checks the bytes of the next message.
func (r *caseRun) expectRaw(p *peer, x *ExpectRaw, deadline time.Time) error {
	for {
		it, err := p.next(r.ctx, deadline)
		if err != nil {
			return err
		}
		if it.ev.kind == eventPing || it.ev.kind == eventPong {
			continue
		}
		if it.ev.kind != eventMessage {
			return fmt.Errorf("want a message, the connection ended or closed (%d)", it.ev.code)
		}
		got := string(it.ev.data)
		if x.Equals != nil && got != *x.Equals {
			return fmt.Errorf("message is %q, want %q", got, *x.Equals)
		}
		for _, s := range x.Contains {
			if !strings.Contains(got, s) {
				return fmt.Errorf("message %q does not contain %q", got, s)
			}
		}
		for _, s := range x.NotContains {
			if strings.Contains(got, s) {
				return fmt.Errorf("message %q contains %q", got, s)
			}
		}
		return nil
	}
}

// expectClose waits for the close frame (or the end of the TCP connection
// for code 1006), ignoring envelopes, answers it unless NoReply, and
// waits for the TCP connection to end.
func (r *caseRun) expectClose(p *peer, x *ExpectClose, within time.Duration) error {
	start := time.Now()
	deadline := start.Add(within)
	ignored := 0
	for {
		it, err := p.next(r.ctx, deadline)
		if err != nil {
			if errors.Is(err, errTimeout) {
				return fmt.Errorf("no close within %v (%d envelopes meanwhile)", within, ignored)
			}
			return err
		}
		switch it.ev.kind {
		case eventMessage:
			for k := range it.raw {
				if !r.answerPing(p, it.raw[k]) {
					ignored++
				}
			}
			continue
		case eventPing, eventPong:
			continue
		}
		code := it.ev.code
		if it.ev.kind == eventEnd {
			code = 1006
		}
		took := time.Since(start)
		if err := match(normalizeNumber(x.Code), float64(code), r.vars); err != nil {
			if it.ev.kind == eventEnd {
				return fmt.Errorf("the connection ended without a close frame (%v); want close %v", it.ev.err, show(x.Code))
			}
			return fmt.Errorf("close code %d %q: %w", code, it.ev.data, err)
		}
		if x.Reason != nil {
			if err := match(x.Reason, string(it.ev.data), r.vars); err != nil {
				return fmt.Errorf("close reason: %w", err)
			}
		}
		if x.Min != 0 && took < time.Duration(x.Min) {
			return fmt.Errorf("closed after %v, want at least %v", took, time.Duration(x.Min))
		}
		if it.ev.kind == eventEnd {
			return nil
		}
		if !x.NoReply {
			// Echo the close frame, as RFC 6455 section 5.5.1 asks.
			_ = p.ws.writeFrames(frame{fin: true, opcode: opClose, payload: closePayload(code, "")})
		}
		eof := time.Duration(x.EOFWithin)
		if eof == 0 {
			eof = defaultEOFWithin
		}
		return r.waitEnd(p, eof)
	}
}

// waitEnd waits for the end of the TCP connection.
func (r *caseRun) waitEnd(p *peer, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		it, err := p.next(r.ctx, deadline)
		if err != nil {
			if errors.Is(err, errTimeout) {
				return fmt.Errorf("the TCP connection was still open %v after the close frame", within)
			}
			if p.ended {
				return nil
			}
			return err
		}
		if it.ev.kind == eventEnd {
			return nil
		}
	}
}

// expectSilence fails on any envelope within d.
func (r *caseRun) expectSilence(p *peer, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		it, err := p.next(r.ctx, deadline)
		if errors.Is(err, errTimeout) {
			return nil
		}
		if err != nil {
			return err
		}
		switch it.ev.kind {
		case eventPing, eventPong:
			continue
		case eventMessage:
			for k, e := range it.envs {
				if !r.answerPing(p, it.raw[k]) {
					return fmt.Errorf("want silence, got %s", show(e))
				}
			}
			continue
		}
		return fmt.Errorf("want silence, the connection closed (%d %q)", it.ev.code, it.ev.data)
	}
}

// normalizeNumber turns json.Number patterns into float64, recursively,
// so that patterns and received values compare.
func normalizeNumber(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range t {
			out[k] = normalizeNumber(e)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = normalizeNumber(e)
		}
		return out
	}
	if f, err := toFloat(v); err == nil {
		return f
	}
	return v
}
