package transport_test

import (
	"context"
	"errors"
	"strconv"
	"testing"

	"github.com/protows/protows/benchmarks/payload"
	"github.com/protows/protows/codec"
	"github.com/protows/protows/dedupe"
	benchv1 "github.com/protows/protows/gen/go/protows/bench/v1"
	testv1 "github.com/protows/protows/gen/go/protows/test/v1"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"github.com/protows/protows/internal/testservice"
	"github.com/protows/protows/transport"
)

// BenchmarkKeyedCost measures what an idempotency key adds to a unary
// call on the server, without the network: the request's fingerprint,
// and the window's Begin and Finish of a new key in a full window (the
// default dedupe.Memory) with the reply as the outcome. "fingerprint" and
// "window" are the two parts; "call" is both; "claim" is what a server
// does now, with dedupe.ClaimStore (the request's payload copied out of
// its frame and kept by the window, no fingerprint, no second lookup):
//
//	go test ./transport -run '^$' -bench KeyedCost -benchmem
func BenchmarkKeyedCost(b *testing.B) {
	for _, size := range []payload.Size{payload.Small, payload.Medium} {
		req := &benchv1.EchoRequest{Sample: payload.New(size)}
		res := &benchv1.EchoResponse{Sample: req.GetSample()}
		cd := codec.Proto()
		ctx := context.Background()
		newWindow := func(b *testing.B) (*dedupe.Memory, func(int) dedupe.Key) {
			m := dedupe.NewMemory(dedupe.MemoryConfig{})
			key := func(i int) dedupe.Key {
				return dedupe.Key{Principal: "alice", Method: "/protows.bench.v1.BenchService/Echo", ID: "0b9c5d6e-1a2b-4c3d-8e9f-" + strconv.Itoa(1e11+i)}
			}
			o := &dedupe.Outcome{Codec: cd.Name(), Payload: make([]byte, 64)}
			for i := range dedupe.DefaultMaxEntries {
				if _, err := m.Begin(ctx, key(i), dedupe.Fingerprint{}); err != nil {
					b.Fatal(err)
				}
				m.Finish(ctx, key(i), o)
			}
			return m, key
		}
		b.Run(string(size)+"/fingerprint", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := transport.Fingerprint(req); err != nil {
					b.Fatal(err)
				}
			}
		})
		reqPayload, err := cd.AppendPayload(nil, req)
		if err != nil {
			b.Fatal(err)
		}
		for _, part := range []string{"window", "call", "claim"} {
			b.Run(string(size)+"/"+part, func(b *testing.B) {
				m, key := newWindow(b)
				// More keys than the window holds: each is forgotten
				// before it comes again, so every Begin claims.
				keys := make([]dedupe.Key, 4*dedupe.DefaultMaxEntries)
				for i := range keys {
					keys[i] = key(dedupe.DefaultMaxEntries + i)
				}
				var kept []byte
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					k := keys[i%len(keys)]
					i++
					if part == "claim" {
						kept = append(kept[:0], reqPayload...) // out of the frame, into a pooled buffer
						o, c, err := m.Claim(ctx, k, dedupe.Request{Codec: cd.Name(), Payload: kept, Fingerprinter: noFingerprints{}})
						if o != nil || err != nil {
							b.Fatal(o, err)
						}
						p, err := cd.AppendPayload(nil, res)
						if err != nil {
							b.Fatal(err)
						}
						if err := m.FinishClaim(ctx, c, &dedupe.Outcome{Codec: cd.Name(), Payload: p}); err != nil {
							b.Fatal(err)
						}
						continue
					}
					var fp dedupe.Fingerprint
					if part == "call" {
						var err error
						if fp, err = transport.Fingerprint(req); err != nil {
							b.Fatal(err)
						}
					}
					if o, err := m.Begin(ctx, k, fp); o != nil || err != nil {
						b.Fatal(o, err)
					}
					p, err := cd.AppendPayload(nil, res)
					if err != nil {
						b.Fatal(err)
					}
					if err := m.Finish(ctx, k, &dedupe.Outcome{Codec: cd.Name(), Payload: p}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// noFingerprints is the Fingerprinter of a benchmark whose keys are all
// new: the window never asks it.
type noFingerprints struct{}

func (noFingerprints) Fingerprint(string, []byte) (dedupe.Fingerprint, error) {
	return dedupe.Fingerprint{}, errors.New("not asked for")
}

// BenchmarkKeyedEcho is a unary Echo round trip on one connection with and
// without an idempotency key, in the same run, the window (the default
// dedupe.Memory) full: every key is new, as the load tool's keyed echo
// sends them. Compare the two's allocations and times:
//
//	go test ./transport -run '^$' -bench KeyedEcho -benchmem -count 5
func BenchmarkKeyedEcho(b *testing.B) {
	for _, c := range codecs {
		for _, keyed := range []bool{false, true} {
			name := c.Name() + "/unkeyed"
			if keyed {
				name = c.Name() + "/keyed"
			}
			b.Run(name, func(b *testing.B) {
				m := dedupe.NewMemory(dedupe.MemoryConfig{})
				ctx := context.Background()
				o := &dedupe.Outcome{Codec: c.Name(), Payload: make([]byte, 32)}
				for i := range dedupe.DefaultMaxEntries {
					k := dedupe.Key{Method: testservice.EchoMethod, ID: "fill-" + strconv.Itoa(i)}
					_, cl, err := m.Claim(ctx, k, dedupe.Request{Codec: c.Name(), Payload: make([]byte, 16), Fingerprinter: noFingerprints{}})
					if err != nil {
						b.Fatal(err)
					}
					m.FinishClaim(ctx, cl, o)
				}
				ts := startServer(b, transport.Config{RateLimit: -1, Dedupe: m})
				cl := dial(b, ts.url, c, nil)
				req := &testv1.EchoRequest{Text: "hello, world"}
				keys := make([]string, 1<<16)
				for i := range keys {
					keys[i] = "0b9c5d6e-1a2b-4c3d-8e9f-" + strconv.Itoa(1e11+i)
				}
				b.ReportAllocs()
				id := uint32(0)
				for b.Loop() {
					id++
					e := cl.request(id, testservice.EchoMethod, req)
					if keyed {
						// Unique per run: the window never knows it.
						e.IdempotencyKey = keys[id%uint32(len(keys))] + "-" + strconv.Itoa(int(id>>16))
					}
					cl.send(e)
					if r := cl.recv(); r.GetKind() != protowsv1.Kind_KIND_REPLY {
						b.Fatal(r)
					}
				}
			})
		}
	}
}
