// Package driver is the conformance driver of the Go client
// (github.com/protows/protows/client): it reads the driver protocol's
// commands (docs/CONFORMANCE.md, one JSON object a line), makes the
// calls with the Go client, and writes the events. The command
// conformance/clients/go runs it on stdin and stdout; the conformance
// tests run it in process.
package driver

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	protows "github.com/protows/protows"
	"github.com/protows/protows/client"
	"github.com/protows/protows/codec"
	testv1 "github.com/protows/protows/gen/go/protows/test/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// A method of the test service, as the driver calls it.
type method struct {
	newReq func() proto.Message
	unary  func(ctx context.Context, c *client.Client, name string, req proto.Message, opts ...client.CallOption) (proto.Message, error)
	stream func(ctx context.Context, c *client.Client, name string, req proto.Message, opts ...client.CallOption) (receiver, error)
}

// receiver is a ServerStream of any message type.
type receiver interface {
	Receive() bool
	Msg() proto.Message
	Seq() uint64
	Gap() bool
	Resumed() (client.StreamPosition, bool)
	Err() error
	Close() error
}

type streamOf[Res any, P interface {
	*Res
	proto.Message
}] struct{ s *client.ServerStream[Res] }

func (s streamOf[Res, P]) Receive() bool      { return s.s.Receive() }
func (s streamOf[Res, P]) Msg() proto.Message { return P(s.s.Msg()) }
func (s streamOf[Res, P]) Seq() uint64        { return s.s.Seq() }
func (s streamOf[Res, P]) Gap() bool          { return s.s.Gap() }
func (s streamOf[Res, P]) Resumed() (client.StreamPosition, bool) {
	return s.s.Resumed()
}
func (s streamOf[Res, P]) Err() error   { return s.s.Err() }
func (s streamOf[Res, P]) Close() error { return s.s.Close() }

func unary[Res any, P interface {
	*Res
	proto.Message
}](ctx context.Context, c *client.Client, name string, req proto.Message, opts ...client.CallOption) (proto.Message, error) {
	res, err := client.CallUnary[Res](ctx, c, name, req, opts...)
	if err != nil {
		return nil, err
	}
	return P(res), nil
}

func stream[Res any, P interface {
	*Res
	proto.Message
}](ctx context.Context, c *client.Client, name string, req proto.Message, opts ...client.CallOption) (receiver, error) {
	s, err := client.CallServerStream[Res](ctx, c, name, req, opts...)
	if err != nil {
		return nil, err
	}
	return streamOf[Res, P]{s}, nil
}

var methods = map[string]method{
	testv1.TestServiceEchoMethod:   {newReq: func() proto.Message { return &testv1.EchoRequest{} }, unary: unary[testv1.EchoResponse]},
	testv1.TestServiceFailMethod:   {newReq: func() proto.Message { return &testv1.FailRequest{} }, unary: unary[testv1.FailResponse]},
	testv1.TestServiceSleepMethod:  {newReq: func() proto.Message { return &testv1.SleepRequest{} }, unary: unary[testv1.SleepResponse]},
	testv1.TestServiceWhoamiMethod: {newReq: func() proto.Message { return &testv1.WhoamiRequest{} }, unary: unary[testv1.WhoamiResponse]},
	testv1.TestServiceCountMethod:  {newReq: func() proto.Message { return &testv1.CountRequest{} }, stream: stream[testv1.CountResponse]},
}

// command is one line of input.
type command struct {
	Op          string            `json:"op"`
	Client      string            `json:"client"`
	Ref         string            `json:"ref"`
	URL         string            `json:"url"`
	Codec       string            `json:"codec"`
	Backoff     *backoff          `json:"backoff"`
	Heartbeat   json.RawMessage   `json:"heartbeat"`
	Method      string            `json:"method"`
	Request     json.RawMessage   `json:"request"`
	TimeoutMs   float64           `json:"timeoutMs"`
	Idempotent  bool              `json:"idempotent"`
	Resubscribe *bool             `json:"resubscribe"`
	Metadata    map[string]string `json:"metadata"`
	History     int               `json:"history"`
}

type backoff struct {
	InitialMs float64 `json:"initialMs"`
	MaxMs     float64 `json:"maxMs"`
}

type heartbeat struct {
	IdleMs    float64 `json:"idleMs"`
	TimeoutMs float64 `json:"timeoutMs"`
}

func ms(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }

// driver is the state of a run: the clients and the calls in flight.
type driver struct {
	ctx context.Context
	out *json.Encoder
	omu sync.Mutex

	mu      sync.Mutex
	clients map[string]*conn
	wg      sync.WaitGroup
}

