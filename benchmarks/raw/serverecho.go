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

// ServerEchoPaced is ServerEcho on an open-loop schedule (harness.Paced),
// with the same minimal clients as protows's ServerEchoPaced: the
// Params.Conns connections send Params.Rate requests per second in all,
// each at its due time whatever the replies do, and each reply's latency
// runs from the due time of the oldest request still waiting (the raw
// server answers in order, so that is the reply's own request). It runs
// only when named (-scenarios serverecho-paced), with -rate or
// -peak-fraction.
func ServerEchoPaced() harness.Scenario {
	s := ServerEcho()
	s.Name, s.Shape, s.Explicit = "serverecho-paced", harness.Paced, true
	s.Connect = func(ctx context.Context, url string, p harness.Params) (harness.Load, error) {
		f, err := serverEchoFrames(p)
		if err != nil {
			return nil, err
		}
		return harness.DialPacedEchoers(ctx, url, "", p, f)
	}
	return s
}

func connectServerEcho(ctx context.Context, url string, p harness.Params) (harness.Load, error) {
	f, err := serverEchoFrames(p)
	if err != nil {
		return nil, err
	}
	return harness.DialEchoers(ctx, url, "", p.Conns, p.Window(), f)
}

// serverEchoFrames returns the request of the minimal echo clients and how
// they count the replies.
func serverEchoFrames(p harness.Params) (harness.EchoFrames, error) {
	c, mt, err := payloadCodec(p.Codec)
	if err != nil {
		return harness.EchoFrames{}, err
	}
	sample := payload.New(p.Size)
	s, err := c.AppendPayload(nil, sample)
	if err != nil {
		return harness.EchoFrames{}, err
	}
	req, err := c.AppendPayload(nil, &benchv1.EchoRequest{Sample: sample})
	if err != nil {
		return harness.EchoFrames{}, err
	}
	count := harness.CountProtoFrame
	if mt == websocket.TextMessage {
		count = harness.CountJSONFrame
	}
	return harness.EchoFrames{Frame: req, Type: mt, Count: count, Min: len(s), Size: len(req)}, nil
}
