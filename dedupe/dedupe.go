// Package dedupe keeps the outcomes of calls made with an idempotency key
// (docs/PROTOCOL.md, section 3.7), so that a server runs the handler of
// such a call at most once and answers every repeated send of it with the
// first outcome: at least once on the wire, exactly once in effect, within
// a bounded window.
//
// A transport.Server uses a Store for every REQUEST that carries a key: it
// calls Begin before running the handler, and Finish with what the handler
// returned. The default, NewMemory, keeps the window in the server's
// memory; a cluster whose clients may reconnect to another node shares one
// window through a store such as dedupe/natsdedupe (NATS JetStream
// key-value):
//
//	srv := transport.NewServer(r, transport.Config{
//		Dedupe: dedupe.NewMemory(dedupe.MemoryConfig{MaxEntries: 1_000_000}),
//	})
//
// A store may also implement ClaimStore, which the server then uses
// instead: Memory does, and keeps a small request as it came instead of
// its fingerprint, which it computes only when another send of the key
// comes with other bytes. A store with a method Prefetch(Key) Hint, as
// Memory has, is given each key as soon as the server reads it, before it
// decodes the request: Memory starts loading the lines of memory the
// claim will read, and returns the key's hash, which the claim
// (Request.Hint) then does not compute again.
package dedupe

import (
	"context"
	"crypto/sha256"
	"errors"

	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
)

// Key names one logical call: its idempotency key in the scope of the
// caller and the method. The same ID from two principals, or for two
// methods, names two calls.
type Key struct {
	// Principal is the authenticated subject of the caller, "" when
	// anonymous (anonymous callers share one scope).
	Principal string
	// Method is the full method name.
	Method string
	// ID is the idempotency key the client sent.
	ID string
}

// Fingerprint identifies a call's request: the SHA-256 of the request
// message's deterministic Protobuf encoding, the same whichever codec
// carried it. A key reused with another fingerprint is refused.
type Fingerprint [sha256.Size]byte

// Outcome is what a call's handler produced, as the server sends it: the
// REPLY's payload and metadata, or the ERROR.
type Outcome struct {
	// Codec is the subprotocol of the connection the call came on: the
	// encoding of Payload and of Error's details. A repeated send that
	// comes in another codec gets the outcome re-encoded.
	Codec string
	// Payload is the REPLY's payload; empty for an error (and for an empty
	// reply message).
	Payload []byte
	// Metadata is the REPLY's metadata.
	Metadata map[string]string
	// Error is the ERROR's error; nil for a reply.
	Error *protowsv1.Error
}

// Size returns an estimate of the bytes o holds, for the bounds of a
// window.
func (o *Outcome) Size() int {
	if o == nil {
		return 0
	}
	n := len(o.Codec) + len(o.Payload)
	for k, v := range o.Metadata {
		n += len(k) + len(v) + 16
	}
	if o.Error != nil {
		n += len(o.Error.GetMessage()) + 16
		for _, d := range o.Error.GetDetails() {
			n += len(d.GetTypeUrl()) + len(d.GetValue()) + 16
		}
	}
	return n
}

// ErrConflict is returned (wrapped) by Store.Begin for a key that was used
// with another request: the call is refused (ERROR failed_precondition),
// as Stripe refuses an idempotency key reused with other parameters.
var ErrConflict = errors.New("dedupe: idempotency key already used with a different request")

// Store is a window of idempotency keys and the outcomes of their calls.
// Its methods are called concurrently, by the handler goroutines of many
// connections.
type Store interface {
	// Begin claims k for a run of its call, whose request has the
	// fingerprint fp, or finds the run that claimed it.
	//
	// It returns (nil, nil) when the caller claimed the key: the caller
	// runs the handler and then calls Finish. It returns the outcome of
	// the call when k is known with fingerprint fp, waiting within ctx
	// while the first run is still in progress; if that run is released
	// meanwhile (Finish with a nil outcome), the caller claims the key. It
	// returns an error wrapping ErrConflict when k is known with another
	// fingerprint, and ctx's error when ctx ends first.
	Begin(ctx context.Context, k Key, fp Fingerprint) (*Outcome, error)
	// Finish ends the run that claimed k. A non-nil outcome is kept for
	// the window's time; a nil outcome releases the key (the call did not
	// happen: it was cancelled), so that the next send of the call runs
	// the handler. Calls waiting in Begin are woken either way. ctx is
	// not cancelled when the call's own context ended (the outcome must be
	// recorded all the same): a store that waits on a network bounds its
	// waits itself.
	Finish(ctx context.Context, k Key, o *Outcome) error
}

// ClaimStore is an optional interface of a Store, which a transport.Server
// uses in place of Begin and Finish when its store has it: it takes a
// call's request as it came over the wire and computes the request's
// fingerprint only if it needs it, and it hands the run a Claim, so that
// finishing the run need not look the key up again.
//
// The rule is Store's: a key reused with a request of another fingerprint
// is refused. A store that keeps the request's bytes may skip the
// fingerprint when a later send's bytes are the same (same codec, same
// bytes: the same request). A store shared with servers that use Begin
// (dedupe/natsdedupe) keeps fingerprints, and needs no ClaimStore.
type ClaimStore interface {
	Store
	// Claim is Begin for req: it returns what Begin would, and, when the
	// caller claimed the key, the Claim to end the run with.
	Claim(ctx context.Context, k Key, req Request) (*Outcome, Claim, error)
	// FinishClaim is Finish for the run that c claimed. o, and the
	// bytes of its payload, are the caller's again once FinishClaim
	// returns (a server sends the reply the payload is a part of): the
	// store keeps a copy of what it keeps.
	FinishClaim(ctx context.Context, c Claim, o *Outcome) error
}

// Request is a keyed call's request as it came: its codec and payload,
// and the way to its fingerprint.
type Request struct {
	// Codec is the subprotocol of the connection the request came on.
	Codec string
	// Payload is the request's payload in Codec, as it came. It is read
	// only during the call that is given it.
	Payload []byte
	// Fingerprinter computes fingerprints of requests of the call's
	// method.
	Fingerprinter Fingerprinter
	// Hint, when not nil, is what the store's Prefetch of the call's key
	// returned: what the claim then need not work out again. A store
	// ignores a Hint it did not make for the key it claims.
	Hint *Hint
}

// Hint is what Memory.Prefetch worked out about a key (its hash), for a
// Claim of the same key on the same Memory, given it in Request.Hint. The
// zero Hint is none. A Hint is used only by a claim of the key it was
// made for, in the same strings (as a server's claim of the key it
// prefetched is); else it is ignored.
type Hint struct {
	m *Memory
	k Key
	h keyHash
}

// Fingerprinter computes the fingerprint of a request of one method.
type Fingerprinter interface {
	// Fingerprint returns the Fingerprint of the request that payload
	// encodes in codec (a subprotocol).
	Fingerprint(codec string, payload []byte) (Fingerprint, error)
}

// Claim is a run's hold on a key, from ClaimStore.Claim.
type Claim struct {
	// Key is the claimed key.
	Key Key
	// Ref is where the store holds the claim, the store's own; zero for
	// nowhere in particular.
	Ref [3]uint64
}
