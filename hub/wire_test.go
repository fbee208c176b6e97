package hub

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	hubv1 "github.com/protows/protows/gen/go/protows/hub/v1"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
)

// TestWireCodec checks the hand-written codec against the generated code:
// appendWire writes what proto.Marshal writes, and unmarshalWire reads it
// back as proto.Unmarshal does.
func TestWireCodec(t *testing.T) {
	t.Parallel()
	msgs := []*hubv1.Message{
		{Kind: hubv1.Kind_KIND_HEARTBEAT, Origin: "n"},
		{Kind: -1, Origin: "negative kind", Seq: math.MaxUint64, Part: math.MaxUint64, More: true, Incarnation: 1},
		{Kind: hubv1.Kind_KIND_BYE, Origin: "\xff\xfe not UTF-8", Target: "\x00"},
		{Kind: hubv1.Kind_KIND_STATE, Origin: "n", Members: []*hubv1.Member{
			{},
			{ConnId: "c", CallId: math.MaxUint32, Subject: "\xff", Room: "r", JoinedAtUnixNano: math.MinInt64},
			{JoinedAtUnixNano: -1},
			{Room: string(make([]byte, 300))},
		}},
		{Kind: hubv1.Kind_KIND_BROADCAST, Origin: "n", Room: "r", Payload: make([]byte, 70000)},
	}
	for _, g := range goldenWire {
		msgs = append(msgs, g.msg)
	}
	for _, w := range msgs {
		want, err := proto.MarshalOptions{Deterministic: true}.Marshal(w)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendWire(nil, w); !bytes.Equal(got, want) {
			t.Errorf("%v\nappendWire %x\nproto.Marshal %x", prototext.Format(w), got, want)
		}
		if got := appendWire([]byte("prefix"), w); !bytes.Equal(got, append([]byte("prefix"), want...)) {
			t.Errorf("appendWire does not append")
		}
		got, err := unmarshalWire(want)
		if err != nil {
			t.Fatalf("%v: %v", prototext.Format(w), err)
		}
		if !proto.Equal(got, w) {
			t.Errorf("decoded\n got %v\nwant %v", prototext.Format(got), prototext.Format(w))
		}
	}
}

func TestWireMembers(t *testing.T) {
	t.Parallel()
	joined := time.Unix(1795000000, 123456789)
	ms := []Member{
		{Node: "n1", ConnID: "c-1", CallID: 3, Subject: "alice", Room: "lobby", JoinedAt: joined},
		{Node: "n1", ConnID: "c-2", CallID: 1, Room: "zoë", JoinedAt: joined.Add(-time.Hour)},
		{Node: "n1", ConnID: "local-1", Subject: "\xff not UTF-8", Room: "r", JoinedAt: time.Unix(-1, 0)},
	}
	w, err := unmarshalWire(appendWire(nil, &hubv1.Message{Kind: hubv1.Kind_KIND_STATE, Origin: "n1", Members: wireMembers(ms)}))
	if err != nil {
		t.Fatal(err)
	}
	if len(w.GetMembers()) != len(ms) {
		t.Fatalf("%d members, want %d", len(w.GetMembers()), len(ms))
	}
	for i, wm := range w.GetMembers() {
		got := memberOf("n1", wm)
		if !got.JoinedAt.Equal(ms[i].JoinedAt) {
			t.Errorf("joined at %v, want %v", got.JoinedAt, ms[i].JoinedAt)
		}
		got.JoinedAt = ms[i].JoinedAt
		if got != ms[i] {
			t.Errorf("member\n got %+v\nwant %+v", got, ms[i])
		}
	}
}

