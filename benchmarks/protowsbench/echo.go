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
	"github.com/protows/protows/codec"
	benchv1 "github.com/protows/protows/gen/go/protows/bench/v1"
	"github.com/protows/protows/hub"
)

// Echo is request/reply echo on protows: each connection keeps
// Params.InFlight BenchService.Echo calls in flight, each from its own
// goroutine through the generated client.
func Echo() harness.Scenario {
	return EchoWith(Variant{Impl: Impl})
}

// EchoWith is Echo with v's Protobuf codec options (v.Apply is not for
// echo, and is ignored), in the Protobuf codec only when it has some.
// Apart from Echo itself, the variants run only when selected by their key
// or impl (-scenarios echo/protows-novt).
func EchoWith(v Variant) harness.Scenario {
	codecs := []string{harness.CodecProto, harness.CodecJSON}
	if v.Proto != nil {
		codecs = codecs[:1] // the options are the Protobuf codec's
	}
	return harness.Scenario{
		Name: "echo", Impl: v.Impl, Codecs: codecs,
		Explicit: v.Impl != Impl,
		NewServer: func(harness.Params) (harness.Server, error) {
			return newServer(hub.Config[*benchv1.Sample]{}, v.Proto)
		},
		Connect: func(ctx context.Context, url string, p harness.Params) (harness.Load, error) {
			return connectEcho(ctx, url, p, nil, v.Proto)
		},
	}
}

// EchoKeyed is Echo with every call made with client.ExactlyOnce: a fresh
// idempotency key per call, the client's outbox, and the server's
// dedupe window (the in-memory default) looked up and filled on every
// call. Its results beside Echo's are the cost of the key on the unary
// path (docs/PROTOCOL.md, section 3.7).
func EchoKeyed() harness.Scenario {
	s := Echo()
	s.Impl = Impl + "-keyed"
	s.Connect = func(ctx context.Context, url string, p harness.Params) (harness.Load, error) {
		return connectEcho(ctx, url, p, []client.CallOption{client.ExactlyOnce()}, nil)
	}
	return s
}

type echoLoad struct {
	clients []*client.Client
	req     *benchv1.EchoRequest
	size    int
	window  int
	opts    []client.CallOption
}

func connectEcho(ctx context.Context, url string, p harness.Params, opts []client.CallOption, proto []codec.ProtoOption) (harness.Load, error) {
	c, err := codecOf(p.Codec, proto...)
	if err != nil {
		return nil, err
	}
	req := &benchv1.EchoRequest{Sample: payload.New(p.Size)}
	b, err := c.AppendPayload(nil, req)
	if err != nil {
		return nil, err
	}
	clients, err := dialAll(ctx, url, c, p.Conns)
	if err != nil {
		return nil, err
	}
	return &echoLoad{clients: clients, req: req, size: len(b), window: p.Window(), opts: opts}, nil
}

func (l *echoLoad) Run(ctx context.Context, rec *harness.Recorder) error {
	var wg sync.WaitGroup
	errs := make([]error, len(l.clients)*l.window)
	for i, cl := range l.clients {
		bc := benchv1.NewBenchServiceClient(cl)
		for j := range l.window {
			wg.Go(func() { errs[i*l.window+j] = l.caller(ctx, bc, rec.Series()) })
		}
	}
	wg.Wait()
	return errors.Join(errs...)
}

// caller makes one call after another until ctx is done. The calls get a
// context of their own, so that the bound lets them finish rather than
// cancel them.
func (l *echoLoad) caller(ctx context.Context, bc *benchv1.BenchServiceClient, series *harness.Series) error {
	for ctx.Err() == nil {
		start := time.Now()
		res, err := bc.Echo(context.Background(), l.req, l.opts...)
		if err != nil {
			return fmt.Errorf("protows echo: %w", err)
		}
		if res.GetSample().GetId() != l.req.GetSample().GetId() {
			return errors.New("protows echo: the reply is not the request's sample")
		}
		series.Record(time.Since(start), 2*l.size, 2)
	}
	return nil
}

func (l *echoLoad) Close() error { return closeAll(l.clients) }
