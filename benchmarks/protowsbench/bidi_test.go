package protowsbench_test

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/protows/protows/benchmarks/payload"
	"github.com/protows/protows/benchmarks/protowsbench"
	"github.com/protows/protows/client"
	benchv1 "github.com/protows/protows/gen/go/protows/bench/v1"
)

// TestBidiMillionConstantMemory sends 1,000,000 samples through one
// bidirectional stream (100,000 under the race detector), 64 in flight,
// and reads the heap (after a GC) every tenth of the way: flow control
// keeps what both sides hold to their windows, so the heap does not grow
// with the messages.
func TestBidiMillionConstantMemory(t *testing.T) {
	total := 1_000_000
	if raceEnabled {
		total = 100_000
	}
	srv, err := protowsbench.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c, err := client.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	stream, err := benchv1.NewBenchServiceClient(c).EchoStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sample := payload.New(payload.Small)
	slots := make(chan struct{}, 64)
	sendErr := make(chan error, 1)
	go func() {
		req := &benchv1.EchoStreamRequest{Sample: sample}
		for range total {
			slots <- struct{}{}
			if err := stream.Send(req); err != nil {
				sendErr <- err
				return
			}
		}
		sendErr <- stream.CloseSend()
	}()
	var heaps []uint64
	start := time.Now()
	for n := 0; ; n++ {
		res, err := stream.Receive()
		if errors.Is(err, io.EOF) {
			if n != total {
				t.Fatalf("%d echoes, want %d", n, total)
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if res.GetSample().GetId() != sample.GetId() {
			t.Fatal("an echo is not the sample")
		}
		<-slots
		if n%(total/10) == 0 {
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			heaps = append(heaps, ms.HeapInuse)
		}
	}
	if err := <-sendErr; err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	lo, hi := heaps[0], heaps[0]
	for _, h := range heaps {
		lo, hi = min(lo, h), max(hi, h)
	}
	t.Logf("%d samples (%d messages) through one stream in %v (%.0f samples/s); heap in use %.2f to %.2f MiB over %d readings",
		total, 2*total, elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds(), float64(lo)/(1<<20), float64(hi)/(1<<20), len(heaps))
	// Constant: the heap varies by less than 4 MiB while 65 MiB of samples
	// (68 bytes each way) go through.
	if hi-lo > 4<<20 {
		t.Errorf("heap in use grew from %d to %d bytes", lo, hi)
	}
}
