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

// Push is server push over raw gorilla/websocket: each connection asks for
// a stream of Params.Burst PushResponses with a PushRequest, reads them up to
// the empty message that ends the stream (as STREAM_END would), and asks
// again, until the bound. The server encodes each message, stamped with the
// time it was encoded; latency is from the stamp to the client's decoding.
func Push() harness.Scenario {
	return harness.Scenario{
		Name: "push", Impl: Impl, Codecs: []string{harness.CodecProto, harness.CodecJSON},
		Shape:     harness.Stream,
		NewServer: newPushServer,
		Connect:   connectPush,
	}
}

func newPushServer(p harness.Params) (harness.Server, error) {
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
			var req benchv1.PushRequest
			if err := c.UnmarshalPayload(msg, &req); err != nil {
				return
			}
			res := &benchv1.PushResponse{Sample: req.Sample}
			if res.Sample == nil {
				res.Sample = &benchv1.Sample{}
			}
			for range req.Count {
				res.Sample.Timestamp = time.Now().UnixNano()
				out, err = c.AppendPayload(out[:0], res)
				if err != nil {
					return
				}
				_ = conn.SetWriteDeadline(time.Now().Add(ioTimeout))
				if err := conn.WriteMessage(mt, out); err != nil {
					return
				}
			}
			_ = conn.SetWriteDeadline(time.Now().Add(ioTimeout))
			if err := conn.WriteMessage(mt, nil); err != nil {
				return
			}
		}
	}), nil
}

type pushLoad struct {
	conns []*websocket.Conn
	codec codec.Codec
	mt    int
	req   *benchv1.PushRequest
	size  int // bytes of one PushResponse payload
}

func connectPush(ctx context.Context, url string, p harness.Params) (harness.Load, error) {
	c, mt, err := payloadCodec(p.Codec)
	if err != nil {
		return nil, err
	}
	sample := payload.New(p.Size)
	b, err := c.AppendPayload(nil, &benchv1.PushResponse{Sample: sample})
	if err != nil {
		return nil, err
	}
	conns, err := dialAll(ctx, url, p.Conns)
	if err != nil {
		return nil, err
	}
	req := &benchv1.PushRequest{Count: uint32(p.StreamBurst()), Sample: sample}
	return &pushLoad{conns: conns, codec: c, mt: mt, size: len(b), req: req}, nil
}

func (l *pushLoad) Run(ctx context.Context, rec *harness.Recorder) error {
	var wg sync.WaitGroup
	errs := make([]error, len(l.conns))
	for i, conn := range l.conns {
		wg.Go(func() { errs[i] = l.runConn(ctx, conn, rec) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (l *pushLoad) runConn(ctx context.Context, conn *websocket.Conn, rec *harness.Recorder) error {
	req, err := l.codec.AppendPayload(nil, l.req)
	if err != nil {
		return err
	}
	series := rec.Series()
	for ctx.Err() == nil {
		_ = conn.SetWriteDeadline(time.Now().Add(ioTimeout))
		if err := conn.WriteMessage(l.mt, req); err != nil {
			return fmt.Errorf("raw push: request: %w", err)
		}
		for {
			_ = conn.SetReadDeadline(time.Now().Add(ioTimeout))
			_, msg, err := conn.ReadMessage()
			if err != nil {
				return fmt.Errorf("raw push: read: %w", err)
			}
			if len(msg) == 0 {
				break // the end of the stream
			}
			var res benchv1.PushResponse
			if err := l.codec.UnmarshalPayload(msg, &res); err != nil {
				return fmt.Errorf("raw push: message: %w", err)
			}
			series.Record(time.Duration(time.Now().UnixNano()-res.GetSample().GetTimestamp()), l.size, 1)
		}
	}
	return nil
}

func (l *pushLoad) Close() error {
	closeAll(l.conns)
	return nil
}