// conn is one client of the run. ready closes when Dial returned.
type conn struct {
	ready   chan struct{}
	c       *client.Client
	err     error
	cancels map[string]context.CancelFunc
}

// Serve runs the driver: commands from r, events to w, until r ends, a
// "quit" command, or ctx is done. It closes every client it made.
func Serve(ctx context.Context, r io.Reader, w io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	d := &driver{ctx: ctx, out: json.NewEncoder(w), clients: map[string]*conn{}}
	d.out.SetEscapeHTML(false)
	d.emit(map[string]any{"event": "ready", "implementation": "go", "version": protows.Version})
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 64<<20)
	var err error
	for sc.Scan() {
		var cmd command
		if err = json.Unmarshal(sc.Bytes(), &cmd); err != nil {
			err = fmt.Errorf("driver: bad command %q: %w", sc.Text(), err)
			break
		}
		if cmd.Op == "quit" {
			break
		}
		d.handle(cmd)
	}
	if err == nil {
		err = sc.Err()
	}
	cancel()
	d.mu.Lock()
	for _, c := range d.clients {
		go func() {
			<-c.ready
			if c.c != nil {
				_ = c.c.Close()
			}
		}()
	}
	d.mu.Unlock()
	d.wg.Wait()
	return err
}

func (d *driver) emit(ev map[string]any) {
	d.omu.Lock()
	defer d.omu.Unlock()
	_ = d.out.Encode(ev)
}

func (d *driver) emitErr(cmd command, event string, err error) {
	ev := map[string]any{"client": cmd.Client, "ref": cmd.Ref, "event": event, "code": protows.CodeOf(err).String()}
	var pe *protows.Error
	if errors.As(err, &pe) {
		ev["message"] = pe.Message()
	} else {
		ev["message"] = err.Error()
	}
	d.emit(ev)
}

func (d *driver) handle(cmd command) {
	switch cmd.Op {
	case "connect":
		d.connect(cmd)
		return
	}
	d.mu.Lock()
	c := d.clients[cmd.Client]
	d.mu.Unlock()
	if c == nil {
		d.emit(map[string]any{"client": cmd.Client, "ref": cmd.Ref, "event": "error", "code": "driver", "message": "no such client"})
		return
	}
	switch cmd.Op {
	case "unary", "stream":
		ctx, cancel := context.WithCancel(d.ctx)
		if cmd.TimeoutMs > 0 {
			ctx, cancel = context.WithTimeout(d.ctx, ms(cmd.TimeoutMs))
		}
		d.mu.Lock()
		c.cancels[cmd.Ref] = cancel
		d.mu.Unlock()
		d.wg.Go(func() {
			defer cancel()
			<-c.ready
			if c.c == nil {
				d.emitErr(cmd, "error", c.err)
				return
			}
			if cmd.Op == "unary" {
				d.unary(ctx, c.c, cmd)
			} else {
				d.stream(ctx, c.c, cmd)
			}
		})
	case "cancel":
		d.mu.Lock()
		cancel := c.cancels[cmd.Ref]
		d.mu.Unlock()
		if cancel != nil {
			cancel()
		}
	case "close":
		d.wg.Go(func() {
			<-c.ready
			if c.c != nil {
				_ = c.c.Close()
			}
			d.emit(map[string]any{"client": cmd.Client, "ref": cmd.Ref, "event": "closed"})
		})
	default:
		d.emit(map[string]any{"client": cmd.Client, "ref": cmd.Ref, "event": "error", "code": "driver", "message": "unknown op " + cmd.Op})
	}
}

func (d *driver) connect(cmd command) {
	c := &conn{ready: make(chan struct{}), cancels: map[string]context.CancelFunc{}}
	d.mu.Lock()
	d.clients[cmd.Client] = c
	d.mu.Unlock()
	cd := codec.Proto()
	if cmd.Codec == "json" {
		cd = codec.JSON()
	}
	opts := []client.Option{
		client.WithCodec(cd),
		client.WithStateFunc(func(s client.State, err error) {
			ev := map[string]any{"client": cmd.Client, "event": "state", "state": s.String()}
			if err != nil {
				ev["error"] = err.Error()
			}
			d.emit(ev)
		}),
	}
	if b := cmd.Backoff; b != nil {
		opts = append(opts, client.WithBackoff(client.Backoff{Initial: ms(b.InitialMs), Max: ms(b.MaxMs)}))
	}
	var hb heartbeat
	if len(cmd.Heartbeat) > 0 && json.Unmarshal(cmd.Heartbeat, &hb) == nil && hb.IdleMs > 0 {
		opts = append(opts, client.WithHeartbeat(ms(hb.IdleMs), ms(hb.TimeoutMs)))
	} else if string(cmd.Heartbeat) == "false" {
		opts = append(opts, client.WithHeartbeat(time.Hour, time.Hour))
	}
	d.wg.Go(func() {
		defer close(c.ready)
		ctx, cancel := context.WithTimeout(d.ctx, 10*time.Second)
		defer cancel()
		c.c, c.err = client.Dial(ctx, cmd.URL, opts...)
		if c.err != nil {
			d.emitErr(cmd, "dial-error", c.err)
			return
		}
		d.emit(map[string]any{"client": cmd.Client, "event": "connected"})
	})
}

