package protowsbench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gorilla/websocket"
	"github.com/protows/protows/benchmarks/harness"
	"github.com/protows/protows/benchmarks/payload"
	"github.com/protows/protows/client"
	"github.com/protows/protows/codec"
	benchv1 "github.com/protows/protows/gen/go/protows/bench/v1"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
)

// ServerFanout is server-bound room fan-out on protows: the broadcast
// scenario's server, publisher and window, but the Params.Conns members
// are minimal WebSocket clients (harness.Members) that send the Join
// REQUEST themselves and count the envelopes of each frame without
// decoding them, so that the server, not the members, limits the rate.
func ServerFanout() harness.Scenario {
	return harness.Scenario{
		Name: "serverfanout", Impl: Impl, Codecs: []string{harness.CodecProto, harness.CodecJSON},
		Shape:     harness.Fanout,
		NewServer: func(harness.Params) (harness.Server, error) { return NewServer() },
		Connect:   connectServerFanout,
	}
}

type serverFanoutLoad struct {
	members   *harness.Members
	publisher *client.Client
	sample    []byte // the measured Sample, encoded
	codec     codec.Codec
	window    int
	publishes int64
	rate      float64
}

func connectServerFanout(ctx context.Context, url string, p harness.Params) (harness.Load, error) {
	c, err := codecOf(p.Codec)
	if err != nil {
		return nil, err
	}
	b, err := c.AppendPayload(nil, payload.New(p.Size))
	if err != nil {
		return nil, err
	}
	req, err := c.AppendPayload(nil, &benchv1.PushRequest{})
	if err != nil {
		return nil, err
	}
	// An envelope alone is a frame (docs/PROTOCOL.md section 2).
	join, err := c.AppendEnvelope(nil, &protowsv1.Envelope{Id: 1, Kind: protowsv1.Kind_KIND_REQUEST, Method: RoomJoinMethod, Payload: req})
	if err != nil {
		return nil, err
	}
	mt, count := websocket.BinaryMessage, harness.CountProtoFrame
	if !c.Binary() {
		mt, count = websocket.TextMessage, harness.CountJSONFrame
	}
	members, err := harness.DialMembers(ctx, url, c.Name(), p.Conns, len(b), func(conn *websocket.Conn) error {
		return conn.WriteMessage(mt, join)
	}, count)
	if err != nil {
		return nil, err
	}
	l := &serverFanoutLoad{members: members, sample: b, codec: c, window: p.Window(), publishes: p.PerConn(p.Conns), rate: p.Rate}
	pubs, err := dialAll(ctx, url, c, 1)
	if err != nil {
		return nil, errors.Join(err, l.Close())
	}
	l.publisher = pubs[0]
	if err := l.hello(ctx); err != nil {
		return nil, errors.Join(err, l.Close())
	}
	return l, nil
}

// hello publishes small Samples, which the members do not count, until
// every member has received one: then all of them are in the room.
func (l *serverFanoutLoad) hello(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, ioTimeout)
	defer cancel()
	for l.members.Seen() < l.members.Len() {
		if _, err := client.CallUnary[benchv1.EchoResponse](ctx, l.publisher, RoomPublishMethod,
			&benchv1.EchoRequest{Sample: &benchv1.Sample{Id: helloID}}); err != nil {
			return fmt.Errorf("protows serverfanout: hello: %w", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("protows serverfanout: %d of %d members joined: %w", l.members.Seen(), l.members.Len(), ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

func (l *serverFanoutLoad) Run(ctx context.Context, rec *harness.Recorder) error {
	gate := harness.NewGate()
	l.members.Start(gate, rec)
	var s benchv1.Sample
	if err := l.codec.UnmarshalPayload(l.sample, &s); err != nil {
		return err
	}
	err := harness.Publish(ctx, gate, int64(l.members.Len()), l.window, l.publishes, l.rate, func() error {
		_, err := client.CallUnary[benchv1.EchoResponse](context.Background(), l.publisher, RoomPublishMethod, &benchv1.EchoRequest{Sample: &s})
		return err
	})
	if err != nil {
		err = fmt.Errorf("protows serverfanout: %w", err)
	}
	return errors.Join(err, l.members.Err())
}

func (l *serverFanoutLoad) Close() error {
	var err error
	if l.publisher != nil {
		err = l.publisher.Close()
	}
	return errors.Join(err, l.members.Close())
}
