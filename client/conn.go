package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/protows/protows"
	"github.com/protows/protows/codec"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"github.com/protows/protows/internal/wireerr"
)

// sink receives the envelopes of one call registered on a conn.
type sink interface {
	// deliver hands over an envelope with the call's id. final says the
	// envelope ends the call and its id was already freed.
	deliver(cn *conn, id uint32, env *protowsv1.Envelope, final bool)
	// lost says the connection ended with the call still in flight.
	lost(cn *conn, id uint32, err error)
}

// connEnd says how a connection ended.
type connEnd struct {
	// code is the close code received, protows.CloseAbnormal (1006) when
	// the connection dropped without one, or the code the client closed
	// with.
	code   protows.CloseCode
	reason string
	// err is the cause when there was no close frame (a read or write
	// error, a missed heartbeat).
	err error
	// send is the close code to write before closing, 0 for none.
	send protows.CloseCode
	// local says the client decided to end the connection.
	local bool
}

// conn is one WebSocket connection. Three goroutines serve it: the reader,
// the writer (the only one that writes to ws) and the heartbeat. The first
// failure anywhere ends it (fail); the Client then waits for the three
// (wait) and settles the calls still registered (drain).
type conn struct {
	cl    *Client
	ws    *websocket.Conn
	codec codec.Codec
	mtype int // websocket.BinaryMessage or websocket.TextMessage

	out   chan []byte   // encoded envelopes, for the writer
	wsPng chan []byte   // payloads of WebSocket pongs to write, for the writer
	pongs chan uint32   // ids of PONG envelopes received, for the heartbeat
	done  chan struct{} // closed by the first fail
	gone  chan struct{} // closed when the Client forgot the connection

	endOnce sync.Once
	end     connEnd // set once, before done is closed

	mu        sync.Mutex
	calls     map[uint32]sink
	nextID    uint32
	closed    bool
	serverErr *protows.Error // the last ERROR with id 0, sent before a close

	lastRecv atomic.Int64 // Unix nanoseconds of the last message received
	wg       sync.WaitGroup
}

func newConn(cl *Client, ws *websocket.Conn) *conn {
	cn := &conn{
		cl:    cl,
		ws:    ws,
		codec: cl.cfg.codec,
		mtype: websocket.TextMessage,
		out:   make(chan []byte, 256),
		wsPng: make(chan []byte, 1),
		pongs: make(chan uint32, 4),
		done:  make(chan struct{}),
		gone:  make(chan struct{}),
		calls: make(map[uint32]sink),
	}
	if cn.codec.Binary() {
		cn.mtype = websocket.BinaryMessage
	}
	cn.lastRecv.Store(time.Now().UnixNano())
	ws.SetReadLimit(int64(cl.cfg.maxMessage))
	// gorilla answers pings and close frames from the reading goroutine by
	// default; hand both to the writer instead, so that only one goroutine
	// ever writes.
	ws.SetPingHandler(func(data string) error {
		cn.lastRecv.Store(time.Now().UnixNano())
		select {
		case cn.wsPng <- []byte(data):
		default: // a pong is already queued; one is enough
		}
		return nil
	})
	ws.SetPongHandler(func(string) error {
		cn.lastRecv.Store(time.Now().UnixNano())
		return nil
	})
	ws.SetCloseHandler(func(int, string) error { return nil })
	cn.wg.Add(3)
	go cn.readLoop()
	go cn.writeLoop()
	go cn.heartbeat()
	return cn
}

// fail ends the connection with e, unless it already ended. Without a close
// frame to send it closes the socket at once, which unblocks the reader and
// a writer stuck on a dead link; otherwise the writer sends the frame first.
func (cn *conn) fail(e connEnd) {
	cn.endOnce.Do(func() {
		cn.end = e
		cn.mu.Lock()
		cn.closed = true
		cn.mu.Unlock()
		close(cn.done)
		if e.send == 0 {
			cn.ws.Close()
		}
	})
}

// wait returns when the three goroutines of cn have returned.
func (cn *conn) wait() { cn.wg.Wait() }

// register assigns a fresh id to a call. It fails once the connection ended.
func (cn *conn) register(s sink) (uint32, error) {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if cn.closed {
		return 0, errLinkDown
	}
	// A counter from 1 that skips 0 and, after wrapping, ids still in use
	// (docs/PROTOCOL.md, section 3.1).
	for {
		cn.nextID++
		if cn.nextID == 0 {
			continue
		}
		if _, busy := cn.calls[cn.nextID]; !busy {
			break
		}
	}
	cn.calls[cn.nextID] = s
	return cn.nextID, nil
}

