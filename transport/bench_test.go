package transport_test

import (
	"bufio"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
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

// The environment of the client helper process of BenchmarkIdleConnMemory.
const (
	envIdleURL   = "PROTOWS_IDLE_CLIENTS_URL"
	envIdleCount = "PROTOWS_IDLE_CLIENTS_N"
)

// TestIdleClientsHelper is not a test: BenchmarkIdleConnMemory runs the test
// binary again with this test selected and the environment set, so that
// the clients' memory is not counted in the server's process. Without the
// environment it checks nothing and returns.
func TestIdleClientsHelper(t *testing.T) {
	url := os.Getenv(envIdleURL)
	if url == "" {
		return
	}
	n, _ := strconv.Atoi(os.Getenv(envIdleCount))
	d := websocket.Dialer{Subprotocols: []string{codec.ProtoName}, HandshakeTimeout: 10 * time.Second}
	conns := make([]*websocket.Conn, 0, n)
	for range n {
		ws, _, err := d.Dial(url, nil)
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		conns = append(conns, ws)
	}
	fmt.Println("ready")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n') // until the parent closes stdin
	for _, ws := range conns {
		ws.Close()
	}
	os.Exit(0)
}

// rawGorilla is the baseline: the idiomatic gorilla/websocket echo server,
// one goroutine per connection reading in the handler.
type rawGorilla struct {
	up   websocket.Upgrader
	open atomic.Int64
}

func (s *rawGorilla) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ws, err := s.up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	s.open.Add(1)
	defer s.open.Add(-1)
	defer ws.Close()
	for {
		mt, b, err := ws.ReadMessage()
		if err != nil {
			return
		}
		if ws.WriteMessage(mt, b) != nil {
			return
		}
	}
}

// countingMetrics counts open connections.
type countingMetrics struct {
	transport.NopMetrics
	open atomic.Int64
}

func (m *countingMetrics) ConnOpened(string)      { m.open.Add(1) }
func (m *countingMetrics) ConnClosed(string, int) { m.open.Add(-1) }

// BenchmarkIdleConnMemory measures the server-side memory of idle
// connections, protows against raw gorilla in the same run, with the
// clients in a child process:
//
//	go test ./transport -run '^$' -bench IdleConnMemory -benchtime 1x
func BenchmarkIdleConnMemory(b *testing.B) {
	const n = 1000
	m := &countingMetrics{}
	raw := &rawGorilla{up: websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}}
	for _, tc := range []struct {
		name string
		h    http.Handler
		open func() int64
	}{
		{"gorilla", raw, raw.open.Load},
		{"protows", nil, m.open.Load},
	} {
		b.Run(tc.name, func(b *testing.B) {
			h := tc.h
			if h == nil {
				h = startServer(b, transport.Config{Metrics: m}).Server
			}
			hs := httptest.NewServer(h)
			defer hs.Close()
			for range b.N {
				perConn, goroutines := measureIdle(b, "ws"+strings.TrimPrefix(hs.URL, "http"), n, tc.open)
				b.ReportMetric(perConn, "bytes/conn")
				b.ReportMetric(goroutines, "goroutines/conn")
			}
		})
	}
}

