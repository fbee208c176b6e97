package transport

import (
	"bytes"
	"context"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/protows/protows/codec"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
)

// TestReaderHops checks when the connection's reader hands reading on to a
// fresh goroutine (see read): after each of the first freshReads messages,
// never while messages keep coming, and again after a silence of idleGap.
// It tells the reader goroutines apart by their ids in runtime.Stack.
func TestReaderHops(t *testing.T) {
	// No silence counts: messages come back to back.
	ping := startReaderTest(t, time.Hour)
	var ids []string
	for i := range uint32(2 * freshReads) {
		ids = append(ids, parkedReader(t))
		ping(i + 1)
	}
	ids = append(ids, parkedReader(t))
	for i := range freshReads {
		if ids[i] == ids[i+1] {
			t.Errorf("message %d of the connection was not followed by a hop: reader %s before and after", i+1, ids[i])
		}
	}
	for i := freshReads; i < 2*freshReads; i++ {
		if ids[i] != ids[i+1] {
			t.Errorf("message %d of a busy connection was followed by a hop: reader %s, then %s", i+1, ids[i], ids[i+1])
		}
	}
}

func TestReaderHopsAfterSilence(t *testing.T) {
	ping := startReaderTest(t, 20*time.Millisecond)
	for i := range uint32(2 * freshReads) {
		ping(i + 1)
	}
	time.Sleep(100 * time.Millisecond)
	before := parkedReader(t)
	ping(100)
	if after := parkedReader(t); after == before {
		t.Errorf("a message after a silence was not followed by a hop: reader %s before and after", before)
	}
}

// startReaderTest starts a server whose readers count a silence from gap
// on, connects to it, and returns a function that sends a PING and waits
// for its PONG.
func startReaderTest(t *testing.T, gap time.Duration) func(id uint32) {
	s := NewServer(nil, Config{RateLimit: -1})
	s.idleGap = gap
	hs := httptest.NewServer(s)
	c := codec.Proto()
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(hs.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ws.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		hs.Close()
	})
	return func(id uint32) {
		t.Helper()
		frame, err := codec.MarshalFrame(c, &protowsv1.Envelope{Id: id, Kind: protowsv1.Kind_KIND_PING})
		if err != nil {
			t.Fatal(err)
		}
		if err := ws.WriteMessage(websocket.BinaryMessage, frame); err != nil {
			t.Fatal(err)
		}
		_, b, err := ws.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		envs, err := c.DecodeFrame(b)
		if err != nil || len(envs) != 1 || envs[0].GetKind() != protowsv1.Kind_KIND_PONG || envs[0].GetId() != id {
			t.Fatalf("PING %d: got %v, %v", id, envs, err)
		}
	}
}

// parkedReader waits until exactly one goroutine runs the connection's
// reader and waits for the network in it, and returns its id.
func parkedReader(t *testing.T) string {
	t.Helper()
	buf := make([]byte, 1<<20)
	deadline := time.Now().Add(5 * time.Second)
	for {
		buf = buf[:runtime.Stack(buf[:cap(buf)], true)]
		var readers, parked []string
		for g := range bytes.SplitSeq(buf, []byte("\n\n")) {
			if !bytes.Contains(g, []byte("transport.(*Conn).read(")) {
				continue
			}
			header, _, _ := bytes.Cut(g, []byte("\n")) // "goroutine 42 [IO wait]:"
			id := strings.Fields(string(header))[1]
			readers = append(readers, id)
			if bytes.Contains(header, []byte("[IO wait")) {
				parked = append(parked, id)
			}
		}
		if len(readers) == 1 && len(parked) == 1 {
			return parked[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no single parked reader: readers %v, parked %v", readers, parked)
		}
		time.Sleep(time.Millisecond)
	}
}
