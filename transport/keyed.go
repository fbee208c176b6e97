package transport

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"time"

	protows "github.com/protows/protows"
	"github.com/protows/protows/codec"
	"github.com/protows/protows/dedupe"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"github.com/protows/protows/internal/wireerr"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// MaxIdempotencyKeyLen is the longest idempotency key a REQUEST may carry
// (docs/PROTOCOL.md, sections 3.7 and 11).
const MaxIdempotencyKeyLen = 128

// checkKey reports why an idempotency key is malformed, or nil.
func checkKey(key string) error {
	if len(key) > MaxIdempotencyKeyLen {
		return fmt.Errorf("idempotency key of %d bytes: at most %d", len(key), MaxIdempotencyKeyLen)
	}
	if printableASCII(key) {
		return nil
	}
	for i := 0; i < len(key); i++ {
		if b := key[i]; b < 0x21 || b > 0x7e {
			return fmt.Errorf("idempotency key has byte 0x%02x at %d: only printable ASCII (0x21 to 0x7e)", b, i)
		}
	}
	return nil
}

// printableASCII reports whether every byte of s is printable ASCII, 0x21
// to 0x7e, testing eight at a time: every keyed call's key is checked. A
// key of 8 bytes or more ends with its last eight, which may overlap the
// word before them, rather than a byte at a time.
func printableASCII(s string) bool {
	if len(s) < 8 {
		for i := 0; i < len(s); i++ {
			if b := s[i]; b < 0x21 || b > 0x7e {
				return false
			}
		}
		return true
	}
	bad := notPrintable(s[len(s)-8:])
	for ; len(s) >= 8; s = s[8:] {
		bad |= notPrintable(s[:8])
	}
	return bad == 0
}

// notPrintable returns, for the 8 bytes of t, a word whose top bit of
// each byte is set where t has a byte that is not printable ASCII, and
// others maybe (they are 0 when every byte is printable).
func notPrintable(t string) uint64 {
	const (
		lsb = 0x0101010101010101
		top = lsb * 0x80
	)
	w := uint64(t[0]) | uint64(t[1])<<8 | uint64(t[2])<<16 | uint64(t[3])<<24 |
		uint64(t[4])<<32 | uint64(t[5])<<40 | uint64(t[6])<<48 | uint64(t[7])<<56
	// A byte below 0x21 borrows (its top bit set where w's is clear); one
	// above 0x7e has its top bit set, or gets it from the 1 added. A
	// carry or borrow reaches past a byte only from a byte that is itself
	// bad.
	return ((w-lsb*0x21)&^w | (w + lsb) | w) & top
}

// watchDeadline ends call with deadline_exceeded when ctx's deadline, the
// REQUEST's timeout_ms, passes (docs/PROTOCOL.md, section 3.8), as a
// CANCEL would end it. The handler keeps running until it returns; for a
// keyed call its outcome is still recorded.
func (c *Conn) watchDeadline(ctx context.Context, call *Call, ms uint32) {
	call.stopDeadline = context.AfterFunc(ctx, func() {
		if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return
		}
		if call.end(nil, protows.Errorf(protows.CodeDeadlineExceeded, "deadline of %d ms exceeded", ms), true) {
			call.cancel()
		}
	})
}

// fingerprint is the SHA-256 of req's deterministic Protobuf encoding: the
// same for an equal request in either codec. The encoding is the Protobuf
// codec's with WithDeterministicPayloads, which is deterministic Protobuf
// byte for byte (maps in key order; the wire codec's payloads leave their
// order to chance), so that the codec's fast encoders, where they are
// deterministic, serve the fingerprint too; it goes to a pooled buffer: it
// is only hashed.
func fingerprint(req proto.Message) (dedupe.Fingerprint, error) {
	bp := fingerprintBufs.Get().(*[]byte)
	defer fingerprintBufs.Put(bp)
	b, err := fingerprintCodec.AppendPayload((*bp)[:0], req)
	if err != nil {
		return dedupe.Fingerprint{}, err
	}
	if cap(b) <= maxPooledFingerprint {
		*bp = b
	}
	return sha256.Sum256(b), nil
}

// fingerprintCodec encodes requests for their fingerprints.
var fingerprintCodec = codec.Proto(codec.WithDeterministicPayloads())

