package protowsbench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/protows/protows/benchmarks/harness"
	"github.com/protows/protows/benchmarks/payload"
	"github.com/protows/protows/client"
	"github.com/protows/protows/codec"
	benchv1 "github.com/protows/protows/gen/go/protows/bench/v1"
	"github.com/protows/protows/hub"
	"github.com/protows/protows/transport"
	"google.golang.org/protobuf/proto"
)

// helloID marks the Samples the publisher broadcasts while members join:
// a member that receives one knows it is in the room. The measured
// broadcasts carry other ids.
const helloID = "hello"

// Broadcast is room fan-out on protows: Params.Conns clients each join the
// bench room with a RoomJoinMethod stream (hub.Join on the server), and one
// more client publishes Samples with RoomPublishMethod (hub.Broadcast,
// which encodes each once per codec), at most Params.InFlight publishes
// ahead of the deliveries, with up to that many Publish calls at once.
func Broadcast() harness.Scenario {
	return BroadcastWith(Variant{Impl: Impl})
}

// Variant is a setting the broadcast and echo scenarios are also run
// with: the write coalescing switches (transport.Config.DisableBatching,
// WriteDelay), to measure the server CPU they save or cost, or the
// Protobuf codec without its vtprotobuf fast path.
type Variant struct {
	// Impl names the variant in results, "protows-" and the setting.
	Impl string
	// Apply changes the benchmark server's transport.Config; nil keeps
	// Config().
	Apply func(*transport.Config)
	// Proto are the options of the Protobuf codec, on the server and in
	// the clients.
	Proto []codec.ProtoOption
}

// The write coalescing variants of the broadcast scenario.
var (
	// NoBatching writes every envelope in a frame of its own.
	NoBatching = Variant{Impl: Impl + "-nobatch", Apply: func(c *transport.Config) { c.DisableBatching = true }}
	// WriteDelay1ms holds each write back 1 ms to collect more envelopes.
	WriteDelay1ms = Variant{Impl: Impl + "-delay1ms", Apply: func(c *transport.Config) { c.WriteDelay = time.Millisecond }}
	// NoVTProto runs the Protobuf codec without vtprotobuf's methods
	// (codec.WithoutVTProto), on both ends: against the default, the gain
	// of the bench messages' generated fast marshalers.
	NoVTProto = Variant{Impl: Impl + "-novt", Proto: []codec.ProtoOption{codec.WithoutVTProto()}}
	// DeterministicProto runs the Protobuf codec with its payloads
	// deterministic (codec.WithDeterministicPayloads), on both ends: the
	// bench Sample, which has a map, is then decoded by vtprotobuf but
	// encoded by proto.Marshal.
	DeterministicProto = Variant{Impl: Impl + "-det", Proto: []codec.ProtoOption{codec.WithDeterministicPayloads()}}
)

// BroadcastWith is Broadcast on a server with v's transport setting. Apart
// from Broadcast itself, the variants run only when selected by their key
// or impl (-scenarios broadcast/protows-nobatch), not with every
// broadcast.
func BroadcastWith(v Variant) harness.Scenario {
	var mods []func(*transport.Config)
	if v.Apply != nil {
		mods = append(mods, v.Apply)
	}
	codecs := []string{harness.CodecProto, harness.CodecJSON}
	if v.Proto != nil {
		codecs = codecs[:1] // the options are the Protobuf codec's
	}
	return harness.Scenario{
		Name: "broadcast", Impl: v.Impl, Codecs: codecs,
		Shape:    harness.Fanout,
		Explicit: v.Impl != Impl,
		NewServer: func(harness.Params) (harness.Server, error) {
			return newServer(hub.Config[*benchv1.Sample]{}, v.Proto, mods...)
		},
		Connect: func(ctx context.Context, url string, p harness.Params) (harness.Load, error) {
			return connectBroadcast(ctx, url, p, v.Proto)
		},
	}
}

type broadcastLoad struct {
	members   []*client.Client
	streams   []*client.ServerStream[benchv1.Sample]
	publisher *client.Client
	codec     codec.Codec
	sample    *benchv1.Sample
	size      int
	window    int
	publishes int64
	rate      float64
	// run is set by Run; deliveries before it (hellos) are not counted.
	run    atomic.Pointer[runState]
	joined sync.WaitGroup
	done   sync.WaitGroup
}

type runState struct {
	gate   *harness.Gate
	series []*harness.Series
	// failed is cancelled, with the member's error as its cause, when a
	// member's stream ends during the run: its deliveries will never
	// arrive, and the run fails at once, saying why, rather than waiting
	// out the drain for them.
	failed context.Context
	fail   context.CancelCauseFunc
}

