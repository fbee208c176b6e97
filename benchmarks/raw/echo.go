package raw

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/protows/protows/benchmarks/harness"
	"github.com/protows/protows/benchmarks/payload"
	"github.com/protows/protows/codec"
	benchv1 "github.com/protows/protows/gen/go/protows/bench/v1"
)

// Echo is request/reply echo over raw gorilla/websocket: each connection
// keeps Params.InFlight requests in flight; the server decodes each
// EchoRequest and answers an EchoResponse with the same sample, in order.
// Requests and replies are exactly the payload bytes a protows envelope
// would carry, with no envelope: the application work is the same, the
// framework is absent.
func Echo() harness.Scenario {
	return harness.Scenario{
		Name: "echo", Impl: Impl, Codecs: []string{harness.CodecProto, harness.CodecJSON},
		NewServer: newEchoServer,
		Connect:   connectEcho,
	}
}

func newEchoServer(p harness.Params) (harness.Server, error) {
	c, mt, err := payloadCodec(p.Codec)
	if err != nil {
		return nil, err
	}
	return newServer(func(conn *websocket.Conn) {
		var out []byte
		for {
			_, msg, err := conn.ReadMessage()
			if err != nil {
				return
			}
			var req benchv1.EchoRequest
			if err := c.UnmarshalPayload(msg, &req); err != nil {
				return
			}
			out, err = c.AppendPayload(out[:0], &benchv1.EchoResponse{Sample: req.Sample})
			if err != nil {
				return
			}
			_ = conn.SetWriteDeadline(time.Now().Add(ioTimeout))
			if err := conn.WriteMessage(mt, out); err != nil {
				return
			}
		}
	}), nil
}

type echoLoad struct {
	conns  []*websocket.Conn
	codec  codec.Codec
	mt     int
	sample *benchv1.Sample
	size   int // bytes of one request (and reply) payload
	window int
}

func connectEcho(ctx context.Context, url string, p harness.Params) (harness.Load, error) {
	c, mt, err := payloadCodec(p.Codec)
	if err != nil {
		return nil, err
	}
	sample := payload.New(p.Size)
	b, err := c.AppendPayload(nil, &benchv1.EchoRequest{Sample: sample})
	if err != nil {
		return nil, err
	}
	conns, err := dialAll(ctx, url, p.Conns)
	if err != nil {
		return nil, err
	}
	return &echoLoad{conns: conns, codec: c, mt: mt, sample: sample, size: len(b), window: p.Window()}, nil
}

func (l *echoLoad) Run(ctx context.Context, rec *harness.Recorder) error {
	var wg sync.WaitGroup
	errs := make([]error, len(l.conns))
	for i, conn := range l.conns {
		wg.Go(func() { errs[i] = l.runConn(ctx, conn, rec) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// runConn pipelines requests on one connection: a writer sends while it
// holds one of window slots, a reader matches replies to send times in
// order (the raw server answers in order, having no correlation ids) and
// frees a slot for each. So at most window requests are in flight, and none
// is sent once ctx is done.
func (l *echoLoad) runConn(ctx context.Context, conn *websocket.Conn, rec *harness.Recorder) error {
	slots := make(chan struct{}, l.window)
	sent := make(chan time.Time, l.window)
	werr := make(chan error, 1)
	go func() {
		defer close(sent)
		var buf []byte
		for {
			select {
			case <-ctx.Done():
				werr <- nil
				return
			case slots <- struct{}{}:
			}
			if ctx.Err() != nil {
				werr <- nil
				return
			}
			var err error
			buf, err = l.codec.AppendPayload(buf[:0], &benchv1.EchoRequest{Sample: l.sample})
			if err == nil {
				// The send time is queued first, so the reader never
				// sees a reply before its time.
				sent <- time.Now()
				_ = conn.SetWriteDeadline(time.Now().Add(ioTimeout))
				err = conn.WriteMessage(l.mt, buf)
			}
			if err != nil {
				werr <- fmt.Errorf("raw echo: write: %w", err)
				_ = conn.Close() // unblocks the reader
				return
			}
		}
	}()
	series := rec.Series()
	var rerr error
	for start := range sent {
		if rerr == nil {
			rerr = l.receive(conn, start, series)
			if rerr != nil {
				_ = conn.Close() // unblocks the writer
			}
		}
		<-slots
	}
	return errors.Join(<-werr, rerr)
}

// receive reads and decodes one reply and records its round trip.
func (l *echoLoad) receive(conn *websocket.Conn, start time.Time, series *harness.Series) error {
	_ = conn.SetReadDeadline(time.Now().Add(ioTimeout))
	_, msg, err := conn.ReadMessage()
	if err != nil {
		return fmt.Errorf("raw echo: read: %w", err)
	}
	var res benchv1.EchoResponse
	if err := l.codec.UnmarshalPayload(msg, &res); err != nil {
		return fmt.Errorf("raw echo: reply: %w", err)
	}
	series.Record(time.Since(start), 2*l.size, 2)
	return nil
}

func (l *echoLoad) Close() error {
	closeAll(l.conns)
	return nil
}