// maxPooledFingerprint is the largest encoding buffer fingerprint keeps.
const maxPooledFingerprint = 64 << 10

var fingerprintBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// keyedCall is what a call with an idempotency key keeps besides its Call,
// from keyedCalls: what a keyed call needs, without an allocation.
type keyedCall struct {
	// payload is the request's payload as it came, copied out of the
	// frame for the window (dedupe.Request): into small, or into buf, a
	// pooled buffer, when it is larger.
	payload []byte
	buf     *[]byte
	// req is the decoded request, while the window is asked.
	req proto.Message
	// out is the outcome of the handler's run (Call.outcome).
	out dedupe.Outcome
	// elemBuf is the pooled buffer of the REPLY Call.outcome encoded for a
	// text codec, which endElem hands to the writer with it.
	elemBuf *[]byte
	// hint is what the window's Prefetch returned for the call's key,
	// for its claim: the key is hashed once.
	hint  dedupe.Hint
	small [smallKeyedPayload]byte
}

// smallKeyedPayload is the largest request payload a keyedCall holds in
// itself, which then takes 352 bytes, one of the allocator's size classes
// (TestKeyedCallSize).
const smallKeyedPayload = 168

// keyedCalls holds the keyedCalls of ended calls. A keyedCall goes back
// once its call's run is over (runKeyed): the window copied the request
// and the outcome it keeps (dedupe.ClaimStore), a Store was given copies,
// and the REPLY, whose bytes the outcome's payload may be, is not in it.
var keyedCalls = sync.Pool{New: func() any { return new(keyedCall) }}

// release gives k back to keyedCalls.
func (k *keyedCall) release() {
	k.payload, k.buf, k.req, k.out, k.elemBuf, k.hint = nil, nil, nil, dedupe.Outcome{}, nil, dedupe.Hint{}
	keyedCalls.Put(k)
}

// keepPayload starts what a keyed call keeps with a copy of its request
// payload, which aliases the frame's buffer, for the window, and the
// window's hint of its key. It is called as the call is made, while the
// frame is read.
func (c *Call) keepPayload(p []byte, hint *dedupe.Hint) {
	k := keyedCalls.Get().(*keyedCall)
	c.keyed = k
	k.hint = *hint
	if c.conn.srv.claims == nil {
		return // only a ClaimStore reads it (runKeyed)
	}
	if len(p) <= len(k.small) {
		k.payload = k.small[:copy(k.small[:], p)]
		return
	}
	bp := c.conn.srv.bufs.get(len(p))
	k.buf, k.payload = bp, append(*bp, p...)
}

// dropKeyed gives back what keepPayload took, once the call's run is
// over: its payload's buffer and its keyedCall.
func (c *Call) dropKeyed() {
	k := c.keyed
	if bp := k.buf; bp != nil {
		*bp = k.payload
		c.conn.srv.bufs.put(bp)
	}
	c.keyed = nil
	k.release()
}

// callFingerprinter computes the fingerprints of requests of a keyed
// call's method, for a dedupe.ClaimStore.
type callFingerprinter Call

var _ dedupe.Fingerprinter = (*callFingerprinter)(nil)

// Fingerprint implements dedupe.Fingerprinter: the call's own request,
// already decoded, is not decoded again.
func (f *callFingerprinter) Fingerprint(codecName string, payload []byte) (dedupe.Fingerprint, error) {
	c := (*Call)(f)
	if k := c.keyed; k.req != nil && codecName == c.conn.codec.Name() && len(payload) == len(k.payload) &&
		(len(payload) == 0 || &payload[0] == &k.payload[0]) {
		return fingerprint(k.req)
	}
	cd, ok := c.conn.srv.cfg.Codecs.Lookup(codecName)
	if !ok {
		return dedupe.Fingerprint{}, fmt.Errorf("codec %q is not served", codecName)
	}
	req := c.method.NewRequest()
	if err := cd.UnmarshalPayload(payload, req); err != nil {
		return dedupe.Fingerprint{}, fmt.Errorf("decode a request of %s: %w", c.method.Name, err)
	}
	return fingerprint(req)
}

