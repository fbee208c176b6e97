package harness

import (
	"testing"

	"github.com/protows/protows/codec"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"google.golang.org/protobuf/encoding/protowire"
)

func TestCountFrames(t *testing.T) {
	envs := []*protowsv1.Envelope{
		{Id: 1, Kind: protowsv1.Kind_KIND_STREAM_MESSAGE, Payload: []byte(`{"text":"a \"}{[ string","n":1}`), Seq: 7},
		{Id: 2, Kind: protowsv1.Kind_KIND_STREAM_MESSAGE, Payload: []byte(`{}`)},
		{Id: 3, Kind: protowsv1.Kind_KIND_STREAM_MESSAGE, Payload: []byte(`{"items":[{"a":1},{"b":[2]}]}`), Seq: 9},
	}
	for _, c := range []codec.Codec{codec.Proto(), codec.JSON()} {
		var parts []codec.Parts
		lens := map[int]int{}
		for i, e := range envs {
			b, err := c.AppendEnvelope(nil, e)
			if err != nil {
				t.Fatal(err)
			}
			parts = append(parts, codec.Parts{Body: b})
			lens[i] = len(b)
		}
		frame := c.AppendFrameParts(nil, parts)
		count := CountProtoFrame
		if !c.Binary() {
			count = CountJSONFrame
		}
		if got := count(frame, 0); got != 3 {
			t.Errorf("%s: %d envelopes, want 3", c.Name(), got)
		}
		// The short one (id 2) is not counted.
		if got := count(frame, lens[1]+1); got != 2 {
			t.Errorf("%s: %d envelopes of at least %d bytes, want 2 (lengths %v)", c.Name(), got, lens[1]+1, lens)
		}
		single := c.AppendFrameParts(nil, parts[:1])
		if got := count(single, 0); got != 1 {
			t.Errorf("%s: %d envelopes in a frame of one, want 1", c.Name(), got)
		}
		if got := count(frame[:len(frame)-1], 0); got != -1 {
			t.Errorf("%s: a cut frame counted %d, want -1", c.Name(), got)
		}
	}
}

func TestCountDelimitedAndLines(t *testing.T) {
	var f []byte
	for _, m := range []string{"abcdef", "ab", "abcdefgh"} {
		f = protowire.AppendVarint(f, uint64(len(m)))
		f = append(f, m...)
	}
	if got := CountDelimited(f, 3); got != 2 {
		t.Errorf("CountDelimited = %d, want 2", got)
	}
	if got := CountDelimited(f[:len(f)-1], 0); got != -1 {
		t.Errorf("CountDelimited of a cut frame = %d, want -1", got)
	}
	if got := CountLines([]byte("abcdef\nab\nabcdefgh"), 3); got != 2 {
		t.Errorf("CountLines = %d, want 2", got)
	}
}
