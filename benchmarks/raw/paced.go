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

// EchoPaced is Echo on an open-loop schedule (harness.Paced): each
// connection's writer sends its share of Params.Rate requests per second,
// each at its due time whatever the replies do, and its reader records each
// reply's latency from its request's due time. Same server as Echo. It
// runs only when named (-scenarios echo-paced), with -rate or
// -peak-fraction.
func EchoPaced() harness.Scenario {
	s := Echo()
	s.Name, s.Shape, s.Explicit = "echo-paced", harness.Paced, true
	s.Connect = connectPaced
	return s
}

type pacedLoad struct {
	conns []*websocket.Conn
	p     harness.Params
	codec codec.Codec
	mt    int
	req   []byte // one request, encoded once: every request is the same
}

func connectPaced(ctx context.Context, url string, p harness.Params) (harness.Load, error) {
	c, mt, err := payloadCodec(p.Codec)
	if err != nil {
		return nil, err
	}
	req, err := c.AppendPayload(nil, &benchv1.EchoRequest{Sample: payload.New(p.Size)})
	if err != nil {
		return nil, err
	}
	if _, err := harness.Schedules(p, p.Conns, time.Now()); err != nil {
		return nil, err
	}
	conns, err := dialAll(ctx, url, p.Conns)
	if err != nil {
		return nil, err
	}
	return &pacedLoad{conns: conns, p: p, codec: c, mt: mt, req: req}, nil
}

func (l *pacedLoad) Run(ctx context.Context, rec *harness.Recorder) error {
	schedules, err := harness.Schedules(l.p, len(l.conns), time.Now())
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	errs := make([]error, len(l.conns))
	for i, conn := range l.conns {
		wg.Go(func() { errs[i] = l.runConn(ctx, conn, schedules[i], rec.Series()) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// pacedBacklog bounds the requests one connection has sent and not yet
// had answered. A writer that reaches it waits, and the wait counts in the
// latency of the requests it delays (they are measured from their due
// times), so it caps memory without hiding queueing.
const pacedBacklog = 4096

// runConn sends on the schedule and reads the replies, in order (the raw
// server answers in order, having no correlation ids), each recorded from
// its request's due time.
func (l *pacedLoad) runConn(ctx context.Context, conn *websocket.Conn, sched *harness.Schedule, series *harness.Series) error {
	sent := make(chan time.Time, pacedBacklog)
	werr := make(chan error, 1)
	go func() {
		defer close(sent)
		for {
			due, err := sched.Next(ctx)
			if err != nil {
				werr <- nil
				return
			}
			// The due time is queued first, so the reader never sees a
			// reply before its time.
			sent <- due
			_ = conn.SetWriteDeadline(time.Now().Add(ioTimeout))
			if err := conn.WriteMessage(l.mt, l.req); err != nil {
				werr <- fmt.Errorf("raw paced echo: write: %w", err)
				_ = conn.Close() // unblocks the reader
				return
			}
		}
	}()
	var rerr error
	for due := range sent {
		if rerr != nil {
			continue
		}
		if rerr = l.receive(conn, due, series); rerr != nil {
			_ = conn.Close() // unblocks the writer
		}
	}
	return errors.Join(<-werr, rerr)
}

// receive reads and decodes one reply and records its latency from due.
func (l *pacedLoad) receive(conn *websocket.Conn, due time.Time, series *harness.Series) error {
	_ = conn.SetReadDeadline(time.Now().Add(ioTimeout))
	_, msg, err := conn.ReadMessage()
	if err != nil {
		return fmt.Errorf("raw paced echo: read: %w", err)
	}
	var res benchv1.EchoResponse
	if err := l.codec.UnmarshalPayload(msg, &res); err != nil {
		return fmt.Errorf("raw paced echo: reply: %w", err)
	}
	series.Record(time.Since(due), 2*len(l.req), 2)
	return nil
}

func (l *pacedLoad) Close() error {
	closeAll(l.conns)
	return nil
}
