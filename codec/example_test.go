package codec_test

import (
	"fmt"

	"github.com/protows/protows/codec"
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
