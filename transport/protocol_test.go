package transport_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gorilla/websocket"
	protows "github.com/protows/protows"
	"github.com/protows/protows/codec"
	testv1 "github.com/protows/protows/gen/go/protows/test/v1"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"github.com/protows/protows/internal/testservice"
	"github.com/protows/protows/transport"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/durationpb"
)

// checkServing proves the server still serves a fresh client.
func checkServing(t *testing.T, ts *testServer, c codec.Codec) {
	t.Helper()
	cl := ts.dial(t, c, nil)
	if e := cl.call(1, testservice.EchoMethod, &testv1.EchoRequest{Text: "still here"}); e.GetKind() != protowsv1.Kind_KIND_REPLY {
		t.Fatalf("server stopped serving: %v", e)
	}
	cl.ws.Close()
}

// TestBadFrames sends each malformed input on its own connection and checks
// the close code the protocol documents.
func TestBadFrames(t *testing.T) {
	t.Parallel()
	huge := protowire.AppendVarint([]byte{0x0a}, 1<<63-1)
	for _, tc := range []struct {
		name  string
		codec codec.Codec
		mt    int
		frame []byte
		code  protows.CloseCode
	}{
		{"text on proto", codec.Proto(), websocket.TextMessage, []byte(`{"id":1,"kind":"ping"}`), protows.CloseUnsupportedData},
		{"binary on json", codec.JSON(), websocket.BinaryMessage, []byte{0x0a, 0x00}, protows.CloseUnsupportedData},
		{"garbage proto", codec.Proto(), websocket.BinaryMessage, []byte{0xff, 0xff, 0xff, 0xff, 0x0f}, protows.CloseInvalidPayload},
		{"garbage json", codec.JSON(), websocket.TextMessage, []byte(`{"id":`), protows.CloseInvalidPayload},
		{"truncated proto", codec.Proto(), websocket.BinaryMessage, []byte{0x0a, 0x06, 0x08, 0x01, 0x10}, protows.CloseInvalidPayload},
		{"truncated json", codec.JSON(), websocket.TextMessage, []byte(`[{"id":1,"kind":"ping"},{"id":2`), protows.CloseInvalidPayload},
		{"length 2^63-1", codec.Proto(), websocket.BinaryMessage, huge, protows.CloseInvalidPayload},
		{"empty proto frame", codec.Proto(), websocket.BinaryMessage, []byte{}, protows.CloseInvalidPayload},
		{"empty json array", codec.JSON(), websocket.TextMessage, []byte(`[]`), protows.CloseInvalidPayload},
		{"1025 envelopes proto", codec.Proto(), websocket.BinaryMessage, bytes.Repeat([]byte{0x0a, 0x02, 0x10, 0x08}, 1025), protows.CloseInvalidPayload},
		{"1025 envelopes json", codec.JSON(), websocket.TextMessage, []byte("[" + strings.Repeat(`{"id":1,"kind":"pong"},`, 1024) + `{"id":1,"kind":"pong"}]`), protows.CloseInvalidPayload},
		{"oversized proto", codec.Proto(), websocket.BinaryMessage, bytes.Repeat([]byte{0}, 65<<10), protows.CloseMessageTooBig},
		{"oversized json", codec.JSON(), websocket.TextMessage, bytes.Repeat([]byte(" "), 65<<10), protows.CloseMessageTooBig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ts := startServer(t, transport.Config{MaxMessageSize: 64 << 10})
			cl := dial(t, ts.url, tc.codec, nil)
			cl.sendRaw(tc.mt, tc.frame)
			cl.expectClose(tc.code)
			checkServing(t, ts, tc.codec)
		})
	}
}

