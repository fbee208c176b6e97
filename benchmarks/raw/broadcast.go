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
	"github.com/protows/protows/codec"
	benchv1 "github.com/protows/protows/gen/go/protows/bench/v1"
	"google.golang.org/protobuf/proto"
)

// memberQueue is each member's send queue on the server, in messages, as
// protows's default (PROTOCOL.md section 11). A member that falls this far
// behind is disconnected: with the publisher's window it never happens.
const memberQueue = 1024

// readyMessage tells a member that the server has added it to the room.
var readyMessage = []byte("ready")

// Broadcast is room fan-out over raw gorilla/websocket: Params.Conns members
// join by sending "member" and waiting for "ready"; one publisher says
// "publisher" and sends encoded Samples, each stamped with its publish time; the server
// frames each once (a websocket.PreparedMessage) and queues it to every
// member's writer, without decoding it. Members decode every Sample. The
// publisher stays at most Params.InFlight publishes ahead of the deliveries.
func Broadcast() harness.Scenario {
	return harness.Scenario{
		Name: "broadcast", Impl: Impl, Codecs: []string{harness.CodecProto, harness.CodecJSON},
		Shape:     harness.Fanout,
		NewServer: newBroadcastServer,
		Connect:   connectBroadcast,
	}
}

type room struct {
	mu      sync.Mutex
	members map[*websocket.Conn]chan *websocket.PreparedMessage
}

func newBroadcastServer(p harness.Params) (harness.Server, error) {
	_, mt, err := payloadCodec(p.Codec)
	if err != nil {
		return nil, err
	}
	rm := &room{members: make(map[*websocket.Conn]chan *websocket.PreparedMessage)}
	return newServer(func(conn *websocket.Conn) {
		// The first message says who connected.
		_, role, err := conn.ReadMessage()
		if err != nil {
			return
		}
		switch string(role) {
		case "member":
			rm.serveMember(conn)
		case "publisher":
			rm.servePublisher(conn, mt)
		}
	}), nil
}

func (rm *room) serveMember(conn *websocket.Conn) {
	q := make(chan *websocket.PreparedMessage, memberQueue)
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
	// Reads only notice the close; writes come from the queue.
	done := readUntilClosed(conn)
	for {
		select {
		case <-done:
			return
		case pm, ok := <-q:
			if !ok {
				return // fell behind: disconnected
			}
			_ = conn.SetWriteDeadline(time.Now().Add(ioTimeout))
			if err := conn.WritePreparedMessage(pm); err != nil {
				_ = conn.Close()
				<-done
				return
			}
		}
	}
}

func (rm *room) servePublisher(conn *websocket.Conn, mt int) {
	for {
		_, msg, err := conn.ReadMessage()
		if err != nil {
			return
		}
		pm, err := websocket.NewPreparedMessage(mt, msg)
		if err != nil {
			return
		}
		rm.mu.Lock()
		for c, q := range rm.members {
			select {
			case q <- pm:
			default:
				delete(rm.members, c)
				close(q)
			}
		}
		rm.mu.Unlock()
	}
}

type broadcastLoad struct {
	members   []*websocket.Conn
	publisher *websocket.Conn
	codec     codec.Codec
	mt        int
	sample    *benchv1.Sample
	size      int
	window    int64
	publishes int64
	rate      float64
}

func connectBroadcast(ctx context.Context, url string, p harness.Params) (harness.Load, error) {
	c, mt, err := payloadCodec(p.Codec)
	if err != nil {
		return nil, err
	}
	sample := proto.Clone(payload.New(p.Size)).(*benchv1.Sample)
	b, err := c.AppendPayload(nil, sample)
	if err != nil {
		return nil, err
	}
	members, err := dialAll(ctx, url, p.Conns)
	if err != nil {
		return nil, err
	}
	for _, m := range members {
		if err := join(m, "member"); err != nil {
			closeAll(members)
			return nil, err
		}
	}
	pub, err := dial(ctx, url)
	if err == nil {
		err = pub.WriteMessage(websocket.TextMessage, []byte("publisher"))
	}
	if err != nil {
		closeAll(members)
		return nil, err
	}
	return &broadcastLoad{
		members: members, publisher: pub, codec: c, mt: mt, sample: sample, size: len(b),
		window: int64(p.Window()), publishes: p.PerConn(len(members)), rate: p.Rate,
	}, nil
}

// join sends the role and waits until the server says the member is in the
// room, so that no publish is missed by a member still joining.
func join(conn *websocket.Conn, role string) error {
	_ = conn.SetWriteDeadline(time.Now().Add(ioTimeout))
	if err := conn.WriteMessage(websocket.TextMessage, []byte(role)); err != nil {
		return fmt.Errorf("raw broadcast: join: %w", err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(ioTimeout))
	_, msg, err := conn.ReadMessage()
	if err != nil {
		return fmt.Errorf("raw broadcast: join: %w", err)
	}
	if string(msg) != string(readyMessage) {
		return fmt.Errorf("raw broadcast: join: got %q", msg)
	}
	return nil
}

func (l *broadcastLoad) Run(ctx context.Context, rec *harness.Recorder) error {
	gate := harness.NewGate()
	n := int64(len(l.members))
	var wg sync.WaitGroup
	errs := make([]error, len(l.members)+1)
	for i, m := range l.members {
		wg.Go(func() { errs[i] = l.runMember(ctx, m, rec, gate) })
	}
	errs[len(l.members)] = l.publish(ctx, gate, n)
	wg.Wait()
	return errors.Join(errs...)
}

// publish sends until the count or time bound, staying within the window,
// then waits (briefly) for the last deliveries.
func (l *broadcastLoad) publish(ctx context.Context, gate *harness.Gate, members int64) error {
	var buf []byte
	var sent int64
	pacer := harness.NewPacer(l.rate)
	for ; sent < l.publishes; sent++ {
		if err := gate.Wait(ctx, (sent-l.window+1)*members); err != nil {
			break
		}
		if err := pacer.Wait(ctx); err != nil {
			break
		}
		l.sample.Timestamp = time.Now().UnixNano()
		var err error
		buf, err = l.codec.AppendPayload(buf[:0], l.sample)
		if err != nil {
			return err
		}
		_ = l.publisher.SetWriteDeadline(time.Now().Add(ioTimeout))
		if err := l.publisher.WriteMessage(l.mt, buf); err != nil {
			return fmt.Errorf("raw broadcast: publish: %w", err)
		}
	}
	// Let what was published arrive, so that every publish is counted
	// everywhere, then stop the members.
	drain, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	err := gate.Wait(drain, sent*members)
	for _, m := range l.members {
		_ = m.Close()
	}
	if err != nil {
		return fmt.Errorf("raw broadcast: %d of %d deliveries arrived: %w", gate.Delivered(), sent*members, err)
	}
	return nil
}

func (l *broadcastLoad) runMember(ctx context.Context, conn *websocket.Conn, rec *harness.Recorder, gate *harness.Gate) error {
	series := rec.Series()
	for {
		_ = conn.SetReadDeadline(time.Now().Add(2 * ioTimeout))
		_, msg, err := conn.ReadMessage()
		if err != nil {
			return nil // closed by publish once everything arrived, or failed there
		}
		var s benchv1.Sample
		if err := l.codec.UnmarshalPayload(msg, &s); err != nil {
			return fmt.Errorf("raw broadcast: message: %w", err)
		}
		series.Record(time.Duration(time.Now().UnixNano()-s.Timestamp), l.size, 1)
		gate.Add()
	}
}

func (l *broadcastLoad) Close() error {
	closeAll(l.members)
	return l.publisher.Close()
}
