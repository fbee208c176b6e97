package codec

import (
	"slices"
	"sync"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// vtMessage is what protoc-gen-go-vtproto (github.com/planetscale/vtprotobuf)
// generates with its marshal, unmarshal and size features: encoding and
// decoding written out per message type, without reflection. The codec
// detects the methods by this assertion, so that protows does not depend
// on vtprotobuf.
type vtMessage interface {
	SizeVT() int
	MarshalToSizedBufferVT(dAtA []byte) (int, error)
	UnmarshalVT(dAtA []byte) error
}

// vtTypes decides, once per message type, whether the Protobuf codec may
// take vtprotobuf's methods of the type, and keeps the answer.
//
// It may decode with them (UnmarshalVT) when they accept exactly what
// proto.Unmarshal accepts, with the same result, which is so for a type
// whose graph of message types (itself and the types of its message and
// map fields, through every level) has
//
//   - proto3 syntax only: proto2's and editions' rules (required fields,
//     groups, extensions, per-field UTF-8 features) are not checked here;
//   - no cycle: proto.Unmarshal stops at a recursion limit, vtprotobuf
//     does not, so only a type whose nesting is bounded is safe.
//
// It may encode with them (SizeVT, MarshalToSizedBufferVT) when they also
// write exactly what the codec's deterministic proto.Marshal writes, which
// takes besides
//
//   - no map field: vtprotobuf writes map entries in Go's random map order,
//     where the codec writes them in key order;
//   - no oneof, and fields declared in field number order: vtprotobuf's
//     marshal writes fields in declaration order, oneofs last, where
//     proto.Marshal writes them in number order.
//
// What vtprotobuf does not do is done around it: it checks no UTF-8, nor
// the groups among unknown fields, so the codec checks them itself
// (vtCheck), and its unmarshal merges, so the codec resets the message
// first. Other types take the general
// path.
type vtTypes struct {
	m sync.Map // protoreflect.FullName → *vtCheck, nil when the type may not
}

// vtCheck is what the codec knows of a message type that may take the
// vtprotobuf path: whether to encode with it too, and what to check after
// vtprotobuf's decode: its string fields, its message fields, and its map
// fields with strings or messages.
type vtCheck struct {
	marshal bool
	strs    []protoreflect.FieldDescriptor
	msgs    []vtMessageField
	maps    []vtMessageField // check is that of the value's message, nil for a scalar value
}

type vtMessageField struct {
	fd    protoreflect.FieldDescriptor
	check *vtCheck
}

// lookup returns m as a vtMessage, and its type's check, when the codec may
// decode m on the vtprotobuf path; check.marshal says whether it may encode
// it there too.
func (t *vtTypes) lookup(m proto.Message) (vtMessage, *vtCheck, bool) {
	vm, ok := m.(vtMessage)
	if !ok {
		return nil, nil, false
	}
	md := m.ProtoReflect().Descriptor()
	if v, ok := t.m.Load(md.FullName()); ok {
		k := v.(*vtCheck)
		return vm, k, k != nil
	}
	k, ok := vtCheckOf(md, map[protoreflect.FullName]*vtCheck{}, map[protoreflect.FullName]bool{})
	if !ok {
		k = nil
	}
	t.m.Store(md.FullName(), k)
	return vm, k, k != nil
}

// vtCheckOf builds the check of md, or reports false when md's type graph
// breaks one of vtTypes's rules for decoding. done holds the checks built
// so far, onPath the types being built (a cycle).
func vtCheckOf(md protoreflect.MessageDescriptor, done map[protoreflect.FullName]*vtCheck, onPath map[protoreflect.FullName]bool) (*vtCheck, bool) {
	if k, ok := done[md.FullName()]; ok {
		return k, true
	}
	if onPath[md.FullName()] || md.ParentFile().Syntax() != protoreflect.Proto3 || md.ExtensionRanges().Len() > 0 {
		return nil, false
	}
	onPath[md.FullName()] = true
	defer delete(onPath, md.FullName())
	k := &vtCheck{marshal: md.Oneofs().Len() == 0}
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if i > 0 && fd.Number() < fields.Get(i-1).Number() {
			k.marshal = false
		}
		switch {
		case fd.IsMap():
			k.marshal = false
			key, val := fd.MapKey(), fd.MapValue()
			var sub *vtCheck
			if val.Kind() == protoreflect.MessageKind {
				s, ok := vtCheckOf(val.Message(), done, onPath)
				if !ok {
					return nil, false
				}
				sub = s
			}
			if key.Kind() == protoreflect.StringKind || val.Kind() == protoreflect.StringKind || sub != nil {
				k.maps = append(k.maps, vtMessageField{fd, sub})
			}
		case fd.Kind() == protoreflect.StringKind:
			k.strs = append(k.strs, fd)
		case fd.Kind() == protoreflect.MessageKind:
			sub, ok := vtCheckOf(fd.Message(), done, onPath)
			if !ok {
				return nil, false
			}
			k.marshal = k.marshal && sub.marshal
			k.msgs = append(k.msgs, vtMessageField{fd, sub})
		case fd.Kind() == protoreflect.GroupKind:
			return nil, false
		}
	}
	done[md.FullName()] = k
	return k, true
}