// unregister frees id. It reports whether the call was still registered,
// that is whether the caller, not the reader or drain, ends it.
func (cn *conn) unregister(id uint32) bool {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if _, ok := cn.calls[id]; !ok {
		return false
	}
	delete(cn.calls, id)
	return true
}

// drain hands err to every call still registered on the ended connection.
func (cn *conn) drain(err error) {
	cn.mu.Lock()
	calls := cn.calls
	cn.calls = make(map[uint32]sink)
	cn.mu.Unlock()
	for id, s := range calls {
		s.lost(cn, id, err)
	}
}

// encode encodes env as one frame element, refusing what the size limit
// would make the server reject.
func (cn *conn) encode(env *protowsv1.Envelope) ([]byte, error) {
	b, err := cn.codec.AppendEnvelope(nil, env)
	if err != nil {
		return nil, protows.Errorf(protows.CodeInternal, "client: encode envelope: %w", err)
	}
	if len(b) > cn.cl.cfg.maxMessage {
		return nil, protows.Errorf(protows.CodeResourceExhausted,
			"client: message of %d bytes exceeds the limit of %d", len(b), cn.cl.cfg.maxMessage)
	}
	return b, nil
}

// send queues an encoded envelope for the writer.
func (cn *conn) send(ctx context.Context, b []byte) error {
	select {
	case cn.out <- b:
		return nil
	case <-cn.done:
		return errLinkDown
	case <-ctx.Done():
		return ctxError(ctx)
	}
}

// sendCancel tells the server that the caller gave up call id. It waits at
// most the heartbeat timeout for room in the queue: a CANCEL that cannot be
// queued is dropped, and the server's late reply is discarded on arrival.
func (cn *conn) sendCancel(id uint32) {
	cn.sendControl(&protowsv1.Envelope{Id: id, Kind: protowsv1.Kind_KIND_CANCEL})
}

// sendCredit grants the server credit for n more STREAM_MESSAGEs of call
// id (docs/PROTOCOL.md, section 4.6), waiting like sendCancel.
func (cn *conn) sendCredit(id uint32, n int64) {
	cn.sendControl(&protowsv1.Envelope{Id: id, Kind: protowsv1.Kind_KIND_CREDIT, Credit: uint32(n)})
}

// sendControl queues an envelope that no caller waits on, waiting at most
// the heartbeat timeout for room: a full queue for that long means the
// link is dying, and the heartbeat ends it.
func (cn *conn) sendControl(env *protowsv1.Envelope) {
	b, err := cn.encode(env)
	if err != nil {
		return
	}
	t := time.NewTimer(cn.cl.cfg.pingTimeout)
	defer t.Stop()
	select {
	case cn.out <- b:
	case <-cn.done:
	case <-t.C:
	}
}

// request builds the REQUEST envelope for method: the method id with the
// binary codec, the name with the text codec (docs/PROTOCOL.md, section 3.2).
func (cn *conn) request(id uint32, method string, payload []byte, md map[string]string) *protowsv1.Envelope {
	env := &protowsv1.Envelope{Id: id, Kind: protowsv1.Kind_KIND_REQUEST, Payload: payload, Metadata: md}
	cn.nameMethod(env, method)
	return env
}

// unaryRequest builds the REQUEST of a unary call: request's, with the
// call's idempotency key and the time left before ctx's deadline
// (docs/PROTOCOL.md, sections 3.7 and 3.8).
func (cn *conn) unaryRequest(ctx context.Context, id uint32, method string, payload []byte, md map[string]string, key string) *protowsv1.Envelope {
	env := cn.request(id, method, payload, md)
	env.IdempotencyKey = key
	env.TimeoutMs = timeoutMs(ctx)
	return env
}

// timeoutMs returns the time left before ctx's deadline in milliseconds,
// rounded up (at least 1, at most the field's range), or 0 without a
// deadline.
func timeoutMs(ctx context.Context) uint32 {
	dl, ok := ctx.Deadline()
	if !ok {
		return 0
	}
	left := time.Until(dl)
	switch {
	case left <= time.Millisecond:
		return 1
	case left >= time.Duration(math.MaxUint32)*time.Millisecond:
		return math.MaxUint32
	}
	return uint32((left + time.Millisecond - 1) / time.Millisecond)
}

// nameMethod names method in env as the codec does.
func (cn *conn) nameMethod(env *protowsv1.Envelope, method string) {
	if cn.codec.Binary() {
		env.MethodId = protows.MethodID(method)
	} else {
		env.Method = method
	}
}