func TestProtocolViolations(t *testing.T) {
	t.Parallel()
	for _, c := range codecs {
		t.Run(c.Name(), func(t *testing.T) {
			t.Parallel()
			ts := startServer(t, transport.Config{})
			for _, tc := range []struct {
				name string
				envs func(cl *client) []*protowsv1.Envelope
			}{
				{"reply", func(*client) []*protowsv1.Envelope {
					return []*protowsv1.Envelope{{Id: 1, Kind: protowsv1.Kind_KIND_REPLY}}
				}},
				{"stream message for a unary call", func(cl *client) []*protowsv1.Envelope {
					sleep := cl.request(5, testservice.SleepMethod, &testv1.SleepRequest{Delay: durationpb.New(time.Minute)})
					return []*protowsv1.Envelope{sleep, {Id: 5, Kind: protowsv1.Kind_KIND_STREAM_MESSAGE}}
				}},
				{"stream end for a server stream", func(cl *client) []*protowsv1.Envelope {
					count := cl.request(5, testservice.CountMethod, &testv1.CountRequest{Interval: durationpb.New(time.Minute)})
					return []*protowsv1.Envelope{count, {Id: 5, Kind: protowsv1.Kind_KIND_STREAM_END}}
				}},
				{"stream message beyond the credit", func(cl *client) []*protowsv1.Envelope {
					envs := []*protowsv1.Envelope{cl.request(5, testservice.SumMethod, &testv1.SumRequest{})}
					sleepy := cl.payload(&testv1.SumRequest{Delay: durationpb.New(time.Minute)})
					for range transport.DefaultStreamWindow + 1 {
						envs = append(envs, &protowsv1.Envelope{Id: 5, Kind: protowsv1.Kind_KIND_STREAM_MESSAGE, Payload: sleepy})
					}
					return envs
				}},
				{"stream message after the stream end", func(cl *client) []*protowsv1.Envelope {
					return []*protowsv1.Envelope{
						cl.request(5, testservice.EchoStreamMethod, &testv1.EchoStreamRequest{}),
						{Id: 5, Kind: protowsv1.Kind_KIND_STREAM_END},
						{Id: 5, Kind: protowsv1.Kind_KIND_STREAM_MESSAGE},
					}
				}},
				{"second stream end", func(cl *client) []*protowsv1.Envelope {
					return []*protowsv1.Envelope{
						cl.request(5, testservice.EchoStreamMethod, &testv1.EchoStreamRequest{}),
						{Id: 5, Kind: protowsv1.Kind_KIND_STREAM_END},
						{Id: 5, Kind: protowsv1.Kind_KIND_STREAM_END},
					}
				}},
				{"credit of 0", func(*client) []*protowsv1.Envelope {
					return []*protowsv1.Envelope{{Id: 5, Kind: protowsv1.Kind_KIND_CREDIT}}
				}},
				{"credit past the largest window", func(cl *client) []*protowsv1.Envelope {
					count := cl.request(5, testservice.CountMethod, &testv1.CountRequest{Interval: durationpb.New(time.Minute)})
					count.Credit = 1<<31 - 1
					return []*protowsv1.Envelope{count, {Id: 5, Kind: protowsv1.Kind_KIND_CREDIT, Credit: 1}}
				}},
				{"request window past the largest", func(cl *client) []*protowsv1.Envelope {
					count := cl.request(5, testservice.CountMethod, &testv1.CountRequest{})
					count.Credit = 1 << 31
					return []*protowsv1.Envelope{count}
				}},
				{"error", func(*client) []*protowsv1.Envelope {
					return []*protowsv1.Envelope{{Id: 1, Kind: protowsv1.Kind_KIND_ERROR, Error: &protowsv1.Error{Code: 2}}}
				}},
				{"kind 0", func(*client) []*protowsv1.Envelope {
					return []*protowsv1.Envelope{{Id: 1}}
				}},
				{"request id 0", func(cl *client) []*protowsv1.Envelope {
					return []*protowsv1.Envelope{cl.request(0, testservice.EchoMethod, &testv1.EchoRequest{})}
				}},
				{"id in flight", func(cl *client) []*protowsv1.Envelope {
					sleep := cl.request(5, testservice.SleepMethod, &testv1.SleepRequest{Delay: durationpb.New(time.Minute)})
					return []*protowsv1.Envelope{sleep, cl.request(5, testservice.EchoMethod, &testv1.EchoRequest{})}
				}},
			} {
				t.Run(tc.name, func(t *testing.T) {
					cl := dial(t, ts.url, c, nil)
					cl.send(tc.envs(cl)...)
					cl.expectClose(protows.CloseProtocolError)
				})
			}
			checkServing(t, ts, c)
		})
	}
	t.Run("unknown kind", func(t *testing.T) {
		t.Parallel()
		ts := startServer(t, transport.Config{})
		cl := dial(t, ts.url, codec.Proto(), nil)
		cl.send(&protowsv1.Envelope{Id: 1, Kind: 99})
		cl.expectClose(protows.CloseProtocolError)
	})
}

