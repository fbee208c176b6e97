package hub

import (
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// The kinds of the messages hubs exchange through a broker.
type wireKind uint8

const (
	wireBroadcast wireKind = iota + 1 // payload to a room
	wireAll                           // payload to every room
	wireDirect                        // payload to one member or connection (target)
	wireJoin                          // members joined
	wireLeave                         // members left
	wireHeartbeat                     // the node is alive
	wireState                         // the node's complete membership
	wireSync                          // please publish your state (target, or all)
	wireBye                           // the node is leaving: drop its members
)

// wireMsg is a message between hubs, encoded in the Protobuf wire format by
// hand (fields below) so that no .proto file is needed for an internal
// format. Unknown fields are skipped, so the format can grow.
type wireMsg struct {
	kind        wireKind // 1
	origin      string   // 2: the publishing node
	incarnation uint64   // 3: random per hub instance: a restarted node is new
	seq         uint64   // 4: per-incarnation message number, from 1
	room        string   // 5
	target      string   // 6: a node (sync), a member or connection (direct)
	payload     []byte   // 7: the message, Protobuf binary
	members     []Member // 8: repeated
	more        bool     // 9: a state message continued by the next one
	part        uint64   // 10: the index of a state message in its state
}

// Field numbers of Member inside wireMsg.members.
const (
	fMemberConn    = 1
	fMemberCall    = 2
	fMemberSubject = 3
	fMemberRoom    = 4
	fMemberJoined  = 5
)

func (m *wireMsg) marshal() []byte {
	b := make([]byte, 0, 64+len(m.payload))
	b = protowire.AppendTag(b, 1, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(m.kind))
	b = appendString(b, 2, m.origin)
	b = protowire.AppendTag(b, 3, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, m.incarnation)
	b = protowire.AppendTag(b, 4, protowire.VarintType)
	b = protowire.AppendVarint(b, m.seq)
	b = appendString(b, 5, m.room)
	b = appendString(b, 6, m.target)
	if len(m.payload) > 0 {
		b = protowire.AppendTag(b, 7, protowire.BytesType)
		b = protowire.AppendBytes(b, m.payload)
	}
	for _, mem := range m.members {
		var e []byte
		e = appendString(e, fMemberConn, mem.ConnID)
		e = protowire.AppendTag(e, fMemberCall, protowire.VarintType)
		e = protowire.AppendVarint(e, uint64(mem.CallID))
		e = appendString(e, fMemberSubject, mem.Subject)
		e = appendString(e, fMemberRoom, mem.Room)
		e = protowire.AppendTag(e, fMemberJoined, protowire.VarintType)
		e = protowire.AppendVarint(e, uint64(mem.JoinedAt.UnixNano()))
		b = protowire.AppendTag(b, 8, protowire.BytesType)
		b = protowire.AppendBytes(b, e)
	}
	if m.more {
		b = protowire.AppendTag(b, 9, protowire.VarintType)
		b = protowire.AppendVarint(b, 1)
	}
	if m.part != 0 {
		b = protowire.AppendTag(b, 10, protowire.VarintType)
		b = protowire.AppendVarint(b, m.part)
	}
	return b
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

var errWire = errors.New("hub: malformed broker message")

// unmarshalWire decodes a broker message. payload aliases src.
func unmarshalWire(src []byte) (*wireMsg, error) {
	m := &wireMsg{}
	for len(src) > 0 {
		num, typ, n := protowire.ConsumeTag(src)
		if n < 0 {
			return nil, fmt.Errorf("%w: %v", errWire, protowire.ParseError(n))
		}
		src = src[n:]
		switch {
		case num == 1 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(src)
			if n < 0 {
				return nil, errWire
			}
			m.kind, src = wireKind(v), src[n:]
		case num == 3 && typ == protowire.Fixed64Type:
			v, n := protowire.ConsumeFixed64(src)
			if n < 0 {
				return nil, errWire
			}
			m.incarnation, src = v, src[n:]
		case (num == 4 || num == 9 || num == 10) && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(src)
			if n < 0 {
				return nil, errWire
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
				return nil, errWire
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
				mem, err := unmarshalMember(v)
				if err != nil {
					return nil, err
				}
				m.members = append(m.members, mem)
			}
		default:
			n := protowire.ConsumeFieldValue(num, typ, src)
			if n < 0 {
				return nil, errWire
			}
			src = src[n:]
		}
	}
	if m.kind == 0 || m.origin == "" {
		return nil, fmt.Errorf("%w: no kind or origin", errWire)
	}
	return m, nil
}

func unmarshalMember(src []byte) (Member, error) {
	var mem Member
	for len(src) > 0 {
		num, typ, n := protowire.ConsumeTag(src)
		if n < 0 {
			return mem, errWire
		}
		src = src[n:]
		switch {
		case typ == protowire.VarintType && (num == fMemberCall || num == fMemberJoined):
			v, n := protowire.ConsumeVarint(src)
			if n < 0 {
				return mem, errWire
			}
			src = src[n:]
			if num == fMemberCall {
				mem.CallID = uint32(v)
			} else {
				mem.JoinedAt = time.Unix(0, int64(v))
			}
		case typ == protowire.BytesType && (num == fMemberConn || num == fMemberSubject || num == fMemberRoom):
			v, n := protowire.ConsumeBytes(src)
			if n < 0 {
				return mem, errWire
			}
			src = src[n:]
			switch num {
			case fMemberConn:
				mem.ConnID = string(v)
			case fMemberSubject:
				mem.Subject = string(v)
			case fMemberRoom:
				mem.Room = string(v)
			}
		default:
			n := protowire.ConsumeFieldValue(num, typ, src)
			if n < 0 {
				return mem, errWire
			}
			src = src[n:]
		}
	}
	return mem, nil
}
