package hub

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/protows/protows/codec"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
)

// TestStreamMessageElem checks that the hand-built STREAM_MESSAGE elements
// are byte for byte what each codec's envelope encoder writes.
func TestStreamMessageElem(t *testing.T) {
	msgs := []*protowsv1.AuthenticateResponse{
		{},
		{Subject: "alice", ExpiresAt: 1795000000},
		{Subject: "zoë «café» 🚀 \"q\" <tag> & \\ \n \u2028 \u2029 \x01"},
		{Subject: string(bytes.Repeat([]byte("x"), 20000))},
	}
	ids := []uint32{1, 127, 128, 16384, 1<<32 - 1}
	seqs := []uint64{0, 1, 127, 128, 1 << 40, MaxSeq}
	for _, c := range []codec.Codec{codec.Proto(), codec.JSON()} {
		for mi, msg := range msgs {
			payload, err := c.AppendPayload(nil, msg)
			if err != nil {
				t.Fatal(err)
			}
			for _, id := range ids {
				for _, seq := range seqs {
					t.Run(fmt.Sprintf("%s/msg%d/id%d/seq%d", c.Name(), mi, id, seq), func(t *testing.T) {
						want, err := c.AppendEnvelope(nil, &protowsv1.Envelope{
							Id: id, Kind: protowsv1.Kind_KIND_STREAM_MESSAGE, Payload: payload, Seq: seq,
						})
						if err != nil {
							t.Fatal(err)
						}
						got, err := appendStreamMessage(nil, c, id, payload, seq)
						if err != nil {
							t.Fatal(err)
						}
						if !bytes.Equal(got, want) {
							t.Fatalf("element differs from the codec's\n got %q\nwant %q", trunc(got), trunc(want))
						}
					})
				}
			}
		}
	}
}

func trunc(b []byte) []byte {
	if len(b) > 200 {
		return b[:200]
	}
	return b
}
