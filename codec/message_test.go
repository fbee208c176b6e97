package codec_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/protows/protows/benchmarks/payload"
	"github.com/protows/protows/codec"
	benchv1 "github.com/protows/protows/gen/go/protows/bench/v1"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"
)

// wrapped hides the optional methods of the codec it embeds.
type wrapped struct{ codec.Codec }

// messageCases are messages of every shape the payload encodings treat
// apart: empty, maps (written in key order), escapes, line separators,
// HTML characters, large.
func messageCases() map[string]proto.Message {
	return map[string]proto.Message{
		"empty":      &emptypb.Empty{},
		"zero":       &protowsv1.AuthenticateResponse{},
		"typed nil":  (*protowsv1.AuthenticateResponse)(nil),
		"scalars":    &protowsv1.AuthenticateResponse{Subject: "alice", ExpiresAt: 1795000000},
		"unicode":    &protowsv1.AuthenticateResponse{Subject: "zoë «café» 🚀 \"quoted\" <tag> & \\ \n"},
		"separators": &protowsv1.AuthenticateResponse{Subject: "a\u2028b\u2029c \\u2028"},
		"map":        &protowsv1.Envelope{Id: 3, Metadata: map[string]string{"b": "2", "a": "1", "c": "\u2028"}},
		"large":      &protowsv1.AuthenticateRequest{Token: strings.Repeat("0123456789abcdef", 4096)},
		"small":      &benchv1.EchoResponse{Sample: payload.New(payload.Small)},
		"medium":     &benchv1.EchoResponse{Sample: payload.New(payload.Medium)},
	}
}

// TestAppendMessageEnvelope checks that the one-pass element of an envelope
// and its message is byte for byte what AppendPayload then AppendEnvelope
// write, in both codecs, on the fast path and through a wrapper that hides
// it. The Protobuf codec runs with its payloads deterministic, with
// vtprotobuf's methods and without; by default its map entries may come
// in another order each time (TestAppendMessageEnvelopeMapOrder).
func TestAppendMessageEnvelope(t *testing.T) {
	prefix := []byte("prefix")
	for _, c := range []codec.Codec{
		codec.Proto(codec.WithDeterministicPayloads()),
		codec.Proto(codec.WithoutVTProto()),
		codec.JSON(),
	} {
		if _, ok := c.(codec.MessageEnvelopeCodec); !ok {
			t.Fatalf("%s does not implement MessageEnvelopeCodec", c.Name())
		}
		for name, m := range messageCases() {
			for _, id := range []uint32{0, 1, 300, 1<<32 - 1} {
				for _, kind := range []protowsv1.Kind{protowsv1.Kind_KIND_REPLY, protowsv1.Kind_KIND_STREAM_MESSAGE, protowsv1.Kind_KIND_UNSPECIFIED} {
					p, err := c.AppendPayload(nil, m)
					if err != nil {
						t.Fatal(err)
					}
					want, err := c.AppendEnvelope(bytes.Clone(prefix), &protowsv1.Envelope{Id: id, Kind: kind, Payload: p})
					if err != nil {
						t.Fatal(err)
					}
					for _, via := range []codec.Codec{c, wrapped{c}} {
						got, err := codec.AppendMessageEnvelope(via, bytes.Clone(prefix), id, kind, m)
						if err != nil {
							t.Fatalf("%s %s id %d %v: %v", c.Name(), name, id, kind, err)
						}
						if !bytes.Equal(got, want) {
							t.Fatalf("%s %s id %d %v:\n got %q\nwant %q", c.Name(), name, id, kind, got, want)
						}
					}
				}
			}
		}
	}
}

// TestAppendMessageEnvelopeMapOrder checks the Protobuf codec's one-pass
// element against AppendPayload then AppendEnvelope where the order of map
// entries is left to chance: the same envelope, the same size, and a
// payload that decodes to the message.
func TestAppendMessageEnvelopeMapOrder(t *testing.T) {
	c := codec.Proto()
	prefix := []byte("prefix")
	for name, m := range messageCases() {
		p, err := c.AppendPayload(nil, m)
		if err != nil {
			t.Fatal(err)
		}
		want, err := c.AppendEnvelope(bytes.Clone(prefix), &protowsv1.Envelope{Id: 7, Kind: protowsv1.Kind_KIND_REPLY, Payload: p})
		if err != nil {
			t.Fatal(err)
		}
		for _, via := range []codec.Codec{c, wrapped{c}} {
			got, err := codec.AppendMessageEnvelope(via, bytes.Clone(prefix), 7, protowsv1.Kind_KIND_REPLY, m)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if !bytes.HasPrefix(got, prefix) || len(got) != len(want) {
				t.Fatalf("%s: %d bytes, want %d after the prefix", name, len(got), len(want))
			}
			envs, err := c.DecodeFrame(got[len(prefix):])
			if err != nil || len(envs) != 1 || envs[0].GetId() != 7 || envs[0].GetKind() != protowsv1.Kind_KIND_REPLY {
				t.Fatalf("%s: decoded %v, %v", name, envs, err)
			}
			dec, wantDec := m.ProtoReflect().New().Interface(), m.ProtoReflect().New().Interface()
			if err := proto.Unmarshal(p, wantDec); err != nil {
				t.Fatal(err)
			}
			if err := proto.Unmarshal(envs[0].GetPayload(), dec); err != nil || !proto.Equal(dec, wantDec) {
				t.Fatalf("%s: payload decodes to %v (%v), want %v", name, dec, err, wantDec)
			}
		}
	}
}

// TestAppendMessageEnvelopeErrors checks the errors: a message that does
// not encode gets AppendPayload's error, an envelope that does not an
// *EnvelopeError, and dst comes back as it was either way.
func TestAppendMessageEnvelopeErrors(t *testing.T) {
	bad := &protowsv1.AuthenticateResponse{Subject: "\xff"} // not UTF-8
	for _, c := range []codec.Codec{codec.Proto(), codec.JSON()} {
		_, perr := c.AppendPayload(nil, bad)
		if perr == nil {
			t.Fatalf("%s: AppendPayload encoded invalid UTF-8", c.Name())
		}
		for _, via := range []codec.Codec{c, wrapped{c}} {
			dst := []byte("keep")
			out, err := codec.AppendMessageEnvelope(via, dst, 1, protowsv1.Kind_KIND_REPLY, bad)
			if err == nil || err.Error() != perr.Error() {
				t.Errorf("%s: error %v, want AppendPayload's %v", c.Name(), err, perr)
			}
			if string(out) != "keep" {
				t.Errorf("%s: dst became %q", c.Name(), out)
			}
		}
	}
	// A kind without a JSON name cannot be written.
	for _, via := range []codec.Codec{codec.JSON(), wrapped{codec.JSON()}} {
		out, err := codec.AppendMessageEnvelope(via, []byte("keep"), 1, protowsv1.Kind(99), &emptypb.Empty{})
		var ee *codec.EnvelopeError
		if !errors.As(err, &ee) || string(out) != "keep" {
			t.Errorf("kind 99: %q, %v; want dst unchanged and an *EnvelopeError", out, err)
		}
	}
}
