package protowsbench

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/protows/protows/benchmarks/harness"
	"github.com/protows/protows/codec"
	benchv1 "github.com/protows/protows/gen/go/protows/bench/v1"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"github.com/protows/protows/hub"
	"github.com/protows/protows/router"
	"github.com/protows/protows/transport"
	"google.golang.org/protobuf/proto"
)

// Impl is the implementation name of these scenarios in results.
const Impl = "protows"

// The room methods of the broadcast scenario.
const (
	// RoomJoinMethod is a server stream: the caller is a member of the
	// bench room until it cancels, and receives every Sample published.
	RoomJoinMethod = "/protows.bench.v1.BenchRoom/Join"
	// RoomPublishMethod is unary: it broadcasts the request's Sample to the
	// room and replies with an empty EchoResponse.
	RoomPublishMethod = "/protows.bench.v1.BenchRoom/Publish"
	room              = "bench"
)

// ioTimeout bounds waits that would otherwise hang a repetition.
const ioTimeout = 10 * time.Second

// Config returns the transport configuration of the benchmark server: the
// defaults, except that the per-connection request rate limit (1000/s by
// default) is off, since a load test exceeds it by design, and logs are
// discarded.
func Config() transport.Config {
	return transport.Config{RateLimit: -1, Logger: slog.New(slog.DiscardHandler)}
}

type benchService struct {
	benchv1.UnimplementedBenchServiceHandler
}

var _ benchv1.BenchServiceHandler = benchService{}

func (benchService) Echo(_ context.Context, req *benchv1.EchoRequest) (*benchv1.EchoResponse, error) {
	return &benchv1.EchoResponse{Sample: req.GetSample()}, nil
}

// EchoStream returns every sample of the stream, in order, until the
// client half-closes.
func (benchService) EchoStream(_ context.Context, s router.BidiStream[*benchv1.EchoStreamRequest, *benchv1.EchoStreamResponse]) error {
	res := &benchv1.EchoStreamResponse{}
	for {
		req, err := s.Receive()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		res.Sample = req.GetSample()
		if err := s.Send(res); err != nil {
			return err
		}
	}
}

// Push sends count messages, each stamped with the time it was encoded.
// Send encodes before it returns, so one message is reused.
func (benchService) Push(ctx context.Context, req *benchv1.PushRequest, s router.Stream[*benchv1.PushResponse]) error {
	res := &benchv1.PushResponse{Sample: req.GetSample()}
	if res.Sample == nil {
		res.Sample = &benchv1.Sample{}
	}
	for range req.GetCount() {
		if err := ctx.Err(); err != nil {
			return err
		}
		res.Sample.Timestamp = time.Now().UnixNano()
		if err := s.Send(res); err != nil {
			return err
		}
	}
	return nil
}

// NewServer returns the benchmark server: BenchService and the room
// methods on a router, served by transport.NewServer with Config changed by
// each of mods. Its codecs are the default ones (Protobuf, JSON) wrapped to
// count the marshals of Samples, which only hub broadcasts encode, so that
// the server implements harness.Counting with harness.CounterMarshals.
func NewServer(mods ...func(*transport.Config)) (harness.Server, error) {
	return newServer(hub.Config[*benchv1.Sample]{}, nil, mods...)
}

// newServer is NewServer with the room's hub configured by hcfg and the
// Protobuf codec by proto.
func newServer(hcfg hub.Config[*benchv1.Sample], proto []codec.ProtoOption, mods ...func(*transport.Config)) (harness.Server, error) {
	r := router.New(router.WithLogger(slog.New(slog.DiscardHandler)))
	if err := benchv1.RegisterBenchServiceHandler(r, benchService{}); err != nil {
		return nil, err
	}
	hcfg.Logger = slog.New(slog.DiscardHandler)
	h, err := hub.New(hcfg)
	if err != nil {
		return nil, err
	}
	err = errors.Join(
		router.HandleServerStream(r, RoomJoinMethod, func(ctx context.Context, _ *benchv1.PushRequest, s router.Stream[*benchv1.Sample]) error {
			return h.Join(ctx, room, s)
		}),
		router.HandleUnary(r, RoomPublishMethod, func(ctx context.Context, req *benchv1.EchoRequest) (*benchv1.EchoResponse, error) {
			return &benchv1.EchoResponse{}, h.Broadcast(ctx, room, req.GetSample())
		}),
	)
	if err != nil {
		return nil, errors.Join(err, h.Close())
	}
	marshals := new(atomic.Int64)
	reg, err := codec.NewRegistry(
		countingCodec{codec.Proto(proto...).(codec.StreamMessageCodec), marshals},
		countingCodec{codec.JSON().(codec.StreamMessageCodec), marshals})
	if err != nil {
		return nil, errors.Join(err, h.Close())
	}
	cfg := Config()
	cfg.Codecs = reg
	for _, mod := range mods {
		mod(&cfg)
	}
	srv := transport.NewServer(r, cfg)
	return &server{ServerFunc: harness.ServerFunc{Handler: srv, CloseFunc: func() error {
		ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
		defer cancel()
		// The hub first: it ends the Join handlers, which Shutdown waits for.
		hubErr := h.Close()
		return errors.Join(hubErr, srv.Shutdown(ctx))
	}}, marshals: marshals}, nil
}

// server is the benchmark server with its marshal counter.
type server struct {
	harness.ServerFunc
	marshals *atomic.Int64
}

var _ harness.Counting = (*server)(nil)

// Counters returns the marshals of Samples so far.
func (s *server) Counters() map[string]int64 {
	return map[string]int64{harness.CounterMarshals: s.marshals.Load()}
}

// countingCodec counts the payload encodings of Samples. In this server
// only broadcasts encode a Sample on its own (Echo and Push replies are
// other messages that contain one), so the count is the hub's marshals:
// with encode-once, one per broadcast and codec in use.
//
// It embeds the built-in codec as a StreamMessageCodec, not as a Codec, so
// that the hub's broadcasts keep their fast path (codec.AppendStreamMessage)
// and measure what they would without the counting.
type countingCodec struct {
	codec.StreamMessageCodec
	n *atomic.Int64
}

var (
	_ codec.StreamMessageCodec   = countingCodec{}
	_ codec.MessageEnvelopeCodec = countingCodec{}
)

func (c countingCodec) AppendPayload(dst []byte, m proto.Message) ([]byte, error) {
	if _, ok := m.(*benchv1.Sample); ok {
		c.n.Add(1)
	}
	return c.StreamMessageCodec.AppendPayload(dst, m)
}

// AppendMessageEnvelope forwards to the built-in codec's, so that replies
// keep their fast path (codec.AppendMessageEnvelope) too.
func (c countingCodec) AppendMessageEnvelope(dst []byte, id uint32, kind protowsv1.Kind, m proto.Message) ([]byte, error) {
	if _, ok := m.(*benchv1.Sample); ok {
		c.n.Add(1)
	}
	return codec.AppendMessageEnvelope(c.StreamMessageCodec, dst, id, kind, m)
}
