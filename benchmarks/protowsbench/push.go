package protowsbench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/protows/protows/benchmarks/harness"
	"github.com/protows/protows/benchmarks/payload"
	"github.com/protows/protows/client"
	benchv1 "github.com/protows/protows/gen/go/protows/bench/v1"
)

// Push is server push on protows: each connection calls BenchService.Push
// for Params.Burst messages, reads the stream to its end, and calls again,
// until the bound. The handler stamps each message with the time it was
// encoded; latency is from the stamp to the client's decoding.
//
// Streams are bursts so that each repetition opens streams too, not only
// sends on them. The client grants credit (flow control, docs/PROTOCOL.md
// section 4.6), so a burst longer than its window waits for the reader
// rather than overflowing the send queue.
func Push() harness.Scenario {
	return harness.Scenario{
		Name: "push", Impl: Impl, Codecs: []string{harness.CodecProto, harness.CodecJSON},
		Shape:     harness.Stream,
		NewServer: func(harness.Params) (harness.Server, error) { return NewServer() },
		Connect:   connectPush,
	}
}

type pushLoad struct {
	clients []*client.Client
	req     *benchv1.PushRequest
	size    int
}

func connectPush(ctx context.Context, url string, p harness.Params) (harness.Load, error) {
	c, err := codecOf(p.Codec)
	if err != nil {
		return nil, err
	}
	sample := payload.New(p.Size)
	b, err := c.AppendPayload(nil, &benchv1.PushResponse{Sample: sample})
	if err != nil {
		return nil, err
	}
	clients, err := dialAll(ctx, url, c, p.Conns)
	if err != nil {
		return nil, err
	}
	req := &benchv1.PushRequest{Count: uint32(p.StreamBurst()), Sample: sample}
	return &pushLoad{clients: clients, req: req, size: len(b)}, nil
}

func (l *pushLoad) Run(ctx context.Context, rec *harness.Recorder) error {
	var wg sync.WaitGroup
	errs := make([]error, len(l.clients))
	for i, cl := range l.clients {
		wg.Go(func() { errs[i] = l.runConn(ctx, benchv1.NewBenchServiceClient(cl), rec.Series()) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (l *pushLoad) runConn(ctx context.Context, bc *benchv1.BenchServiceClient, series *harness.Series) error {
	for ctx.Err() == nil {
		stream, err := bc.Push(context.Background(), l.req, client.NoResubscribe())
		if err != nil {
			return fmt.Errorf("protows push: %w", err)
		}
		n := 0
		for stream.Receive() {
			ts := stream.Msg().GetSample().GetTimestamp()
			series.Record(time.Duration(time.Now().UnixNano()-ts), l.size, 1)
			n++
		}
		if err := stream.Err(); err != nil {
			return fmt.Errorf("protows push: stream: %w", err)
		}
		if n != int(l.req.GetCount()) {
			return fmt.Errorf("protows push: stream of %d messages, want %d", n, l.req.GetCount())
		}
	}
	return nil
}

func (l *pushLoad) Close() error { return closeAll(l.clients) }
