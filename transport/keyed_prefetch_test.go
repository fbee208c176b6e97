package transport_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/protows/protows/dedupe"
	testv1 "github.com/protows/protows/gen/go/protows/test/v1"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"github.com/protows/protows/transport"
)

// prefetchingStore is the default window, with a record of the keys it is
// told to prefetch and the hints it returned, and of the keys it is asked
// to claim and the hints they came with.
type prefetchingStore struct {
	*dedupe.Memory
	mu                  sync.Mutex
	prefetched, claimed []dedupe.Key
	given, taken        []dedupe.Hint // taken: the zero Hint for none
}

func (s *prefetchingStore) Prefetch(k dedupe.Key) dedupe.Hint {
	h := s.Memory.Prefetch(k)
	s.mu.Lock()
	s.prefetched = append(s.prefetched, k)
	s.given = append(s.given, h)
	s.mu.Unlock()
	return h
}

func (s *prefetchingStore) Claim(ctx context.Context, k dedupe.Key, req dedupe.Request) (*dedupe.Outcome, dedupe.Claim, error) {
	s.mu.Lock()
	s.claimed = append(s.claimed, k)
	var h dedupe.Hint
	if req.Hint != nil {
		h = *req.Hint
	}
	s.taken = append(s.taken, h)
	s.mu.Unlock()
	return s.Memory.Claim(ctx, k, req)
}

// TestKeyedCallPrefetches: a server whose window can prefetch is told the
// key of every keyed call it will claim, the same key (the principal's,
// the method's and the idempotency key), before the claim, and the claim
// is given the Hint the prefetch returned; a call without a key, or with a
// key it refuses, is not prefetched.
func TestKeyedCallPrefetches(t *testing.T) {
	t.Parallel()
	iss := newIssuer(t)
	store := &prefetchingStore{Memory: dedupe.NewMemory(dedupe.MemoryConfig{})}
	var runs atomic.Int64
	ts := startServer(t, transport.Config{Authenticator: iss.Authenticator(), Dedupe: store}, probes(&runs))
	hdr := http.Header{"Authorization": {"Bearer " + mint(t, iss, "alice", time.Hour)}}
	var want []dedupe.Key
	for _, c := range codecs {
		cl := dial(t, ts.url, c, hdr)
		id := uint32(1)
		for i := range 3 {
			key := fmt.Sprintf("%s-key-%d", c.Name(), i)
			cl.send(keyed(cl, id, runMethod, key, &testv1.EchoRequest{Text: "x"}))
			if r := cl.recv(); r.GetKind() != protowsv1.Kind_KIND_REPLY {
				t.Fatalf("%s: %v, want its REPLY", key, r)
			}
			want = append(want, dedupe.Key{Principal: "alice", Method: runMethod, ID: key})
			id++
		}
		// Unkeyed, and a key refused (a space is not printable ASCII).
		if r := cl.call(id, runMethod, &testv1.EchoRequest{Text: "x"}); r.GetKind() != protowsv1.Kind_KIND_REPLY {
			t.Fatalf("unkeyed: %v", r)
		}
		id++
		cl.send(keyed(cl, id, runMethod, "a key", &testv1.EchoRequest{Text: "x"}))
		if r := cl.recv(); r.GetKind() != protowsv1.Kind_KIND_ERROR {
			t.Fatalf("a key with a space: %v, want an ERROR", r)
		}
	}
	store.mu.Lock()
	defer store.mu.Unlock()
	if !slices.Equal(store.prefetched, want) {
		t.Errorf("prefetched %v\nwant %v", store.prefetched, want)
	}
	if !slices.Equal(store.claimed, store.prefetched) {
		t.Errorf("claimed %v\nprefetched %v", store.claimed, store.prefetched)
	}
	if !slices.Equal(store.taken, store.given) || slices.Contains(store.taken, dedupe.Hint{}) {
		t.Errorf("the claims were given hints %v\nthe prefetches returned %v", store.taken, store.given)
	}
}
