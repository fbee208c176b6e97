// Package hubtest runs hubs behind real protows servers on loopback, with
// raw WebSocket clients that show every envelope, for the tests of package
// hub and its brokers.
package hubtest

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	protows "github.com/protows/protows"
	"github.com/protows/protows/codec"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"github.com/protows/protows/hub"
	"github.com/protows/protows/router"
	"github.com/protows/protows/transport"
)

// Msg is the broadcast type of the test hubs: Subject names the publisher,
// ExpiresAt numbers its messages.
type Msg = protowsv1.AuthenticateResponse

// WatchMethod is a server-streaming method that joins the room named by
// the request's token.
const WatchMethod = "/hubtest.v1.Rooms/Watch"

// AttachMethod is WatchMethod through Hub.Attach: the handler returns at
// once and the call stays open.
const AttachMethod = "/hubtest.v1.Rooms/Attach"

// StreamTimeout bounds the streams of WatchTimeoutMethod and
// AttachTimeoutMethod (router.WithStreamTimeout).
const StreamTimeout = 300 * time.Millisecond

// WatchTimeoutMethod and AttachTimeoutMethod are WatchMethod and
// AttachMethod with a StreamTimeout.
const (
	WatchTimeoutMethod  = "/hubtest.v1.Rooms/WatchTimeout"
	AttachTimeoutMethod = "/hubtest.v1.Rooms/AttachTimeout"
)

// LeaveMethod is a unary method that makes the calling connection leave the
// room named by the request's token; it answers with the number of
// memberships that ended in ExpiresAt.
const LeaveMethod = "/hubtest.v1.Rooms/Leave"

// BadJoinMethod is a unary method that calls Join, which only a
// server-streaming method may.
const BadJoinMethod = "/hubtest.v1.Rooms/BadJoin"

// Serve serves h's rooms through WatchMethod and LeaveMethod on a loopback
// server with a router made with opts, until the test ends. It returns the
// WebSocket URL.
func Serve(t testing.TB, h *hub.Hub[*Msg], cfg transport.Config, opts ...router.Option) string {
	t.Helper()
	r := router.New(opts...)
	err := router.HandleServerStream(r, WatchMethod,
		func(ctx context.Context, req *protowsv1.AuthenticateRequest, s router.Stream[*Msg]) error {
			return h.Join(ctx, req.GetToken(), s)
		})
	if err != nil {
		t.Fatal(err)
	}
	join := func(ctx context.Context, req *protowsv1.AuthenticateRequest, s router.Stream[*Msg]) error {
		return h.Join(ctx, req.GetToken(), s)
	}
	attach := func(ctx context.Context, req *protowsv1.AuthenticateRequest, s router.Stream[*Msg]) error {
		return h.Attach(ctx, req.GetToken(), s)
	}
	err = errors.Join(
		router.HandleServerStream(r, AttachMethod, attach),
		router.HandleServerStream(r, WatchTimeoutMethod, join, router.WithStreamTimeout(StreamTimeout)),
		router.HandleServerStream(r, AttachTimeoutMethod, attach, router.WithStreamTimeout(StreamTimeout)),
	)
	if err != nil {
		t.Fatal(err)
	}
	err = router.HandleUnary(r, LeaveMethod,
		func(ctx context.Context, req *protowsv1.AuthenticateRequest) (*Msg, error) {
			conn, ok := transport.ConnFromContext(ctx)
			if !ok {
				return nil, errors.New("no connection")
			}
			return &Msg{ExpiresAt: int64(h.Leave(req.GetToken(), conn.ID()))}, nil
		})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	err = router.HandleUnary(r, BadJoinMethod,
		func(ctx context.Context, req *protowsv1.AuthenticateRequest) (*Msg, error) {
			return nil, h.Join(ctx, req.GetToken(), nil)
		})
	if err != nil {
		t.Fatal(err)
	}
	srv := transport.NewServer(r, cfg)
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		hs.Close()
	})
	return "ws" + strings.TrimPrefix(hs.URL, "http")
}

// Client is a raw protows client.
type Client struct {
	t     testing.TB
	ws    *websocket.Conn
	codec codec.Codec
	next  []*protowsv1.Envelope
}

// Dial connects with codec c.
func Dial(t testing.TB, url string, c codec.Codec) *Client {
	t.Helper()
	d := websocket.Dialer{Subprotocols: []string{c.Name()}, HandshakeTimeout: 5 * time.Second}
	ws, resp, err := d.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	t.Cleanup(func() { _ = ws.Close() })
	return &Client{t: t, ws: ws, codec: c}
}