// dedupeKey is the window's key of a call to method with the idempotency
// key id on c: the key is the principal's.
func (c *Conn) dedupeKey(method, id string) dedupe.Key {
	k := dedupe.Key{Method: method, ID: id}
	if p := c.principal.Load(); p != nil {
		k.Principal = p.Subject
	}
	return k
}

// keyPrefetcher is a Store that can start loading what a claim of a key
// will read, before the claim, and returns the Hint the claim takes
// (dedupe.Memory.Prefetch).
type keyPrefetcher interface {
	Prefetch(k dedupe.Key) dedupe.Hint
}

var _ keyPrefetcher = (*dedupe.Memory)(nil)

// runKeyed runs a unary call that carries an idempotency key
// (docs/PROTOCOL.md, section 3.7): the handler runs only if the server's
// window does not know the key, and every send of the call gets the
// outcome of that one run. It reports, as Call.endThrough does, that the
// caller became the connection's writer (write-through) and must run
// Conn.writeLoop once it released the call.
//
// The path of every keyed call is kept to the claim, the run and the
// finish; a Store that is not a ClaimStore (runKeyedStore), a store's
// error (keyedErr) and the end (endKeyed) are functions of their own, so
// that the code each call runs stays short: it is run between the same
// codec work of the calls before and after.
func (c *Conn) runKeyed(ctx context.Context, call *Call, req proto.Message) (write bool) {
	k := c.dedupeKey(call.method.Name, call.key)
	if call.keyed == nil {
		call.keyed = keyedCalls.Get().(*keyedCall)
	}
	defer call.dropKeyed()
	cs := c.srv.claims
	if cs == nil {
		return c.runKeyedStore(ctx, call, req, k)
	}
	// The window is given the request as it came and fingerprints it
	// only if it must: most keys are sent once.
	call.keyed.req = req
	o, claim, err := cs.Claim(ctx, k, dedupe.Request{
		Codec: c.codec.Name(), Payload: call.keyed.payload, Fingerprinter: (*callFingerprinter)(call), Hint: &call.keyed.hint,
	})
	call.keyed.req = nil
	if err != nil {
		return c.endKeyed(call, nil, nil, c.keyedErr(ctx, call, err))
	}
	var elem []byte // the REPLY, encoded, when the handler ran and replied plainly
	if o == nil {
		// The key is ours: run the handler, and keep what it returned.
		// The outcome is recorded even when the call's context ended (its
		// deadline passed, say): the handler ran. Stores bound their own
		// waits. A ClaimStore copies what it keeps (dedupe.ClaimStore):
		// the payload may be a part of elem, which the send path owns
		// once it is queued.
		res, herr := c.serve(ctx, call, req)
		o, elem = call.outcome(res, herr)
		if ferr := cs.FinishClaim(withoutCancel(ctx), claim, keptOutcome(o)); ferr != nil {
			c.storeFailed(call, ferr)
		}
	}
	return c.endKeyed(call, o, elem, nil)
}

// runKeyedStore is runKeyed with a Store that is not a ClaimStore: the
// request's fingerprint is computed up front, and the store is given an
// outcome of its own to keep.
func (c *Conn) runKeyedStore(ctx context.Context, call *Call, req proto.Message, k dedupe.Key) (write bool) {
	store := c.srv.cfg.Dedupe
	fp, err := fingerprint(req)
	var o *dedupe.Outcome
	if err == nil {
		o, err = store.Begin(ctx, k, fp)
	}
	if err != nil {
		return c.endKeyed(call, nil, nil, c.keyedErr(ctx, call, err))
	}
	var elem []byte
	if o == nil {
		res, herr := c.serve(ctx, call, req)
		o, elem = call.outcome(res, herr)
		kept := keptOutcome(o)
		if kept != nil {
			// A Store may keep the outcome as it is given: it gets one of
			// its own, not the call's.
			cp := *kept
			if elem != nil {
				cp.Payload = bytes.Clone(kept.Payload)
			}
			kept = &cp
		}
		if ferr := store.Finish(withoutCancel(ctx), k, kept); ferr != nil {
			c.storeFailed(call, ferr)
		}
	}
	return c.endKeyed(call, o, elem, nil)
}