func TestRequestErrors(t *testing.T) {
	t.Parallel()
	for _, c := range codecs {
		t.Run(c.Name(), func(t *testing.T) {
			t.Parallel()
			ts := startServer(t, transport.Config{MaxInFlight: 2})
			cl := dial(t, ts.url, c, nil)

			// method and method_id that disagree; no method at all.
			e := cl.request(1, testservice.EchoMethod, &testv1.EchoRequest{})
			e.Method, e.MethodId = testservice.EchoMethod, protows.MethodID(testservice.FailMethod)
			cl.send(e)
			wantError(t, cl.recv(), protowsv1.Kind_KIND_ERROR, protows.CodeInvalidArgument)
			cl.send(&protowsv1.Envelope{Id: 2, Kind: protowsv1.Kind_KIND_REQUEST})
			wantError(t, cl.recv(), protowsv1.Kind_KIND_ERROR, protows.CodeInvalidArgument)

			// Both forms name the method in either codec.
			e = cl.request(3, testservice.EchoMethod, &testv1.EchoRequest{})
			e.Method, e.MethodId = testservice.EchoMethod, protows.MethodID(testservice.EchoMethod)
			if r := cl.call(3, testservice.EchoMethod, &testv1.EchoRequest{}); r.GetKind() != protowsv1.Kind_KIND_REPLY {
				t.Fatal(r)
			}
			e = cl.request(4, testservice.EchoMethod, &testv1.EchoRequest{})
			e.Method, e.MethodId = "", protows.MethodID(testservice.EchoMethod)
			cl.send(e)
			if r := cl.recv(); r.GetKind() != protowsv1.Kind_KIND_REPLY {
				t.Fatal(r)
			}

			// A payload that is not the request type.
			bad := []byte{0x0a, 0x05, 0x01} // a length past the end
			badCount := bad
			if !c.Binary() {
				bad, badCount = []byte(`{"text":5}`), []byte(`{"count":"many"}`)
			}
			cl.send(&protowsv1.Envelope{Id: 5, Kind: protowsv1.Kind_KIND_REQUEST, Method: testservice.EchoMethod, Payload: bad})
			wantError(t, cl.recv(), protowsv1.Kind_KIND_ERROR, protows.CodeInvalidArgument)
			// The same for a stream: refused before it starts, so ERROR.
			cl.send(&protowsv1.Envelope{Id: 6, Kind: protowsv1.Kind_KIND_REQUEST, Method: testservice.CountMethod, Payload: badCount})
			wantError(t, cl.recv(), protowsv1.Kind_KIND_ERROR, protows.CodeInvalidArgument)

			// Unknown method by id.
			cl.send(&protowsv1.Envelope{Id: 7, Kind: protowsv1.Kind_KIND_REQUEST, MethodId: 12345})
			wantError(t, cl.recv(), protowsv1.Kind_KIND_ERROR, protows.CodeUnimplemented)

			// In-flight limit.
			long := &testv1.SleepRequest{Delay: durationpb.New(time.Minute)}
			cl.send(cl.request(10, testservice.SleepMethod, long), cl.request(11, testservice.SleepMethod, long), cl.request(12, testservice.EchoMethod, &testv1.EchoRequest{}))
			r := cl.recv()
			if r.GetId() != 12 {
				t.Fatalf("want the refusal of 12, got %v", r)
			}
			wantError(t, r, protowsv1.Kind_KIND_ERROR, protows.CodeResourceExhausted)
			cl.send(&protowsv1.Envelope{Id: 10, Kind: protowsv1.Kind_KIND_CANCEL}, &protowsv1.Envelope{Id: 11, Kind: protowsv1.Kind_KIND_CANCEL})
			wantError(t, cl.recv(), protowsv1.Kind_KIND_ERROR, protows.CodeCanceled)
			wantError(t, cl.recv(), protowsv1.Kind_KIND_ERROR, protows.CodeCanceled)
			if r := cl.call(13, testservice.EchoMethod, &testv1.EchoRequest{}); r.GetKind() != protowsv1.Kind_KIND_REPLY {
				t.Fatal(r)
			}
		})
	}
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	for _, c := range codecs {
		t.Run(c.Name(), func(t *testing.T) {
			t.Parallel()
			ts := startServer(t, transport.Config{RateLimit: 10, RateBurst: 20})
			cl := dial(t, ts.url, c, nil)
			envs := make([]*protowsv1.Envelope, 50)
			for i := range envs {
				envs[i] = &protowsv1.Envelope{Id: uint32(i + 1), Kind: protowsv1.Kind_KIND_PING}
			}
			cl.send(envs...)
			cl.expectClose(protows.CloseRateLimited)
			checkServing(t, ts, c)
		})
	}
}

