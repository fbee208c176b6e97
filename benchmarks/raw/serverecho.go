package raw

import (
	"context"

	"github.com/gorilla/websocket"
	"github.com/protows/protows/benchmarks/harness"
	"github.com/protows/protows/benchmarks/payload"
	benchv1 "github.com/protows/protows/gen/go/protows/bench/v1"
)

// ServerEcho is server-bound echo over raw gorilla/websocket: the echo
// scenario's server and requests, but the Params.Conns clients are
// minimal (harness.Echoers), as those of protows's ServerEcho: each
// writes one EchoRequest, encoded once, again and again with
// Params.InFlight in flight, and counts the replies without decoding
// them.
//
// A reply is an EchoResponse, whose one field is the Sample as field 1:
// in the Protobuf codec that is the shape of a protows frame of one
// envelope, so harness.CountProtoFrame counts it (and refuses what is not
// Protobuf's wire format); in JSON it is one object, which
// harness.CountJSONFrame counts.
func ServerEcho() harness.Scenario {
	return harness.Scenario{
		Name: "serverecho", Impl: Impl, Codecs: []string{harness.CodecProto, harness.CodecJSON},
		NewServer: newEchoServer,
		Connect:   connectServerEcho,
	}
}

func connectServerEcho(ctx context.Context, url string, p harness.Params) (harness.Load, error) {
	c, mt, err := payloadCodec(p.Codec)
	if err != nil {
		return nil, err
	}
	sample := payload.New(p.Size)
	s, err := c.AppendPayload(nil, sample)
	if err != nil {
		return nil, err
	}
	req, err := c.AppendPayload(nil, &benchv1.EchoRequest{Sample: sample})
	if err != nil {
		return nil, err
	}
	count := harness.CountProtoFrame
	if mt == websocket.TextMessage {
		count = harness.CountJSONFrame
	}
	return harness.DialEchoers(ctx, url, "", p.Conns, p.Window(),
		harness.EchoFrames{Frame: req, Type: mt, Count: count, Min: len(s), Size: len(req)})
}
