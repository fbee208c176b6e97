package hub

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/protows/protows/codec"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
)

// TestStreamMessageParts checks that the hand-built STREAM_MESSAGE elements
// are byte for byte what each codec's envelope encoder writes, that they
// share the payload rather than copy it, and that elements built one after
// the other in one arena do not overlap.
func TestStreamMessageParts(t *testing.T) {
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
						arena := []byte("earlier member")
						p, arena, err := streamMessage(arena, c, id, payload, seq)
						if err != nil {
							t.Fatal(err)
						}
						if got := p.AppendTo(nil); !bytes.Equal(got, want) {
							t.Fatalf("element differs from the codec's\n got %q\nwant %q", trunc(got), trunc(want))
						}
						if len(payload) > 0 && &p.Body[0] != &payload[0] {
							t.Error("the payload was copied, not shared")
						}
						if !bytes.HasPrefix(arena, []byte("earlier member")) {
							t.Errorf("arena lost what it held: %q", trunc(arena))
						}
						// What a later member appends must not reach this one's parts.
						_, _, err = streamMessage(arena, c, id+1, payload, seq)
						if err != nil {
							t.Fatal(err)
						}
						if got := p.AppendTo(nil); !bytes.Equal(got, want) {
							t.Fatalf("a later element overwrote this one\n got %q\nwant %q", trunc(got), trunc(want))
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
