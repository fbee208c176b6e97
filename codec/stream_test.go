package codec_test

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/protows/protows/codec"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"google.golang.org/protobuf/proto"
)

// plainCodec hides the fast path of the codec it wraps, as any wrapper that
// embeds a Codec does.
type plainCodec struct{ codec.Codec }

// embeddingCodec is a wrapper that keeps the fast path, as the
// StreamMessageCodec documentation says.
type embeddingCodec struct{ codec.StreamMessageCodec }

// TestAppendStreamMessage checks that the hand-written STREAM_MESSAGE
// elements of the built-in codecs are byte for byte what their envelope
// encoders write, that they share the payload rather than copy it, and that
// elements written one after the other into one buffer do not overlap; and
// that a codec without the fast path gets its AppendEnvelope.
func TestAppendStreamMessage(t *testing.T) {
	msgs := []*protowsv1.AuthenticateResponse{
		{},
		{Subject: "alice", ExpiresAt: 1795000000},
		{Subject: "zoë «café» 🚀 \"q\" <tag> & \\ \n \u2028 \u2029 \x01"},
		{Subject: string(bytes.Repeat([]byte("x"), 20000))},
	}
	ids := []uint32{0, 1, 127, 128, 16384, 1<<32 - 1}
	seqs := []uint64{0, 1, 127, 128, 1 << 40, 1<<53 - 1, 1<<64 - 1}
	for _, base := range []codec.Codec{codec.Proto(), codec.JSON()} {
		for _, w := range []struct {
			name string
			c    codec.Codec
			fast bool
		}{
			{"", base, true},
			{"embedding/", embeddingCodec{base.(codec.StreamMessageCodec)}, true},
			{"plain/", plainCodec{base}, false},
		} {
			for mi, msg := range msgs {
				payload, err := base.AppendPayload(nil, msg)
				if err != nil {
					t.Fatal(err)
				}
				for _, id := range ids {
					for _, seq := range seqs {
						t.Run(fmt.Sprintf("%s/%smsg%d/id%d/seq%d", base.Name(), w.name, mi, id, seq), func(t *testing.T) {
							checkStreamMessage(t, w.c, w.fast, id, payload, seq)
						})
					}
				}
			}
		}
	}
}

// badCodec is a StreamMessageCodec whose fast path fails or says the
// payload goes outside the element.
type badCodec struct {
	codec.Codec
	at  int
	err error
}

var _ codec.StreamMessageCodec = badCodec{}

func (b badCodec) AppendStreamMessage(dst []byte, _ uint32, _ []byte, _ uint64) ([]byte, int, error) {
	return append(dst, "element"...), b.at, b.err
}

func TestAppendStreamMessageRejects(t *testing.T) {
	for _, b := range []badCodec{
		{at: 2, err: errors.New("cannot")},
		{at: 1},  // before the element
		{at: 13}, // after it
	} {
		b.Codec = codec.Proto()
		arena := []byte("arena")
		p, out, err := codec.AppendStreamMessage(b, arena, 1, []byte("payload"), 1)
		if err == nil {
			t.Errorf("payload at %d, error %v: no error, parts %q", b.at, b.err, p.AppendTo(nil))
		}
		if b.err != nil && !errors.Is(err, b.err) {
			t.Errorf("error %v, want %v", err, b.err)
		}
		if string(out) != "arena" || p.Len() != 0 {
			t.Errorf("payload at %d, error %v: buffer %q and parts %q, want the buffer as it was and no parts", b.at, b.err, out, p.AppendTo(nil))
		}
	}
}

func checkStreamMessage(t *testing.T, c codec.Codec, fast bool, id uint32, payload []byte, seq uint64) {
	t.Helper()
	env := &protowsv1.Envelope{Id: id, Kind: protowsv1.Kind_KIND_STREAM_MESSAGE, Payload: payload, Seq: seq}
	want, err := c.AppendEnvelope(nil, env)
	if err != nil {
		t.Fatal(err)
	}
	const earlier = "earlier member"
	arena := []byte(earlier)
	p, arena, err := codec.AppendStreamMessage(c, arena, id, payload, seq)
	if err != nil {
		t.Fatal(err)
	}
	if got := p.AppendTo(nil); !bytes.Equal(got, want) {
		t.Fatalf("element differs from AppendEnvelope's\n got %q\nwant %q", trunc(got), trunc(want))
	}
	if p.Len() != len(want) {
		t.Errorf("Len() = %d, want %d", p.Len(), len(want))
	}
	if !bytes.HasPrefix(arena, []byte(earlier)) {
		t.Errorf("the buffer lost what it held: %q", trunc(arena))
	}
	if !fast {
		if len(arena) != len(earlier) {
			t.Errorf("without the fast path the buffer grew to %d bytes", len(arena))
		}
		return
	}
	if len(payload) > 0 && &p.Body[0] != &payload[0] {
		t.Error("the payload was copied, not shared")
	}
	// An append to the head must not run into the tail, nor one to the
	// tail into the next member's head.
	if cap(p.Head) != len(p.Head) || cap(p.Tail) != len(p.Tail) {
		t.Errorf("head and tail have capacity %d and %d beyond their ends", cap(p.Head)-len(p.Head), cap(p.Tail)-len(p.Tail))
	}
	if p.Len()-len(payload) != len(arena)-len(earlier) {
		t.Errorf("the buffer grew by %d bytes for a head and tail of %d", len(arena)-len(earlier), p.Len()-len(payload))
	}
	// What a later member appends must not reach this one's parts.
	q, _, err := codec.AppendStreamMessage(c, arena, id+1, payload, seq)
	if err != nil {
		t.Fatal(err)
	}
	if got := p.AppendTo(nil); !bytes.Equal(got, want) {
		t.Fatalf("a later element overwrote this one\n got %q\nwant %q", trunc(got), trunc(want))
	}
	// The two members' elements make a frame of both envelopes.
	envs, err := c.DecodeFrame(c.AppendFrameParts(nil, []codec.Parts{p, q}))
	if err != nil {
		t.Fatal(err)
	}
	if len(envs) != 2 || !proto.Equal(envs[0], env) || envs[1].GetId() != id+1 {
		t.Errorf("frame of two elements decodes to %v, want %v and id %d", envs, env, id+1)
	}
}

func trunc(b []byte) []byte {
	if len(b) > 200 {
		return b[:200]
	}
	return b
}
