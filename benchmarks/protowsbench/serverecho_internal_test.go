package protowsbench

import (
	"bytes"
	"testing"

	"github.com/protows/protows/benchmarks/harness"
	"github.com/protows/protows/benchmarks/payload"
	"github.com/protows/protows/codec"
	benchv1 "github.com/protows/protows/gen/go/protows/bench/v1"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
)

// TestRequestFrameIDs: the frame that requestFrame patches decodes, in
// both codecs, as the same Echo REQUEST with the id written, and the ids
// of consecutive requests differ, through the wrap of their range.
func TestRequestFrameIDs(t *testing.T) {
	for _, c := range []codec.Codec{codec.Proto(), codec.JSON()} {
		req, err := c.AppendPayload(nil, &benchv1.EchoRequest{Sample: &benchv1.Sample{Id: "x", Text: "1000000"}})
		if err != nil {
			t.Fatal(err)
		}
		frame, setID, err := requestFrame(c, benchv1.BenchServiceEchoMethod, req, "")
		if err != nil {
			t.Fatal(err)
		}
		span := uint64(lastID - firstID + 1)
		var prev uint32
		for _, seq := range []uint64{1, 2, 1000, span - 1, span, span + 1, 3*span + 7} {
			setID(frame, seq)
			envs, err := c.DecodeFrame(frame)
			if err != nil || len(envs) != 1 {
				t.Fatalf("%s seq %d: %d envelopes, %v", c.Name(), seq, len(envs), err)
			}
			e := envs[0]
			if want := uint32(firstID + seq%span); e.GetId() != want || e.GetId() == prev {
				t.Errorf("%s seq %d: id %d, want %d (previous %d)", c.Name(), seq, e.GetId(), want, prev)
			}
			prev = e.GetId()
			if e.GetKind() != protowsv1.Kind_KIND_REQUEST || !bytes.Equal(e.GetPayload(), req) {
				t.Errorf("%s seq %d: %v, payload %q, want a REQUEST of %q", c.Name(), seq, e.GetKind(), e.GetPayload(), req)
			}
		}
	}
}

// TestKeyedFrames: the keyed minimal clients' frames decode, in both
// codecs, as Echo REQUESTs with the id written and a key never sent
// before, whichever copy of the frame (connection) sends.
func TestKeyedFrames(t *testing.T) {
	for _, c := range []codec.Codec{codec.Proto(), codec.JSON()} {
		name := harness.CodecProto
		if !c.Binary() {
			name = harness.CodecJSON
		}
		f, _, err := serverEchoFrames(harness.Params{Codec: name, Size: payload.Small}, true)
		if err != nil {
			t.Fatal(err)
		}
		copies := [][]byte{bytes.Clone(f.Frame), bytes.Clone(f.Frame)}
		seen := map[string]bool{}
		for seq := range uint64(100) {
			frame := copies[seq%2]
			f.SetID(frame, seq/2)
			envs, err := c.DecodeFrame(frame)
			if err != nil || len(envs) != 1 {
				t.Fatalf("%s seq %d: %d envelopes, %v", c.Name(), seq, len(envs), err)
			}
			e := envs[0]
			key := e.GetIdempotencyKey()
			if e.GetKind() != protowsv1.Kind_KIND_REQUEST || e.GetId() != uint32(firstID+seq/2) || len(key) != keyLen || seen[key] {
				t.Fatalf("%s seq %d: %v id %d key %q (seen: %v)", c.Name(), seq, e.GetKind(), e.GetId(), key, seen[key])
			}
			seen[key] = true
		}
	}
}
