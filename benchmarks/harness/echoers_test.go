package harness

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// echoServer serves on loopback a WebSocket server that answers each
// message with reply(n, msg) for the n-th message of its connection (from
// 1) and returns its ws:// URL; the test's cleanup stops it.
func echoServer(t *testing.T, reply func(n int, msg []byte) []byte) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var up websocket.Upgrader
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer conn.Close()
		for n := 1; ; n++ {
			mt, msg, err := conn.ReadMessage()
			if err != nil {
				return
			}
			if err := conn.WriteMessage(mt, reply(n, msg)); err != nil {
				return
			}
		}
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "ws://" + ln.Addr().String() + "/"
}

// TestEchoersCount: every request is answered and counted, replies
// coalesced in one frame count each, shorter messages do not, each
// connection numbers its requests 1, 2, 3... with SetID, and the run ends
// once the bound is reached and what was in flight has arrived.
func TestEchoersCount(t *testing.T) {
	url := echoServer(t, func(n int, msg []byte) []byte {
		if msg[len(msg)-1] != byte('0'+n%10) {
			return []byte("{not numbered")
		}
		if n%5 == 0 {
			// A frame of two lines answers this request and the next,
			// ahead of time; the next one gets a short line, which does
			// not count.
			return append(append(bytes.Clone(msg), '\n'), msg...)
		}
		if n%5 == 1 && n > 1 {
			return []byte("ping")
		}
		return msg
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	e, err := DialEchoers(ctx, url, "", 2, 4, EchoFrames{
		Frame: []byte("request #0"), Type: websocket.TextMessage,
		SetID: func(frame []byte, seq uint64) { frame[len(frame)-1] = byte('0' + seq%10) },
		Count: CountLines, Min: 5, Size: 10,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	run, stop := context.WithCancel(ctx)
	defer stop()
	rec := NewRecorder(200, 2, stop)
	if err := e.Run(run, rec); err != nil {
		t.Fatal(err)
	}
	if ctx.Err() != nil {
		t.Fatal("the run lasted until the test's deadline")
	}
	// The bound, and at most what was in flight when it was reached.
	if n := rec.Messages(); n < 200 || n > 200+2*4 {
		t.Errorf("%d replies counted, want 200 to 208", n)
	}
	if f := rec.frames.Load(); f <= rec.Messages() || f > 2*rec.Messages() {
		t.Errorf("%d frames for %d replies", f, rec.Messages())
	}
}

// TestEchoersRefuseMalformed: a reply frame the counter refuses fails the
// run, and the run ends.
func TestEchoersRefuseMalformed(t *testing.T) {
	url := echoServer(t, func(n int, msg []byte) []byte {
		if n == 20 {
			return []byte("{not a frame")
		}
		return msg
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	e, err := DialEchoers(ctx, url, "", 1, 4, EchoFrames{
		Frame: []byte(`{"a":1}`), Type: websocket.TextMessage, Count: CountJSONFrame, Min: 3, Size: 7,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	rec := NewRecorder(0, 1, nil)
	err = e.Run(ctx, rec)
	if err == nil || !strings.Contains(err.Error(), "does not count") {
		t.Fatalf("Run = %v, want a frame that does not count", err)
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatal("the run lasted until the test's deadline")
	}
	if n := rec.Messages(); n != 19 {
		t.Errorf("%d replies counted before the bad one, want 19", n)
	}
}

// TestPacedEchoersDueTime: paced echoers send on the schedule, and a
// request that is due while its connection's window is full waits for a
// reply, its latency counted from its due time, not from when it went
// out. The server takes 20 ms a reply and the window is one request, so a
// request sent at once after the previous reply would have taken 20 ms;
// measured from due times, 5 ms apart, the wait grows by 15 ms a request.
func TestPacedEchoersDueTime(t *testing.T) {
	url := echoServer(t, func(_ int, msg []byte) []byte {
		time.Sleep(20 * time.Millisecond)
		return msg
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p := Params{Conns: 1, Rate: 200}
	e, err := DialPacedEchoers(ctx, url, "", p, EchoFrames{
		Frame: []byte("request"), Type: websocket.TextMessage, Count: CountLines, Min: 5, Size: 7,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	e.window = 1
	run, stop := context.WithTimeout(ctx, 300*time.Millisecond)
	defer stop()
	rec := NewRecorder(1<<40, 1, stop)
	if err := e.Run(run, rec); err != nil {
		t.Fatal(err)
	}
	n := rec.Messages()
	// About 15 replies in 300 ms at 20 ms each; far fewer than the 60 due.
	if n < 3 || n > 20 {
		t.Fatalf("%d replies, want about 15", n)
	}
	lat := rec.sorted()
	// The last reply's request was due about 15 ms × (n-1) before it
	// came back; from its send time it would be 20 ms.
	if last, want := lat[len(lat)-1], time.Duration(n-1)*10*time.Millisecond; last < want {
		t.Errorf("slowest latency %v of %d replies, want at least %v (from due times)", last, n, want)
	}

	if _, err := DialPacedEchoers(ctx, url, "", Params{Conns: 1}, EchoFrames{}); err == nil {
		t.Error("paced echoers dialled without a rate")
	}
}
