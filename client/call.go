package client

import (
	"context"
	"errors"

	"github.com/protows/protows"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"github.com/protows/protows/internal/wireerr"
	"google.golang.org/protobuf/proto"
)

// CallUnary calls a unary method (its full name, "/pkg.Service/Method") and
// returns its response. Res is the response message type, such as
// chatv1.SendResponse.
//
// While the client is reconnecting, the call waits for the connection,
// within ctx. When ctx ends before the reply, the client sends CANCEL and
// returns a CodeDeadlineExceeded or CodeCanceled error; the request tells
// the server the time left (timeout_ms). When the connection drops with the
// call in flight, the call fails with CodeUnavailable wrapping
// ErrConnectionLost, unless it was made with Idempotent (sent again, up to
// 3 times) or ExactlyOnce (sent again with its idempotency key until it is
// answered, see ExactlyOnce). Every error is a *protows.Error that names the
// method (protows.Error.Method): the server's, or one of these.
func CallUnary[Res any](ctx context.Context, c *Client, method string, req proto.Message, opts ...CallOption) (*Res, error) {
	if _, ok := any(new(Res)).(proto.Message); !ok {
		return nil, protows.Errorf(protows.CodeInternal, "client: %T does not implement proto.Message", new(Res)).WithMethod(method)
	}
	cc := newCallConfig(opts)
	if cc.exactlyOnce && cc.key == "" {
		cc.key = newIdempotencyKey()
	}
	call := &Call{Method: method, Request: req, md: cc.metadata, cc: &cc, newRes: func() (proto.Message, error) {
		_, msg, err := newResponse[Res](cc.initResponse)
		return msg, err
	}}
	msg, err := c.unary(ctx, call)
	if err != nil {
		return nil, nameError(method, err)
	}
	res, ok := any(msg).(*Res)
	if !ok {
		return nil, protows.Errorf(protows.CodeInternal, "client: an interceptor returned %T, not %T", msg, new(Res)).WithMethod(method)
	}
	if cc.replyMD != nil {
		*cc.replyMD = call.replyMD
	}
	return res, nil
}

// invokeUnary is the innermost UnaryFunc: it makes the call on the
// connection, retrying an idempotent one after a drop.
func (c *Client) invokeUnary(ctx context.Context, call *Call) (proto.Message, error) {
	res, err := c.doUnary(ctx, call)
	return res, nameError(call.Method, err)
}

func (c *Client) doUnary(ctx context.Context, call *Call) (proto.Message, error) {
	if ctx.Err() != nil {
		// A call whose context ended before it began is not sent: once
		// sent, its reply could win the race with the context.
		return nil, ctxError(ctx)
	}
	method := call.Method
	payload, err := c.preparePayload(method, call.Request)
	if err != nil {
		return nil, err
	}
	if err := c.acquire(ctx); err != nil {
		return nil, err
	}
	defer c.releaseSlot()
	var env *protowsv1.Envelope
	if call.cc.exactlyOnce {
		env, err = c.callOnce(ctx, method, payload, call.md, call.cc.key)
	} else {
		env, err = c.callRetrying(ctx, method, payload, call.md, call.cc.idempotent)
	}
	if err != nil {
		return nil, err
	}
	msg, err := call.newRes()
	if err != nil {
		return nil, protows.Errorf(protows.CodeInternal, "client: reply: %w", err)
	}
	if err := c.cfg.codec.UnmarshalPayload(env.GetPayload(), msg); err != nil {
		return nil, protows.Errorf(protows.CodeInternal, "client: decode reply: %w", err)
	}
	call.replyMD = env.GetMetadata()
	return msg, nil
}

// callRetrying makes a unary call without a key, sending it again after a
// drop only when it is idempotent, and returns its REPLY.
func (c *Client) callRetrying(ctx context.Context, method string, payload []byte, md map[string]string, idempotent bool) (*protowsv1.Envelope, error) {
	tries := 1
	if idempotent {
		tries += c.cfg.retryAttempts
	}
	var dead *conn
	for try := 1; ; {
		cn, err := c.waitConn(ctx, dead)
		if err != nil {
			return nil, err
		}
		env, err := cn.unary(ctx, method, payload, md)
		if errors.Is(err, errLinkDown) {
			// Never sent: not a retry, whatever the method.
			dead = cn
			continue
		}
		if errors.Is(err, ErrConnectionLost) && try < tries {
			try++
			dead = cn
			c.cfg.logger.Debug("protows client: retrying idempotent call", "method", method, "try", try+1)
			continue
		}
		return env, err
	}
}

// preparePayload checks the method name and encodes the request.
func (c *Client) preparePayload(method string, req proto.Message) ([]byte, error) {
	if !protows.ValidMethodName(method) {
		return nil, protows.Errorf(protows.CodeInvalidArgument, "client: %q is not a full method name", method)
	}
	payload, err := c.cfg.codec.AppendPayload(nil, req)
	if err != nil {
		return nil, protows.Errorf(protows.CodeInternal, "client: encode request: %w", err)
	}
	return payload, nil
}

// unaryResult is the outcome of a unary call on one connection.
type unaryResult struct {
	env *protowsv1.Envelope
	err error
	// retry says that the server refused the call with unavailable, which
	// an outbox call may send again.
	retry bool
}

// unarySink is a unary call registered on a conn. Exactly one party sends
// on ch: whoever removed the call from the conn's table.
type unarySink struct {
	ch chan unaryResult
}

var _ sink = (*unarySink)(nil)

func (s *unarySink) deliver(cn *conn, id uint32, env *protowsv1.Envelope, final bool) {
	var r unaryResult
	switch env.GetKind() {
	case protowsv1.Kind_KIND_REPLY:
		r.env = env
	case protowsv1.Kind_KIND_ERROR:
		r.err = wireerr.FromWire(cn.codec, env.GetError())
	default:
		r.err = protows.Errorf(protows.CodeInternal, "client: server sent %s for a unary call", env.GetKind())
	}
	if !final && !cn.unregister(id) {
		return
	}
	s.ch <- r
}

func (s *unarySink) lost(_ *conn, _ uint32, err error) {
	s.ch <- unaryResult{err: err}
}

// unary makes one unary call on cn. It returns errLinkDown when cn ended
// before the request was queued: the request never reached the server.
func (cn *conn) unary(ctx context.Context, method string, payload []byte, md map[string]string) (*protowsv1.Envelope, error) {
	s := &unarySink{ch: make(chan unaryResult, 1)}
	id, err := cn.register(s)
	if err != nil {
		return nil, err
	}
	b, err := cn.encode(cn.unaryRequest(ctx, id, method, payload, md, ""))
	if err == nil {
		err = cn.send(ctx, b)
	}
	if err != nil {
		if !cn.unregister(id) {
			// The connection ended and drain already settled the call.
			r := <-s.ch
			return nil, r.err
		}
		return nil, err
	}
	select {
	case r := <-s.ch:
		return r.env, r.err
	case <-ctx.Done():
		if cn.unregister(id) {
			cn.sendCancel(id)
			return nil, ctxError(ctx)
		}
		// The reply, or the end of the connection, won the race.
		r := <-s.ch
		return r.env, r.err
	}
}