func measureIdle(b *testing.B, url string, n int, open func() int64) (float64, float64) {
	b.Helper()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	g0 := runtime.NumGoroutine()

	cmd := exec.Command(os.Args[0], "-test.run=^TestIdleClientsHelper$")
	cmd.Env = append(os.Environ(), envIdleURL+"="+url, envIdleCount+"="+strconv.Itoa(n))
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		stdin.Close()
		_ = cmd.Wait()
		for deadline := time.Now().Add(10 * time.Second); open() != 0 && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "ready\n" {
		b.Fatalf("client helper: %q %v", line, err)
	}
	for deadline := time.Now().Add(10 * time.Second); open() != int64(n); {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d connections open", open(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)

	used := float64(after.HeapInuse+after.StackInuse) - float64(before.HeapInuse+before.StackInuse)
	return used / float64(n), float64(runtime.NumGoroutine()-g0) / float64(n)
}

// BenchmarkHandshake measures dial, upgrade and close of one connection.
func BenchmarkHandshake(b *testing.B) {
	ts := startServer(b, transport.Config{})
	d := websocket.Dialer{Subprotocols: []string{codec.ProtoName}}
	b.ReportAllocs()
	for b.Loop() {
		ws, _, err := d.Dial(ts.url, nil)
		if err != nil {
			b.Fatal(err)
		}
		ws.Close()
	}
}

// BenchmarkEcho measures the round trip of a unary Echo on one connection.
func BenchmarkEcho(b *testing.B) {
	for _, c := range codecs {
		b.Run(c.Name(), func(b *testing.B) {
			ts := startServer(b, transport.Config{RateLimit: -1}) // measure, do not police
			cl := dial(b, ts.url, c, nil)
			req := &testv1.EchoRequest{Text: "hello, world"}
			b.ReportAllocs()
			id := uint32(0)
			for b.Loop() {
				id++
				if e := cl.call(id, testservice.EchoMethod, req); e.GetKind() != protowsv1.Kind_KIND_REPLY {
					b.Fatal(e)
				}
			}
		})
	}
}

// BenchmarkEchoConcurrent measures unary echo under load, protows against
// raw gorilla in the same run: 16 connections, each keeping 8 calls in
// flight (one request per frame), with Protobuf. It reports calls/s and,
// for protows, the envelopes per frame the server wrote (its batching):
//
//	go test ./transport -run '^$' -bench EchoConcurrent -benchtime 100000x -count 5
func BenchmarkEchoConcurrent(b *testing.B) {
	const conns, inflight = 16, 8
	raw := &rawGorilla{up: websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}}
	for _, tc := range []struct {
		name string
		h    http.Handler
	}{
		{"gorilla", raw},
		{"protows", nil},
	} {
		b.Run(tc.name, func(b *testing.B) {
			h := tc.h
			if h == nil {
				h = startServer(b, transport.Config{RateLimit: -1}).Server
			}
			hs := httptest.NewServer(h)
			defer hs.Close()
			url := "ws" + strings.TrimPrefix(hs.URL, "http")
			cls := make([]*client, conns)
			for i := range cls {
				cls[i] = dial(b, url, codec.Proto(), nil)
			}
			var frames, envs atomic.Int64
			errs := make(chan error, conns)
			b.ResetTimer()
			start := time.Now()
			for i, cl := range cls {
				n := b.N / conns
				if i < b.N%conns {
					n++
				}
				go func() { errs <- echoLoad(cl, n, inflight, &frames, &envs) }()
			}
			for range conns {
				if err := <-errs; err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "calls/s")
			if tc.h == nil {
				b.ReportMetric(float64(envs.Load())/float64(frames.Load()), "envelopes/frame")
			}
		})
	}
}

// echoLoad makes n Echo calls on cl, inflight at a time, and counts the
// frames and envelopes it receives.
func echoLoad(cl *client, n, inflight int, frames, envs *atomic.Int64) error {
	req := &testv1.EchoRequest{Text: "hello, world"}
	payload, err := cl.c.AppendPayload(nil, req)
	if err != nil {
		return err
	}
	id := uint32(0)
	send := func() error {
		id++
		e := &protowsv1.Envelope{Id: id, Kind: protowsv1.Kind_KIND_REQUEST, MethodId: protows.MethodID(testservice.EchoMethod), Payload: payload}
		frame, err := marshal(cl, e)
		if err != nil {
			return err
		}
		_ = cl.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
		return cl.ws.WriteMessage(websocket.BinaryMessage, frame)
	}
	sent, done := 0, 0
	for ; sent < min(n, inflight); sent++ {
		if err := send(); err != nil {
			return err
		}
	}
	for done < n {
		_ = cl.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, b, err := cl.ws.ReadMessage()
		if err != nil {
			return err
		}
		got, err := cl.c.DecodeFrame(b)
		if err != nil {
			return err
		}
		frames.Add(1)
		envs.Add(int64(len(got)))
		for _, e := range got {
			if e.GetKind() != protowsv1.Kind_KIND_REPLY && e.GetKind() != protowsv1.Kind_KIND_REQUEST { // raw gorilla echoes the request
				return fmt.Errorf("unexpected %v", e)
			}
			done++
			if sent < n {
				sent++
				if err := send(); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