// keptOutcome is what the window keeps of o, the outcome of a run: nil
// when the call did not happen (canceled, or unavailable), so that the
// next send runs it.
func keptOutcome(o *dedupe.Outcome) *dedupe.Outcome {
	if code := protows.Code(o.Error.GetCode()); code == protows.CodeCanceled || code == protows.CodeUnavailable {
		return nil
	}
	return o
}

// keyedErr is the error a keyed call ends with when its store did not
// let it run: its key used with another request, its context ended while
// it waited, or the store failed.
func (c *Conn) keyedErr(ctx context.Context, call *Call, err error) error {
	switch {
	case errors.Is(err, dedupe.ErrConflict):
		return protows.Errorf(protows.CodeFailedPrecondition,
			"idempotency key %q was already used with a different request to %s", call.key, call.method.Name)
	case ctx.Err() != nil:
		return protows.NewError(protows.CodeOf(ctx.Err()), ctx.Err())
	}
	c.storeFailed(call, err)
	return protows.Errorf(protows.CodeUnavailable, "idempotency store: %v", err)
}

// storeFailed logs a store's failure: to let a keyed call run, or to
// keep its outcome (the call still ends with it).
func (c *Conn) storeFailed(call *Call, err error) {
	c.logger().Error("protows: idempotency store", "method", call.method.Name, "err", err)
}

// endKeyed ends a keyed call with err, or else with its REPLY encoded
// (elem), or else with the outcome o, and counts it; write is as for
// runKeyed.
func (c *Conn) endKeyed(call *Call, o *dedupe.Outcome, elem []byte, err error) (write bool) {
	outcome := "ok"
	switch {
	case err != nil:
		call.end(nil, err, true)
		outcome = protows.CodeOf(err).String()
	case elem != nil:
		_, write = call.endElem(elem, true)
	default:
		call.endOutcome(o)
		if o.Error != nil {
			outcome = protows.Code(o.Error.GetCode()).String()
		}
	}
	if c.srv.timed {
		c.srv.cfg.Metrics.CallDone(call.method.Name, outcome, time.Since(call.start))
	}
	return write
}

// outcome is what end(res, err) would send, kept for the window: the
// REPLY's payload and metadata, or the ERROR; it is the call's own
// (keyedCall.out). A reply without metadata is encoded as end encodes it
// (replyElem), and returned as elem too, the outcome's payload a part of
// it or the buffer the REPLY was made from: the reply is encoded once,
// for the client and the window.
func (c *Call) outcome(res proto.Message, err error) (o *dedupe.Outcome, elem []byte) {
	cd := c.conn.codec
	o = &c.keyed.out
	*o = dedupe.Outcome{Codec: cd.Name()}
	if err != nil {
		o.Error = wireerr.ToWire(cd, err)
		return o, nil
	}
	c.mu.Lock()
	o.Metadata = c.replyMD
	c.mu.Unlock()
	if res == nil {
		return o, nil
	}
	if o.Metadata == nil {
		if e, p, ok := c.replyElem(res); ok {
			o.Payload = p
			return o, e
		}
		// A REPLY whose payload is not found, or an error, which the
		// encoding below reports.
	}
	payload, perr := cd.AppendPayload(nil, res)
	if perr != nil {
		o.Metadata = nil
		o.Error = wireerr.ToWire(cd, protows.Errorf(protows.CodeInternal, "encode reply: %v", perr))
		return o, nil
	}
	o.Payload = payload
	return o, nil
}

// replyElem encodes res as the call's REPLY without metadata, as
// Call.endThrough does (Call.appendReply), and returns the element and the
// REPLY's payload in it, what AppendPayload writes for res, found by the
// two built-in codecs' wire formats (replyPayload). The element's pooled
// buffer, if any, is kept for endElem, which hands it to the writer (the
// window copies what it keeps before that). It reports false when res
// does not encode, or its payload is not found.
func (c *Call) replyElem(res proto.Message) (elem, payload []byte, ok bool) {
	e, bp, err := c.appendReply(res)
	if err != nil {
		return nil, nil, false
	}
	p, ok := replyPayload(c.conn.codec.Name(), e, c.id)
	if !ok {
		c.conn.srv.bufs.putMaybe(bp)
		return nil, nil, false
	}
	c.keyed.elemBuf = bp
	return e, p, true
}