// dropMetrics counts send queue overflows.
type dropMetrics struct {
	transport.NopMetrics
	drops   atomic.Int64
	dropped chan struct{} // closed at the first overflow
}

func newDropMetrics() *dropMetrics { return &dropMetrics{dropped: make(chan struct{})} }

func (m *dropMetrics) SendQueueDropped() {
	if m.drops.Add(1) == 1 {
		close(m.dropped)
	}
}

// waitDrop waits for the first overflow.
func (m *dropMetrics) waitDrop(t *testing.T) {
	t.Helper()
	select {
	case <-m.dropped:
	case <-time.After(10 * time.Second):
		t.Fatal("the send queue never overflowed")
	}
}

// TestSlowConsumer: room broadcasts (Call.Enqueue) never wait, so a client
// that does not read overflows the send queue: close 4008.
func TestSlowConsumer(t *testing.T) {
	t.Parallel()
	for _, c := range codecs {
		t.Run(c.Name(), func(t *testing.T) {
			t.Parallel()
			m := newDropMetrics()
			ts := startServer(t, transport.Config{SendQueue: 16, Metrics: m}, registerBroadcastFlood(t))
			cl := dial(t, ts.url, c, nil)
			cl.setReadBuffer(4096)
			// Endless broadcasts to a client that does not read.
			cl.send(cl.request(1, broadcastFloodMethod, &testv1.CountRequest{}))
			m.waitDrop(t)
			cl.expectClose(protows.CloseSlowConsumer)
			checkServing(t, ts, c)
		})
	}
}

func TestHeartbeatTimeout(t *testing.T) {
	t.Parallel()
	for _, c := range codecs {
		t.Run(c.Name(), func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) { testHeartbeatTimeout(t, c) })
		})
	}
}

func testHeartbeatTimeout(t *testing.T, c codec.Codec) {
	const readTimeout = 300 * time.Millisecond
	ts := startMemServer(t, transport.Config{PingInterval: 50 * time.Millisecond, ReadTimeout: readTimeout})
	// This client answers pings (gorilla answers while reading): it
	// stays connected past several read timeouts.
	alive := ts.dial(t, c, nil)
	aliveEnded := make(chan error, 1)
	go func() {
		for {
			if _, _, err := alive.ws.ReadMessage(); err != nil {
				aliveEnded <- err
				return
			}
		}
	}()
	// This one reads, but answers no ping.
	dead := ts.dial(t, c, nil)
	dead.ws.SetPingHandler(func(string) error { return nil })
	start := time.Now()
	dead.expectClose(protows.CloseHeartbeatTimeout)
	// On the bubble's clock: the close comes when the silence reaches
	// the read timeout, neither sooner nor later.
	if d := time.Since(start); d != readTimeout {
		t.Errorf("closed after %v of silence, want %v", d, readTimeout)
	}
	time.Sleep(3 * readTimeout)
	select {
	case err := <-aliveEnded:
		t.Fatalf("the live client was dropped: %v", err)
	default:
	}
	if err := alive.ws.WriteMessage(websocket.PingMessage, nil); err != nil {
		t.Fatalf("the live client was dropped: %v", err)
	}
}

