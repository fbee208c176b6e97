package codec_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/protows/protows/codec"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"google.golang.org/protobuf/proto"
)

// The frame decoders read untrusted input. Their fuzz targets check that any
// input yields envelopes or an error, never a panic, and that decoded
// envelopes re-encode to a frame that decodes to the same envelopes and
// encodes to the same bytes (a fixed point after one round).
//
// Seeds: the golden vectors plus testdata/fuzz/<target>. Run longer with
// `go test ./codec -fuzz FuzzProtoDecodeFrame -fuzztime 1m`.

func FuzzProtoDecodeFrame(f *testing.F) {
	addVectorSeeds(f, ".proto.bin")
	f.Fuzz(func(t *testing.T, frame []byte) {
		checkRoundTrip(t, codec.Proto(), frame)
	})
}

func FuzzJSONDecodeFrame(f *testing.F) {
	addVectorSeeds(f, ".json")
	f.Fuzz(func(t *testing.T, frame []byte) {
		checkRoundTrip(t, codec.JSON(), frame)
	})
}

func addVectorSeeds(f *testing.F, suffix string) {
	paths, err := filepath.Glob(filepath.Join(vectorsDir, "*"+suffix))
	if err != nil || len(paths) == 0 {
		f.Fatalf("no seed vectors: %v", err)
	}
	for _, p := range paths {
		if filepath.Base(p) == "index.json" {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

func checkRoundTrip(t *testing.T, c codec.Codec, frame []byte) {
	envs, err := c.DecodeFrame(frame)
	if err != nil {
		return
	}
	if len(envs) == 0 || len(envs) > codec.MaxEnvelopesPerFrame {
		t.Fatalf("decoded %d envelopes without an error", len(envs))
	}
	first, err := codec.MarshalFrame(c, envs...)
	if err != nil {
		// A JSON payload that is not valid JSON cannot be re-encoded: the
		// codec refuses to write what it could not read back. That is not a
		// defect of the decoder, but the decoder must never yield one.
		t.Fatalf("re-encode of a decoded frame: %v", err)
	}
	again, err := c.DecodeFrame(first)
	if err != nil {
		t.Fatalf("decode of a re-encoded frame: %v\nframe %q", err, first)
	}
	if len(again) != len(envs) {
		t.Fatalf("re-decoded %d envelopes, want %d", len(again), len(envs))
	}
	for i := range envs {
		if c.Binary() && !proto.Equal(envs[i], again[i]) {
			t.Fatalf("envelope %d changed: %v then %v", i, envs[i], again[i])
		}
		if !c.Binary() && !equalIgnoringPayload(envs[i], again[i]) {
			t.Fatalf("envelope %d changed: %v then %v", i, envs[i], again[i])
		}
	}
	second, err := codec.MarshalFrame(c, again...)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, second) {
		t.Fatalf("encoding is not a fixed point:\n%q\n%q", first, second)
	}
}

// equalIgnoringPayload compares envelopes whose JSON payloads may differ in
// white space only (the fixed-point check covers their content).
func equalIgnoringPayload(a, b *protowsv1.Envelope) bool {
	a, b = proto.CloneOf(a), proto.CloneOf(b)
	a.Payload, b.Payload = nil, nil
	return proto.Equal(a, b)
}