// replyPayload returns the payload of elem, the element of a REPLY of call
// id without metadata that codec.AppendMessageEnvelope wrote in the
// subprotocol codecName: the bytes AppendPayload writes for its message.
// It reports false for another subprotocol, or an element not in the form
// expected, whose payload the caller encodes on its own.
func replyPayload(codecName string, elem []byte, id uint32) ([]byte, bool) {
	switch codecName {
	case codec.ProtoName:
		return protoReplyPayload(elem)
	case codec.JSONName:
		return jsonReplyPayload(elem, id)
	}
	return nil, false
}

// protoReplyPayload returns the payload of elem, a protows.v1.Frame's
// envelopes field: its Envelope's payload field, empty when it has none.
func protoReplyPayload(elem []byte) ([]byte, bool) {
	if p, ok := protoReplyPayloadFast(elem); ok {
		return p, true
	}
	return protoReplyPayloadFields(elem)
}

// protoReplyPayloadFields is protoReplyPayload for an element of any
// form: it reads the envelope field by field.
func protoReplyPayloadFields(elem []byte) ([]byte, bool) {
	num, typ, n := protowire.ConsumeTag(elem)
	if n < 0 || num != 1 || typ != protowire.BytesType {
		return nil, false
	}
	env, m := protowire.ConsumeBytes(elem[n:])
	if m < 0 || n+m != len(elem) {
		return nil, false
	}
	var payload []byte
	for len(env) > 0 {
		num, typ, n := protowire.ConsumeTag(env)
		if n < 0 {
			return nil, false
		}
		env = env[n:]
		if num == envelopePayloadField && typ == protowire.BytesType {
			v, m := protowire.ConsumeBytes(env)
			if m < 0 {
				return nil, false
			}
			payload, env = v[:len(v):len(v)], env[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, env)
		if m < 0 {
			return nil, false
		}
		env = env[m:]
	}
	return payload, true
}

// envelopePayloadField is the field number of protows.v1.Envelope's
// payload.
const envelopePayloadField = 5

// protoReplyPayloadFast is protoReplyPayload for the element
// codec.AppendMessageEnvelope writes for a REPLY: the envelope's id, kind
// and payload fields, in this order, each at most once, and nothing else,
// its varints at most 5 bytes long (a call id has 32 bits). It reports
// false for any other form, which protoReplyPayload then reads field by
// field. Its varints are read by shortVarint, not protowire's readers: it
// runs on every keyed call that replies (BenchmarkReplyPayload, the two
// ways alternating, 2026-12-07: 15 ns against 20 ns with
// protowire.ConsumeVarint; 39 ns field by field).
func protoReplyPayloadFast(elem []byte) ([]byte, bool) {
	if len(elem) < 2 || elem[0] != 1<<3|byte(protowire.BytesType) {
		return nil, false
	}
	n, m := shortVarint(elem[1:])
	if m < 0 || n != uint64(len(elem)-1-m) {
		return nil, false
	}
	env := elem[1+m:]
	const (
		idTag      = 1<<3 | byte(protowire.VarintType)
		kindTag    = 2<<3 | byte(protowire.VarintType)
		payloadTag = envelopePayloadField<<3 | byte(protowire.BytesType)
	)
	for _, tag := range [...]byte{idTag, kindTag} {
		if len(env) > 0 && env[0] == tag {
			if _, m = shortVarint(env[1:]); m < 0 {
				return nil, false
			}
			env = env[1+m:]
		}
	}
	if len(env) == 0 {
		return nil, true // an empty payload is not written
	}
	if env[0] != payloadTag {
		return nil, false
	}
	n, m = shortVarint(env[1:])
	if m < 0 || n != uint64(len(env)-1-m) {
		return nil, false
	}
	p := env[1+m:]
	return p[:len(p):len(p)], true
}

// shortVarint reads the varint at the start of b, as
// protowire.ConsumeVarint does, when it is at most 5 bytes long; else it
// returns n < 0.
func shortVarint(b []byte) (v uint64, n int) {
	for i := 0; i < len(b) && i < 5; i++ {
		v |= uint64(b[i]&0x7f) << (7 * i)
		if b[i] < 0x80 {
			return v, i + 1
		}
	}
	return 0, -1
}

// jsonReplyPayload returns the payload of elem, a JSON envelope
// {"id":id,"kind":"reply","payload":P}: P, what lies between that prefix
// and the closing brace. That is the whole form of the element
// codec.AppendMessageEnvelope writes for a REPLY: a MessageEnvelopeCodec
// writes what AppendEnvelope writes for an Envelope of an id, a kind and
// a payload, and the JSON envelope's keys end with the payload. So P is
// not scanned (a scan of every reply's JSON cost a keyed call 320 ns of
// the server's CPU, more than its window; 2026-12-07). The id's digits are
// read and compared with id, not written and compared (cachegrind, a keyed
// echo, 2026-12-07: 179 instructions against 224 with strconv's;
// BenchmarkReplyPayload 19-21 ns against 26-31).
func jsonReplyPayload(elem []byte, id uint32) ([]byte, bool) {
	const (
		head = `{"id":`
		tail = `,"kind":"reply","payload":`
	)
	if len(elem) < len(head) || string(elem[:len(head)]) != head {
		return nil, false
	}
	// The digits strconv writes: at most 10 for 32 bits, no leading zero.
	i, v := len(head), uint64(0)
	for i < len(elem) && i < len(head)+10 && '0' <= elem[i] && elem[i] <= '9' {
		v = v*10 + uint64(elem[i]-'0')
		i++
	}
	if n := i - len(head); n == 0 || v != uint64(id) || (n > 1 && elem[len(head)] == '0') {
		return nil, false
	}
	rest := elem[i:]
	if len(rest) <= len(tail)+1 || string(rest[:len(tail)]) != tail || rest[len(rest)-1] != '}' {
		return nil, false
	}
	return rest[len(tail) : len(rest)-1 : len(rest)-1], true
}

// endElem ends the call with elem, its REPLY already encoded, as end
// does; ended is false when the call had already ended. With through set
// the caller is the goroutine that ran the call, and write reports that
// it became the connection's writer, as for Call.endThrough.
func (c *Call) endElem(elem []byte, through bool) (ended, write bool) {
	bp := c.keyed.elemBuf // elem's, when pooled
	c.keyed.elemBuf = nil
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		c.conn.srv.bufs.putMaybe(bp)
		return false, false
	}
	c.markEndedLocked()
	c.mu.Unlock()
	c.conn.forgetCall(c.id)
	return true, c.queueReply(elem, bp, true, through)
}

