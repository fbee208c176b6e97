package transport_test

import (
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	protows "github.com/protows/protows"
	"github.com/protows/protows/codec"
	testv1 "github.com/protows/protows/gen/go/protows/test/v1"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"github.com/protows/protows/internal/testservice"
	"github.com/protows/protows/transport"
)

// RFC 6455 frame bits, for frames written byte by byte.
const (
	finBit  = 0x80
	rsv1Bit = 0x40
	maskBit = 0x80
	opText  = 0x1
	opBin   = 0x2
)

// rawFrame encodes one client frame: masked, as RFC 6455 requires of a
// client, with the first byte b0 (FIN, RSV and opcode) and the payload.
func rawFrame(b0 byte, payload []byte) []byte {
	f := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		f = append(f, maskBit|byte(n))
	case n < 1<<16:
		f = append(f, maskBit|126)
		f = binary.BigEndian.AppendUint16(f, uint16(n))
	default:
		f = append(f, maskBit|127)
		f = binary.BigEndian.AppendUint64(f, uint64(n))
	}
	key := [4]byte{1, 2, 3, 4}
	f = append(f, key[:]...)
	for i, b := range payload {
		f = append(f, b^key[i%4])
	}
	return f
}

// writeRaw writes bytes on the client's TCP connection, bypassing gorilla's
// framing.
func (cl *client) writeRaw(b []byte) {
	cl.t.Helper()
	if _, err := cl.ws.NetConn().Write(b); err != nil {
		cl.t.Fatalf("raw write: %v", err)
	}
}

// TestInvalidUTF8Text: a text message that is not UTF-8 fails the
// connection with 1007 (RFC 6455 section 8.1), wherever the bad bytes
// are, even in a key the decoder would ignore; valid UTF-8 is served, and
// binary messages are not text.
func TestInvalidUTF8Text(t *testing.T) {
	t.Parallel()
	ts := startServer(t, transport.Config{})
	for _, tc := range []struct {
		name  string
		frame string
	}{
		{"unknown key", "{\"id\":1,\"kind\":\"ping\",\"x\xff\":1}"},
		{"unknown value", "{\"id\":1,\"kind\":\"ping\",\"x\":\"\xc3\"}"},
		{"surrogate", "{\"id\":1,\"kind\":\"ping\",\"x\":\"\xed\xa0\x80\"}"},
		{"payload", "{\"id\":1,\"kind\":\"request\",\"method\":\"" + testservice.EchoMethod + "\",\"payload\":{\"text\":\"\xfe\"}}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl := dial(t, ts.url, codec.JSON(), nil)
			cl.sendRaw(websocket.TextMessage, []byte(tc.frame))
			if reason := cl.expectClose(protows.CloseInvalidPayload); reason != "text message is not valid UTF-8" {
				t.Fatalf("close reason %q", reason)
			}
		})
	}
	t.Run("valid", func(t *testing.T) {
		cl := dial(t, ts.url, codec.JSON(), nil)
		cl.sendRaw(websocket.TextMessage, []byte(`{"id":3,"kind":"ping","clé":"☃ 𝄞"}`))
		if e := cl.recv(); e.GetKind() != protowsv1.Kind_KIND_PONG || e.GetId() != 3 {
			t.Fatalf("want PONG 3, got %v", e)
		}
	})
	t.Run("binary", func(t *testing.T) {
		cl := dial(t, ts.url, codec.Proto(), nil)
		e := cl.call(1, testservice.EchoMethod, &testv1.EchoRequest{Padding: []byte{0xff, 0xfe, 0xc3}})
		if e.GetKind() != protowsv1.Kind_KIND_REPLY {
			t.Fatalf("binary bytes that are not UTF-8: %v", e)
		}
	})
}

// TestFrameLengthOutOfRange: a 64-bit frame length with its most
// significant bit set is a protocol error (RFC 6455 section 5.2): close
// 1002, where gorilla alone dropped the link without a close frame. A
// length that is merely over the limit still gets 1009.
func TestFrameLengthOutOfRange(t *testing.T) {
	t.Parallel()
	ts := startServer(t, transport.Config{MaxMessageSize: 64 << 10})
	for _, tc := range []struct {
		name   string
		length uint64
		code   protows.CloseCode
	}{
		{"msb set", 1 << 63, protows.CloseProtocolError},
		{"all ones", ^uint64(0), protows.CloseProtocolError},
		{"2^62", 1 << 62, protows.CloseMessageTooBig},
	} {
		for _, c := range codecs {
			t.Run(tc.name+"/"+c.Name(), func(t *testing.T) {
				cl := dial(t, ts.url, c, nil)
				op := byte(opBin)
				if !c.Binary() {
					op = opText
				}
				h := []byte{finBit | op, maskBit | 127}
				h = binary.BigEndian.AppendUint64(h, tc.length)
				h = append(h, 1, 2, 3, 4) // mask key
				cl.writeRaw(append(h, 0x0a, 0x00))
				cl.expectClose(tc.code)
			})
		}
	}
	checkServing(t, ts, codec.Proto())
}

