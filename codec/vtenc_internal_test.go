package codec

import (
	"math"
	"reflect"
	"testing"
	"unsafe"

	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
)

// TestVTEncReadsTheGoStruct checks the encode check (vtEnc) on generated
// types of every shape it reads: a Frame holds a list of Envelopes, each
// with strings, a map of strings, and messages (Error, whose details are a
// list of Anys; Resume; Position). It finds every string that is not
// UTF-8, at any depth, exactly where proto.Marshal refuses the message.
func TestVTEncReadsTheGoStruct(t *testing.T) {
	e := vtEncOf(reflect.TypeFor[*protowsv1.Frame](), (*protowsv1.Frame)(nil).ProtoReflect().Descriptor(), map[reflect.Type]*vtEnc{})
	if e == nil {
		t.Fatal("no check for protows.v1.Frame")
	}
	valid := func() *protowsv1.Frame {
		return &protowsv1.Frame{Envelopes: []*protowsv1.Envelope{
			{Id: 1, Method: "/a.B/C", Metadata: map[string]string{"k": "v", "é": "ü"}},
			nil, // a nil element is the empty message, to both
			{Id: 2, IdempotencyKey: "key", Resume: &protowsv1.Resume{Epoch: "e"}, Position: &protowsv1.Position{Epoch: "p"},
				Error: &protowsv1.Error{Message: "m", Details: []*anypb.Any{{TypeUrl: "type.googleapis.com/x", Value: []byte{0xff}}}}},
		}}
	}
	cases := map[string]func(*protowsv1.Frame){
		"valid":          func(*protowsv1.Frame) {},
		"method":         func(f *protowsv1.Frame) { f.Envelopes[0].Method = "\xff" },
		"metadata key":   func(f *protowsv1.Frame) { f.Envelopes[0].Metadata["\xc3"] = "v" },
		"metadata value": func(f *protowsv1.Frame) { f.Envelopes[0].Metadata["k"] = "\xe2\x82" },
		"key":            func(f *protowsv1.Frame) { f.Envelopes[2].IdempotencyKey = "\x80" },
		"resume epoch":   func(f *protowsv1.Frame) { f.Envelopes[2].Resume.Epoch = "\xfe" },
		"position epoch": func(f *protowsv1.Frame) { f.Envelopes[2].Position.Epoch = "a\xffb" },
		"error message":  func(f *protowsv1.Frame) { f.Envelopes[2].Error.Message = "\xed\xa0\x80" }, // a surrogate
		"detail type":    func(f *protowsv1.Frame) { f.Envelopes[2].Error.Details[0].TypeUrl = "x\xff" },
	}
	for name, change := range cases {
		f := valid()
		change(f)
		_, err := proto.Marshal(f)
		if got := e.ok(unsafe.Pointer(f)); got != (err == nil) {
			t.Errorf("%s: check says %v, proto.Marshal's error %v", name, got, err)
		}
	}
	if !e.ok(unsafe.Pointer((*protowsv1.Frame)(nil))) {
		t.Error("a typed nil Frame fails the check")
	}
}

// TestVTEncFloats checks the -0 rule on a generated type with a double
// field without presence (structpb.Value's number is in a oneof, which
// the encode path does not take; ListValue and Struct hold Values): the
// check reads float32 and float64 fields by their Go type.
func TestVTEncFloats(t *testing.T) {
	type floats struct {
		F32 float32 `protobuf:"fixed32,1,opt,name=f32,proto3"`
		F64 float64 `protobuf:"fixed64,2,opt,name=f64,proto3"`
	}
	fields := []vtEncField{
		{off: reflect.TypeFor[floats]().Field(0).Offset, kind: vtEncFloat, f32: true},
		{off: reflect.TypeFor[floats]().Field(1).Offset, kind: vtEncFloat},
	}
	e := &vtEnc{fields: fields}
	negZero := math.Copysign(0, -1)
	for _, tc := range []struct {
		v    floats
		want bool
	}{
		{floats{}, true},
		{floats{F32: 1, F64: -2}, true},
		{floats{F64: negZero}, false},
		{floats{F32: float32(negZero)}, false},
		{floats{F64: math.NaN(), F32: float32(math.Inf(-1))}, true},
	} {
		v := tc.v
		if got := e.okAt(reflect.ValueOf(&v).UnsafePointer()); got != tc.want {
			t.Errorf("%+v: %v, want %v", tc.v, got, tc.want)
		}
	}
	// structpb.Value keeps its number in a oneof: no check of the type,
	// which keeps it off the encode path.
	if vtEncOf(reflect.TypeFor[*structpb.Value](), (*structpb.Value)(nil).ProtoReflect().Descriptor(), map[reflect.Type]*vtEnc{}) != nil {
		t.Error("a check for a type with a oneof")
	}
}

// TestVTEncRefusesOtherStructs: a Go struct that is not laid out as
// protoc-gen-go lays out the descriptor's fields gets no check (and its
// type no vtprotobuf encoding), so that the check never reads a field as a
// type it is not.
func TestVTEncRefusesOtherStructs(t *testing.T) {
	md := (*protowsv1.Envelope)(nil).ProtoReflect().Descriptor()
	type unknownNumber struct {
		X string `protobuf:"bytes,99,opt,name=x,proto3"`
	}
	for name, typ := range map[string]reflect.Type{
		"not a pointer":  reflect.TypeFor[protowsv1.Envelope](),
		"missing fields": reflect.TypeFor[*struct{}](),
		"unknown number": reflect.TypeFor[*unknownNumber](),
	} {
		if vtEncOf(typ, md, map[reflect.Type]*vtEnc{}) != nil {
			t.Errorf("%s: a check for %v", name, typ)
		}
	}
	fields := md.Fields()
	for _, tc := range []struct {
		field string
		typ   reflect.Type
		ok    bool
	}{
		{"metadata", reflect.TypeFor[map[string]string](), true},
		{"metadata", reflect.TypeFor[map[string][]byte](), false},
		{"method", reflect.TypeFor[string](), true},
		{"method", reflect.TypeFor[[]byte](), false},
		{"method", reflect.TypeFor[*string](), false}, // a proto3 optional string: not read
		{"error", reflect.TypeFor[*protowsv1.Error](), true},
		{"error", reflect.TypeFor[protowsv1.Error](), false},
		{"error", reflect.TypeFor[*protowsv1.Resume](), false},
		{"payload", reflect.TypeFor[[]byte](), true}, // bytes: not read
	} {
		_, ok := vtEncFieldOf(0, tc.typ, fields.ByName(protoreflect.Name(tc.field)), map[reflect.Type]*vtEnc{})
		if ok != tc.ok {
			t.Errorf("%s as %v: %v, want %v", tc.field, tc.typ, ok, tc.ok)
		}
	}
	list := (*protowsv1.Frame)(nil).ProtoReflect().Descriptor().Fields().ByName("envelopes")
	for typ, want := range map[reflect.Type]bool{
		reflect.TypeFor[[]*protowsv1.Envelope](): true,
		reflect.TypeFor[[]protowsv1.Envelope]():  false,
		reflect.TypeFor[*protowsv1.Envelope]():   false,
	} {
		if _, ok := vtEncFieldOf(0, typ, list, map[reflect.Type]*vtEnc{}); ok != want {
			t.Errorf("envelopes as %v: %v, want %v", typ, ok, want)
		}
	}
}
