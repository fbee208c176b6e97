package codec_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/protows/protows/codec"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
)

// TestAppendFramePartsIgnoresCuts splits encoded envelopes at every pair of
// cut points and checks that the frame of the parts is the frame of the
// whole envelopes (AppendFrame), for one envelope and for a batch.
func TestAppendFramePartsIgnoresCuts(t *testing.T) {
	for _, c := range []codec.Codec{codec.Proto(), codec.JSON()} {
		t.Run(c.Name(), func(t *testing.T) {
			var elems [][]byte
			for i, env := range []*protowsv1.Envelope{
				{Id: 7, Kind: protowsv1.Kind_KIND_STREAM_MESSAGE, Payload: payloadIn(t, c), Seq: 3},
				{Id: 300, Kind: protowsv1.Kind_KIND_REPLY, Payload: payloadIn(t, c)},
				{Kind: protowsv1.Kind_KIND_PING},
			} {
				b, err := c.AppendEnvelope(nil, env)
				if err != nil {
					t.Fatalf("envelope %d: %v", i, err)
				}
				elems = append(elems, b)
			}
			for n := 1; n <= len(elems); n++ {
				want := codec.AppendFrame(c, []byte("prefix"), elems[:n]...)
				first := elems[0]
				for i := 0; i <= len(first); i++ {
					for j := i; j <= len(first); j++ {
						parts := []codec.Parts{{Head: first[:i], Body: first[i:j], Tail: first[j:]}}
						for _, e := range elems[1:n] {
							parts = append(parts, codec.Parts{Body: e})
						}
						if got := c.AppendFrameParts([]byte("prefix"), parts); !bytes.Equal(got, want) {
							t.Fatalf("%d envelopes, first cut at %d and %d:\n got %q\nwant %q", n, i, j, got, want)
						}
						if l := parts[0].Len(); l != len(first) {
							t.Fatalf("Len() = %d, want %d", l, len(first))
						}
					}
				}
			}
		})
	}
}

func TestAppendFramePartsPanicsWithoutEnvelope(t *testing.T) {
	for _, c := range []codec.Codec{codec.Proto(), codec.JSON()} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: AppendFrameParts(nil, nil) did not panic", c.Name())
				}
			}()
			c.AppendFrameParts(nil, nil)
		}()
	}
}

// payloadIn returns a small message's payload in c's encoding.
func payloadIn(t *testing.T, c codec.Codec) []byte {
	t.Helper()
	b, err := c.AppendPayload(nil, &protowsv1.Error{Code: 5, Message: fmt.Sprintf("in %s", c.Name())})
	if err != nil {
		t.Fatal(err)
	}
	return b
}
