package conformance

import (
	"bufio"
	"bytes"
	"compress/flate"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// The runner speaks WebSocket (RFC 6455) itself, byte by byte, instead of
// through a library: a conformance case must be able to send what no
// well-behaved library would (a 64-bit length with its top bit set, invalid
// UTF-8 in a text message, a flood of control frames) and see exactly what
// the peer sent (every frame, every close code, a dropped TCP connection).

// WebSocket opcodes.
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xa
)

// maxReadMessage bounds what the runner buffers of one message from a peer.
const maxReadMessage = 64 << 20

// wsGUID is RFC 6455's key suffix for Sec-WebSocket-Accept.
const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

func acceptKey(key string) string {
	h := sha1.Sum([]byte(key + wsGUID))
	return base64.StdEncoding.EncodeToString(h[:])
}

// frame is one WebSocket frame.
type frame struct {
	fin     bool
	rsv1    bool
	opcode  byte
	payload []byte
}

// wsConn is one end of a WebSocket connection.
type wsConn struct {
	nc      net.Conn
	br      *bufio.Reader
	client  bool // this end is the client: it masks what it writes
	deflate bool // permessage-deflate was negotiated (no context takeover)

	wmu sync.Mutex
	// gate is taken by the reader before each frame: holding it stops
	// reading (a stalled peer, whose TCP window fills).
	gate sync.Mutex
}

