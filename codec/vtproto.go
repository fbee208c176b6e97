package codec

import (
	"reflect"
	"slices"
	"sync"
	"unicode/utf8"
	"unsafe"

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
// write what proto.Marshal writes, but for the order of map entries, which
// takes besides
//
//   - no oneof, and fields declared in field number order: vtprotobuf's
//     marshal writes fields in declaration order, oneofs last, where
//     proto.Marshal writes them in number order.
//
// vtprotobuf writes map entries in Go's random map order, as proto.Marshal
// does unless told to be deterministic; where the codec must write
// deterministic Protobuf (WithDeterministicPayloads), with map entries in
// key order, it encodes a type with a map field anywhere in its graph by
// proto.Marshal.
//
// What vtprotobuf does not do is done around it: it checks no UTF-8, nor
// the groups among unknown fields, so the codec checks them itself
// (vtCheck), and its unmarshal merges, so the codec resets the message
// first. Other types take the general path.
type vtTypes struct {
	// m maps the Go type of a message to its *vtType. Keyed by Go type,
	// not by name: the check of encoding reads the Go struct (vtEnc).
	m sync.Map
}

// vtType is what vtTypes knows of a Go type of messages: its check, nil
// when the type may not take the vtprotobuf path, and whether the type is
// the generated struct's pointer itself (direct), as it is but for types
// that wrap one, whose struct is found through ProtoReflect().Interface(),
// which costs a reflect.NewAt on every call.
type vtType struct {
	check  *vtCheck
	direct bool
}

// vtCheck is what the codec knows of a message type that may take the
// vtprotobuf path: whether to encode with it too, whether its encoding
// has map entries (whose order vtprotobuf leaves to Go), and its fields,
// for checking encoded bytes of the type (valid).
type vtCheck struct {
	marshal bool
	maps    bool
	fields  []vtField
	byNum   []*vtField // fields by number, for numbers below vtDirect
	// enc checks a message of the type before it is encoded on the
	// vtprotobuf path (vtEnc); nil when the type's Go struct is not what
	// vtEncOf reads, which keeps its encoding off the path.
	enc *vtEnc
}

// vtDirect bounds the field numbers vtCheck.field finds by index.
const vtDirect = 64

// vtField is a field of a vtCheck's type.
type vtField struct {
	num protowire.Number
	str bool     // a string: its bytes must be UTF-8
	sub *vtCheck // a message or a map entry: its bytes are checked too
}

// lookup returns m as a vtMessage, and its type's check, when the codec may
// decode m on the vtprotobuf path; check.marshal says whether it may encode
// it there too.
func (t *vtTypes) lookup(m proto.Message) (vtMessage, *vtType, bool) {
	vm, ok := m.(vtMessage)
	if !ok {
		return nil, nil, false
	}
	mt := reflect.TypeOf(m)
	if v, ok := t.m.Load(mt); ok {
		vt := v.(*vtType)
		return vm, vt, vt.check != nil
	}
	pm := m.ProtoReflect()
	gt := reflect.TypeOf(pm.Interface())
	md := pm.Descriptor()
	k, ok := vtCheckOf(md, map[protoreflect.FullName]*vtCheck{}, map[protoreflect.FullName]bool{})
	if !ok {
		k = nil
	} else if k.marshal {
		k.enc = vtEncOf(gt, md, map[reflect.Type]*vtEnc{})
	}
	vt := &vtType{check: k, direct: gt == mt}
	t.m.Store(mt, vt)
	return vm, vt, k != nil
}

// structPtr returns the generated struct m is or wraps, for vtEnc.
func (vt *vtType) structPtr(m proto.Message) unsafe.Pointer {
	if vt.direct {
		return reflect.ValueOf(m).UnsafePointer()
	}
	return reflect.ValueOf(m.ProtoReflect().Interface()).UnsafePointer()
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
		f := vtField{num: fd.Number()}
		switch fd.Kind() {
		case protoreflect.StringKind:
			f.str = true
		case protoreflect.MessageKind:
			// A map field is a repeated message field of its entry
			// type, on the wire and here.
			sub, ok := vtCheckOf(fd.Message(), done, onPath)
			if !ok {
				return nil, false
			}
			f.sub = sub
			k.marshal = k.marshal && sub.marshal
			k.maps = k.maps || sub.maps || fd.IsMap()
		case protoreflect.GroupKind:
			return nil, false
		}
		k.fields = append(k.fields, f)
	}
	for i := range k.fields {
		if f := &k.fields[i]; f.num < vtDirect {
			if int(f.num) >= len(k.byNum) {
				k.byNum = slices.Grow(k.byNum, int(f.num)+1-len(k.byNum))[:f.num+1]
			}
			k.byNum[f.num] = f
		}
	}
	done[md.FullName()] = k
	return k, true
}

