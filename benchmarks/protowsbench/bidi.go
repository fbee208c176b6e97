package protowsbench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/protows/protows/benchmarks/harness"
	"github.com/protows/protows/benchmarks/payload"
	"github.com/protows/protows/client"
	benchv1 "github.com/protows/protows/gen/go/protows/bench/v1"
	"google.golang.org/protobuf/proto"
)

// Bidi is echo on one bidirectional stream per connection:
// BenchService.EchoStream, through the generated client. Each connection
// keeps Params.InFlight samples in flight on its stream (as many as the
// echo scenario keeps calls in flight), stamped with the time they were
// sent; latency is from the stamp to the echo's decoding. Flow control
// (docs/PROTOCOL.md, section 4.6) paces both directions. The echo
// scenarios of the same run are the baselines: protows unary echo (a
// REQUEST and a REPLY per sample) and raw gorilla/websocket echo.
func Bidi() harness.Scenario {
	return harness.Scenario{
		Name: "bidi", Impl: Impl, Codecs: []string{harness.CodecProto, harness.CodecJSON},
		NewServer: func(harness.Params) (harness.Server, error) { return NewServer() },
		Connect:   connectBidi,
	}
}

type bidiLoad struct {
	clients []*client.Client
	sample  *benchv1.Sample
	size    int
	window  int
	perConn int64
}

func connectBidi(ctx context.Context, url string, p harness.Params) (harness.Load, error) {
	c, err := codecOf(p.Codec)
	if err != nil {
		return nil, err
	}
	sample := payload.New(p.Size)
	b, err := c.AppendPayload(nil, &benchv1.EchoStreamRequest{Sample: sample})
	if err != nil {
		return nil, err
	}
	clients, err := dialAll(ctx, url, c, p.Conns)
	if err != nil {
		return nil, err
	}
	return &bidiLoad{clients: clients, sample: sample, size: len(b), window: p.Window(), perConn: p.PerConn(p.Conns)}, nil
}

func (l *bidiLoad) Run(ctx context.Context, rec *harness.Recorder) error {
	var wg sync.WaitGroup
	errs := make([]error, len(l.clients))
	for i, cl := range l.clients {
		wg.Go(func() { errs[i] = l.runConn(ctx, benchv1.NewBenchServiceClient(cl), rec.Series()) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// runConn sends samples on one stream, at most window ahead of the
// echoes, until ctx is done or perConn were sent, then half-closes and
// reads the echoes to the end.
func (l *bidiLoad) runConn(ctx context.Context, bc *benchv1.BenchServiceClient, series *harness.Series) error {
	stream, err := bc.EchoStream(context.Background())
	if err != nil {
		return fmt.Errorf("protows bidi: %w", err)
	}
	defer stream.Close()
	slots := make(chan struct{}, l.window)
	sendErr := make(chan error, 1)
	go func() {
		req := &benchv1.EchoStreamRequest{Sample: proto.CloneOf(l.sample)}
		for n := int64(0); n < l.perConn && ctx.Err() == nil; n++ {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
			}
			if ctx.Err() != nil {
				break
			}
			req.Sample.Timestamp = time.Now().UnixNano()
			// Send encodes before it returns: the message may change after.
			if err := stream.Send(req); err != nil {
				sendErr <- fmt.Errorf("protows bidi: send: %w", err)
				return
			}
		}
		sendErr <- stream.CloseSend()
	}()
	for {
		res, err := stream.Receive()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("protows bidi: receive: %w", err)
		}
		series.Record(time.Duration(time.Now().UnixNano()-res.GetSample().GetTimestamp()), 2*l.size, 2)
		<-slots
	}
	return <-sendErr
}

func (l *bidiLoad) Close() error { return closeAll(l.clients) }