// endOutcome ends the call with o, re-encoded when it was kept in another
// codec. It reports false when the call had already ended.
func (c *Call) endOutcome(o *dedupe.Outcome) bool {
	env := &protowsv1.Envelope{Id: c.id, Kind: protowsv1.Kind_KIND_REPLY, Payload: o.Payload, Metadata: o.Metadata}
	if o.Error != nil {
		env = &protowsv1.Envelope{Id: c.id, Kind: protowsv1.Kind_KIND_ERROR, Error: o.Error}
	}
	if cd := c.conn.codec; o.Codec != cd.Name() {
		if err := c.recode(o, env); err != nil {
			env = &protowsv1.Envelope{Id: c.id, Kind: protowsv1.Kind_KIND_ERROR,
				Error: wireerr.ToWire(cd, protows.Errorf(protows.CodeInternal, "replay the outcome of the first send: %v", err))}
		}
	}
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		return false
	}
	c.markEndedLocked()
	c.mu.Unlock()
	c.conn.forgetCall(c.id)
	c.sendEnd(env, true)
	c.conn.endQueued()
	return true
}

// recode re-encodes env, made from o, from o's codec into the call's.
func (c *Call) recode(o *dedupe.Outcome, env *protowsv1.Envelope) error {
	from, ok := c.conn.srv.cfg.Codecs.Lookup(o.Codec)
	if !ok {
		return fmt.Errorf("codec %q is not served", o.Codec)
	}
	to := c.conn.codec
	if o.Error != nil {
		env.Error = wireerr.ToWire(to, wireerr.FromWire(from, o.Error))
		return nil
	}
	if c.method.NewResponse == nil {
		return errors.New("the method has no NewResponse")
	}
	res := c.method.NewResponse()
	if err := from.UnmarshalPayload(o.Payload, res); err != nil {
		return err
	}
	payload, err := to.AppendPayload(nil, res)
	if err != nil {
		return err
	}
	env.Payload = payload
	return nil
}
