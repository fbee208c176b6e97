package codec

import (
	"bytes"
	"testing"
	"unsafe"

	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// checkSameAsUnmarshal fails unless decodeEnvelope and proto.Unmarshal
// agree on src: both reject it, or both accept it with equal envelopes.
func checkSameAsUnmarshal(t *testing.T, src []byte) *protowsv1.Envelope {
	t.Helper()
	want := new(protowsv1.Envelope)
	wantErr := proto.Unmarshal(src, want)
	got, err := decodeEnvelope(src)
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("decodeEnvelope error %v, proto.Unmarshal error %v", err, wantErr)
	}
	if err != nil {
		return nil
	}
	if !proto.Equal(got, want) {
		t.Fatalf("decodeEnvelope gave %v, proto.Unmarshal %v", got, want)
	}
	if !bytes.Equal(got.ProtoReflect().GetUnknown(), want.ProtoReflect().GetUnknown()) {
		t.Fatalf("unknown fields %x, want %x", got.ProtoReflect().GetUnknown(), want.ProtoReflect().GetUnknown())
	}
	return got
}

// within reports whether b lies inside src's memory.
func within(b, src []byte) bool {
	if len(b) == 0 {
		return false
	}
	p, s := uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(unsafe.Pointer(unsafe.SliceData(src)))
	return p >= s && p+uintptr(len(b)) <= s+uintptr(len(src))
}

func TestDecodeEnvelopeAliasesPayload(t *testing.T) {
	big := bytes.Repeat([]byte{0xAB}, 1000)
	small := []byte("tiny")
	marshal := func(e *protowsv1.Envelope) []byte {
		b, err := protoMarshal.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	full := marshal(&protowsv1.Envelope{
		Id: 7, Kind: protowsv1.Kind_KIND_REQUEST, MethodId: 0x1234, Method: "/a.B/C", Payload: big,
		Metadata: map[string]string{"k": "v"}, Seq: 9, Credit: 3, IdempotencyKey: "key", TimeoutMs: 50,
		Resume: &protowsv1.Resume{Epoch: "e", Offset: 4},
	})
	// Field 20 is unknown to Envelope; field 5 twice: the last wins.
	unknown := protowire.AppendTag(append([]byte(nil), full...), 20, protowire.VarintType)
	unknown = protowire.AppendVarint(unknown, 42)
	twice := protowire.AppendTag(append([]byte(nil), full...), 5, protowire.BytesType)
	twice = protowire.AppendBytes(twice, []byte("second"))
	payloadFirst := protowire.AppendTag(nil, 5, protowire.BytesType)
	payloadFirst = protowire.AppendBytes(payloadFirst, big)
	payloadFirst = protowire.AppendTag(payloadFirst, 1, protowire.VarintType)
	payloadFirst = protowire.AppendVarint(payloadFirst, 3)
	truncatedAfter := append(append([]byte(nil), full...), 0x40) // the tag of field 8 without its value
	wrongType := protowire.AppendTag(nil, 5, protowire.VarintType)
	wrongType = protowire.AppendVarint(wrongType, 1)
	badUTF8 := append(append([]byte(nil), full...), marshal(&protowsv1.Envelope{Payload: big})...)
	badUTF8 = protowire.AppendTag(badUTF8, 4, protowire.BytesType)
	badUTF8 = protowire.AppendBytes(badUTF8, []byte{0xff})

	for _, tc := range []struct {
		name    string
		src     []byte
		aliases bool
		ok      bool
	}{
		{"fields around a large payload", full, true, true},
		{"unknown field after", unknown, true, true},
		{"payload first", payloadFirst, true, true},
		{"payload twice", twice, false, true},
		{"small payload", marshal(&protowsv1.Envelope{Id: 1, Payload: small, Seq: 2}), false, true},
		{"no payload", marshal(&protowsv1.Envelope{Id: 1, Kind: protowsv1.Kind_KIND_PING}), false, true},
		{"empty", nil, false, true},
		{"truncated after the payload", truncatedAfter, false, false},
		{"payload of the wrong wire type", wrongType, false, true},
		{"invalid UTF-8 after the payload", badUTF8, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := checkSameAsUnmarshal(t, tc.src)
			if (e != nil) != tc.ok {
				t.Fatalf("decoded %v, want ok = %v", e, tc.ok)
			}
			if got := within(e.GetPayload(), tc.src); got != tc.aliases {
				t.Fatalf("payload aliases the input: %v, want %v", got, tc.aliases)
			}
			if tc.aliases && cap(e.GetPayload()) != len(e.GetPayload()) {
				t.Fatalf("aliased payload has capacity %d past its length %d", cap(e.GetPayload()), len(e.GetPayload()))
			}
		})
	}
}

// FuzzDecodeEnvelope checks that the aliasing decoder accepts and rejects
// what proto.Unmarshal does, with equal results.
func FuzzDecodeEnvelope(f *testing.F) {
	big := bytes.Repeat([]byte("x"), 300)
	for _, e := range []*protowsv1.Envelope{
		{Id: 1, Kind: protowsv1.Kind_KIND_REQUEST, MethodId: 5, Payload: big, Metadata: map[string]string{"a": "b"}, Credit: 2},
		{Id: 2, Kind: protowsv1.Kind_KIND_REPLY, Payload: big},
		{Id: 3, Kind: protowsv1.Kind_KIND_STREAM_MESSAGE, Payload: []byte("short"), Seq: 4},
	} {
		b, err := protoMarshal.Marshal(e)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		checkSameAsUnmarshal(t, src)
	})
}
