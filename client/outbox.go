package client

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"sync"
	"time"

	"github.com/protows/protows"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"github.com/protows/protows/internal/wireerr"
)

// The outbox holds the unary calls made with an idempotency key
// (ExactlyOnce, WithIdempotencyKey) until they get their answer or their
// context ends, and sends them again, with the same key, on every new
// connection: calls made while disconnected, and calls whose connection
// dropped before the answer came (docs/PROTOCOL.md, section 3.7). The
// server runs each call's handler once and answers every send with that
// run's outcome.
//
// Retry rules, in one place:
//   - a call is sent on each connection at most once, and again on the
//     next connection when the one it was sent on ended before the answer;
//   - calls are sent, and sent again, in the order they were made
//     (outbox.entries is in that order, and sends happen under obMu);
//   - an ERROR unavailable (the server refused the call, draining or
//     overloaded, or the handler said "try again"; the server does not keep
//     that outcome) sends the call again after a backoff delay, at most
//     retryAttempts times; every other REPLY or ERROR is the answer;
//   - the call's context bounds it all: each send carries the time left
//     (timeout_ms), and when the context ends the call is dropped from the
//     outbox and the server is told (CANCEL) if the call is in flight.
type outbox struct {
	mu      sync.Mutex // held while sending, so that sends keep their order
	entries []*outboxEntry
}

// outboxEntry is one logical call in the outbox.
type outboxEntry struct {
	ctx     context.Context
	method  string
	payload []byte
	md      map[string]string
	key     string
	res     chan unaryResult // the answer, or an unavailable to retry

	// Under outbox.mu.
	sentOn *conn // the connection the call was last sent on
	id     uint32
}

// newIdempotencyKey returns a new idempotency key: 128 random bits in
// base64url without padding, 22 characters. A key travels with every send
// of its call, so it is kept short: a UUID's 36 characters carry the same
// bits, and its 14 more bytes a call cost the server measurably
// (benchmarks/RESULTS.md, "The key's cost measured in turns on one
// server").
func newIdempotencyKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// callOnce makes a unary call through the outbox and returns its REPLY.
func (c *Client) callOnce(ctx context.Context, method string, payload []byte, md map[string]string, key string) (*protowsv1.Envelope, error) {
	e := &outboxEntry{ctx: ctx, method: method, payload: payload, md: md, key: key, res: make(chan unaryResult, 1)}
	c.outbox.mu.Lock()
	c.outbox.entries = append(c.outbox.entries, e)
	c.outbox.mu.Unlock()
	defer c.dropEntry(e)
	c.flushOutbox(c.current())
	unavailable := 0
	for {
		select {
		case r := <-e.res:
			if !r.retry || unavailable >= c.cfg.retryAttempts {
				return r.env, r.err
			}
			delay := c.cfg.backoff.delay(unavailable, c.cfg.rnd)
			unavailable++
			c.cfg.logger.Debug("protows client: server unavailable, sending the call again", "method", method, "delay", delay)
			if err := sleepCtx(ctx, delay); err != nil {
				return nil, err
			}
			c.outbox.mu.Lock()
			e.sentOn = nil
			c.outbox.mu.Unlock()
			c.flushOutbox(c.current())
		case <-ctx.Done():
			return nil, ctxError(ctx)
		case <-c.done:
			c.mu.Lock()
			err := c.stopErr
			c.mu.Unlock()
			return nil, err
		}
	}
}

// dropEntry removes e from the outbox once its caller returned, and
// cancels it on the server when it is still in flight there.
func (c *Client) dropEntry(e *outboxEntry) {
	c.outbox.mu.Lock()
	for i, x := range c.outbox.entries {
		if x == e {
			c.outbox.entries = append(c.outbox.entries[:i], c.outbox.entries[i+1:]...)
			break
		}
	}
	cn, id := e.sentOn, e.id
	e.sentOn = nil
	c.outbox.mu.Unlock()
	if cn != nil && cn.unregister(id) {
		cn.sendCancel(id)
	}
}

// flushOutbox sends, in order, the calls of the outbox that were not sent
// on cn yet. cn nil (not connected) sends nothing: attach flushes.
func (c *Client) flushOutbox(cn *conn) {
	if cn == nil {
		return
	}
	c.outbox.mu.Lock()
	defer c.outbox.mu.Unlock()
	for _, e := range c.outbox.entries {
		if e.sentOn == cn || e.ctx.Err() != nil {
			continue
		}
		if e.sentOn != nil {
			// Sent again on the same connection after an unavailable:
			// the old id is done with.
			e.sentOn.unregister(e.id)
		}
		id, err := cn.register(&outboxSink{e: e})
		if err != nil {
			return // cn ended: the next connection's attach flushes
		}
		b, err := cn.encode(cn.unaryRequest(e.ctx, id, e.method, e.payload, e.md, e.key))
		if err != nil {
			// The request cannot be sent (too large, say): that is its
			// answer, on every connection.
			cn.unregister(id)
			select {
			case e.res <- unaryResult{err: err}:
			default:
			}
			e.sentOn = cn
			continue
		}
		if err := cn.send(e.ctx, b); err != nil {
			// cn ended (the next connection sends the call) or the
			// call's context did (its caller drops it).
			cn.unregister(id)
			continue
		}
		e.sentOn, e.id = cn, id
	}
}

// outboxSink receives the answer of an outbox call on one connection.
type outboxSink struct{ e *outboxEntry }

var _ sink = (*outboxSink)(nil)

func (s *outboxSink) deliver(cn *conn, id uint32, env *protowsv1.Envelope, final bool) {
	var r unaryResult
	switch env.GetKind() {
	case protowsv1.Kind_KIND_REPLY:
		r.env = env
	case protowsv1.Kind_KIND_ERROR:
		perr := wireerr.FromWire(cn.codec, env.GetError())
		r.err = perr
		r.retry = perr.Code() == protows.CodeUnavailable
	default:
		r.err = protows.Errorf(protows.CodeInternal, "client: server sent %s for a unary call", env.GetKind())
	}
	if !final && !cn.unregister(id) {
		return
	}
	select {
	case s.e.res <- r:
	default: // an answer is already waiting: the caller takes that one
	}
}

// lost leaves the call in the outbox: the next connection sends it again.
func (s *outboxSink) lost(*conn, uint32, error) {}

// sleepCtx waits for d or the end of ctx.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctxError(ctx)
	}
}