func (d *driver) request(cmd command) (method, proto.Message, error) {
	m, ok := methods[cmd.Method]
	if !ok {
		return m, nil, fmt.Errorf("driver: unknown method %q", cmd.Method)
	}
	req := m.newReq()
	if len(cmd.Request) > 0 {
		if err := protojson.Unmarshal(cmd.Request, req); err != nil {
			return m, nil, fmt.Errorf("driver: request: %w", err)
		}
	}
	return m, req, nil
}

func payload(m proto.Message) any {
	b, err := protojson.Marshal(m)
	if err != nil {
		return err.Error()
	}
	var v any
	_ = json.Unmarshal(b, &v)
	return v
}

func (d *driver) unary(ctx context.Context, c *client.Client, cmd command) {
	m, req, err := d.request(cmd)
	if err == nil && m.unary == nil {
		err = fmt.Errorf("driver: %s is not unary", cmd.Method)
	}
	if err != nil {
		d.emit(map[string]any{"client": cmd.Client, "ref": cmd.Ref, "event": "error", "code": "driver", "message": err.Error()})
		return
	}
	var md map[string]string
	opts := []client.CallOption{client.ReplyMetadata(&md)}
	if cmd.Idempotent {
		opts = append(opts, client.Idempotent())
	}
	if cmd.Metadata != nil {
		opts = append(opts, client.WithMetadata(cmd.Metadata))
	}
	res, err := m.unary(ctx, c, cmd.Method, req, opts...)
	if err != nil {
		d.emitErr(cmd, "error", err)
		return
	}
	ev := map[string]any{"client": cmd.Client, "ref": cmd.Ref, "event": "reply", "payload": payload(res)}
	if md == nil {
		md = map[string]string{}
	}
	ev["metadata"] = md
	d.emit(ev)
}

func (d *driver) stream(ctx context.Context, c *client.Client, cmd command) {
	m, req, err := d.request(cmd)
	if err == nil && m.stream == nil {
		err = fmt.Errorf("driver: %s is not a server stream", cmd.Method)
	}
	if err != nil {
		d.emit(map[string]any{"client": cmd.Client, "ref": cmd.Ref, "event": "error", "code": "driver", "message": err.Error()})
		return
	}
	var opts []client.CallOption
	if cmd.Resubscribe != nil && !*cmd.Resubscribe {
		opts = append(opts, client.NoResubscribe())
	}
	if cmd.Metadata != nil {
		opts = append(opts, client.WithMetadata(cmd.Metadata))
	}
	if cmd.History > 0 {
		opts = append(opts, client.WithHistory(cmd.History))
	}
	s, err := m.stream(ctx, c, cmd.Method, req, opts...)
	if err != nil {
		d.emitErr(cmd, "error", err)
		return
	}
	defer s.Close()
	for s.Receive() {
		ev := map[string]any{"client": cmd.Client, "ref": cmd.Ref, "event": "message", "payload": payload(s.Msg()), "seq": s.Seq(), "gap": s.Gap()}
		if sp, ok := s.Resumed(); ok {
			name, ok := recoveryNames[sp.Recovery]
			if !ok {
				name = "unknown" // an outcome newer than this client
			}
			ev["recovery"], ev["replayed"] = name, sp.Replayed()
		}
		d.emit(ev)
	}
	if err := s.Err(); err != nil {
		d.emitErr(cmd, "error", err)
		return
	}
	d.emit(map[string]any{"client": cmd.Client, "ref": cmd.Ref, "event": "end"})
}

// recoveryNames are the protocol's names of the outcomes (PROTOCOL.md
// section 14.3).
var recoveryNames = map[client.Recovery]string{
	client.NotResumed:         "unspecified",
	client.Recovered:          "recovered",
	client.EpochChanged:       "epoch_changed",
	client.TooOld:             "too_old",
	client.HistoryUnavailable: "unavailable",
}
