package codec_test

import (
	"bytes"
	"math"
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
	t.Run("encodes a type with a map with vtprotobuf, entries in any order", func(t *testing.T) {
		for _, size := range payload.Sizes {
			n := &vtCounts{}
			req := &benchv1.EchoRequest{Sample: payload.New(size)}
			got, err := c.AppendPayload(nil, vtRequest{req, n})
			if err != nil {
				t.Fatal(err)
			}
			if n.marshals != 1 {
				t.Fatalf("%s: %d vtprotobuf marshals, want 1", size, n.marshals)
			}
			assertSameMessage(t, got, req)
		}
	})
	t.Run("deterministic: encodes a type with a map by proto.Marshal", func(t *testing.T) {
		c := codec.Proto(codec.WithDeterministicPayloads())
		req := &benchv1.EchoRequest{Sample: payload.New(payload.Medium)}
		want, _ := deterministic.Marshal(req)
		for range 10 { // Go's map order changes from one encoding to the next
			n := &vtCounts{}
			got, err := c.AppendPayload(nil, vtRequest{req, n})
			if err != nil {
				t.Fatal(err)
			}
			elem, err := codec.AppendMessageEnvelope(c, nil, 1, protowsv1.Kind_KIND_REPLY, vtRequest{req, n})
			if err != nil {
				t.Fatal(err)
			}
			wantElem, _ := c.AppendEnvelope(nil, &protowsv1.Envelope{Id: 1, Kind: protowsv1.Kind_KIND_REPLY, Payload: want})
			if !bytes.Equal(got, want) || !bytes.Equal(elem, wantElem) || n.marshals+n.sizes != 0 {
				t.Fatalf("encoded with %d vtprotobuf calls; bytes equal: %v, %v", n.marshals+n.sizes, bytes.Equal(got, want), bytes.Equal(elem, wantElem))
			}
		}
		// A type without a map keeps the fast path, and decoding keeps it
		// for every type.
		n := &vtCounts{}
		item := sample.GetItems()[7]
		got, err := c.AppendPayload(nil, vtItem{item, n})
		want, _ = deterministic.Marshal(item)
		if err != nil || !bytes.Equal(got, want) || n.marshals != 1 {
			t.Fatalf("%x (%v) after %d vtprotobuf marshals, want %x after 1", got, err, n.marshals, want)
		}
		src, _ := deterministic.Marshal(req)
		if err := c.UnmarshalPayload(src, vtRequest{&benchv1.EchoRequest{}, n}); err != nil || n.unmarshals != 1 {
			t.Fatalf("decoded (%v) with %d vtprotobuf unmarshals, want 1", err, n.unmarshals)
		}
	})
	t.Run("WithoutVTProto calls none of the methods", func(t *testing.T) {
		c := codec.Proto(codec.WithoutVTProto())
		req := &benchv1.EchoRequest{Sample: payload.New(payload.Medium)}
		item := sample.GetItems()[3]
		n := &vtCounts{}
		for _, m := range []proto.Message{vtRequest{req, n}, vtItem{item, n}} {
			got, err := c.AppendPayload(nil, m)
			want, _ := deterministic.Marshal(m)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("%x (%v), want %x", got, err, want)
			}
			if _, err := codec.AppendMessageEnvelope(c, nil, 1, protowsv1.Kind_KIND_REPLY, m); err != nil {
				t.Fatal(err)
			}
			if err := c.UnmarshalPayload(want, m); err != nil {
				t.Fatal(err)
			}
		}
		if got := proto.Clone(req); !proto.Equal(got, req) {
			t.Fatal("the request changed")
		}
		if *n != (vtCounts{}) {
			t.Fatalf("vtprotobuf methods called: %+v", *n)
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
	t.Run("-0 and strings that are not UTF-8, at any depth", func(t *testing.T) {
		negZero := math.Copysign(0, -1)
		cases := map[string]func(*benchv1.Sample){
			"-0 price":            func(s *benchv1.Sample) { s.Items[2].Price = negZero },
			"label not UTF-8":     func(s *benchv1.Sample) { s.Items[9].Labels[1] = "\xc3" },
			"tag value not UTF-8": func(s *benchv1.Sample) { s.Tags["tier"] = "g\xffld" },
			"tag key not UTF-8":   func(s *benchv1.Sample) { s.Tags["\xfe"] = "x" },
			"text not UTF-8":      func(s *benchv1.Sample) { s.Text = "\x80" },
		}
		for name, change := range cases {
			s := proto.Clone(payload.New(payload.Medium)).(*benchv1.Sample)
			change(s)
			req := &benchv1.EchoRequest{Sample: s}
			n := &vtCounts{}
			got, err := c.AppendPayload(nil, vtRequest{req, n})
			want, werr := deterministic.Marshal(req)
			if (err == nil) != (werr == nil) || (err != nil && err.Error() != werr.Error()) {
				t.Fatalf("%s: error %v, proto.Marshal's %v", name, err, werr)
			}
			if n.marshals+n.sizes != 0 {
				t.Fatalf("%s: %d vtprotobuf calls, want proto.Marshal", name, n.marshals+n.sizes)
			}
			if err == nil {
				assertSameMessage(t, got, req)
				back := &benchv1.EchoRequest{}
				if err := proto.Unmarshal(got, back); err != nil || !math.Signbit(back.GetSample().GetItems()[2].GetPrice()) {
					t.Fatalf("%s: the -0 arrived as %v (%v)", name, back.GetSample().GetItems()[2].GetPrice(), err)
				}
				if len(got) != len(want) {
					t.Fatalf("%s: %d bytes, want %d", name, len(got), len(want))
				}
			}
			if _, err := codec.AppendMessageEnvelope(c, nil, 1, protowsv1.Kind_KIND_REPLY, vtRequest{req, n}); (err == nil) != (werr == nil) || n.marshals+n.sizes != 0 {
				t.Fatalf("%s: one-pass element: %v after %d vtprotobuf calls, want %v after none", name, err, n.marshals+n.sizes, werr)
			}
		}
		// +0 takes the fast path.
		s := proto.Clone(payload.New(payload.Medium)).(*benchv1.Sample)
		s.Items[2].Price = 0
		n := &vtCounts{}
		if _, err := c.AppendPayload(nil, vtRequest{&benchv1.EchoRequest{Sample: s}, n}); err != nil || n.marshals != 1 {
			t.Fatalf("+0: %v after %d vtprotobuf marshals, want 1", err, n.marshals)
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

// assertSameMessage checks that b, an encoding of want whose map entries
// may be in any order, decodes to want by proto.Unmarshal and has the size
// of want's deterministic encoding; its map entries, put back in key order
// by decoding and encoding again, are byte for byte that encoding.
func assertSameMessage(t *testing.T, b []byte, want proto.Message) {
	t.Helper()
	got := want.ProtoReflect().New().Interface()
	if err := proto.Unmarshal(b, got); err != nil {
		t.Fatalf("proto.Unmarshal of the fast encoding: %v", err)
	}
	if !proto.Equal(got, want) {
		t.Fatalf("the fast encoding decodes to %v, want %v", got, want)
	}
	wantB, err := deterministic.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	again, err := deterministic.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != len(wantB) || !bytes.Equal(again, wantB) {
		t.Fatalf("the fast encoding has %d bytes, proto.Marshal's %d; equal again in key order: %v", len(b), len(wantB), bytes.Equal(again, wantB))
	}
}

// FuzzVTProtoEncode checks that the vtprotobuf path encodes what
// proto.Marshal encodes, but for the order of map entries: for messages
// made of the fuzzer's input (a map of up to 64 entries, up to 32 items),
// the codec's encoding decodes by proto.Unmarshal to an equal message, and
// a message proto.Marshal refuses (a string that is not UTF-8) the codec
// refuses with proto.Marshal's error.
func FuzzVTProtoEncode(f *testing.F) {
	f.Add("sample-0001", int64(1795000000123456789), "the quick brown fox", []byte("region\x00eu-west\x00tier\x00gold\x00source\x00bench"), uint8(15), 1.25)
	f.Add("", int64(0), "", []byte{}, uint8(0), 0.0)
	f.Add("id", int64(-1), "zo\xc3\xab", []byte("a\x00\x00\x00b\x00\xff"), uint8(3), -0.5)
	f.Add("x", int64(7), "y", []byte("k1\x00v1\x00k2\x00v2\x00k3\x00v3\x00k4\x00v4\x00k5\x00v5\x00k6\x00v6\x00k7\x00v7\x00k8\x00v8\x00k9\x00v9"), uint8(1), 3.0)
	c := codec.Proto()
	f.Fuzz(func(t *testing.T, id string, ts int64, text string, tags []byte, items uint8, price float64) {
		s := &benchv1.Sample{Id: id, Timestamp: ts, Text: text}
		parts := bytes.Split(tags, []byte{0})
		for i := 0; i+1 < len(parts) && i < 128; i += 2 {
			if s.Tags == nil {
				s.Tags = map[string]string{}
			}
			s.Tags[string(parts[i])] = string(parts[i+1])
		}
		for i := range int(items % 33) {
			s.Items = append(s.Items, &benchv1.Item{
				Name: text, Price: price * float64(i), Quantity: int32(ts) + int32(i),
				Labels: []string{id}, Available: i%2 == 0,
			})
		}
		for _, m := range []proto.Message{s, &benchv1.EchoResponse{Sample: s}} {
			b, err := c.AppendPayload(nil, m)
			_, werr := deterministic.Marshal(m)
			if (err == nil) != (werr == nil) || (err != nil && err.Error() != werr.Error()) {
				t.Fatalf("error %v, proto.Marshal's %v", err, werr)
			}
			if err != nil {
				continue
			}
			assertSameMessage(t, b, m)
			elem, err := codec.AppendMessageEnvelope(c, nil, 1, protowsv1.Kind_KIND_REPLY, m)
			if err != nil {
				t.Fatal(err)
			}
			envs, err := c.DecodeFrame(elem)
			if err != nil || len(envs) != 1 {
				t.Fatalf("decode the element: %v", err)
			}
			assertSameMessage(t, envs[0].GetPayload(), m)
		}
	})
}

// TestVTProtoChecksTheStruct encodes a message whose string is not UTF-8,
// generated and wrapped in a type of its own (whose struct the codec
// finds through ProtoReflect): the check before vtprotobuf's encoder must
// read the generated struct in both cases, and send the message to
// proto.Marshal, which refuses it.
func TestVTProtoChecksTheStruct(t *testing.T) {
	c := codec.Proto()
	bad := &benchv1.Item{Name: "\xff"}
	n := &vtCounts{}
	for _, m := range []proto.Message{bad, vtItem{bad, n}} {
		if b, err := c.AppendPayload(nil, m); err == nil {
			t.Errorf("%T with a name that is not UTF-8 encoded to %x", m, b)
		}
	}
	if n.marshals != 0 {
		t.Errorf("vtprotobuf encoded the wrapped message %d times", n.marshals)
	}
}
