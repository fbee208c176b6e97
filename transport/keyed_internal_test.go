package transport

import (
	"bytes"
	"context"
	"crypto/sha256"
	"strings"
	"testing"

	"github.com/protows/protows/codec"
	"github.com/protows/protows/dedupe"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// replyMessages are replies of every shape: empty, small, past the
// Protobuf decoder's aliasing threshold, with characters JSON escapes,
// nested. (The package's tests cannot import generated services: they
// import the router, which imports the transport.)
func replyMessages() []proto.Message {
	nested, err := structpb.NewStruct(map[string]any{"a": []any{1.5, "b", nil, true}, "c": map[string]any{"d": "e"}})
	if err != nil {
		panic(err)
	}
	return []proto.Message{
		&emptypb.Empty{},
		wrapperspb.String(""),
		wrapperspb.String("hi"),
		wrapperspb.String(`"quoted" <tag> & ` + "\u2028 é"),
		wrapperspb.Bytes(bytes.Repeat([]byte{0, 1, 0xff}, 700)),
		nested,
	}
}

// TestReplyElem: the REPLY replyElem encodes decodes, in both codecs, as
// the call's REPLY whose payload is, byte for byte, what AppendPayload
// writes, and the payload it returns is that, the outcome a window
// keeps, with no capacity past it; a text codec's REPLY is in a pooled
// buffer, handed to endElem.
func TestReplyElem(t *testing.T) {
	for _, cd := range []codec.Codec{codec.Proto(), codec.JSON()} {
		for _, m := range replyMessages() {
			for _, id := range []uint32{1, 127, 128, 300, 1<<32 - 1} {
				call := &Call{conn: &Conn{codec: cd, srv: &Server{}}, id: id, keyed: &keyedCall{}}
				elem, got, ok := call.replyElem(m)
				want, err := cd.AppendPayload(nil, m)
				if err != nil {
					t.Fatal(err)
				}
				if !ok || !bytes.Equal(got, want) {
					t.Fatalf("%s, id %d, %T: payload %q, %v; want %q", cd.Name(), id, m, got, ok, want)
				}
				if len(got) > 0 && cap(got) != len(got) {
					t.Errorf("%s, id %d: the payload's capacity %d reaches past it (%d)", cd.Name(), id, cap(got), len(got))
				}
				envs, err := cd.DecodeFrame(codec.AppendFrame(cd, nil, elem))
				if err != nil || len(envs) != 1 {
					t.Fatalf("%s: the REPLY does not decode: %v", cd.Name(), err)
				}
				if e := envs[0]; e.GetId() != id || e.GetKind() != protowsv1.Kind_KIND_REPLY || !bytes.Equal(e.GetPayload(), want) {
					t.Errorf("%s, id %d: decodes as %v", cd.Name(), id, e)
				}
				if pooled := call.keyed.elemBuf != nil; pooled == cd.Binary() {
					t.Errorf("%s: REPLY in a pooled buffer: %v", cd.Name(), pooled)
				}
			}
		}
	}
}

// TestReplyPayloadRefuses: an element not in the form of the REPLY
// codec.AppendMessageEnvelope writes is left to the caller.
func TestReplyPayloadRefuses(t *testing.T) {
	jsonElem := func(e *protowsv1.Envelope) []byte { return envelopeElem(t, codec.JSON(), e) }
	payloadOf, _ := codec.JSON().AppendPayload(nil, wrapperspb.String("hi"))
	for _, c := range []struct {
		name, codec string
		elem        []byte
		id          uint32
	}{
		{"unknown codec", "x.example.v1", jsonElem(&protowsv1.Envelope{Id: 1, Kind: protowsv1.Kind_KIND_REPLY, Payload: payloadOf}), 1},
		{"JSON, another id", codec.JSONName, jsonElem(&protowsv1.Envelope{Id: 2, Kind: protowsv1.Kind_KIND_REPLY, Payload: payloadOf}), 1},
		{"JSON, id 0 (omitted)", codec.JSONName, jsonElem(&protowsv1.Envelope{Kind: protowsv1.Kind_KIND_REPLY, Payload: payloadOf}), 0},
		{"JSON, an ERROR", codec.JSONName, jsonElem(&protowsv1.Envelope{Id: 1, Kind: protowsv1.Kind_KIND_ERROR, Error: &protowsv1.Error{Code: 3}}), 1},
		{"JSON, no payload", codec.JSONName, []byte(`{"id":1,"kind":"reply","payload":}`), 1},
		{"JSON, cut short", codec.JSONName, []byte(`{"id":1,"kind":"reply","payload":"hi"`), 1},
		{"JSON, a leading zero", codec.JSONName, []byte(`{"id":01,"kind":"reply","payload":"hi"}`), 1},
		{"JSON, no digits", codec.JSONName, []byte(`{"id":,"kind":"reply","payload":"hi"}`), 1},
		{"JSON, a sign", codec.JSONName, []byte(`{"id":-1,"kind":"reply","payload":"hi"}`), 1},
		{"JSON, 11 digits", codec.JSONName, []byte(`{"id":42949672951,"kind":"reply","payload":"hi"}`), 4294967295},
		{"JSON, more digits", codec.JSONName, []byte(`{"id":12,"kind":"reply","payload":"hi"}`), 1},
		{"JSON, cut in the id", codec.JSONName, []byte(`{"id":12`), 12},
		{"Protobuf, cut short", codec.ProtoName, []byte{0x0a, 0x05, 0x08, 0x01}, 1},
		{"Protobuf, not a Frame's envelope", codec.ProtoName, []byte{0x12, 0x00}, 1},
		{"Protobuf, trailing bytes", codec.ProtoName, []byte{0x0a, 0x00, 0x01}, 1},
	} {
		if got, ok := replyPayload(c.codec, c.elem, c.id); ok {
			t.Errorf("%s: replyPayload(%q) = %q, true; want false", c.name, c.elem, got)
		}
	}
}

// TestJSONReplyPayloadIDs: the JSON REPLY of call id is read as such
// for ids of every number of digits, and not as the REPLY of the ids
// next to it.
func TestJSONReplyPayloadIDs(t *testing.T) {
	payload, _ := codec.JSON().AppendPayload(nil, wrapperspb.String("hi"))
	ids := []uint32{1, 9, 10, 99, 100, 1<<32 - 1, 1<<32 - 2}
	for p := uint64(10); p < 1<<32; p *= 10 {
		ids = append(ids, uint32(p-1), uint32(p), uint32(p+1))
	}
	for i := range 2000 {
		ids = append(ids, uint32(i+1)*2654435761)
	}
	for _, id := range ids {
		if id == 0 {
			continue
		}
		elem, err := codec.AppendMessageEnvelope(codec.JSON(), nil, id, protowsv1.Kind_KIND_REPLY, wrapperspb.String("hi"))
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := jsonReplyPayload(elem, id); !ok || !bytes.Equal(got, payload) {
			t.Errorf("id %d: %q, %v; want %q", id, got, ok, payload)
		}
		for _, other := range []uint32{id - 1, id + 1, id * 10} {
			if other != id && other != 0 {
				if got, ok := jsonReplyPayload(elem, other); ok {
					t.Errorf("the REPLY of call %d read as call %d's: %q", id, other, got)
				}
			}
		}
	}
}

// envelopeElem is e encoded by cd as an element of a frame.
func envelopeElem(t *testing.T, cd codec.Codec, e *protowsv1.Envelope) []byte {
	t.Helper()
	b, err := cd.AppendEnvelope(nil, e)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sumFingerprints fingerprints a request by its bytes.
type sumFingerprints struct{}

func (sumFingerprints) Fingerprint(_ string, payload []byte) (dedupe.Fingerprint, error) {
	return sha256.Sum256(payload), nil
}

// TestKeptOutcomeSurvivesSendBufferReuse: the outcome a keyed call's run
// gives the window is a part of the REPLY it sends; once the window has
// it, the REPLY's buffer belongs to the send path, which may write over it
// (a pooled buffer reused for the next frame). The window's outcome, and
// what a later send of the key is answered with, must not change.
func TestKeptOutcomeSurvivesSendBufferReuse(t *testing.T) {
	ctx := context.Background()
	for _, cd := range []codec.Codec{codec.Proto(), codec.JSON()} {
		for i, res := range replyMessages() {
			m := dedupe.NewMemory(dedupe.MemoryConfig{})
			call := &Call{conn: &Conn{codec: cd, srv: &Server{}}, id: 9, keyed: &keyedCall{}}
			o, elem := call.outcome(res, nil)
			if elem == nil {
				t.Fatalf("%s: no REPLY encoded with the outcome", cd.Name())
			}
			want, err := cd.AppendPayload(nil, res)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(o.Payload, want) {
				t.Fatalf("%s: outcome payload %q, want %q", cd.Name(), o.Payload, want)
			}
			if len(o.Payload) > 0 && !bytes.Contains(elem, o.Payload) {
				t.Fatalf("%s: the outcome's payload is not the REPLY's", cd.Name())
			}
			k := dedupe.Key{Method: "/a.B/C", ID: "k" + strings.Repeat("x", i)}
			req := dedupe.Request{Codec: cd.Name(), Payload: []byte("req"), Fingerprinter: sumFingerprints{}}
			kept, claim, err := m.Claim(ctx, k, req)
			if kept != nil || err != nil {
				t.Fatal(kept, err)
			}
			if err := m.FinishClaim(ctx, claim, o); err != nil {
				t.Fatal(err)
			}
			// The send path reuses the REPLY's buffer, and the call's
			// outcome is the call's to reuse too.
			for j := range elem {
				elem[j] = 0xee
			}
			*o = dedupe.Outcome{Codec: "scribbled", Payload: elem}
			kept, _, err = m.Claim(ctx, k, req)
			if err != nil || kept == nil {
				t.Fatalf("%s: the second send: %v, %v; want the kept outcome", cd.Name(), kept, err)
			}
			if kept.Codec != cd.Name() || !bytes.Equal(kept.Payload, want) {
				t.Errorf("%s: kept outcome %s %q, want %s %q", cd.Name(), kept.Codec, kept.Payload, cd.Name(), want)
			}
		}
	}
}

// TestProtoReplyPayloadFast: the fast reading of a Protobuf REPLY finds
// what the field-by-field reading finds, in the elements
// codec.AppendMessageEnvelope writes (ids and payloads of every varint
// length, no payload) and in envelopes of another form, which it leaves
// to the field-by-field reading.
func TestProtoReplyPayloadFast(t *testing.T) {
	elem := func(e *protowsv1.Envelope) []byte { return envelopeElem(t, codec.Proto(), e) }
	for _, id := range []uint32{0, 1, 127, 128, 300, 1 << 20, 1<<32 - 1} {
		for _, n := range []int{0, 1, 100, 127, 128, 16383, 16384, 70000} {
			m := wrapperspb.Bytes(bytes.Repeat([]byte{'x'}, n))
			e, err := codec.AppendMessageEnvelope(codec.Proto(), nil, id, protowsv1.Kind_KIND_REPLY, m)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := codec.Proto().AppendPayload(nil, m)
			got, ok := protoReplyPayloadFast(e)
			if !ok || !bytes.Equal(got, want) || cap(got) != len(got) {
				t.Errorf("id %d, %d bytes: fast reading = %d bytes (cap %d), %v; want the payload's %d", id, n, len(got), cap(got), ok, len(want))
			}
		}
	}
	for _, c := range []struct {
		name string
		elem []byte
	}{
		{"metadata", elem(&protowsv1.Envelope{Id: 1, Kind: protowsv1.Kind_KIND_REPLY, Payload: []byte("p"), Metadata: map[string]string{"k": "v"}})},
		{"fields out of order", []byte{0x0a, 0x07, 0x10, 0x03, 0x08, 0x01, 0x2a, 0x01, 'p'}},
		{"two payloads", []byte{0x0a, 0x06, 0x2a, 0x01, 'a', 0x2a, 0x01, 'b'}},
		{"an unknown field", []byte{0x0a, 0x05, 0x08, 0x01, 0x78, 0x01, 0x2a}},
		{"payload cut short", []byte{0x0a, 0x04, 0x08, 0x01, 0x2a, 0x05}},
		{"length past the end", []byte{0x0a, 0x09, 0x08, 0x01}},
		{"a varint too long", append([]byte{0x0a, 0x0b, 0x08}, bytes.Repeat([]byte{0xff}, 10)...)},
	} {
		if got, ok := protoReplyPayloadFast(c.elem); ok {
			t.Errorf("%s: fast reading = %q, true; want false", c.name, got)
		}
		got, ok := protoReplyPayload(c.elem)
		want, wok := protoReplyPayloadFields(c.elem)
		if ok != wok || !bytes.Equal(got, want) {
			t.Errorf("%s: protoReplyPayload = %q, %v; the field-by-field reading %q, %v", c.name, got, ok, want, wok)
		}
		if readable := c.name == "metadata" || c.name == "fields out of order" || c.name == "two payloads"; ok != readable {
			t.Errorf("%s: protoReplyPayload reports %v, want %v", c.name, ok, readable)
		}
	}
}

// BenchmarkReplyPayload is the finding of a REPLY's payload in its
// element, which every keyed call that replies does (Call.replyElem): for
// each built-in codec, and for Protobuf by the field-by-field reading
// too, what it took before the fast reading:
//
//	go test ./transport -run '^$' -bench ReplyPayload -count 8
func BenchmarkReplyPayload(b *testing.B) {
	res := wrapperspb.Bytes(make([]byte, 57)) // about the small echo payload
	for _, cd := range []codec.Codec{codec.Proto(), codec.JSON()} {
		elem, err := codec.AppendMessageEnvelope(cd, nil, 1000001, protowsv1.Kind_KIND_REPLY, res)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(cd.Name(), func(b *testing.B) {
			for b.Loop() {
				if _, ok := replyPayload(cd.Name(), elem, 1000001); !ok {
					b.Fatal("payload not found")
				}
			}
		})
		if cd.Binary() {
			b.Run(cd.Name()+"/fields", func(b *testing.B) {
				for b.Loop() {
					if _, ok := protoReplyPayloadFields(elem); !ok {
						b.Fatal("payload not found")
					}
				}
			})
		}
	}
}

// TestPrintableASCII holds printableASCII, which tests eight bytes at a
// time, to a byte-by-byte reading: every byte value at every place of
// keys shorter and longer than a word.
func TestPrintableASCII(t *testing.T) {
	for n := 1; n <= 20; n++ {
		for at := range n {
			for b := range 256 {
				key := []byte(strings.Repeat("a", n))
				key[at] = byte(b)
				want := b >= 0x21 && b <= 0x7e
				if got := printableASCII(string(key)); got != want {
					t.Fatalf("%q: %v, want %v", key, got, want)
				}
				if err := checkKey(string(key)); (err == nil) != want {
					t.Fatalf("%q: checkKey %v", key, err)
				}
			}
		}
	}
	if !printableASCII("") || !printableASCII("k-0123456789abcdef~!") {
		t.Fatal("printable keys refused")
	}
}
