package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/protobuf/encoding/protowire"
)

// CountFunc counts the messages of one WebSocket frame that are at least
// min bytes long, without decoding them. It returns -1 when the frame is
// not in the form it expects.
type CountFunc func(frame []byte, min int) int

// Members are minimal room members for the server-bound fan-out scenario
// (serverfanout): plain WebSocket connections that read frames and count
// the messages in them, without decoding payloads, so that one load
// process keeps up with thousands of members and the server is what
// limits the rate. Messages shorter than the measured payload (the hellos
// of a join handshake, pings) are not counted. Make them with DialMembers.
type Members struct {
	conns []*websocket.Conn
	count CountFunc
	min   int
	size  int
	run   atomic.Pointer[membersRun]
	bad   atomic.Pointer[error]
	// seen is the number of members that read a frame, any frame: a
	// member that read one is in the room.
	seen   atomic.Int64
	done   sync.WaitGroup
	closed sync.Once
}

type membersRun struct {
	gate   *Gate
	series []*Series
}

// DialMembers opens n member connections to url offering subprotocol
// (none when empty), runs join on each (which sends what makes it a member
// and may read the answers), then starts their readers. Messages of fewer
// than size bytes are not counted; size is also the payload bytes recorded
// per message.
func DialMembers(ctx context.Context, url, subprotocol string, n, size int, join func(*websocket.Conn) error, count CountFunc) (*Members, error) {
	m := &Members{count: count, min: size, size: size}
	for range n {
		conn, err := dialWS(ctx, url, subprotocol, 1024)
		if err == nil && join != nil {
			err = join(conn)
			if err != nil {
				_ = conn.Close()
			}
		}
		if err != nil {
			return nil, errors.Join(fmt.Errorf("harness: member %d: %w", len(m.conns), err), m.Close())
		}
		m.conns = append(m.conns, conn)
		i := len(m.conns) - 1
		m.done.Add(1)
		go m.read(i, conn)
	}
	return m, nil
}

// dialWS opens a minimal client connection to url offering subprotocol
// (none when empty), whose messages of up to writeBuffer bytes go out in
// one frame.
func dialWS(ctx context.Context, url, subprotocol string, writeBuffer int) (*websocket.Conn, error) {
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, ReadBufferSize: 4096, WriteBufferSize: writeBuffer}
	if subprotocol != "" {
		d.Subprotocols = []string{subprotocol}
	}
	conn, resp, err := d.DialContext(ctx, url, http.Header{})
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	return conn, err
}

// Len returns the number of members.
func (m *Members) Len() int { return len(m.conns) }

// Seen returns how many members have read at least one frame.
func (m *Members) Seen() int { return int(m.seen.Load()) }

// Start makes the members count into gate and rec from now on.
func (m *Members) Start(gate *Gate, rec *Recorder) {
	st := &membersRun{gate: gate}
	for range m.conns {
		st.series = append(st.series, rec.Series())
	}
	m.run.Store(st)
}

// Err returns the first frame that did not count, as an error.
func (m *Members) Err() error {
	if p := m.bad.Load(); p != nil {
		return *p
	}
	return nil
}

func (m *Members) read(i int, conn *websocket.Conn) {
	defer m.done.Done()
	var buf bytes.Buffer
	first := true
	for {
		_, r, err := conn.NextReader()
		if err != nil {
			return
		}
		buf.Reset()
		if _, err := buf.ReadFrom(r); err != nil {
			return
		}
		if first {
			first = false
			m.seen.Add(1)
		}
		n := m.count(buf.Bytes(), m.min)
		if n < 0 {
			err := fmt.Errorf("harness: member %d: a frame of %d bytes does not count", i, buf.Len())
			m.bad.CompareAndSwap(nil, &err)
			continue
		}
		if st := m.run.Load(); st != nil && n > 0 {
			st.series[i].RecordMany(n, n*m.size, 1)
			st.gate.AddN(int64(n))
		}
	}
}

// Close closes the connections and waits for the readers.
func (m *Members) Close() error {
	m.closed.Do(func() {
		for _, c := range m.conns {
			_ = c.Close()
		}
	})
	m.done.Wait()
	return nil
}

