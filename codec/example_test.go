package codec_test

import (
	"bytes"
	"fmt"

	"github.com/protows/protows/codec"
	benchv1 "github.com/protows/protows/gen/go/protows/bench/v1"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
)

// Encoding a reply into a frame and decoding it again, in the JSON codec,
// whose frames are readable text.
func Example() {
	c := codec.JSON()
	payload, err := c.AppendPayload(nil, &protowsv1.AuthenticateResponse{Subject: "alice"})
	if err != nil {
		panic(err)
	}
	elem, err := c.AppendEnvelope(nil, &protowsv1.Envelope{Id: 1, Kind: protowsv1.Kind_KIND_REPLY, Payload: payload})
	if err != nil {
		panic(err)
	}
	frame := codec.AppendFrame(c, nil, elem, elem)
	fmt.Printf("%s\n", frame)

	envs, err := c.DecodeFrame(frame)
	if err != nil {
		panic(err)
	}
	var res protowsv1.AuthenticateResponse
	if err := c.UnmarshalPayload(envs[1].GetPayload(), &res); err != nil {
		panic(err)
	}
	fmt.Println(len(envs), envs[1].GetKind(), res.GetSubject())
	// Output:
	// [{"id":1,"kind":"reply","payload":{"subject":"alice"}},{"id":1,"kind":"reply","payload":{"subject":"alice"}}]
	// 2 KIND_REPLY alice
}

// A broadcast encodes its payload once per codec and gives each member an
// element of its own around it: the members' heads and tails share one
// buffer, and the payload is not copied until each frame is written.
func ExampleAppendStreamMessage() {
	c := codec.JSON()
	payload, err := c.AppendPayload(nil, &protowsv1.AuthenticateResponse{Subject: "news"})
	if err != nil {
		panic(err)
	}
	var arena []byte
	var elems []codec.Parts
	for callID := uint32(1); callID <= 2; callID++ {
		var p codec.Parts
		p, arena, err = codec.AppendStreamMessage(c, arena, callID, payload, 42)
		if err != nil {
			panic(err)
		}
		elems = append(elems, p)
	}
	fmt.Printf("%s\n", c.AppendFrameParts(nil, elems[:1]))
	fmt.Printf("%s\n", c.AppendFrameParts(nil, elems[1:]))
	fmt.Printf("head %q, tail %q\n", elems[1].Head, elems[1].Tail)
	// Output:
	// {"id":1,"kind":"stream_message","payload":{"subject":"news"},"seq":42}
	// {"id":2,"kind":"stream_message","payload":{"subject":"news"},"seq":42}
	// head "{\"id\":2,\"kind\":\"stream_message\",\"payload\":", tail ",\"seq\":42}"
}

// A Protobuf codec whose payloads are deterministic: equal messages encode
// to equal bytes, map entries in key order, even for message types with
// vtprotobuf's methods (the bench Sample has them, and a map), which the
// default codec encodes with their entries in any order.
func ExampleWithDeterministicPayloads() {
	c := codec.Proto(codec.WithDeterministicPayloads())
	m := &benchv1.Sample{Id: "s", Tags: map[string]string{"c": "3", "a": "1", "b": "2", "d": "4"}}
	first, err := c.AppendPayload(nil, m)
	if err != nil {
		panic(err)
	}
	same := true
	for range 10 {
		again, _ := c.AppendPayload(nil, m)
		same = same && bytes.Equal(again, first)
	}
	fmt.Println(same, len(first))
	// Output: true 35
}

// The Protobuf codec without vtprotobuf's methods: proto.Marshal and
// proto.Unmarshal only, to measure the fast path against them in one
// binary (the load tool's echo/protows-novt), or to rule it out.
func ExampleWithoutVTProto() {
	reg, err := codec.NewRegistry(codec.Proto(codec.WithoutVTProto()), codec.JSON())
	if err != nil {
		panic(err)
	}
	c, _ := reg.Lookup(codec.ProtoName)
	fmt.Println(c.Name())
	// Output: protows.v1.proto
}
