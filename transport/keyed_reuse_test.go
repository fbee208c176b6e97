package transport_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/protows/protows/dedupe"
	testv1 "github.com/protows/protows/gen/go/protows/test/v1"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"github.com/protows/protows/transport"
)

// keepingStore is a dedupe.Store, not a ClaimStore, that keeps the
// outcomes it is given as they are, pointers and all: what the Store
// interface allows.
type keepingStore struct {
	mu   sync.Mutex
	fps  map[dedupe.Key]dedupe.Fingerprint
	outs map[dedupe.Key]*dedupe.Outcome
}

func (s *keepingStore) Begin(_ context.Context, k dedupe.Key, fp dedupe.Fingerprint) (*dedupe.Outcome, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f, ok := s.fps[k]; ok {
		if f != fp {
			return nil, dedupe.ErrConflict
		}
		return s.outs[k], nil // the tests send a key again only once its run ended
	}
	s.fps[k] = fp
	return nil, nil
}

func (s *keepingStore) Finish(_ context.Context, k dedupe.Key, o *dedupe.Outcome) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if o == nil {
		delete(s.fps, k)
		return nil
	}
	s.outs[k] = o
	return nil
}

// TestKeyedReplyKeptAcrossLaterCalls: a keyed call's REPLY is encoded once,
// for the client and the window; what the window keeps must not change as
// the connection goes on sending (buffers reused, the next calls' outcomes
// made): a later send of the key gets the first reply, byte for byte, from
// the default window (a ClaimStore) and from a Store that keeps outcomes as
// it is given them.
func TestKeyedReplyKeptAcrossLaterCalls(t *testing.T) {
	stores := map[string]func() dedupe.Store{
		"memory": func() dedupe.Store { return nil }, // the default
		"keeping": func() dedupe.Store {
			return &keepingStore{fps: map[dedupe.Key]dedupe.Fingerprint{}, outs: map[dedupe.Key]*dedupe.Outcome{}}
		},
	}
	for name, store := range stores {
		for _, c := range codecs {
			t.Run(name+"/"+c.Name(), func(t *testing.T) {
				var runs atomic.Int64
				cfg := transport.Config{}
				if s := store(); s != nil {
					cfg.Dedupe = s
				}
				ts := startServer(t, cfg, probes(&runs))
				cl := dial(t, ts.url, c, nil)

				firsts := map[string]*protowsv1.Envelope{}
				id := uint32(1)
				for i := range 40 {
					key := fmt.Sprintf("key-%02d", i)
					text := strings.Repeat(string(rune('a'+i%26)), 40)
					cl.send(keyed(cl, id, runMethod, key, &testv1.EchoRequest{Text: text}))
					r := cl.recv()
					if r.GetKind() != protowsv1.Kind_KIND_REPLY || r.GetId() != id {
						t.Fatalf("call %d: %v, want its REPLY", id, r)
					}
					firsts[key] = r
					id++
					// An unkeyed call between the keyed ones.
					cl.send(cl.request(id, runMethod, &testv1.EchoRequest{Text: strings.ToUpper(text)}))
					if r := cl.recv(); r.GetKind() != protowsv1.Kind_KIND_REPLY {
						t.Fatalf("call %d: %v", id, r)
					}
					id++
				}
				ran := runs.Load()
				for i := range 40 {
					key := fmt.Sprintf("key-%02d", i)
					text := strings.Repeat(string(rune('a'+i%26)), 40)
					cl.send(keyed(cl, id, runMethod, key, &testv1.EchoRequest{Text: text}))
					r := cl.recv()
					if r.GetId() != id || string(r.GetPayload()) != string(firsts[key].GetPayload()) {
						t.Fatalf("%s sent again: %v; want the first reply %q", key, r, firsts[key].GetPayload())
					}
					id++
				}
				if runs.Load() != ran {
					t.Errorf("%d runs for keys sent again, want none", runs.Load()-ran)
				}
			})
		}
	}
}
