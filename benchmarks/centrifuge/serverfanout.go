package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	centrifugego "github.com/centrifugal/centrifuge-go"
	"github.com/centrifugal/protocol"
	"github.com/gorilla/websocket"
	"github.com/protows/protows/benchmarks/harness"
	"github.com/protows/protows/benchmarks/payload"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// ServerFanout is server-bound room fan-out on Centrifuge: the broadcast
// scenario's server and publisher (a centrifuge-go client), but the
// Params.Conns members are minimal WebSocket clients (harness.Members)
// that connect and subscribe with Centrifuge's protocol themselves and
// count the replies of each frame without decoding them (varint-delimited
// in the Protobuf protocol, one per line in JSON).
func ServerFanout() harness.Scenario {
	return harness.Scenario{
		Name: "serverfanout", Impl: impl, Codecs: []string{harness.CodecProto, harness.CodecJSON},
		Shape:     harness.Fanout,
		NewServer: newServer,
		Connect:   connectServerFanout,
	}
}

type serverFanoutLoad struct {
	members   *harness.Members
	publisher *centrifugego.Client
	data      []byte
	window    int
	publishes int64
	rate      float64
}

// commands returns the connect and subscribe commands of a member, each a
// frame of its own, in the codec's protocol.
func commands(codecName string) (mt int, frames [2][]byte, err error) {
	cmds := []*protocol.Command{
		{Id: 1, Connect: &protocol.ConnectRequest{}},
		{Id: 2, Subscribe: &protocol.SubscribeRequest{Channel: channel}},
	}
	if codecName == harness.CodecJSON {
		return websocket.TextMessage, [2][]byte{
			[]byte(`{"id":1,"connect":{}}`),
			[]byte(`{"id":2,"subscribe":{"channel":"` + channel + `"}}`),
		}, nil
	}
	for i, c := range cmds {
		b, err := proto.Marshal(c)
		if err != nil {
			return 0, frames, err
		}
		frames[i] = append(protowire.AppendVarint(nil, uint64(len(b))), b...)
	}
	return websocket.BinaryMessage, frames, nil
}

func connectServerFanout(ctx context.Context, url string, p harness.Params) (harness.Load, error) {
	c, err := payloadCodec(p.Codec)
	if err != nil {
		return nil, err
	}
	data, err := c.AppendPayload(nil, payload.New(p.Size))
	if err != nil {
		return nil, err
	}
	mt, frames, err := commands(p.Codec)
	if err != nil {
		return nil, err
	}
	sub, count := "centrifuge-protobuf", harness.CountDelimited
	if p.Codec == harness.CodecJSON {
		sub, count = "", harness.CountLines
	}
	members, err := harness.DialMembers(ctx, url, sub, p.Conns, len(data), func(conn *websocket.Conn) error {
		for _, f := range frames {
			if err := conn.WriteMessage(mt, f); err != nil {
				return err
			}
			// The command's reply.
			if err := harness.ReadUntil(conn, func([]byte) bool { return true }); err != nil {
				return err
			}
		}
		return nil
	}, count)
	if err != nil {
		return nil, err
	}
	l := &serverFanoutLoad{members: members, data: data, window: p.Window(), publishes: p.PerConn(p.Conns), rate: p.Rate}
	l.publisher = newClient(url, p.Codec)
	connected := make(chan struct{})
	l.publisher.OnConnected(func(centrifugego.ConnectedEvent) { close(connected) })
	if err := l.publisher.Connect(); err != nil {
		return nil, errors.Join(err, l.Close())
	}
	select {
	case <-connected:
	case <-time.After(ioTimeout):
		return nil, errors.Join(errors.New("centrifuge serverfanout: publisher did not connect"), l.Close())
	}
	return l, nil
}

func (l *serverFanoutLoad) Run(ctx context.Context, rec *harness.Recorder) error {
	gate := harness.NewGate()
	l.members.Start(gate, rec)
	err := harness.Publish(ctx, gate, int64(l.members.Len()), l.window, l.publishes, l.rate, func() error {
		pctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
		defer cancel()
		_, err := l.publisher.Publish(pctx, channel, l.data)
		return err
	})
	if err != nil {
		err = fmt.Errorf("centrifuge serverfanout: %w", err)
	}
	return errors.Join(err, l.members.Err())
}

func (l *serverFanoutLoad) Close() error {
	if l.publisher != nil {
		l.publisher.Close()
	}
	return l.members.Close()
}
