package protowsbench

import (
	"context"
	"crypto/sha256"
	"strconv"

	"github.com/protows/protows/benchmarks/payload"
	"github.com/protows/protows/dedupe"
	benchv1 "github.com/protows/protows/gen/go/protows/bench/v1"
	"google.golang.org/protobuf/proto"
)

// fullWindow returns a dedupe.Memory with its default bounds, filled with
// finished keys of Echo calls of codec name and size until it is at its
// bounds: until it forgets keys to take new ones (at about
// dedupe.DefaultMaxEntries small keys, or dedupe.DefaultMaxBytes of larger
// ones). That is the window of a server that has served keyed calls for a
// while, in which every new key makes old ones go.
func fullWindow(codecName string, size payload.Size) (*dedupe.Memory, error) {
	c, err := codecOf(codecName)
	if err != nil {
		return nil, err
	}
	msg := &benchv1.EchoRequest{Sample: payload.New(size)}
	req, err := c.AppendPayload(nil, msg)
	if err != nil {
		return nil, err
	}
	res, err := c.AppendPayload(nil, &benchv1.EchoResponse{Sample: msg.GetSample()})
	if err != nil {
		return nil, err
	}
	// The window fingerprints a large request on its first send
	// (docs/PROTOCOL.md, section 3.7): every filling key has the same one.
	det, err := proto.MarshalOptions{Deterministic: true}.Marshal(msg)
	if err != nil {
		return nil, err
	}
	fp := sameFingerprint(sha256.Sum256(det))
	m := dedupe.NewMemory(dedupe.MemoryConfig{})
	ctx := context.Background()
	o := &dedupe.Outcome{Codec: c.Name(), Payload: res}
	id := []byte("fill-")
	for n := 1; n <= dedupe.DefaultMaxEntries; n++ {
		k := dedupe.Key{Method: benchv1.BenchServiceEchoMethod, ID: string(strconv.AppendInt(id[:5], int64(n), 10))}
		_, cl, err := m.Claim(ctx, k, dedupe.Request{Codec: c.Name(), Payload: req, Fingerprinter: fp})
		if err != nil {
			return nil, err
		}
		if err := m.FinishClaim(ctx, cl, o); err != nil {
			return nil, err
		}
		if n%256 == 0 && m.Len() < n {
			break // keys were forgotten: the window is at its bounds
		}
	}
	return m, nil
}

// sameFingerprint is the Fingerprinter of fullWindow's keys, whose
// requests are all the same.
type sameFingerprint dedupe.Fingerprint

func (f sameFingerprint) Fingerprint(string, []byte) (dedupe.Fingerprint, error) {
	return dedupe.Fingerprint(f), nil
}