func TestCompressionBomb(t *testing.T) {
	t.Parallel()
	ts := startServer(t, transport.Config{EnableCompression: true, CompressionMinSize: 64, MaxMessageSize: 64 << 10})
	for _, c := range codecs {
		t.Run(c.Name(), func(t *testing.T) {
			d := websocket.Dialer{Subprotocols: []string{c.Name()}, EnableCompression: true}
			ws, _, err := d.Dial(ts.url, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer ws.Close()
			cl := &client{t: t, ws: ws, c: c}
			// Compression works for normal traffic, both ways.
			big := bytes.Repeat([]byte("a"), 10<<10)
			e := cl.call(1, testservice.EchoMethod, &testv1.EchoRequest{Padding: big})
			var res testv1.EchoResponse
			cl.decode(e, &res)
			if !bytes.Equal(res.GetPadding(), big) {
				t.Fatal("echo through deflate differs")
			}
			// 4 MiB of spaces deflate to a few KiB: below the wire limit,
			// 64 times the decompressed one. The server may close before
			// the client finished writing, so a write error is expected.
			ws.EnableWriteCompression(true)
			bomb := bytes.Repeat([]byte(" "), 4<<20)
			_ = ws.WriteMessage(cl.msgType(), bomb)
			cl.expectClose(protows.CloseMessageTooBig)
			checkServing(t, ts, c)
		})
	}
}

// closeMetrics records the close codes of ended connections.
type closeMetrics struct {
	transport.NopMetrics
	closed chan int
}

func (m *closeMetrics) ConnClosed(_ string, code int) {
	select {
	case m.closed <- code:
	default: // only the first close matters
	}
}

// TestClientNeverReads: a client that never reads at all cannot receive a
// close frame; broadcasts overflow the server's queue (4008), the pending
// write misses its deadline, and the connection ends within about
// WriteTimeout. It runs on real TCP, not in a synctest bubble on
// internal/memnet: there a full in-memory buffer keeps the close frame out
// entirely and the server records 1006, while a kernel's socket buffers
// take the close frame after the overflow.
func TestClientNeverReads(t *testing.T) {
	m := &closeMetrics{closed: make(chan int, 1)}
	ts := startServer(t, transport.Config{SendQueue: 16, WriteTimeout: 300 * time.Millisecond, Metrics: m}, registerBroadcastFlood(t))
	cl := dial(t, ts.url, codec.Proto(), nil)
	cl.setReadBuffer(4096)
	cl.send(cl.request(1, broadcastFloodMethod, &testv1.CountRequest{}))
	select {
	case code := <-m.closed:
		if code != int(protows.CloseSlowConsumer) {
			t.Fatalf("closed with %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the server kept a connection that never reads")
	}
	checkServing(t, ts, codec.Proto())
}

// TestRandomFrames sends pseudo-random bytes, one frame per connection:
// each either gets served or ends with a documented close code, and the
// server survives them all.
func TestRandomFrames(t *testing.T) {
	t.Parallel()
	documented := map[protows.CloseCode]bool{
		protows.CloseProtocolError: true, protows.CloseUnsupportedData: true,
		protows.CloseInvalidPayload: true, protows.CloseMessageTooBig: true,
	}
	rng := rand.New(rand.NewPCG(3, 4))
	ts := startServer(t, transport.Config{MaxMessageSize: 512})
	for i := range 100 {
		c := codecs[i%2]
		cl := dial(t, ts.url, c, nil)
		b := make([]byte, rng.IntN(600))
		for j := range b {
			b[j] = byte(rng.UintN(256))
		}
		if i%4 < 2 && len(b) > 2 { // half of them look like the start of a frame
			if c.Binary() {
				b[0] = 0x0a
			} else {
				b[0] = '{'
			}
		}
		cl.sendRaw(cl.msgType(), b)
		cl.send(&protowsv1.Envelope{Id: 7, Kind: protowsv1.Kind_KIND_PING})
		for {
			e, err := cl.next(5 * time.Second)
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				if !documented[protows.CloseCode(ce.Code)] {
					t.Fatalf("frame %x: close %d", b, ce.Code)
				}
				break
			}
			if err != nil {
				t.Fatalf("frame %x: %v", b, err)
			}
			if e.GetKind() == protowsv1.Kind_KIND_PONG && e.GetId() == 7 {
				break // the frame was harmless
			}
		}
		cl.ws.Close()
	}
	checkServing(t, ts, codec.JSON())
}

// TestFarOversizedMessageGetsItsCloseCode: the server stops reading a
// message at the size limit with most of it still in flight. Closing the
// socket then would make the kernel reset the connection, failing the
// client's writes and possibly destroying the close frame; the client must
// be able to finish writing and read close 1009, every time.
func TestFarOversizedMessageGetsItsCloseCode(t *testing.T) {
	t.Parallel()
	ts := startServer(t, transport.Config{MaxMessageSize: 1 << 10})
	big := bytes.Repeat([]byte{0x0a}, 256<<10)
	for i := range 10 {
		cl := dial(t, ts.url, codec.Proto(), nil)
		cl.sendRaw(websocket.BinaryMessage, big)
		time.Sleep(10 * time.Millisecond) // the server has sent its close by now
		cl.send(&protowsv1.Envelope{Id: 1, Kind: protowsv1.Kind_KIND_PING})
		_, err := cl.next(5 * time.Second)
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != int(protows.CloseMessageTooBig) {
			t.Fatalf("connection %d: %v, want close %d", i, err, protows.CloseMessageTooBig)
		}
		cl.ws.Close()
	}
	checkServing(t, ts, codec.Proto())
}

// TestJSONKinds: in the JSON codec a kind is a name; an unknown name or a
// number makes the frame undecodable (1007), while a known kind a client
// may not send, or none, is a protocol violation (1002).
func TestJSONKinds(t *testing.T) {
	t.Parallel()
	ts := startServer(t, transport.Config{})
	for _, tc := range []struct {
		frame string
		code  protows.CloseCode
	}{
		{`{"id":1,"kind":"bogus"}`, protows.CloseInvalidPayload},
		{`{"id":1,"kind":"PING"}`, protows.CloseInvalidPayload},
		{`{"id":1,"kind":7}`, protows.CloseInvalidPayload},
		{`{"id":1,"kind":"reply"}`, protows.CloseProtocolError},
		{`{"id":1}`, protows.CloseProtocolError},
	} {
		t.Run(tc.frame, func(t *testing.T) {
			cl := dial(t, ts.url, codec.JSON(), nil)
			cl.sendRaw(websocket.TextMessage, []byte(tc.frame))
			cl.expectClose(tc.code)
		})
	}
}

// TestPongMayOvertakeReplies: a PING is answered when it is read, a
// REQUEST when its handler returns: the PONG of a PING sent after a
// REQUEST may come first (PROTOCOL.md section 7), so a PONG is no barrier.
func TestPongMayOvertakeReplies(t *testing.T) {
	t.Parallel()
	for _, c := range codecs {
		t.Run(c.Name(), func(t *testing.T) {
			ts := startServer(t, transport.Config{})
			cl := dial(t, ts.url, c, nil)
			cl.send(cl.request(1, testservice.SleepMethod, &testv1.SleepRequest{Delay: durationpb.New(100 * time.Millisecond)}),
				&protowsv1.Envelope{Id: 2, Kind: protowsv1.Kind_KIND_PING})
			if e := cl.recv(); e.GetKind() != protowsv1.Kind_KIND_PONG || e.GetId() != 2 {
				t.Fatalf("want the PONG first, got %v", e)
			}
			if e := cl.recv(); e.GetKind() != protowsv1.Kind_KIND_REPLY || e.GetId() != 1 {
				t.Fatalf("want the REPLY, got %v", e)
			}
		})
	}
}
