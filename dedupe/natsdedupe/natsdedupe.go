// Package natsdedupe is a dedupe.Store on NATS JetStream key-value: one
// window of idempotency keys shared by the nodes of a cluster, so that a
// call sent again after a failover, to another node, is still answered
// with its first outcome instead of running twice (docs/PROTOCOL.md,
// section 3.7).
//
//	nc, _ := nats.Connect("nats://127.0.0.1:4222")
//	js, _ := jetstream.New(nc)
//	store, err := natsdedupe.New(ctx, js, natsdedupe.Config{})
//	srv := transport.NewServer(r, transport.Config{Dedupe: store})
//
// Each key is one entry of a bucket (history 1): a "running" record while
// the first run is in progress, then the run's outcome. Writes are
// compare-and-set on the entry's revision, so exactly one node claims a key.
// A node refreshes the lease of the claims it runs; a claim whose lease ran
// out (its node died) is taken over by the next send. The bucket's TTL is
// the window's age; its MaxBytes bounds its size, and a full bucket refuses
// new keys (their calls get unavailable) until old ones age out. It is a
// separate package so that programs that do not use it never download
// nats.go.
package natsdedupe

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/protows/protows/dedupe"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"google.golang.org/protobuf/proto"
)

// The defaults of Config.
const (
	// DefaultBucket is the bucket's name.
	DefaultBucket = "protows_dedupe"
	// DefaultMaxAge is the window's age, the bucket's TTL.
	DefaultMaxAge = dedupe.DefaultMaxAge
	// DefaultMaxBytes bounds the bucket.
	DefaultMaxBytes = 1 << 30
	// DefaultLease is how long a claim holds without a refresh.
	DefaultLease = 30 * time.Second
)

// Config configures a Store. Zero fields take the defaults.
type Config struct {
	// Bucket is the key-value bucket, created when missing (and updated
	// to this configuration). Zero means DefaultBucket.
	Bucket string
	// MaxAge is how long a key is remembered. Zero means DefaultMaxAge.
	MaxAge time.Duration
	// MaxBytes bounds the bucket. Zero means DefaultMaxBytes.
	MaxBytes int64
	// Lease is how long a node's claim of a running call holds without
	// a refresh (the node refreshes it every third of it): after a node
	// died, a send of its running calls waits at most this long before
	// another node runs them. Zero means DefaultLease.
	Lease time.Duration
	// Replicas is the bucket's replication in a JetStream cluster. Zero
	// means 1.
	Replicas int
	// Storage is where the bucket is kept. The zero value is
	// jetstream.FileStorage.
	Storage jetstream.StorageType
}

// Store is a dedupe.Store on a JetStream key-value bucket. It is safe for
// concurrent use.
type Store struct {
	kv    jetstream.KeyValue
	lease time.Duration
	now   func() time.Time

	mu     sync.Mutex
	claims map[string]*claim // by entry name
}

var _ dedupe.Store = (*Store)(nil)

// claim is a key this node runs: its entry's revision, refreshed by a
// timer until the run finishes. mu serializes the refreshes and Finish, so
// that each writes on the revision the other left.
type claim struct {
	mu    sync.Mutex
	fp    dedupe.Fingerprint
	rev   uint64
	timer *time.Timer
	done  bool
}

// record is an entry's value.
type record struct {
	// FP is the request's fingerprint.
	FP []byte `json:"fp"`
	// LeaseUntil is, while the first run is in progress, when its claim
	// lapses, in Unix milliseconds; 0 once the run finished.
	LeaseUntil int64 `json:"lease,omitempty"`
	// The outcome, once finished.
	Codec    string            `json:"codec,omitempty"`
	Payload  []byte            `json:"payload,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"`
	// Error is the Protobuf encoding of the ERROR's protows.v1.Error.
	Error []byte `json:"error,omitempty"`
	// Failed says the outcome is an error (Error may be empty).
	Failed bool `json:"failed,omitempty"`
}