// Watch starts a stream call with id that joins room.
func (c *Client) Watch(id uint32, room string) { c.call(id, WatchMethod, room) }

// Attach starts a stream call with id that attaches to room.
func (c *Client) Attach(id uint32, room string) { c.call(id, AttachMethod, room) }

// Cancel sends a CANCEL of the call id.
func (c *Client) Cancel(id uint32) {
	c.t.Helper()
	c.send(&protowsv1.Envelope{Id: id, Kind: protowsv1.Kind_KIND_CANCEL})
}

// Leave calls LeaveMethod with id for room.
func (c *Client) Leave(id uint32, room string) { c.call(id, LeaveMethod, room) }

// Call calls method with id and a request naming room.
func (c *Client) Call(id uint32, method, room string) { c.call(id, method, room) }

func (c *Client) call(id uint32, method, room string) {
	c.t.Helper()
	payload, err := c.codec.AppendPayload(nil, &protowsv1.AuthenticateRequest{Token: room})
	if err != nil {
		c.t.Fatal(err)
	}
	e := &protowsv1.Envelope{Id: id, Kind: protowsv1.Kind_KIND_REQUEST, MethodId: protows.MethodID(method), Payload: payload}
	if !c.codec.Binary() {
		e.MethodId, e.Method = 0, method
	}
	c.send(e)
}

// CallTimeout calls method with id, a request naming room and the
// REQUEST's timeout_ms.
func (c *Client) CallTimeout(id uint32, method, room string, ms uint32) {
	c.t.Helper()
	payload, err := c.codec.AppendPayload(nil, &protowsv1.AuthenticateRequest{Token: room})
	if err != nil {
		c.t.Fatal(err)
	}
	e := &protowsv1.Envelope{Id: id, Kind: protowsv1.Kind_KIND_REQUEST, Method: method, Payload: payload, TimeoutMs: ms}
	c.send(e)
}

func (c *Client) send(e *protowsv1.Envelope) {
	c.t.Helper()
	frame, err := codec.MarshalFrame(c.codec, e)
	if err != nil {
		c.t.Fatal(err)
	}
	typ := websocket.BinaryMessage
	if !c.codec.Binary() {
		typ = websocket.TextMessage
	}
	if err := c.ws.WriteMessage(typ, frame); err != nil {
		c.t.Fatal(err)
	}
}

// Next returns the next envelope, or the error that ended the connection
// (a *websocket.CloseError for a close frame).
func (c *Client) Next(timeout time.Duration) (*protowsv1.Envelope, error) {
	for len(c.next) == 0 {
		_ = c.ws.SetReadDeadline(time.Now().Add(timeout))
		_, data, err := c.ws.ReadMessage()
		if err != nil {
			return nil, err
		}
		envs, err := c.codec.DecodeFrame(data)
		if err != nil {
			return nil, err
		}
		c.next = envs
	}
	e := c.next[0]
	c.next = c.next[1:]
	return e, nil
}

// NextMsg returns the next STREAM_MESSAGE's envelope and message.
func (c *Client) NextMsg() (*protowsv1.Envelope, *Msg) {
	c.t.Helper()
	e, err := c.Next(5 * time.Second)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	if e.GetKind() != protowsv1.Kind_KIND_STREAM_MESSAGE {
		c.t.Fatalf("got %v (%v), want STREAM_MESSAGE", e.GetKind(), e.GetError())
	}
	m := &Msg{}
	if err := c.codec.UnmarshalPayload(e.GetPayload(), m); err != nil {
		c.t.Fatal(err)
	}
	return e, m
}

// CloseCode reads until the connection ends and returns its close code
// (1006 when it ended without a close frame).
func (c *Client) CloseCode() int {
	for {
		_, err := c.Next(5 * time.Second)
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code
		}
		return websocket.CloseAbnormalClosure
	}
}

// Raw returns the WebSocket connection, for tests that stop reading.
func (c *Client) Raw() *websocket.Conn { return c.ws }

// WaitMembers waits until h lists n members of room.
func WaitMembers(t testing.TB, h *hub.Hub[*Msg], room string, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(h.Members(room)) != n {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d members of %q, want %d", h.Node(), len(h.Members(room)), room, n)
		}
		time.Sleep(time.Millisecond)
	}
}

var _ http.Handler = (*transport.Server)(nil)
