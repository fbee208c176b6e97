package micro_test

import (
	"context"
	"testing"

	"github.com/protows/protows/benchmarks/payload"
	"github.com/protows/protows/codec"
	benchv1 "github.com/protows/protows/gen/go/protows/bench/v1"
	"github.com/protows/protows/router"
)

type echo struct {
	benchv1.UnimplementedBenchServiceHandler
}

func (echo) Echo(_ context.Context, req *benchv1.EchoRequest) (*benchv1.EchoResponse, error) {
	return &benchv1.EchoResponse{Sample: req.GetSample()}, nil
}

func newRouter(tb testing.TB) *router.Router {
	tb.Helper()
	r := router.New()
	if err := benchv1.RegisterBenchServiceHandler(r, echo{}); err != nil {
		tb.Fatal(err)
	}
	return r
}

// dispatch is what the server does for one unary request between reading
// the frame and queueing the reply: find the method by id, decode the
// payload into its request type, run the handler, encode the reply.
func dispatch(r *router.Router, c codec.Codec, body, out []byte) ([]byte, error) {
	m, ok := r.Lookup(benchv1.BenchServiceEchoMethodID)
	if !ok {
		panic("Echo is not registered")
	}
	req := m.NewRequest()
	if err := c.UnmarshalPayload(body, req); err != nil {
		return nil, err
	}
	res, err := m.Serve(context.Background(), nil, req)
	if err != nil {
		return nil, err
	}
	return c.AppendPayload(out[:0], res)
}

func TestDispatchEchoes(t *testing.T) {
	r := newRouter(t)
	for _, c := range []codec.Codec{codec.Proto(), codec.JSON()} {
		body, err := c.AppendPayload(nil, &benchv1.EchoRequest{Sample: payload.New(payload.Small)})
		if err != nil {
			t.Fatal(err)
		}
		out, err := dispatch(r, c, body, nil)
		if err != nil {
			t.Fatal(err)
		}
		var res benchv1.EchoResponse
		if err := c.UnmarshalPayload(out, &res); err != nil {
			t.Fatal(err)
		}
		if res.GetSample().GetText() != payload.New(payload.Small).GetText() {
			t.Errorf("%s: reply %v is not the request's sample", c.Name(), &res)
		}
	}
}

// BenchmarkDispatch measures router dispatch with payload decoding and
// reply encoding, per codec and payload size; the framework's share is the
// difference from BenchmarkCodecOnly.
func BenchmarkDispatch(b *testing.B) {
	r := newRouter(b)
	run(b, func(c codec.Codec, body, out []byte) ([]byte, error) { return dispatch(r, c, body, out) })
}

// BenchmarkCodecOnly does the payload work of BenchmarkDispatch without the
// router: decode the request, encode a reply.
func BenchmarkCodecOnly(b *testing.B) {
	run(b, func(c codec.Codec, body, out []byte) ([]byte, error) {
		var req benchv1.EchoRequest
		if err := c.UnmarshalPayload(body, &req); err != nil {
			return nil, err
		}
		return c.AppendPayload(out[:0], &benchv1.EchoResponse{Sample: req.GetSample()})
	})
}

func run(b *testing.B, fn func(c codec.Codec, body, out []byte) ([]byte, error)) {
	for _, c := range []codec.Codec{codec.Proto(), codec.JSON()} {
		for _, size := range payload.Sizes {
			b.Run(c.Name()+"/"+string(size), func(b *testing.B) {
				body, err := c.AppendPayload(nil, &benchv1.EchoRequest{Sample: payload.New(size)})
				if err != nil {
					b.Fatal(err)
				}
				var out []byte
				b.SetBytes(int64(len(body)))
				b.ReportAllocs()
				for b.Loop() {
					if out, err = fn(c, body, out); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
