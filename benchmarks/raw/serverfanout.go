package raw

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/protows/protows/benchmarks/harness"
	"github.com/protows/protows/benchmarks/payload"
	"google.golang.org/protobuf/encoding/protowire"
)

// maxCoalesce is the most queued messages the coalescing hub's writer
// joins into one frame.
const maxCoalesce = 16

// ServerFanout is server-bound room fan-out over raw gorilla/websocket,
// the floor for protows's: a hub that queues each published message, as
// the publisher sent it and undecoded, to every member's writer, which
// joins up to 16 queued messages into one frame (each after its length
// as a varint in the Protobuf codec, one per line in JSON). The members
// are minimal clients (harness.Members) that count the messages of each
// frame without decoding them; the publisher stays at most
// Params.InFlight publishes ahead of the deliveries.
func ServerFanout() harness.Scenario {
	return harness.Scenario{
		Name: "serverfanout", Impl: Impl, Codecs: []string{harness.CodecProto, harness.CodecJSON},
		Shape:     harness.Fanout,
		NewServer: newServerFanoutServer,
		Connect:   connectServerFanout,
	}
}

type coalescingRoom struct {
	mu      sync.Mutex
	members map[*websocket.Conn]chan []byte
	binary  bool
}

func newServerFanoutServer(p harness.Params) (harness.Server, error) {
	_, mt, err := payloadCodec(p.Codec)
	if err != nil {
		return nil, err
	}
	rm := &coalescingRoom{members: make(map[*websocket.Conn]chan []byte), binary: mt == websocket.BinaryMessage}
	return newServer(func(conn *websocket.Conn) {
		_, role, err := conn.ReadMessage()
		if err != nil {
			return
		}
		switch string(role) {
		case "member":
			rm.serveMember(conn, mt)
		case "publisher":
			rm.servePublisher(conn)
		}
	}), nil
}

func (rm *coalescingRoom) serveMember(conn *websocket.Conn, mt int) {
	q := make(chan []byte, memberQueue)
	rm.mu.Lock()
	rm.members[conn] = q
	rm.mu.Unlock()
	defer func() {
		rm.mu.Lock()
		delete(rm.members, conn)
		rm.mu.Unlock()
	}()
	if err := conn.WriteMessage(websocket.TextMessage, readyMessage); err != nil {
		return
	}
	done := readUntilClosed(conn)
	var frame []byte
	for {
		var msg []byte
		var ok bool
		select {
		case <-done:
			return
		case msg, ok = <-q:
		}
		frame = rm.appendMsg(frame[:0], msg)
		for n := 1; ok && n < maxCoalesce; n++ {
			select {
			case msg, ok = <-q:
				if ok {
					frame = rm.appendMsg(frame, msg)
				}
				continue
			default:
			}
			break
		}
		if !ok {
			return // fell behind: disconnected
		}
		_ = conn.SetWriteDeadline(time.Now().Add(ioTimeout))
		if err := conn.WriteMessage(mt, frame); err != nil {
			_ = conn.Close()
			<-done
			return
		}
	}
}

func (rm *coalescingRoom) appendMsg(frame, msg []byte) []byte {
	if rm.binary {
		frame = protowire.AppendVarint(frame, uint64(len(msg)))
		return append(frame, msg...)
	}
	if len(frame) > 0 {
		frame = append(frame, '\n')
	}
	return append(frame, msg...)
}

func (rm *coalescingRoom) servePublisher(conn *websocket.Conn) {
	for {
		// ReadMessage returns a new slice each time: the members' writers
		// share it, only reading.
		_, msg, err := conn.ReadMessage()
		if err != nil {
			return
		}
		rm.mu.Lock()
		for c, q := range rm.members {
			select {
			case q <- msg:
			default:
				delete(rm.members, c)
				close(q)
			}
		}
		rm.mu.Unlock()
	}
}

type serverFanoutLoad struct {
	members   *harness.Members
	publisher *websocket.Conn
	mt        int
	msg       []byte
	window    int
	publishes int64
	rate      float64
	mu        sync.Mutex // writes of the publisher
}

func connectServerFanout(ctx context.Context, url string, p harness.Params) (harness.Load, error) {
	c, mt, err := payloadCodec(p.Codec)
	if err != nil {
		return nil, err
	}
	b, err := c.AppendPayload(nil, payload.New(p.Size))
	if err != nil {
		return nil, err
	}
	count := harness.CountDelimited
	if mt == websocket.TextMessage {
		count = harness.CountLines
	}
	members, err := harness.DialMembers(ctx, url, "", p.Conns, len(b), func(conn *websocket.Conn) error {
		return join(conn, "member")
	}, count)
	if err != nil {
		return nil, err
	}
	pub, err := dial(ctx, url)
	if err == nil {
		err = pub.WriteMessage(websocket.TextMessage, []byte("publisher"))
	}
	if err != nil {
		return nil, errors.Join(err, members.Close())
	}
	return &serverFanoutLoad{members: members, publisher: pub, mt: mt, msg: b, window: p.Window(), publishes: p.PerConn(p.Conns), rate: p.Rate}, nil
}

func (l *serverFanoutLoad) Run(ctx context.Context, rec *harness.Recorder) error {
	gate := harness.NewGate()
	l.members.Start(gate, rec)
	err := harness.Publish(ctx, gate, int64(l.members.Len()), l.window, l.publishes, l.rate, func() error {
		l.mu.Lock()
		defer l.mu.Unlock()
		_ = l.publisher.SetWriteDeadline(time.Now().Add(ioTimeout))
		return l.publisher.WriteMessage(l.mt, l.msg)
	})
	if err != nil {
		err = fmt.Errorf("raw serverfanout: %w", err)
	}
	return errors.Join(err, l.members.Err())
}

func (l *serverFanoutLoad) Close() error {
	err := l.publisher.Close()
	return errors.Join(err, l.members.Close())
}