func connectBroadcast(ctx context.Context, url string, p harness.Params, protoOpts []codec.ProtoOption) (harness.Load, error) {
	c, err := codecOf(p.Codec, protoOpts...)
	if err != nil {
		return nil, err
	}
	sample := proto.Clone(payload.New(p.Size)).(*benchv1.Sample)
	b, err := c.AppendPayload(nil, sample)
	if err != nil {
		return nil, err
	}
	members, err := dialAll(ctx, url, c, p.Conns)
	if err != nil {
		return nil, err
	}
	l := &broadcastLoad{
		members: members, codec: c, sample: sample, size: len(b), window: p.Window(),
		publishes: p.PerConn(len(members)), rate: p.Rate,
	}
	pubs, err := dialAll(ctx, url, c, 1)
	if err != nil {
		return nil, errors.Join(err, l.Close())
	}
	l.publisher = pubs[0]
	for i, m := range members {
		s, err := client.CallServerStream[benchv1.Sample](context.Background(), m, RoomJoinMethod, &benchv1.PushRequest{}, client.NoResubscribe())
		if err != nil {
			return nil, errors.Join(fmt.Errorf("protows broadcast: join: %w", err), l.Close())
		}
		l.streams = append(l.streams, s)
		l.joined.Add(1)
		l.done.Add(1)
		go l.read(i, s)
	}
	if err := l.hello(ctx); err != nil {
		return nil, errors.Join(err, l.Close())
	}
	return l, nil
}

// hello publishes hello Samples until every member has received one, so
// that no measured publish misses a member that is still joining.
func (l *broadcastLoad) hello(ctx context.Context) error {
	joined := make(chan struct{})
	go func() { l.joined.Wait(); close(joined) }()
	ctx, cancel := context.WithTimeout(ctx, ioTimeout)
	defer cancel()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if _, err := client.CallUnary[benchv1.EchoResponse](ctx, l.publisher, RoomPublishMethod,
			&benchv1.EchoRequest{Sample: &benchv1.Sample{Id: helloID}}); err != nil {
			return fmt.Errorf("protows broadcast: hello: %w", err)
		}
		select {
		case <-joined:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("protows broadcast: members did not all join: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// read counts the deliveries of member i until its stream ends.
func (l *broadcastLoad) read(i int, s *client.ServerStream[benchv1.Sample]) {
	defer l.done.Done()
	hello := true
	for s.Receive() {
		msg := s.Msg()
		if msg.GetId() == helloID {
			if hello {
				hello = false
				l.joined.Done()
			}
			continue
		}
		if st := l.run.Load(); st != nil {
			st.series[i].Record(time.Duration(time.Now().UnixNano()-msg.GetTimestamp()), l.size, 1)
			st.gate.Add()
		}
	}
	if st := l.run.Load(); st != nil {
		// Close ends the streams after Run returned; that cause is
		// never read.
		if err := s.Err(); err != nil {
			st.fail(fmt.Errorf("protows broadcast: member %d's stream ended: %w", i, err))
		} else {
			st.fail(fmt.Errorf("protows broadcast: member %d's stream ended", i))
		}
	}
	if hello {
		l.joined.Done() // ended before joining: hello times out or Run misses it
	}
}

func (l *broadcastLoad) Run(ctx context.Context, rec *harness.Recorder) error {
	st := &runState{gate: harness.NewGate()}
	st.failed, st.fail = context.WithCancelCause(context.Background())
	defer st.fail(nil)
	for range l.members {
		st.series = append(st.series, rec.Series())
	}
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	context.AfterFunc(st.failed, stop)
	l.run.Store(st)
	members := int64(len(l.members))
	slots := make(chan struct{}, l.window)
	var wg sync.WaitGroup
	var pubErr error
	var pubOnce sync.Once
	var sent int64
	pacer := harness.NewPacer(l.rate)
	for ; sent < l.publishes; sent++ {
		if err := st.gate.Wait(ctx, (sent-int64(l.window)+1)*members); err != nil {
			break
		}
		if err := pacer.Wait(ctx); err != nil {
			break
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		// Each publish gets its own Sample, since calls run at once; the
		// big fields are shared, only read.
		s := &benchv1.Sample{Id: l.sample.Id, Timestamp: time.Now().UnixNano(), Text: l.sample.Text, Items: l.sample.Items, Tags: l.sample.Tags}
		wg.Go(func() {
			defer func() { <-slots }()
			if _, err := client.CallUnary[benchv1.EchoResponse](context.Background(), l.publisher, RoomPublishMethod, &benchv1.EchoRequest{Sample: s}); err != nil {
				pubOnce.Do(func() { pubErr = fmt.Errorf("protows broadcast: publish: %w", err) })
			}
		})
	}
	wg.Wait()
	drain, cancel := context.WithTimeout(st.failed, ioTimeout)
	defer cancel()
	err := st.gate.Wait(drain, sent*members)
	if cause := context.Cause(st.failed); cause != nil {
		err = fmt.Errorf("%w; %d of %d deliveries arrived", cause, st.gate.Delivered(), sent*members)
	} else if err != nil {
		err = fmt.Errorf("protows broadcast: %d of %d deliveries arrived: %w", st.gate.Delivered(), sent*members, err)
	}
	return errors.Join(pubErr, err)
}

func (l *broadcastLoad) Close() error {
	for _, s := range l.streams {
		_ = s.Close()
	}
	err := closeAll(l.members)
	if l.publisher != nil {
		err = errors.Join(err, l.publisher.Close())
	}
	l.done.Wait()
	return err
}
