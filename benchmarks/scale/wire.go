package main

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/gorilla/websocket"
	"github.com/protows/protows"
	"github.com/protows/protows/codec"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"google.golang.org/protobuf/proto"
)

// The room methods of the scale server.
const (
	// joinMethod is a server stream (PushRequest, stream Sample): the
	// caller is a member of the room until it cancels or disconnects.
	joinMethod = "/protows.scale.v1.Room/Join"
	// publishMethod is unary (EchoRequest, EchoResponse): it broadcasts
	// the request's Sample to the room.
	publishMethod = "/protows.scale.v1.Room/Publish"
	roomName      = "scale"
	// natsSubject is the subject the nodes' hubs share on NATS.
	natsSubject = "protows.scale"
	wsPath      = "/ws"
	statsPath   = "/stats"
)

// ioTimeout bounds single network waits: a handshake, a write.
const ioTimeout = 10 * time.Second

func codecByName(name string) (codec.Codec, error) {
	switch name {
	case "proto":
		return codec.Proto(), nil
	case "json":
		return codec.JSON(), nil
	}
	return nil, fmt.Errorf("unknown codec %q", name)
}

// messageType is the WebSocket message type of c's frames.
func messageType(c codec.Codec) int {
	if c.Binary() {
		return websocket.BinaryMessage
	}
	return websocket.TextMessage
}

// sourceIP returns the i-th loopback source address: 127.0.0.2 and up,
// leaving 127.0.0.1 to the server.
func sourceIP(i, sources int) net.IP {
	return net.IPv4(127, 0, 0, byte(2+i%sources))
}

// dial opens a raw WebSocket to the server from the loopback address src,
// with the small buffers of a client that mostly reads small messages.
func dial(ctx context.Context, addr string, c codec.Codec, src net.IP) (*websocket.Conn, error) {
	nd := &net.Dialer{LocalAddr: &net.TCPAddr{IP: src}, Timeout: ioTimeout}
	d := websocket.Dialer{
		NetDialContext:   nd.DialContext,
		HandshakeTimeout: ioTimeout,
		Subprotocols:     []string{c.Name()},
		ReadBufferSize:   1024,
		WriteBufferSize:  512,
	}
	ws, resp, err := d.DialContext(ctx, "ws://"+addr+wsPath, nil)
	if err != nil {
		return nil, fmt.Errorf("dial from %s: %w", src, err)
	}
	_ = resp.Body.Close()
	if ws.Subprotocol() != c.Name() {
		_ = ws.Close()
		return nil, fmt.Errorf("server chose subprotocol %q, want %q", ws.Subprotocol(), c.Name())
	}
	return ws, nil
}

// requestFrame encodes a REQUEST for method as a frame of c, naming the
// method the way each codec's clients do (docs/PROTOCOL.md, 3.2).
func requestFrame(c codec.Codec, id uint32, method string, msg proto.Message) ([]byte, error) {
	payload, err := c.AppendPayload(nil, msg)
	if err != nil {
		return nil, err
	}
	env := &protowsv1.Envelope{Id: id, Kind: protowsv1.Kind_KIND_REQUEST, Payload: payload}
	if c.Binary() {
		env.MethodId = protows.MethodID(method)
	} else {
		env.Method = method
	}
	return codec.MarshalFrame(c, env)
}