func (cn *conn) readLoop() {
	defer cn.wg.Done()
	var hint int
	for {
		mt, data, err := readMessage(cn.ws, hint)
		hint = len(data)
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) && ce.Code != websocket.CloseAbnormalClosure {
				cn.fail(connEnd{code: protows.CloseCode(ce.Code), reason: ce.Text, send: echoCode(ce.Code)})
			} else {
				cn.fail(connEnd{code: protows.CloseAbnormal, err: err})
			}
			return
		}
		cn.lastRecv.Store(time.Now().UnixNano())
		if mt != cn.mtype {
			cn.fail(connEnd{code: protows.CloseUnsupportedData, send: protows.CloseUnsupportedData, local: true,
				reason: "wrong message type for " + cn.codec.Name()})
			return
		}
		envs, err := cn.codec.DecodeFrame(data)
		if err != nil {
			cn.fail(connEnd{code: protows.CloseInvalidPayload, send: protows.CloseInvalidPayload, local: true,
				reason: "undecodable frame", err: err})
			return
		}
		for _, env := range envs {
			if !cn.dispatch(env) {
				return
			}
		}
	}
}

// readMessage reads the next message into a buffer allocated for hint
// bytes, the size of the previous message: a stream of messages of similar
// sizes then costs one allocation and one copy each, where io.ReadAll (in
// gorilla's ReadMessage) starts at 512 bytes and doubles, copying a 64 KB
// message about twice over through eight allocations. The buffer is the
// message's own, never reused: decoded payloads may alias it.
func readMessage(ws *websocket.Conn, hint int) (int, []byte, error) {
	mt, r, err := ws.NextReader()
	if err != nil {
		return mt, nil, err
	}
	// One spare byte, so that a message of exactly the hinted size sees
	// io.EOF without growing the buffer.
	b := make([]byte, 0, max(hint, 512)+1)
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return mt, b, nil
		}
		if err != nil {
			return mt, nil, err
		}
	}
}

// dispatch handles one received envelope. It returns false when the
// envelope ended the connection.
func (cn *conn) dispatch(env *protowsv1.Envelope) bool {
	switch env.GetKind() {
	case protowsv1.Kind_KIND_REPLY, protowsv1.Kind_KIND_STREAM_MESSAGE,
		protowsv1.Kind_KIND_STREAM_END, protowsv1.Kind_KIND_ERROR, protowsv1.Kind_KIND_CREDIT,
		protowsv1.Kind_KIND_STREAM_POSITION:
		id := env.GetId()
		if id == 0 {
			if env.GetKind() == protowsv1.Kind_KIND_ERROR {
				// Not about a call: the reason for the close that follows.
				cn.mu.Lock()
				cn.serverErr = wireerr.FromWire(cn.codec, env.GetError())
				cn.mu.Unlock()
			}
			return true
		}
		final := env.GetKind() != protowsv1.Kind_KIND_STREAM_MESSAGE && env.GetKind() != protowsv1.Kind_KIND_CREDIT &&
			env.GetKind() != protowsv1.Kind_KIND_STREAM_POSITION
		cn.mu.Lock()
		s := cn.calls[id]
		if final {
			delete(cn.calls, id)
		}
		cn.mu.Unlock()
		if s != nil { // else a call the client gave up: discard (section 4.3)
			s.deliver(cn, id, env, final)
		}
		return true
	case protowsv1.Kind_KIND_PING:
		b, err := cn.encode(&protowsv1.Envelope{Id: env.GetId(), Kind: protowsv1.Kind_KIND_PONG})
		if err != nil {
			return true
		}
		select {
		case cn.out <- b:
		case <-cn.done:
		}
		return true
	case protowsv1.Kind_KIND_PONG:
		select {
		case cn.pongs <- env.GetId():
		default: // the heartbeat is behind; it sends one PING at a time
		}
		return true
	default:
		cn.fail(connEnd{code: protows.CloseProtocolError, send: protows.CloseProtocolError, local: true,
			reason: fmt.Sprintf("kind %d from a server", env.GetKind())})
		return false
	}
}

