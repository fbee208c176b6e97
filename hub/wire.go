package hub

import (
	"errors"
	"fmt"
	"time"

	hubv1 "github.com/protows/protows/gen/go/protows/hub/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// The messages hubs exchange through a broker are protows.hub.v1.Message
// (proto/protows/hub/v1/hub.proto) in the Protobuf binary encoding. The
// schema keeps nodes of two versions talking during a rolling deploy: buf
// breaking guards it, and testdata/wire holds the bytes of the first
// version, which every later one must read.
//
// A broadcast is encoded on its way out of its node and decoded on its way
// into every other, so the codec here is written with protowire rather
// than left to proto.Marshal and proto.Unmarshal, which took two to three
// times as long and an allocation more each when measured (the payload is
// copied out of the broker's message, where this decoder shares it; the
// message escapes to the heap). It writes exactly
// what proto.Marshal writes and reads what proto.Unmarshal reads, which
// TestWireCodec and FuzzUnmarshalWire check against the generated code;
// its field numbers come from the generated descriptors.

// Field numbers of protows.hub.v1.Message and Member.
var (
	fKind        = messageField("kind")
	fOrigin      = messageField("origin")
	fIncarnation = messageField("incarnation")
	fSeq         = messageField("seq")
	fRoom        = messageField("room")
	fTarget      = messageField("target")
	fPayload     = messageField("payload")
	fMembers     = messageField("members")
	fMore        = messageField("more")
	fPart        = messageField("part")

	fMemberConn    = memberField("conn_id")
	fMemberCall    = memberField("call_id")
	fMemberSubject = memberField("subject")
	fMemberRoom    = memberField("room")
	fMemberJoined  = memberField("joined_at_unix_nano")
)

func messageField(name string) protowire.Number {
	return (*hubv1.Message)(nil).ProtoReflect().Descriptor().Fields().ByName(protoreflect.Name(name)).Number()
}

func memberField(name string) protowire.Number {
	return (*hubv1.Member)(nil).ProtoReflect().Descriptor().Fields().ByName(protoreflect.Name(name)).Number()
}

var errWire = errors.New("hub: malformed broker message")

// appendWire appends w's encoding: the bytes of proto.Marshal(w), unknown
// fields left out.
func appendWire(b []byte, w *hubv1.Message) []byte {
	b = appendVarint(b, fKind, uint64(w.GetKind()))
	b = appendString(b, fOrigin, w.GetOrigin())
	if w.GetIncarnation() != 0 {
		b = protowire.AppendTag(b, fIncarnation, protowire.Fixed64Type)
		b = protowire.AppendFixed64(b, w.GetIncarnation())
	}
	b = appendVarint(b, fSeq, w.GetSeq())
	b = appendString(b, fRoom, w.GetRoom())
	b = appendString(b, fTarget, w.GetTarget())
	b = appendBytes(b, fPayload, w.GetPayload())
	for _, m := range w.GetMembers() {
		b = protowire.AppendTag(b, fMembers, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(memberSize(m)))
		b = appendString(b, fMemberConn, m.GetConnId())
		b = appendVarint(b, fMemberCall, uint64(m.GetCallId()))
		b = appendString(b, fMemberSubject, m.GetSubject())
		b = appendString(b, fMemberRoom, m.GetRoom())
		b = appendVarint(b, fMemberJoined, uint64(m.GetJoinedAtUnixNano()))
	}
	b = appendVarint(b, fMore, protowire.EncodeBool(w.GetMore()))
	b = appendVarint(b, fPart, w.GetPart())
	return b
}

func memberSize(m *hubv1.Member) int {
	return stringSize(fMemberConn, m.GetConnId()) +
		varintSize(fMemberCall, uint64(m.GetCallId())) +
		stringSize(fMemberSubject, m.GetSubject()) +
		stringSize(fMemberRoom, m.GetRoom()) +
		varintSize(fMemberJoined, uint64(m.GetJoinedAtUnixNano()))
}

// appendVarint, appendString and appendBytes append a field unless its
// value is zero, as proto3 (implicit presence) does.
func appendVarint(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendBytes(b []byte, num protowire.Number, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

func varintSize(num protowire.Number, v uint64) int {
	if v == 0 {
		return 0
	}
	return protowire.SizeTag(num) + protowire.SizeVarint(v)
}

func stringSize(num protowire.Number, s string) int {
	if s == "" {
		return 0
	}
	return protowire.SizeTag(num) + protowire.SizeBytes(len(s))
}

// unmarshalWire decodes a broker message as proto.Unmarshal would, unknown
// fields dropped, except that the payload shares data's memory. It refuses
// a message without a kind or an origin.
func unmarshalWire(data []byte) (*hubv1.Message, error) {
	w := &hubv1.Message{}
	for len(data) > 0 {
		num, typ, n, err := consumeTag(data)
		if err != nil {
			return nil, err
		}
		data = data[n:]
		switch {
		case typ == protowire.VarintType && (num == fKind || num == fSeq || num == fMore || num == fPart):
			var v uint64
			v, n = protowire.ConsumeVarint(data)
			switch num {
			case fKind:
				w.Kind = hubv1.Kind(int32(v))
			case fSeq:
				w.Seq = v
			case fMore:
				w.More = protowire.DecodeBool(v)
			case fPart:
				w.Part = v
			}
		case typ == protowire.Fixed64Type && num == fIncarnation:
			w.Incarnation, n = protowire.ConsumeFixed64(data)
		case typ == protowire.BytesType && (num == fOrigin || num == fRoom || num == fTarget || num == fPayload || num == fMembers):
			var v []byte
			v, n = protowire.ConsumeBytes(data)
			switch {
			case n < 0:
			case num == fOrigin:
				w.Origin = string(v)
			case num == fRoom:
				w.Room = string(v)
			case num == fTarget:
				w.Target = string(v)
			case num == fPayload:
				w.Payload = v[:len(v):len(v)]
			case num == fMembers:
				m, err := unmarshalMember(v)
				if err != nil {
					return nil, err
				}
				w.Members = append(w.Members, m)
			}
		default:
			n = protowire.ConsumeFieldValue(num, typ, data)
		}
		if n < 0 {
			return nil, wireError(n)
		}
		data = data[n:]
	}
	if w.GetKind() == hubv1.Kind_KIND_UNSPECIFIED || w.GetOrigin() == "" {
		return nil, fmt.Errorf("%w: no kind or origin", errWire)
	}
	return w, nil
}

func unmarshalMember(data []byte) (*hubv1.Member, error) {
	m := &hubv1.Member{}
	for len(data) > 0 {
		num, typ, n, err := consumeTag(data)
		if err != nil {
			return nil, err
		}
		data = data[n:]
		switch {
		case typ == protowire.VarintType && (num == fMemberCall || num == fMemberJoined):
			var v uint64
			v, n = protowire.ConsumeVarint(data)
			if num == fMemberCall {
				m.CallId = uint32(v)
			} else {
				m.JoinedAtUnixNano = int64(v)
			}
		case typ == protowire.BytesType && (num == fMemberConn || num == fMemberSubject || num == fMemberRoom):
			var v []byte
			v, n = protowire.ConsumeBytes(data)
			switch num {
			case fMemberConn:
				m.ConnId = string(v)
			case fMemberSubject:
				m.Subject = string(v)
			case fMemberRoom:
				m.Room = string(v)
			}
		default:
			n = protowire.ConsumeFieldValue(num, typ, data)
		}
		if n < 0 {
			return nil, wireError(n)
		}
		data = data[n:]
	}
	return m, nil
}

// consumeTag is protowire.ConsumeTag refusing, as proto.Unmarshal does,
// the field numbers above protowire.MaxValidNumber.
func consumeTag(b []byte) (protowire.Number, protowire.Type, int, error) {
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 {
		return 0, 0, 0, wireError(n)
	}
	if num > protowire.MaxValidNumber {
		return 0, 0, 0, fmt.Errorf("%w: invalid field number %d", errWire, num)
	}
	return num, typ, n, nil
}

func wireError(n int) error {
	return fmt.Errorf("%w: %w", errWire, protowire.ParseError(n))
}

// wireMembers returns ms as a message's members (whose node is the
// message's origin).
func wireMembers(ms []Member) []*hubv1.Member {
	out := make([]*hubv1.Member, len(ms))
	for i, m := range ms {
		out[i] = &hubv1.Member{
			ConnId:           m.ConnID,
			CallId:           m.CallID,
			Subject:          m.Subject,
			Room:             m.Room,
			JoinedAtUnixNano: m.JoinedAt.UnixNano(),
		}
	}
	return out
}

// memberOf returns the member of node that m describes.
func memberOf(node string, m *hubv1.Member) Member {
	return Member{
		Node:     node,
		ConnID:   m.GetConnId(),
		CallID:   m.GetCallId(),
		Subject:  m.GetSubject(),
		Room:     m.GetRoom(),
		JoinedAt: time.Unix(0, m.GetJoinedAtUnixNano()),
	}
}
