package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/centrifugal/centrifuge"
	centrifugego "github.com/centrifugal/centrifuge-go"
	"github.com/protows/protows/benchmarks/harness"
	"github.com/protows/protows/benchmarks/payload"
	"github.com/protows/protows/codec"
	benchv1 "github.com/protows/protows/gen/go/protows/bench/v1"
	"google.golang.org/protobuf/proto"
)

// impl is the implementation name in results.
const impl = "centrifuge"

// channel is the room every member subscribes to.
const channel = "bench"

// ioTimeout bounds every wait, so that a stuck peer fails a repetition
// instead of hanging it.
const ioTimeout = 10 * time.Second

// Broadcast is room fan-out on Centrifuge: Params.Conns centrifuge-go
// clients subscribe to one channel; one more client publishes encoded
// Samples into it (client-side publish, allowed by the server's OnPublish),
// at most Params.InFlight publishes ahead of the deliveries, as the raw
// gorilla and protows broadcasts do. The proto codec uses Centrifuge's
// Protobuf protocol with the Protobuf encoding of the Sample as publication
// data; the json codec uses its JSON protocol with the protojson encoding.
func Broadcast() harness.Scenario {
	return harness.Scenario{
		Name: "broadcast", Impl: impl, Codecs: []string{harness.CodecProto, harness.CodecJSON},
		Shape:     harness.Fanout,
		NewServer: newServer,
		Connect:   connect,
	}
}

func payloadCodec(c string) (codec.Codec, error) {
	switch c {
	case harness.CodecProto:
		return codec.Proto(), nil
	case harness.CodecJSON:
		return codec.JSON(), nil
	}
	return nil, fmt.Errorf("centrifuge: unknown codec %q", c)
}

func newServer(harness.Params) (harness.Server, error) {
	node, err := centrifuge.New(centrifuge.Config{
		LogLevel: centrifuge.LogLevelNone,
		// Large enough that the window, not the queue, limits a member:
		// no member is ever disconnected as slow.
		ClientQueueMaxSize: 64 << 20,
	})
	if err != nil {
		return nil, err
	}
	node.OnConnecting(func(context.Context, centrifuge.ConnectEvent) (centrifuge.ConnectReply, error) {
		return centrifuge.ConnectReply{Credentials: &centrifuge.Credentials{UserID: "bench"}}, nil
	})
	node.OnConnect(func(c *centrifuge.Client) {
		c.OnSubscribe(func(_ centrifuge.SubscribeEvent, cb centrifuge.SubscribeCallback) {
			cb(centrifuge.SubscribeReply{}, nil)
		})
		c.OnPublish(func(_ centrifuge.PublishEvent, cb centrifuge.PublishCallback) {
			cb(centrifuge.PublishReply{}, nil)
		})
	})
	if err := node.Run(); err != nil {
		return nil, err
	}
	ws := centrifuge.NewWebsocketHandler(node, centrifuge.WebsocketConfig{
		// Load clients send no Origin; browsers are not involved.
		CheckOrigin:      func(r *http.Request) bool { return r.Header.Get("Origin") == "" },
		MessageSizeLimit: 1 << 20, // protows's default message limit
	})
	return harness.ServerFunc{Handler: ws, CloseFunc: func() error {
		ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
		defer cancel()
		return node.Shutdown(ctx)
	}}, nil
}

type load struct {
	members   []*centrifugego.Client
	subs      []*centrifugego.Subscription
	publisher *centrifugego.Client
	codec     codec.Codec
	sample    *benchv1.Sample
	size      int
	window    int
	publishes int64
	rate      float64

	mu      sync.Mutex
	handler func(centrifugego.PublicationEvent, *harness.Series) // set by Run
	series  []*harness.Series
}

func newClient(url, codecName string) *centrifugego.Client {
	cfg := centrifugego.Config{ReadTimeout: ioTimeout, WriteTimeout: ioTimeout, HandshakeTimeout: ioTimeout, LogLevel: centrifugego.LogLevelNone}
	if codecName == harness.CodecProto {
		return centrifugego.NewProtobufClient(url, cfg)
	}
	return centrifugego.NewJsonClient(url, cfg)
}

