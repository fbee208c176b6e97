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

// pacedCallers is the callers of each connection of paced echo: the calls
// one connection can have in flight, far more than a paced run at a rate
// the server keeps up with needs (Little: rate × latency). When all are
// busy, a due call waits for one, and its latency, measured from when it was
// due, counts the wait.
const pacedCallers = 64

// EchoPaced is Echo on an open-loop schedule (harness.Paced): the
// connections send Params.Rate calls per second in all, each at its due
// time whatever the replies do, and each call's latency runs from its due
// time. It runs only when named (-scenarios echo-paced), with -rate or
// -peak-fraction.
func EchoPaced() harness.Scenario {
	s := Echo()
	s.Name, s.Shape, s.Explicit = "echo-paced", harness.Paced, true
	s.Connect = connectPaced
	return s
}

type pacedLoad struct {
	clients []*client.Client
	p       harness.Params
	req     *benchv1.EchoRequest
	size    int
}

func connectPaced(ctx context.Context, url string, p harness.Params) (harness.Load, error) {
	c, err := codecOf(p.Codec)
	if err != nil {
		return nil, err
	}
	req := &benchv1.EchoRequest{Sample: payload.New(p.Size)}
	b, err := c.AppendPayload(nil, req)
	if err != nil {
		return nil, err
	}
	if _, err := harness.Schedules(p, p.Conns, time.Now()); err != nil {
		return nil, err
	}
	clients, err := dialAll(ctx, url, c, p.Conns)
	if err != nil {
		return nil, err
	}
	return &pacedLoad{clients: clients, p: p, req: req, size: len(b)}, nil
}

// Run starts every connection's schedule now: a scheduler hands each due
// time to the connection's callers, who make the call and record its
// latency from the due time.
func (l *pacedLoad) Run(ctx context.Context, rec *harness.Recorder) error {
	schedules, err := harness.Schedules(l.p, len(l.clients), time.Now())
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	errs := make([]error, len(l.clients)*pacedCallers)
	for i, cl := range l.clients {
		bc := benchv1.NewBenchServiceClient(cl)
		due := make(chan time.Time, 4096)
		sched := schedules[i]
		wg.Go(func() {
			defer close(due)
			for {
				t, err := sched.Next(ctx)
				if err != nil {
					return
				}
				due <- t
			}
		})
		for j := range pacedCallers {
			series := rec.Series()
			wg.Go(func() { errs[i*pacedCallers+j] = l.caller(ctx, bc, due, series) })
		}
	}
	wg.Wait()
	return errors.Join(errs...)
}

// caller makes a call for each due time until the schedule ends. Calls
// get a context of their own, so that the bound lets them finish; due
// times left when ctx is done are not sent.
func (l *pacedLoad) caller(ctx context.Context, bc *benchv1.BenchServiceClient, due <-chan time.Time, series *harness.Series) error {
	for t := range due {
		if ctx.Err() != nil {
			continue // drain: the scheduler has stopped or is about to
		}
		res, err := bc.Echo(context.Background(), l.req)
		if err != nil {
			return fmt.Errorf("protows paced echo: %w", err)
		}
		if res.GetSample().GetId() != l.req.GetSample().GetId() {
			return errors.New("protows paced echo: the reply is not the request's sample")
		}
		series.Record(time.Since(t), 2*l.size, 2)
	}
	return nil
}

func (l *pacedLoad) Close() error { return closeAll(l.clients) }