// CountDelimited counts the messages of a frame that concatenates them,
// each after its length as a varint (Centrifuge's Protobuf protocol, the
// raw hub's Protobuf frames).
func CountDelimited(frame []byte, min int) int {
	n := 0
	for len(frame) > 0 {
		l, k := protowire.ConsumeVarint(frame)
		if k < 0 || uint64(len(frame)-k) < l {
			return -1
		}
		if int(l) >= min {
			n++
		}
		frame = frame[k+int(l):]
	}
	return n
}

// CountLines counts the lines of a frame of messages each on a line of its
// own (Centrifuge's JSON protocol, the raw hub's JSON frames).
func CountLines(frame []byte, min int) int {
	n := 0
	for len(frame) > 0 {
		i := bytes.IndexByte(frame, '\n')
		line := frame
		if i >= 0 {
			line, frame = frame[:i], frame[i+1:]
		} else {
			frame = nil
		}
		if len(line) >= min {
			n++
		}
	}
	return n
}

// CountProtoFrame counts the envelopes of a protows Protobuf frame
// (docs/PROTOCOL.md section 2: each envelope is field 1, length-delimited).
func CountProtoFrame(frame []byte, min int) int {
	n := 0
	for len(frame) > 0 {
		num, typ, k := protowire.ConsumeTag(frame)
		if k < 0 {
			return -1
		}
		frame = frame[k:]
		k = protowire.ConsumeFieldValue(num, typ, frame)
		if k < 0 {
			return -1
		}
		if num == 1 && typ == protowire.BytesType && k >= min {
			n++
		}
		frame = frame[k:]
	}
	return n
}

// CountJSONFrame counts the envelopes of a protows JSON frame
// (docs/PROTOCOL.md section 5: one envelope object, or an array of them)
// by scanning for the objects at the top level, skipping strings.
func CountJSONFrame(frame []byte, min int) int {
	n, depth, start := 0, 0, 0
	inStr, esc := false, false
	for i, c := range frame {
		if inStr {
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				inStr = false
			}
			continue
		}
		switch c {
		case '"':
			inStr = true
		case '{', '[':
			if c == '{' && (depth == 0 || (depth == 1 && frame[0] == '[')) {
				start = i
			}
			depth++
		case '}', ']':
			depth--
			if c == '}' && (depth == 0 || (depth == 1 && frame[0] == '[')) && i+1-start >= min {
				n++
			}
		}
	}
	if depth != 0 || inStr {
		return -1
	}
	return n
}

// ReadUntil reads frames from conn until done reports true for one, for a
// join handshake.
func ReadUntil(conn *websocket.Conn, done func(frame []byte) bool) error {
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer func() { _ = conn.SetReadDeadline(time.Time{}) }()
	for {
		_, r, err := conn.NextReader()
		if err != nil {
			return err
		}
		b, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		if done(b) {
			return nil
		}
	}
}

// Publish is the publisher of a server-bound fan-out load: it calls
// publish until publishes were sent or ctx is done, with up to window calls
// at once and at most window publishes ahead of the deliveries (members
// each, counted by gate), then waits for the deliveries of what it sent.
// publish may be called from several goroutines at once.
func Publish(ctx context.Context, gate *Gate, members int64, window int, publishes int64, rate float64, publish func() error) error {
	slots := make(chan struct{}, window)
	var wg sync.WaitGroup
	var pubErr error
	var pubOnce sync.Once
	var sent int64
	pacer := NewPacer(rate)
	for ; sent < publishes; sent++ {
		if err := gate.Wait(ctx, (sent-int64(window)+1)*members); err != nil {
			break
		}
		if err := pacer.Wait(ctx); err != nil {
			break
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-slots }()
			if err := publish(); err != nil {
				pubOnce.Do(func() { pubErr = fmt.Errorf("publish: %w", err) })
			}
		})
	}
	wg.Wait()
	drain, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := gate.Wait(drain, sent*members)
	if err != nil {
		err = fmt.Errorf("%d of %d deliveries arrived: %w", gate.Delivered(), sent*members, err)
	}
	return errors.Join(pubErr, err)
}