// New returns a Store on the bucket of cfg, creating or updating it.
func New(ctx context.Context, js jetstream.JetStream, cfg Config) (*Store, error) {
	if cfg.Bucket == "" {
		cfg.Bucket = DefaultBucket
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = DefaultMaxAge
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.Lease <= 0 {
		cfg.Lease = DefaultLease
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      cfg.Bucket,
		Description: "protows idempotency keys (docs/PROTOCOL.md, section 3.7)",
		History:     1,
		TTL:         cfg.MaxAge,
		MaxBytes:    cfg.MaxBytes,
		Storage:     cfg.Storage,
		Replicas:    cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("natsdedupe: bucket %s: %w", cfg.Bucket, err)
	}
	return &Store{kv: kv, lease: cfg.Lease, now: time.Now, claims: make(map[string]*claim)}, nil
}

// entryName is a key's entry: a hash, since keys, subjects and method
// names may hold characters that key-value keys may not.
func entryName(k dedupe.Key) string {
	h := sha256.New()
	for _, s := range []string{k.Principal, k.Method, k.ID} {
		fmt.Fprintf(h, "%d:%s", len(s), s)
	}
	return "k." + hex.EncodeToString(h.Sum(nil))
}

func (s *Store) running(fp dedupe.Fingerprint) []byte {
	b, _ := json.Marshal(record{FP: fp[:], LeaseUntil: s.now().Add(s.lease).UnixMilli()})
	return b
}

// Begin implements dedupe.Store.
func (s *Store) Begin(ctx context.Context, k dedupe.Key, fp dedupe.Fingerprint) (*dedupe.Outcome, error) {
	name := entryName(k)
	for {
		rev, err := s.kv.Create(ctx, name, s.running(fp))
		if err == nil {
			s.hold(name, rev, fp)
			return nil, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return nil, fmt.Errorf("natsdedupe: %w", err)
		}
		o, claimed, err := s.wait(ctx, k, name, fp)
		if err != nil || o != nil || claimed {
			return o, err
		}
		// The entry was deleted (a released key): claim it again.
	}
}

// wait follows the entry of a key that exists until it holds an outcome,
// is deleted (claimed = false, o = nil), or its claim lapses and this node
// takes it over (claimed = true).
func (s *Store) wait(ctx context.Context, k dedupe.Key, name string, fp dedupe.Fingerprint) (o *dedupe.Outcome, claimed bool, err error) {
	// A watch starts with the entry's current value, so no change between
	// the failed Create and here is missed.
	w, err := s.kv.Watch(ctx, name)
	if err != nil {
		return nil, false, fmt.Errorf("natsdedupe: %w", err)
	}
	defer func() { _ = w.Stop() }()
	lapse := time.NewTimer(time.Hour)
	defer lapse.Stop()
	var rev uint64
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return nil, false, errors.New("natsdedupe: watch ended")
			}
			if e == nil {
				continue // the end of the initial values
			}
			if e.Operation() != jetstream.KeyValuePut {
				return nil, false, nil
			}
			var rec record
			if err := json.Unmarshal(e.Value(), &rec); err != nil {
				return nil, false, fmt.Errorf("natsdedupe: entry %s: %w", name, err)
			}
			if string(rec.FP) != string(fp[:]) {
				return nil, false, fmt.Errorf("%w: key %q of %s", dedupe.ErrConflict, k.ID, k.Method)
			}
			if rec.LeaseUntil == 0 {
				o, err := rec.outcome()
				return o, false, err
			}
			rev = e.Revision()
			lapse.Reset(time.Until(time.UnixMilli(rec.LeaseUntil)))
		case <-lapse.C:
			// The node that claimed the key stopped refreshing its
			// claim: it died. Take the key over, unless another node was
			// quicker (or the claim was refreshed after all).
			nrev, err := s.kv.Update(ctx, name, s.running(fp), rev)
			if err == nil {
				s.hold(name, nrev, fp)
				return nil, true, nil
			}
			lapse.Reset(s.lease / 3)
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
	}
}

// hold records a claim of this node and refreshes its lease until Finish.
func (s *Store) hold(name string, rev uint64, fp dedupe.Fingerprint) {
	c := &claim{rev: rev, fp: fp}
	c.mu.Lock()
	defer c.mu.Unlock()
	s.mu.Lock()
	s.claims[name] = c
	s.mu.Unlock()
	c.timer = time.AfterFunc(s.lease/3, func() { s.refresh(name, c) })
}

// refresh extends the lease of a claim, and schedules the next refresh.
func (s *Store) refresh(name string, c *claim) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.lease/3)
	if rev, err := s.kv.Update(ctx, name, s.running(c.fp), c.rev); err == nil {
		c.rev = rev
	}
	cancel()
	c.timer = time.AfterFunc(s.lease/3, func() { s.refresh(name, c) })
}

// Finish implements dedupe.Store.
func (s *Store) Finish(ctx context.Context, k dedupe.Key, o *dedupe.Outcome) error {
	name := entryName(k)
	s.mu.Lock()
	c := s.claims[name]
	delete(s.claims, name)
	s.mu.Unlock()
	if c == nil {
		return nil // not claimed here: nothing to finish
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.done = true
	c.timer.Stop()
	// The transport's ctx is never cancelled (see dedupe.Store): bound
	// the writes here, by the lease, after which the claim lapses anyway.
	ctx, cancel := context.WithTimeout(ctx, s.lease)
	defer cancel()
	if o == nil {
		if err := s.kv.Delete(ctx, name, jetstream.LastRevision(c.rev)); err != nil {
			return fmt.Errorf("natsdedupe: release: %w", err)
		}
		return nil
	}
	rec := record{FP: c.fp[:], Codec: o.Codec, Payload: o.Payload, Metadata: o.Metadata}
	var err error
	if o.Error != nil {
		rec.Failed = true
		if rec.Error, err = proto.Marshal(o.Error); err != nil {
			return fmt.Errorf("natsdedupe: finish: %w", err)
		}
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("natsdedupe: finish: %w", err)
	}
	if _, err := s.kv.Update(ctx, name, b, c.rev); err != nil {
		return fmt.Errorf("natsdedupe: finish: %w", err)
	}
	return nil
}

// outcome returns the outcome a finished record holds.
func (r *record) outcome() (*dedupe.Outcome, error) {
	o := &dedupe.Outcome{Codec: r.Codec, Payload: r.Payload, Metadata: r.Metadata}
	if r.Failed {
		o.Error = &protowsv1.Error{}
		if err := proto.Unmarshal(r.Error, o.Error); err != nil {
			return nil, fmt.Errorf("natsdedupe: stored error: %w", err)
		}
	}
	return o, nil
}
