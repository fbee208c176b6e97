package codec

import (
	"math"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// vtEnc checks a message before the codec encodes it with vtprotobuf's
// marshal, for the two things that it writes otherwise than proto.Marshal
// (v0.6.0):
//
//   - a string that is not UTF-8: proto.Marshal refuses it, vtprotobuf
//     writes it;
//   - -0 in a float or double field without presence: Protobuf tells it
//     from the default +0 and proto.Marshal writes it, vtprotobuf compares
//     it with 0 and leaves it out, so that it would arrive as +0.
//
// A message that holds either is encoded by proto.Marshal, which returns
// its error or writes the -0. The check reads the generated Go struct,
// visiting only the fields that lead to strings and such floats, at their
// offsets: reading them through protoreflect, or package reflect's Values,
// costs about as much as the encoding it is there to save, and so does
// parsing the bytes written. It reads strings, lists of strings, maps of
// strings to strings, floats, and messages and lists of messages; a type
// with a field it does not read that may hold one of the two (a proto3
// optional string, a map with string keys or values or of messages) is
// encoded by proto.Marshal.
type vtEnc struct {
	fields []vtEncField
}

// vtEncField is a field of a vtEnc's struct that the check reads.
type vtEncField struct {
	off  uintptr   // the field's offset in the Go struct
	kind vtEncKind // what it holds
	f32  bool      // a float32 (vtEncFloat)
	sub  *vtEnc    // the check of a message field's type
}

type vtEncKind uint8

const (
	vtEncString     vtEncKind = iota // string
	vtEncStringList                  // []string
	vtEncFloat                       // float32 or float64, without presence
	vtEncMessage                     // *T
	vtEncList                        // []*T
	vtEncMap                         // map[string]string
)

// vtEncOf returns the check of messages of Go type t (a pointer to a
// generated struct) and descriptor md, or nil when the struct is not laid
// out as protoc-gen-go lays it out (each field of md a struct field tagged
// `protobuf:"kind,number,..."`). done holds the checks built so far.
func vtEncOf(t reflect.Type, md protoreflect.MessageDescriptor, done map[reflect.Type]*vtEnc) *vtEnc {
	if t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
		return nil
	}
	if e, ok := done[t]; ok {
		return e
	}
	e := &vtEnc{}
	st := t.Elem()
	seen := 0
	for i := range st.NumField() {
		sf := st.Field(i)
		tag, ok := sf.Tag.Lookup("protobuf")
		if !ok {
			continue
		}
		parts := strings.Split(tag, ",")
		if len(parts) < 2 {
			return nil
		}
		num, err := strconv.Atoi(parts[1])
		if err != nil {
			return nil
		}
		fd := md.Fields().ByNumber(protoreflect.FieldNumber(num))
		if fd == nil || fd.ContainingOneof() != nil {
			return nil
		}
		seen++
		f, ok := vtEncFieldOf(sf.Offset, sf.Type, fd, done)
		if !ok {
			return nil
		}
		if f != nil {
			e.fields = append(e.fields, *f)
		}
	}
	if seen != md.Fields().Len() {
		return nil
	}
	done[t] = e
	return e
}

// vtEncFieldOf returns what the check reads of the struct field at offset
// off, of Go type ft and descriptor fd: nil when nothing, false when ft is not
// what protoc-gen-go generates for fd.
func vtEncFieldOf(off uintptr, ft reflect.Type, fd protoreflect.FieldDescriptor, done map[reflect.Type]*vtEnc) (*vtEncField, bool) {
	f := &vtEncField{off: off}
	switch {
	case fd.IsMap():
		kd, vd := fd.MapKey(), fd.MapValue()
		switch {
		case kd.Kind() == protoreflect.StringKind && vd.Kind() == protoreflect.StringKind:
			if ft != reflect.TypeFor[map[string]string]() {
				return nil, false
			}
			f.kind = vtEncMap
		case kd.Kind() == protoreflect.StringKind || vd.Kind() == protoreflect.StringKind || vd.Kind() == protoreflect.MessageKind:
			// Not read by the check (it would take package reflect's
			// map iteration): the type stays off the path.
			return nil, false
		default:
			return nil, true // numbers, bytes: written as proto.Marshal writes them
		}
	case fd.Kind() == protoreflect.StringKind:
		switch {
		case fd.IsList() && ft == reflect.TypeFor[[]string]():
			f.kind = vtEncStringList
		case !fd.IsList() && ft == reflect.TypeFor[string]():
			f.kind = vtEncString
		default: // a proto3 optional string (*string), not read by the check
			return nil, false
		}
	case fd.Kind() == protoreflect.FloatKind || fd.Kind() == protoreflect.DoubleKind:
		if fd.IsList() || fd.HasPresence() {
			return nil, true // written whatever they are
		}
		switch ft {
		case reflect.TypeFor[float32]():
			f.f32 = true
		case reflect.TypeFor[float64]():
		default:
			return nil, false
		}
		f.kind = vtEncFloat
	case fd.Kind() == protoreflect.MessageKind:
		et := ft
		f.kind = vtEncMessage
		if fd.IsList() {
			if ft.Kind() != reflect.Slice {
				return nil, false
			}
			et, f.kind = ft.Elem(), vtEncList
		}
		if et.Kind() != reflect.Pointer {
			return nil, false
		}
		if f.sub = vtEncOf(et, fd.Message(), done); f.sub == nil {
			return nil, false
		}
		if len(f.sub.fields) == 0 {
			return nil, true
		}
	default:
		return nil, true
	}
	return f, true
}

// ok reports whether the message whose generated struct is at p (nil for
// a nil message) holds nothing that vtprotobuf writes otherwise than
// proto.Marshal.
func (e *vtEnc) ok(p unsafe.Pointer) bool {
	return p == nil || e.okAt(p)
}

// okAt is ok for the struct at p. It reads the fields at their offsets, as
// protobuf-go's own fast path does: vtEncOf has checked each field's Go
// type, so that every read is of the type that is there.
func (e *vtEnc) okAt(p unsafe.Pointer) bool {
	for i := range e.fields {
		f := &e.fields[i]
		fp := unsafe.Add(p, f.off)
		switch f.kind {
		case vtEncString:
			if !utf8.ValidString(*(*string)(fp)) {
				return false
			}
		case vtEncStringList:
			for _, s := range *(*[]string)(fp) {
				if !utf8.ValidString(s) {
					return false
				}
			}
		case vtEncFloat:
			var neg bool
			if f.f32 {
				x := *(*float32)(fp)
				neg = x == 0 && math.Signbit(float64(x))
			} else {
				x := *(*float64)(fp)
				neg = x == 0 && math.Signbit(x)
			}
			if neg {
				return false
			}
		case vtEncMessage:
			if sp := *(*unsafe.Pointer)(fp); sp != nil && !f.sub.okAt(sp) {
				return false
			}
		case vtEncList:
			for _, sp := range *(*[]unsafe.Pointer)(fp) {
				if sp != nil && !f.sub.okAt(sp) {
					return false
				}
			}
		case vtEncMap:
			for k, v := range *(*map[string]string)(fp) {
				if !utf8.ValidString(k) || !utf8.ValidString(v) {
					return false
				}
			}
		}
	}
	return true
}
