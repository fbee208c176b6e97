package transport_test

import (
	"crypto/sha256"
	"fmt"
	"testing"

	"github.com/protows/protows/benchmarks/payload"
	"github.com/protows/protows/codec"
	benchv1 "github.com/protows/protows/gen/go/protows/bench/v1"
	"github.com/protows/protows/transport"
	"google.golang.org/protobuf/proto"
)

// TestFingerprintIgnoresMapOrder: the Protobuf codec's payloads leave the
// order of map entries to chance where it encodes with vtprotobuf's
// methods, but a request's fingerprint is of its deterministic encoding,
// so that a request with a map of many entries, fingerprinted again and
// again, always gets the one fingerprint of its definition
// (docs/PROTOCOL.md, section 3.7).
func TestFingerprintIgnoresMapOrder(t *testing.T) {
	s := proto.Clone(payload.New(payload.Medium)).(*benchv1.Sample)
	for i := range 64 {
		s.Tags[fmt.Sprintf("key-%02d", i)] = fmt.Sprint(i)
	}
	req := &benchv1.EchoRequest{Sample: s}
	// The premise: the wire encoding of this request varies, so that a
	// fingerprint taken from it would vary too.
	wire := map[string]bool{}
	for range 20 {
		b, err := codec.Proto().AppendPayload(nil, req)
		if err != nil {
			t.Fatal(err)
		}
		wire[string(b)] = true
	}
	if len(wire) < 2 {
		t.Fatal("the Protobuf codec wrote the map in one order 20 times: the test would not see a fingerprint of the wire encoding")
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(b)
	for i := range 50 {
		got, err := transport.Fingerprint(req)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("fingerprint %d: %x, want %x", i, got, want)
		}
	}
}