func (cn *conn) writeLoop() {
	defer cn.wg.Done()
	var (
		carry []byte
		batch []codec.Parts
		frame []byte
	)
	maxSize := cn.cl.cfg.maxMessage
	for {
		first := carry
		carry = nil
		if first == nil {
			select {
			case first = <-cn.out:
			case data := <-cn.wsPng:
				cn.ws.SetWriteDeadline(time.Now().Add(cn.cl.cfg.pingTimeout))
				if err := cn.ws.WriteMessage(websocket.PongMessage, data); err != nil {
					cn.fail(connEnd{code: protows.CloseAbnormal, err: err})
				}
				continue
			case <-cn.done:
				cn.shutdown()
				return
			}
		}
		// Batch what is already queued into one frame (section 2), within
		// the envelope and size limits of a frame. The JSON codec adds a
		// byte per envelope and two brackets.
		batch = append(batch[:0], codec.Parts{Body: first})
		size := len(first) + 2
		if len(cn.out) == 0 {
			// Callers woken by the same incoming frame are about to send:
			// let them queue, and write their requests in this frame
			// rather than in one write each. A write system call costs far
			// more than a trip through the scheduler, which returns at
			// once when nothing else is runnable.
			runtime.Gosched()
		}
	more:
		for len(batch) < codec.MaxEnvelopesPerFrame {
			select {
			case b := <-cn.out:
				if size+len(b)+1 > maxSize {
					carry = b
					break more
				}
				batch = append(batch, codec.Parts{Body: b})
				size += len(b) + 1
			default:
				break more
			}
		}
		frame = cn.codec.AppendFrameParts(frame[:0], batch)
		clear(batch)
		cn.ws.SetWriteDeadline(time.Now().Add(cn.cl.cfg.pingTimeout))
		if err := cn.ws.WriteMessage(cn.mtype, frame); err != nil {
			cn.fail(connEnd{code: protows.CloseAbnormal, err: err})
		}
	}
}

// shutdown writes the close frame the connection ended with, if any, and
// closes the socket.
func (cn *conn) shutdown() {
	if e := cn.end; e.send != 0 {
		msg := websocket.FormatCloseMessage(int(e.send), truncateReason(e.reason))
		// The deadline is short: the peer is going away or misbehaving.
		cn.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
	}
	cn.ws.Close()
}

func (cn *conn) heartbeat() {
	defer cn.wg.Done()
	cfg := &cn.cl.cfg
	tick := min(cfg.pingInterval, cfg.pingTimeout) / 4
	if tick < 5*time.Millisecond {
		tick = 5 * time.Millisecond
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	var (
		pingID      uint32
		sent        time.Time
		outstanding bool
		lastPong    time.Time
	)
	ping := func() bool {
		pingID++
		if pingID == 0 {
			pingID = 1
		}
		b, err := cn.encode(&protowsv1.Envelope{Id: pingID, Kind: protowsv1.Kind_KIND_PING})
		if err != nil {
			return true
		}
		sent, outstanding = time.Now(), true
		wait := time.NewTimer(cfg.pingTimeout)
		defer wait.Stop()
		select {
		case cn.out <- b:
			return true
		case <-cn.done:
			return false
		case <-wait.C:
			cn.fail(connEnd{code: protows.CloseAbnormal, err: errHeartbeat})
			return false
		}
	}
	// A first PING at once gives a round-trip time right away.
	if !ping() {
		return
	}
	for {
		select {
		case <-cn.done:
			return
		case id := <-cn.pongs:
			if outstanding && id == pingID {
				now := time.Now()
				cn.cl.rtt.Store(int64(now.Sub(sent)))
				outstanding, lastPong = false, now
			}
		case now := <-t.C:
			switch {
			case outstanding && now.Sub(sent) > cfg.pingTimeout:
				cn.cl.cfg.logger.Info("protows client: heartbeat timeout", "timeout", cfg.pingTimeout)
				cn.fail(connEnd{code: protows.CloseAbnormal, err: errHeartbeat})
				return
			case !outstanding && now.Sub(lastPong) >= cfg.pingInterval:
				if !ping() {
					return
				}
			}
		}
	}
}

// echoCode returns the close code to answer a received close with: the same
// code, as RFC 6455 section 5.5.1 suggests, or 1000 when the peer sent a
// close frame without a code.
func echoCode(code int) protows.CloseCode {
	switch code {
	case websocket.CloseNoStatusReceived:
		return protows.CloseNormal
	case websocket.CloseAbnormalClosure, websocket.CloseTLSHandshake:
		return 0
	}
	return protows.CloseCode(code)
}

// truncateReason cuts a close reason to the 123 bytes a close frame holds,
// on a rune boundary.
func truncateReason(s string) string {
	const limit = 123
	if len(s) <= limit {
		return s
	}
	cut := limit
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut]
}