// valid reports whether every string in m, at any depth, is UTF-8, as
// proto.Marshal and proto.Unmarshal require of proto3 strings; with
// unknown set, also whether the unknown fields of each message are what
// proto.Unmarshal accepts (vtprotobuf skips a group without checking that
// its end matches its start).
func (k *vtCheck) valid(m protoreflect.Message, unknown bool) bool {
	if unknown {
		for b := m.GetUnknown(); len(b) > 0; {
			// proto.Unmarshal's rules for a message's fields: a field
			// number in range, a value that parses (a group ending with
			// its own number). And the tag in its shortest form:
			// proto.Unmarshal keeps an unknown field's tag re-encoded,
			// vtprotobuf as it came.
			num, typ, n := protowire.ConsumeTag(b)
			if n < 0 || num > protowire.MaxValidNumber || n != protowire.SizeTag(num) {
				return false
			}
			v := protowire.ConsumeFieldValue(num, typ, b[n:])
			if v < 0 {
				return false
			}
			b = b[n+v:]
		}
	}
	for _, fd := range k.strs {
		if fd.IsList() {
			l := m.Get(fd).List()
			for i := range l.Len() {
				if !utf8.ValidString(l.Get(i).String()) {
					return false
				}
			}
		} else if !utf8.ValidString(m.Get(fd).String()) {
			return false
		}
	}
	for _, f := range k.msgs {
		if f.fd.IsList() {
			l := m.Get(f.fd).List()
			for i := range l.Len() {
				if !f.check.valid(l.Get(i).Message(), unknown) {
					return false
				}
			}
		} else if m.Has(f.fd) && !f.check.valid(m.Get(f.fd).Message(), unknown) {
			return false
		}
	}
	for _, f := range k.maps {
		ok := true
		m.Get(f.fd).Map().Range(func(key protoreflect.MapKey, v protoreflect.Value) bool {
			switch {
			case f.fd.MapKey().Kind() == protoreflect.StringKind && !utf8.ValidString(key.String()):
				ok = false
			case f.check != nil:
				ok = f.check.valid(v.Message(), unknown)
			case f.fd.MapValue().Kind() == protoreflect.StringKind:
				ok = utf8.ValidString(v.String())
			}
			return ok
		})
		if !ok {
			return false
		}
	}
	return true
}

// vtSize returns m's size and true when m takes the vtprotobuf path (see
// vtTypes), for vtAppend to follow with m unchanged meanwhile.
func (t *vtTypes) vtSize(m proto.Message) (int, bool) {
	vm, k, ok := t.lookup(m)
	if !ok || !k.marshal || !k.valid(m.ProtoReflect(), false) {
		// A string that is not UTF-8 takes the general path, whose
		// marshal returns proto.Marshal's error for it.
		return 0, false
	}
	return vm.SizeVT(), true
}

// vtAppend appends m's encoding, of size n (from vtSize), to dst.
func vtAppend(dst []byte, m proto.Message, n int) ([]byte, error) {
	start := len(dst)
	dst = slices.Grow(dst, n)[:start+n]
	if _, err := m.(vtMessage).MarshalToSizedBufferVT(dst[start:]); err != nil {
		return dst[:start], err
	}
	return dst, nil
}

// vtUnmarshal decodes src into m and reports true when m takes the
// vtprotobuf path (see vtTypes).
func (t *vtTypes) vtUnmarshal(src []byte, m proto.Message) (bool, error) {
	vm, k, ok := t.lookup(m)
	if !ok {
		return false, nil
	}
	proto.Reset(m) // UnmarshalVT merges; proto.Unmarshal replaces
	if err := vm.UnmarshalVT(src); err != nil || !k.valid(m.ProtoReflect(), true) {
		// What vtprotobuf refuses, proto.Unmarshal may still accept (a
		// known field in a wire type not its own is an unknown field to
		// it), and what is not UTF-8 it refuses: it decides, from
		// scratch, so that the outcome and the error are the general
		// path's. Only bad input pays for the second decode.
		return true, protoUnmarshal.Unmarshal(src, m)
	}
	return true, nil
}