// TestCorruptCompressedData: a compressed message whose deflate data is
// corrupt is undecodable: close 1007, not a dropped link.
func TestCorruptCompressedData(t *testing.T) {
	t.Parallel()
	ts := startServer(t, transport.Config{EnableCompression: true})
	for _, c := range codecs {
		for _, tc := range []struct {
			name string
			data []byte
		}{
			{"reserved block type", []byte{0x07, 0x00}},
			{"bad stored length", []byte{0x01, 0x05, 0x00, 0x00, 0x00, 'x'}},
		} {
			t.Run(c.Name()+"/"+tc.name, func(t *testing.T) {
				d := websocket.Dialer{Subprotocols: []string{c.Name()}, EnableCompression: true}
				ws, _, err := d.Dial(ts.url, nil)
				if err != nil {
					t.Fatal(err)
				}
				defer ws.Close()
				cl := &client{t: t, ws: ws, c: c}
				op := byte(opBin)
				if !c.Binary() {
					op = opText
				}
				cl.writeRaw(rawFrame(finBit|rsv1Bit|op, tc.data))
				if reason := cl.expectClose(protows.CloseInvalidPayload); reason != "compressed data is corrupt" {
					t.Fatalf("close reason %q", reason)
				}
			})
		}
	}
	checkServing(t, ts, codec.JSON())
}

// TestPingFrameFlood: WebSocket ping frames count against the envelope
// rate limit: those within it are answered, the first beyond it closes
// the connection with 4029.
func TestPingFrameFlood(t *testing.T) {
	t.Parallel()
	for _, c := range codecs {
		t.Run(c.Name(), func(t *testing.T) {
			ts := startServer(t, transport.Config{RateLimit: 10, RateBurst: 20})
			cl := dial(t, ts.url, c, nil)
			pongs := 0
			cl.ws.SetPongHandler(func(string) error { pongs++; return nil })
			for range 40 {
				if err := cl.ws.WriteControl(websocket.PingMessage, []byte("x"), time.Now().Add(time.Second)); err != nil {
					break // the server may have closed already
				}
			}
			cl.expectClose(protows.CloseRateLimited)
			// The burst, plus what the bucket refilled meanwhile.
			if pongs < 20 || pongs > 25 {
				t.Fatalf("%d pongs, want the burst of 20", pongs)
			}
			checkServing(t, ts, c)
		})
	}
	t.Run("pongs count", func(t *testing.T) {
		ts := startServer(t, transport.Config{RateLimit: 10, RateBurst: 20})
		cl := dial(t, ts.url, codec.Proto(), nil)
		for range 40 {
			if cl.ws.WriteControl(websocket.PongMessage, nil, time.Now().Add(time.Second)) != nil {
				break
			}
		}
		cl.expectClose(protows.CloseRateLimited)
	})
	t.Run("frames and envelopes share the bucket", func(t *testing.T) {
		ts := startServer(t, transport.Config{RateLimit: 10, RateBurst: 20})
		cl := dial(t, ts.url, codec.Proto(), nil)
		for range 15 {
			if err := cl.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(time.Second)); err != nil {
				t.Fatal(err)
			}
		}
		envs := make([]*protowsv1.Envelope, 10)
		for i := range envs {
			envs[i] = &protowsv1.Envelope{Id: uint32(i + 1), Kind: protowsv1.Kind_KIND_PING}
		}
		cl.send(envs...)
		cl.expectClose(protows.CloseRateLimited)
	})
}

// TestPingFramesKeepAlive: a ping frame is traffic: a client that sends
// only ping frames, and reads nothing, is not closed for silence.
func TestPingFramesKeepAlive(t *testing.T) {
	t.Parallel()
	ts := startServer(t, transport.Config{PingInterval: time.Hour, ReadTimeout: 300 * time.Millisecond})
	cl := dial(t, ts.url, codec.Proto(), nil)
	for range 8 {
		if err := cl.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	cl.send(&protowsv1.Envelope{Id: 1, Kind: protowsv1.Kind_KIND_PING})
	for {
		e, err := cl.next(5 * time.Second)
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				t.Fatalf("closed: %d %q", ce.Code, ce.Text)
			}
			t.Fatal(err)
		}
		if e.GetKind() == protowsv1.Kind_KIND_PONG {
			return
		}
	}
}
