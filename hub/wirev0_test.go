package hub

import (
	"errors"
	"fmt"
	"time"

	hubv1 "github.com/protows/protows/gen/go/protows/hub/v1"
	"google.golang.org/protobuf/encoding/protowire"
)

// The first version of the broker messages was hand-written Protobuf. Its
// decoder is kept here, frozen, as the node of the old version in tests of
// a rolling deploy: it must read what this version sends.

type v0Kind uint8

// v0Msg is the first version's message.
type v0Msg struct {
	kind        v0Kind
	origin      string
	incarnation uint64
	seq         uint64
	room        string
	target      string
	payload     []byte
	members     []Member
	more        bool
	part        uint64
}

var errV0 = errors.New("v0: malformed broker message")

// sameAsV0 reports how an old node's reading of a message differs from w,
// or "" when it reads w.
func sameAsV0(v *v0Msg, w *hubv1.Message) string {
	switch {
	case uint64(v.kind) != uint64(w.GetKind()):
		return fmt.Sprintf("kind %d, want %d", v.kind, w.GetKind())
	case v.origin != w.GetOrigin() || v.incarnation != w.GetIncarnation() || v.seq != w.GetSeq():
		return fmt.Sprintf("origin %q/%d seq %d, want %q/%d seq %d", v.origin, v.incarnation, v.seq, w.GetOrigin(), w.GetIncarnation(), w.GetSeq())
	case v.room != w.GetRoom() || v.target != w.GetTarget() || string(v.payload) != string(w.GetPayload()):
		return fmt.Sprintf("room %q target %q payload %x, want %q %q %x", v.room, v.target, v.payload, w.GetRoom(), w.GetTarget(), w.GetPayload())
	case v.more != w.GetMore() || v.part != w.GetPart():
		return fmt.Sprintf("more %v part %d, want %v %d", v.more, v.part, w.GetMore(), w.GetPart())
	case len(v.members) != len(w.GetMembers()):
		return fmt.Sprintf("%d members, want %d", len(v.members), len(w.GetMembers()))
	}
	for i, wm := range w.GetMembers() {
		want := memberOf("", wm)
		got := v.members[i]
		var joined int64 // the first version leaves JoinedAt zero without the field
		if !got.JoinedAt.IsZero() {
			joined = got.JoinedAt.UnixNano()
		}
		if joined != want.JoinedAt.UnixNano() {
			return fmt.Sprintf("member %d joined at %d, want %d", i, joined, want.JoinedAt.UnixNano())
		}
		got.JoinedAt = want.JoinedAt
		if got != want {
			return fmt.Sprintf("member %d %+v, want %+v", i, got, want)
		}
	}
	return ""
}

// unmarshalV0 is the decoder of the first version (hub/wire.go before
// hub.proto), frozen.
func unmarshalV0(src []byte) (*v0Msg, error) {
	m := &v0Msg{}
	for len(src) > 0 {
		num, typ, n := protowire.ConsumeTag(src)
		if n < 0 {
			return nil, fmt.Errorf("%w: %v", errV0, protowire.ParseError(n))
		}
		src = src[n:]
		switch {
		case num == 1 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(src)
			if n < 0 {
				return nil, errV0
			}
			m.kind, src = v0Kind(v), src[n:]
		case num == 3 && typ == protowire.Fixed64Type:
			v, n := protowire.ConsumeFixed64(src)
			if n < 0 {
				return nil, errV0
			}
			m.incarnation, src = v, src[n:]
		case (num == 4 || num == 9 || num == 10) && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(src)
			if n < 0 {
				return nil, errV0
			}
			src = src[n:]
			switch num {
			case 4:
				m.seq = v
			case 9:
				m.more = v != 0
			case 10:
				m.part = v
			}
		case typ == protowire.BytesType && (num == 2 || num == 5 || num == 6 || num == 7 || num == 8):
			v, n := protowire.ConsumeBytes(src)
			if n < 0 {
				return nil, errV0
			}
			src = src[n:]
			switch num {
			case 2:
				m.origin = string(v)
			case 5:
				m.room = string(v)
			case 6:
				m.target = string(v)
			case 7:
				m.payload = v
			case 8:
				mem, err := unmarshalV0Member(v)
				if err != nil {
					return nil, err
				}
				m.members = append(m.members, mem)
			}
		default:
			n := protowire.ConsumeFieldValue(num, typ, src)
			if n < 0 {
				return nil, errV0
			}
			src = src[n:]
		}
	}
	if m.kind == 0 || m.origin == "" {
		return nil, fmt.Errorf("%w: no kind or origin", errV0)
	}
	return m, nil
}

func unmarshalV0Member(src []byte) (Member, error) {
	var mem Member
	for len(src) > 0 {
		num, typ, n := protowire.ConsumeTag(src)
		if n < 0 {
			return mem, errV0
		}
		src = src[n:]
		switch {
		case typ == protowire.VarintType && (num == 2 || num == 5):
			v, n := protowire.ConsumeVarint(src)
			if n < 0 {
				return mem, errV0
			}
			src = src[n:]
			if num == 2 {
				mem.CallID = uint32(v)
			} else {
				mem.JoinedAt = time.Unix(0, int64(v))
			}
		case typ == protowire.BytesType && (num == 1 || num == 3 || num == 4):
			v, n := protowire.ConsumeBytes(src)
			if n < 0 {
				return mem, errV0
			}
			src = src[n:]
			switch num {
			case 1:
				mem.ConnID = string(v)
			case 3:
				mem.Subject = string(v)
			case 4:
				mem.Room = string(v)
			}
		default:
			n := protowire.ConsumeFieldValue(num, typ, src)
			if n < 0 {
				return mem, errV0
			}
			src = src[n:]
		}
	}
	return mem, nil
}