func connect(ctx context.Context, url string, p harness.Params) (harness.Load, error) {
	c, err := payloadCodec(p.Codec)
	if err != nil {
		return nil, err
	}
	sample := proto.Clone(payload.New(p.Size)).(*benchv1.Sample)
	b, err := c.AppendPayload(nil, sample)
	if err != nil {
		return nil, err
	}
	l := &load{codec: c, sample: sample, size: len(b), window: p.Window(), publishes: p.PerConn(p.Conns), rate: p.Rate}
	ctx, cancel := context.WithTimeout(ctx, ioTimeout)
	defer cancel()
	for i := range p.Conns {
		m := newClient(url, p.Codec)
		l.members = append(l.members, m)
		sub, err := m.NewSubscription(channel)
		if err != nil {
			return nil, errors.Join(err, l.Close())
		}
		l.subs = append(l.subs, sub)
		l.series = append(l.series, nil)
		sub.OnPublication(func(e centrifugego.PublicationEvent) {
			// Handlers of one client run one at a time, in order.
			l.mu.Lock()
			h, s := l.handler, l.series[i]
			l.mu.Unlock()
			if h != nil {
				h(e, s)
			}
		})
		subscribed := make(chan struct{})
		sub.OnSubscribed(func(centrifugego.SubscribedEvent) { close(subscribed) })
		if err := m.Connect(); err != nil {
			return nil, errors.Join(err, l.Close())
		}
		if err := sub.Subscribe(); err != nil {
			return nil, errors.Join(err, l.Close())
		}
		select {
		case <-subscribed:
		case <-ctx.Done():
			return nil, errors.Join(fmt.Errorf("centrifuge: member %d did not subscribe: %w", i, ctx.Err()), l.Close())
		}
	}
	l.publisher = newClient(url, p.Codec)
	connected := make(chan struct{})
	l.publisher.OnConnected(func(centrifugego.ConnectedEvent) { close(connected) })
	if err := l.publisher.Connect(); err != nil {
		return nil, errors.Join(err, l.Close())
	}
	select {
	case <-connected:
	case <-ctx.Done():
		return nil, errors.Join(fmt.Errorf("centrifuge: publisher did not connect: %w", ctx.Err()), l.Close())
	}
	return l, nil
}

func (l *load) Run(ctx context.Context, rec *harness.Recorder) error {
	gate := harness.NewGate()
	var decodeErr error
	var errOnce sync.Once
	l.mu.Lock()
	for i := range l.series {
		l.series[i] = rec.Series()
	}
	l.handler = func(e centrifugego.PublicationEvent, s *harness.Series) {
		var sample benchv1.Sample
		if err := l.codec.UnmarshalPayload(e.Data, &sample); err != nil {
			errOnce.Do(func() { decodeErr = fmt.Errorf("centrifuge: publication: %w", err) })
		}
		s.Record(time.Duration(time.Now().UnixNano()-sample.Timestamp), l.size, 1)
		gate.Add()
	}
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		l.handler = nil
		l.mu.Unlock()
	}()

	members := int64(len(l.members))
	// Client.Publish waits for the server's reply, so publishes are
	// pipelined by running up to window of them at once.
	slots := make(chan struct{}, l.window)
	var wg sync.WaitGroup
	var pubErr error
	var pubOnce sync.Once
	var sent int64
	pacer := harness.NewPacer(l.rate)
	for ; sent < l.publishes; sent++ {
		if err := gate.Wait(ctx, (sent-int64(l.window)+1)*members); err != nil {
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
		l.sample.Timestamp = time.Now().UnixNano()
		data, err := l.codec.AppendPayload(nil, l.sample)
		if err != nil {
			return err
		}
		wg.Go(func() {
			defer func() { <-slots }()
			pctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
			defer cancel()
			if _, err := l.publisher.Publish(pctx, channel, data); err != nil {
				pubOnce.Do(func() { pubErr = fmt.Errorf("centrifuge: publish: %w", err) })
			}
		})
	}
	wg.Wait()
	drain, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	err := gate.Wait(drain, sent*members)
	if err != nil {
		err = fmt.Errorf("centrifuge: %d of %d deliveries arrived: %w", gate.Delivered(), sent*members, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return errors.Join(pubErr, decodeErr, err)
}

func (l *load) Close() error {
	for _, m := range l.members {
		m.Close()
	}
	if l.publisher != nil {
		l.publisher.Close()
	}
	return nil
}
