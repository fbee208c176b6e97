package codec_test

import (
	"bytes"
	"testing"

	"github.com/protows/protows/benchmarks/payload"
	"github.com/protows/protows/codec"
	benchv1 "github.com/protows/protows/gen/go/protows/bench/v1"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// vtCounts counts the calls of the vtprotobuf methods of the test types.
type vtCounts struct{ sizes, marshals, unmarshals int }

// vtItem is benchv1.Item (no map, no oneof: the codec may both encode and
// decode it with vtprotobuf's methods) with its methods counted.
type vtItem struct {
	*benchv1.Item
	n *vtCounts
}

func (m vtItem) SizeVT() int { m.n.sizes++; return m.Item.SizeVT() }
func (m vtItem) MarshalToSizedBufferVT(b []byte) (int, error) {
	m.n.marshals++
	return m.Item.MarshalToSizedBufferVT(b)
}
func (m vtItem) UnmarshalVT(b []byte) error { m.n.unmarshals++; return m.Item.UnmarshalVT(b) }

// vtRequest is benchv1.EchoRequest, whose Sample has a map: the codec may
// decode it with vtprotobuf's methods, but must encode it with proto.Marshal,
// which writes map entries in key order.
type vtRequest struct {
	*benchv1.EchoRequest
	n *vtCounts
}

func (m vtRequest) SizeVT() int { m.n.sizes++; return m.EchoRequest.SizeVT() }
func (m vtRequest) MarshalToSizedBufferVT(b []byte) (int, error) {
	m.n.marshals++
	return m.EchoRequest.MarshalToSizedBufferVT(b)
}
func (m vtRequest) UnmarshalVT(b []byte) error { m.n.unmarshals++; return m.EchoRequest.UnmarshalVT(b) }

var deterministic = proto.MarshalOptions{Deterministic: true}

func TestVTProtoPaths(t *testing.T) {
	c := codec.Proto()
	sample := payload.New(payload.Large)
	t.Run("encodes with vtprotobuf, the same bytes", func(t *testing.T) {
		for _, item := range sample.GetItems()[:50] {
			n := &vtCounts{}
			got, err := c.AppendPayload([]byte("pre"), vtItem{item, n})
			if err != nil {
				t.Fatal(err)
			}
			want, _ := deterministic.Marshal(item)
			if !bytes.Equal(got, append([]byte("pre"), want...)) {
				t.Fatalf("vtprotobuf encoding %x, proto.Marshal %x", got, want)
			}
			if n.marshals != 1 {
				t.Fatalf("%d vtprotobuf marshals, want 1", n.marshals)
			}
			elem, err := codec.AppendMessageEnvelope(c, nil, 3, protowsv1.Kind_KIND_REPLY, vtItem{item, n})
			if err != nil {
				t.Fatal(err)
			}
			wantElem, _ := c.AppendEnvelope(nil, &protowsv1.Envelope{Id: 3, Kind: protowsv1.Kind_KIND_REPLY, Payload: want})
			if !bytes.Equal(elem, wantElem) || n.marshals != 2 {
				t.Fatalf("envelope %x after %d marshals, want %x after 2", elem, n.marshals, wantElem)
			}
		}
	})
	t.Run("decodes with vtprotobuf, the same message", func(t *testing.T) {
		for _, size := range payload.Sizes {
			src, _ := deterministic.Marshal(&benchv1.EchoRequest{Sample: payload.New(size)})
			n := &vtCounts{}
			// Not empty: the decode replaces what is there, as proto.Unmarshal does.
			got := vtRequest{&benchv1.EchoRequest{Sample: &benchv1.Sample{Id: "old", Tags: map[string]string{"old": "x"}}}, n}
			if err := c.UnmarshalPayload(src, got); err != nil {
				t.Fatal(err)
			}
			want := &benchv1.EchoRequest{}
			if err := proto.Unmarshal(src, want); err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(got.EchoRequest, want) || n.unmarshals != 1 {
				t.Fatalf("%s: decoded %v after %d vtprotobuf unmarshals, want it once", size, got.EchoRequest.GetSample().GetId(), n.unmarshals)
			}
		}
	})
	t.Run("falls back to encode a type with a map", func(t *testing.T) {
		n := &vtCounts{}
		req := &benchv1.EchoRequest{Sample: payload.New(payload.Medium)}
		got, err := c.AppendPayload(nil, vtRequest{req, n})
		if err != nil {
			t.Fatal(err)
		}
		want, _ := deterministic.Marshal(req)
		if !bytes.Equal(got, want) || n.marshals+n.sizes != 0 {
			t.Fatalf("encoded with %d vtprotobuf calls; bytes equal: %v", n.marshals+n.sizes, bytes.Equal(got, want))
		}
	})
	t.Run("falls back for a type without the methods", func(t *testing.T) {
		m := &protowsv1.AuthenticateResponse{Subject: "alice"}
		got, err := c.AppendPayload(nil, m)
		want, _ := deterministic.Marshal(m)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%x, %v; want %x", got, err, want)
		}
	})
	t.Run("strings that are not UTF-8", func(t *testing.T) {
		bad := &benchv1.Item{Name: "ok", Labels: []string{"fine", "\xff"}}
		n := &vtCounts{}
		_, err := c.AppendPayload(nil, vtItem{bad, n})
		_, want := deterministic.Marshal(bad)
		if err == nil || want == nil || err.Error() != want.Error() {
			t.Fatalf("encode error %v, want proto.Marshal's %v", err, want)
		}
		// The same bytes, written by hand, do not decode either.
		src := protowire.AppendTag(nil, 4, protowire.BytesType)
		src = protowire.AppendBytes(src, []byte("\xff"))
		err = c.UnmarshalPayload(src, vtItem{&benchv1.Item{}, n})
		want = proto.Unmarshal(src, &benchv1.Item{})
		if err == nil || want == nil || err.Error() != want.Error() {
			t.Fatalf("decode error %v, want proto.Unmarshal's %v", err, want)
		}
	})
	t.Run("a field in a wire type not its own", func(t *testing.T) {
		// Field 1 (name, a string) as a varint: an unknown field to
		// proto.Unmarshal, an error to vtprotobuf.
		src := protowire.AppendTag(nil, 1, protowire.VarintType)
		src = protowire.AppendVarint(src, 7)
		got, want := &benchv1.Item{}, &benchv1.Item{}
		err := c.UnmarshalPayload(src, vtItem{got, &vtCounts{}})
		werr := proto.Unmarshal(src, want)
		if err != nil || werr != nil || !proto.Equal(got, want) {
			t.Fatalf("decoded %v (%v), proto.Unmarshal %v (%v)", got, err, want, werr)
		}
	})
}

// FuzzVTProtoDecode checks that the vtprotobuf path decodes exactly what
// proto.Unmarshal decodes: both refuse, with the same error, or both
// accept, with equal messages.
func FuzzVTProtoDecode(f *testing.F) {
	for _, size := range payload.Sizes {
		b, _ := deterministic.Marshal(&benchv1.EchoRequest{Sample: payload.New(size)})
		f.Add(b)
	}
	f.Add([]byte{0x0a, 0x02, 0x1a, 0xff})
	c := codec.Proto()
	f.Fuzz(func(t *testing.T, src []byte) {
		got, want := &benchv1.EchoRequest{}, &benchv1.EchoRequest{}
		err := c.UnmarshalPayload(src, got)
		werr := proto.Unmarshal(src, want)
		if (err == nil) != (werr == nil) || (err != nil && err.Error() != werr.Error()) {
			t.Fatalf("error %v, proto.Unmarshal's %v", err, werr)
		}
		if err == nil && !proto.Equal(got, want) {
			t.Fatalf("decoded %v, proto.Unmarshal %v", got, want)
		}
	})
}