// appendFrame appends the wire form of f, masked when mask is set.
func appendFrame(dst []byte, f frame, mask bool) []byte {
	b0 := f.opcode & 0x0f
	if f.fin {
		b0 |= 0x80
	}
	if f.rsv1 {
		b0 |= 0x40
	}
	dst = append(dst, b0)
	var m byte
	if mask {
		m = 0x80
	}
	n := len(f.payload)
	switch {
	case n < 126:
		dst = append(dst, m|byte(n))
	case n <= 0xffff:
		dst = append(dst, m|126)
		dst = binary.BigEndian.AppendUint16(dst, uint16(n))
	default:
		dst = append(dst, m|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	if !mask {
		return append(dst, f.payload...)
	}
	var key [4]byte
	_, _ = rand.Read(key[:])
	dst = append(dst, key[:]...)
	start := len(dst)
	dst = append(dst, f.payload...)
	for i := range f.payload {
		dst[start+i] ^= key[i&3]
	}
	return dst
}

// writeFrames writes frames in one write.
func (c *wsConn) writeFrames(fs ...frame) error {
	var buf []byte
	for _, f := range fs {
		buf = appendFrame(buf, f, c.client)
	}
	return c.writeRaw(buf)
}

// writeRaw writes bytes as they are on the TCP connection.
func (c *wsConn) writeRaw(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.nc.SetWriteDeadline(time.Now().Add(30 * time.Second))
	_, err := c.nc.Write(b)
	return err
}

// readFrame reads one frame. Frames from a client must be masked, frames
// from a server must not be (RFC 6455 section 5.1).
func (c *wsConn) readFrame() (frame, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(c.br, hdr[:]); err != nil {
		return frame{}, err
	}
	f := frame{fin: hdr[0]&0x80 != 0, rsv1: hdr[0]&0x40 != 0, opcode: hdr[0] & 0x0f}
	if hdr[0]&0x30 != 0 {
		return f, errors.New("websocket: reserved bits RSV2/RSV3 set")
	}
	masked := hdr[1]&0x80 != 0
	if masked == c.client {
		if c.client {
			return f, errors.New("websocket: the server sent a masked frame")
		}
		return f, errors.New("websocket: the client sent an unmasked frame")
	}
	n := uint64(hdr[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(c.br, b[:]); err != nil {
			return f, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(c.br, b[:]); err != nil {
			return f, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if n > maxReadMessage {
		return f, fmt.Errorf("websocket: frame of %d bytes is larger than the runner accepts", n)
	}
	var key [4]byte
	if masked {
		if _, err := io.ReadFull(c.br, key[:]); err != nil {
			return f, err
		}
	}
	f.payload = make([]byte, n)
	if _, err := io.ReadFull(c.br, f.payload); err != nil {
		return f, err
	}
	if masked {
		for i := range f.payload {
			f.payload[i] ^= key[i&3]
		}
	}
	return f, nil
}

// event is what a connection's reader saw: a message, a control frame, or
// the end of the connection.
type event struct {
	at     time.Time
	kind   eventKind
	opcode byte   // message: opText or opBinary
	data   []byte // message data (inflated), ping/pong payload, close reason
	code   int    // close: the close code, 1005 when the frame had none
	err    error  // eventEnd: why the connection ended (io.EOF: TCP closed)
}

type eventKind int

const (
	eventMessage eventKind = iota + 1
	eventPing
	eventPong
	eventClose
	eventEnd
	eventViolation // the peer broke RFC 6455; data says how
)

// readLoop reads frames until the connection ends and turns them into
// events, reassembling fragmented messages and inflating compressed ones.
// It answers pings when autoPong says so (read at each ping).
func (c *wsConn) readLoop(events chan<- event, autoPong func() bool) {
	defer close(events)
	var (
		msg        []byte
		msgOp      byte
		compressed bool
		inMessage  bool
	)
	for {
		c.gate.Lock()
		c.gate.Unlock() //nolint:staticcheck // a gate, not a critical section
		f, err := c.readFrame()
		now := time.Now()
		if err != nil {
			events <- event{at: now, kind: eventEnd, err: err}
			return
		}
		switch f.opcode {
		case opPing:
			if autoPong() {
				_ = c.writeFrames(frame{fin: true, opcode: opPong, payload: f.payload})
			}
			events <- event{at: now, kind: eventPing, data: f.payload}
		case opPong:
			events <- event{at: now, kind: eventPong, data: f.payload}
		case opClose:
			e := event{at: now, kind: eventClose, code: 1005}
			if len(f.payload) >= 2 {
				e.code = int(binary.BigEndian.Uint16(f.payload))
				e.data = f.payload[2:]
			}
			events <- e
		case opText, opBinary:
			if inMessage {
				events <- event{at: now, kind: eventViolation, data: []byte("a new data frame inside a fragmented message")}
			}
			msg, msgOp, compressed, inMessage = append(msg[:0], f.payload...), f.opcode, f.rsv1, true
		case opContinuation:
			if !inMessage {
				events <- event{at: now, kind: eventViolation, data: []byte("a continuation frame outside a message")}
				continue
			}
			msg = append(msg, f.payload...)
		default:
			events <- event{at: now, kind: eventViolation, data: fmt.Appendf(nil, "unknown opcode %#x", f.opcode)}
			continue
		}
		if !inMessage || !f.fin || f.opcode >= opClose {
			continue
		}
		inMessage = false
		data := append([]byte(nil), msg...)
		if compressed {
			if !c.deflate {
				events <- event{at: now, kind: eventViolation, data: []byte("RSV1 set without permessage-deflate")}
			}
			data, err = inflate(data)
			if err != nil {
				events <- event{at: now, kind: eventViolation, data: fmt.Appendf(nil, "undecompressable message: %v", err)}
				continue
			}
		}
		if msgOp == opText && !utf8.Valid(data) {
			events <- event{at: now, kind: eventViolation, data: []byte("a text message that is not UTF-8")}
		}
		events <- event{at: now, kind: eventMessage, opcode: msgOp, data: data}
	}
}

// deflateTail ends every permessage-deflate message (RFC 7692 section 7.2.1).
var deflateTail = []byte{0x00, 0x00, 0xff, 0xff}

// compress deflates a message for permessage-deflate without context
// takeover.
func compress(data []byte) []byte {
	var buf bytes.Buffer
	w, _ := flate.NewWriter(&buf, flate.BestCompression)
	_, _ = w.Write(data)
	_ = w.Flush()
	return bytes.TrimSuffix(buf.Bytes(), deflateTail)
}

func inflate(data []byte) ([]byte, error) {
	r := flate.NewReader(io.MultiReader(bytes.NewReader(data), bytes.NewReader(deflateTail), bytes.NewReader([]byte{0x01, 0x00, 0x00, 0xff, 0xff})))
	defer r.Close()
	return io.ReadAll(io.LimitReader(r, maxReadMessage))
}

// handshakeRequest is what a client sends to open a connection.
type handshakeRequest struct {
	url          string
	subprotocols []string // nil: no Sec-WebSocket-Protocol header
	header       http.Header
	host         string // overrides the Host header
	deflate      bool   // offer permessage-deflate
	notWebSocket bool   // send a plain GET, without the upgrade headers
}

// handshakeResponse is what the server answered.
type handshakeResponse struct {
	status      int
	header      http.Header
	body        string // a refusal's body (first 4 KiB)
	subprotocol string
}

// dial opens a TCP connection to the URL's host and performs the opening
// handshake. It returns the connection only when the server upgraded.
func dial(hr handshakeRequest, timeout time.Duration) (*wsConn, handshakeResponse, error) {
	u, err := url.Parse(hr.url)
	if err != nil {
		return nil, handshakeResponse{}, err
	}
	if u.Scheme != "ws" {
		return nil, handshakeResponse{}, fmt.Errorf("only ws:// URLs are supported, not %q", hr.url)
	}
	addr := u.Host
	if u.Port() == "" {
		addr += ":80"
	}
	nc, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, handshakeResponse{}, err
	}
	_ = nc.SetDeadline(time.Now().Add(timeout))
	keyb := make([]byte, 16)
	_, _ = rand.Read(keyb)
	key := base64.StdEncoding.EncodeToString(keyb)
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\n", u.RequestURI())
	host := u.Host
	if hr.host != "" {
		host = hr.host
	}
	fmt.Fprintf(&b, "Host: %s\r\n", host)
	if !hr.notWebSocket {
		b.WriteString("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n")
		fmt.Fprintf(&b, "Sec-WebSocket-Key: %s\r\n", key)
	}
	if hr.subprotocols != nil {
		fmt.Fprintf(&b, "Sec-WebSocket-Protocol: %s\r\n", strings.Join(hr.subprotocols, ", "))
	}
	if hr.deflate {
		b.WriteString("Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; server_no_context_takeover\r\n")
	}
	for k, vs := range hr.header {
		for _, v := range vs {
			fmt.Fprintf(&b, "%s: %s\r\n", k, v)
		}
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(nc, b.String()); err != nil {
		nc.Close()
		return nil, handshakeResponse{}, err
	}
	br := bufio.NewReaderSize(nc, 64<<10)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet})
	if err != nil {
		nc.Close()
		return nil, handshakeResponse{}, fmt.Errorf("reading the handshake response: %w", err)
	}
	out := handshakeResponse{status: resp.StatusCode, header: resp.Header, subprotocol: resp.Header.Get("Sec-WebSocket-Protocol")}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		out.body = string(body)
		nc.Close()
		return nil, out, nil
	}
	if got := resp.Header.Get("Sec-WebSocket-Accept"); got != acceptKey(key) {
		nc.Close()
		return nil, out, fmt.Errorf("Sec-WebSocket-Accept is %q, want %q", got, acceptKey(key))
	}
	_ = nc.SetDeadline(time.Time{})
	c := &wsConn{nc: nc, br: br, client: true}
	if ext := resp.Header.Get("Sec-WebSocket-Extensions"); strings.Contains(ext, "permessage-deflate") {
		c.deflate = true
	}
	return c, out, nil
}

// offeredSubprotocols parses a request's Sec-WebSocket-Protocol headers.
func offeredSubprotocols(h http.Header) []string {
	var out []string
	for _, v := range h.Values("Sec-WebSocket-Protocol") {
		for p := range strings.SplitSeq(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// upgrade answers a client's opening handshake with 101 and the given
// subprotocol ("" for none) and returns the server end. No extension is
// negotiated.
func upgrade(w http.ResponseWriter, r *http.Request, subprotocol string) (*wsConn, error) {
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") || r.Header.Get("Sec-WebSocket-Key") == "" {
		http.Error(w, "not a WebSocket handshake", http.StatusBadRequest)
		return nil, errors.New("not a WebSocket handshake")
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		return nil, errors.New("the response cannot be hijacked")
	}
	nc, rw, err := hj.Hijack()
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	b.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n")
	fmt.Fprintf(&b, "Sec-WebSocket-Accept: %s\r\n", acceptKey(r.Header.Get("Sec-WebSocket-Key")))
	if subprotocol != "" {
		fmt.Fprintf(&b, "Sec-WebSocket-Protocol: %s\r\n", subprotocol)
	}
	b.WriteString("\r\n")
	_ = nc.SetDeadline(time.Time{})
	if _, err := io.WriteString(nc, b.String()); err != nil {
		nc.Close()
		return nil, err
	}
	return &wsConn{nc: nc, br: rw.Reader}, nil
}

// closePayload is a close frame's payload: the code and the reason.
func closePayload(code int, reason string) []byte {
	if code == 1005 {
		return nil
	}
	return append(binary.BigEndian.AppendUint16(nil, uint16(code)), reason...)
}