// valid reports whether b, the encoding of a message of k's type, holds
// nothing where vtprotobuf and proto.Unmarshal part ways, at any depth,
// reading the bytes alone (no reflection, no allocation):
//
//   - every string is UTF-8, which proto.Marshal and proto.Unmarshal
//     require of proto3 strings, and vtprotobuf does not check;
//   - every field parses by proto.Unmarshal's rules: a field number in
//     range, a group ending with its own number (vtprotobuf skips an
//     unknown group without checking its end);
//   - every unknown field's tag is in its shortest form: proto.Unmarshal
//     keeps an unknown field's tag re-encoded, vtprotobuf as it came.
//
// A known field in a wire type not its own is left alone: vtprotobuf
// refuses it, and the decode then falls back to proto.Unmarshal.
func (k *vtCheck) valid(b []byte) bool {
	for len(b) > 0 {
		// It runs over every field of every message decoded: the
		// one-byte tags of field numbers below 16 are read inline.
		var (
			num protowire.Number
			typ protowire.Type
			n   int
		)
		if b[0] < 0x80 {
			num, typ, n = protowire.Number(b[0]>>3), protowire.Type(b[0]&7), 1
			if num == 0 {
				return false
			}
		} else {
			num, typ, n = protowire.ConsumeTag(b)
			if n < 0 || num > protowire.MaxValidNumber {
				return false
			}
		}
		b = b[n:]
		f := k.field(num)
		if f == nil && n != protowire.SizeTag(num) {
			return false
		}
		var m int
		switch typ {
		case protowire.VarintType:
			_, m = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			var v []byte
			v, m = protowire.ConsumeBytes(b)
			switch {
			case m < 0 || f == nil:
			case f.str:
				if !utf8.Valid(v) {
					return false
				}
			case f.sub != nil:
				if !f.sub.valid(v) {
					return false
				}
			}
		default:
			m = protowire.ConsumeFieldValue(num, typ, b)
		}
		if m < 0 {
			return false
		}
		b = b[m:]
	}
	return true
}

// field returns k's field numbered num, nil for an unknown field.
func (k *vtCheck) field(num protowire.Number) *vtField {
	if int(num) < len(k.byNum) {
		return k.byNum[num]
	}
	for i := range k.fields {
		if k.fields[i].num == num {
			return &k.fields[i]
		}
	}
	return nil
}

// vtSize returns m's size and true when m is encoded on the vtprotobuf
// path (see vtTypes); deterministic keeps the types with map entries off
// it, and a message that vtprotobuf would encode otherwise than
// proto.Marshal (see vtEnc) stays off it too. vtAppend follows it, with m
// unchanged meanwhile.
func (t *vtTypes) vtSize(m proto.Message, deterministic bool) (int, bool) {
	vm, vt, ok := t.lookup(m)
	if !ok {
		return 0, false
	}
	if k := vt.check; !k.marshal || (deterministic && k.maps) || k.enc == nil || !k.enc.ok(vt.structPtr(m)) {
		return 0, false
	}
	return vm.SizeVT(), true
}

// vtAppend appends m's encoding, of size n (from vtSize), to dst.
func (t *vtTypes) vtAppend(dst []byte, m proto.Message, n int) ([]byte, error) {
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
	vm, vt, ok := t.lookup(m)
	if !ok {
		return false, nil
	}
	if !vt.check.valid(src) {
		// proto.Unmarshal's outcome differs from vtprotobuf's, or its
		// error would: it decides.
		return true, protoUnmarshal.Unmarshal(src, m)
	}
	proto.Reset(m) // UnmarshalVT merges; proto.Unmarshal replaces
	if err := vm.UnmarshalVT(src); err != nil {
		// What vtprotobuf refuses, proto.Unmarshal may still accept (a
		// known field in a wire type not its own is an unknown field to
		// it): it decides, from scratch, so that the outcome and the
		// error are the general path's. Only bad input pays for the
		// second decode.
		return true, protoUnmarshal.Unmarshal(src, m)
	}
	return true, nil
}