func TestWireRejectsGarbage(t *testing.T) {
	t.Parallel()
	join := appendWire(nil, &hubv1.Message{Kind: hubv1.Kind_KIND_JOIN, Origin: "n1", Members: []*hubv1.Member{{ConnId: "c", Room: "lobby"}}})
	for name, b := range map[string][]byte{
		"empty":          nil,
		"truncated":      join[:12],
		"bad tag":        {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		"bad member":     {0x08, 0x04, 0x12, 0x01, 'n', 0x42, 0x02, 0x08, 0x80},
		"truncated seq":  {0x08, 0x04, 0x12, 0x01, 'n', 0x20, 0x80},
		"no origin":      appendWire(nil, &hubv1.Message{Kind: hubv1.Kind_KIND_HEARTBEAT, Seq: 1}),
		"no kind":        appendWire(nil, &hubv1.Message{Origin: "n1", Seq: 1}),
		"unknown, short": append(appendWire(nil, &hubv1.Message{Kind: hubv1.Kind_KIND_HEARTBEAT, Origin: "n1"}), 0xa2, 0x06, 9, 'x'),
	} {
		if _, err := unmarshalWire(b); !errors.Is(err, errWire) {
			t.Errorf("%s: err %v, want errWire", name, err)
		}
	}
}

// TestWireSkipsUnknown checks that a message of a later version, with
// fields and a kind this one does not know, still decodes.
func TestWireSkipsUnknown(t *testing.T) {
	t.Parallel()
	b := appendWire(nil, &hubv1.Message{Kind: 99, Origin: "n1", Seq: 5, Room: "r"})
	b = append(b, 0xa2, 0x06, 3, 'n', 'e', 'w') // field 100, bytes "new"
	b = append(b, 0x48, 0x01)                   // more, as a varint: known
	b = append(b, 0x21, 1, 2, 3, 4, 5, 6, 7, 8) // seq as a fixed64: unknown
	w, err := unmarshalWire(b)
	if err != nil {
		t.Fatal(err)
	}
	if w.GetKind() != 99 || w.GetSeq() != 5 || w.GetRoom() != "r" || !w.GetMore() {
		t.Errorf("decoded %v", w)
	}
}

// FuzzUnmarshalWire feeds the decoder of broker messages, which come from
// other nodes, arbitrary bytes. It must agree with proto.Unmarshal on what
// is valid and what it means; what it accepts appendWire must encode as
// proto.Marshal does; and the first version must read that encoding the
// same.
func FuzzUnmarshalWire(f *testing.F) {
	for _, g := range goldenWire {
		b, err := os.ReadFile(filepath.Join("testdata", "wire", g.file))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		w, err := unmarshalWire(data)
		ref := &hubv1.Message{}
		refErr := proto.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(data, ref)
		switch {
		case err != nil && !errors.Is(err, errWire):
			t.Fatalf("error %v is not errWire", err)
		case refErr != nil && err == nil:
			t.Fatalf("accepted what proto.Unmarshal refuses (%v): %v", refErr, prototext.Format(w))
		case refErr == nil && (ref.GetKind() == 0 || ref.GetOrigin() == ""):
			if err == nil {
				t.Fatal("accepted a message without a kind or origin")
			}
			return
		case refErr == nil && err != nil:
			t.Fatalf("refused what proto.Unmarshal reads: %v", err)
		case err != nil:
			return
		}
		if !proto.Equal(w, ref) {
			t.Fatalf("decoded\n%v\nproto.Unmarshal decoded\n%v", prototext.Format(w), prototext.Format(ref))
		}
		b := appendWire(nil, w)
		want, err := proto.MarshalOptions{Deterministic: true}.Marshal(w)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, want) {
			t.Fatalf("appendWire %x\nproto.Marshal %x", b, want)
		}
		if k := w.GetKind(); k < 0 || k > 255 {
			return // the first version kept kinds in a byte; neither knows this one
		}
		v0, err := unmarshalV0(b)
		if err != nil {
			t.Fatalf("the first version does not decode %x: %v", b, err)
		}
		if diff := sameAsV0(v0, w); diff != "" {
			t.Fatalf("the first version reads %x as: %s", b, diff)
		}
	})
}
