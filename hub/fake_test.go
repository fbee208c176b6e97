package hub

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/protows/protows/codec"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"github.com/protows/protows/transport"
)

// msg is the message type of the tests' hubs: Subject names the publisher
// and ExpiresAt numbers its messages.
type msg = protowsv1.AuthenticateResponse

// fakeConn is a connection that keeps what it is sent, with an optional
// send-queue limit beyond which it behaves as a slow consumer. Its calls
// (fakeConn.call) are streams that take encoded envelopes, as the router's
// are.
type fakeConn struct {
	id    string
	codec codec.Codec
	limit int

	mu     sync.Mutex
	elems  []codec.Parts
	closed bool
	wake   chan struct{}
}

func newFake(id string, c codec.Codec) *fakeConn {
	return &fakeConn{id: id, codec: c, wake: make(chan struct{}, 1)}
}

func (f *fakeConn) ID() string         { return f.id }
func (f *fakeConn) Codec() codec.Codec { return f.codec }

// fakeCall is a stream call of a fakeConn: a Stream[*msg] and an enqueuer,
// like the stream of a router handler.
type fakeCall struct {
	*fakeConn
	id uint32
}

var _ enqueuer = fakeCall{}

// call returns the stream of f's call id.
func (f *fakeConn) call(id uint32) fakeCall { return fakeCall{f, id} }

func (c fakeCall) ID() uint32 { return c.id }

// Send encodes m as transport.Call.Send does.
func (c fakeCall) Send(m *msg) error {
	payload, err := c.codec.AppendPayload(nil, m)
	if err != nil {
		return err
	}
	elem, err := c.codec.AppendEnvelope(nil, &protowsv1.Envelope{Id: c.id, Kind: protowsv1.Kind_KIND_STREAM_MESSAGE, Payload: payload})
	if err != nil {
		return err
	}
	return c.EnqueueParts(codec.Parts{Body: elem})
}

func (f *fakeConn) EnqueueParts(elem codec.Parts) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return transport.ErrClosed
	}
	if f.limit > 0 && len(f.elems) >= f.limit {
		f.closed = true
		return transport.ErrSlowConsumer
	}
	f.elems = append(f.elems, elem)
	select {
	case f.wake <- struct{}{}:
	default:
	}
	return nil
}

// received decodes what the connection was sent.
func (f *fakeConn) received(t *testing.T) []*protowsv1.Envelope {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*protowsv1.Envelope
	for _, e := range f.elems {
		envs, err := f.codec.DecodeFrame(f.codec.AppendFrameParts(nil, []codec.Parts{e}))
		if err != nil {
			t.Fatalf("%s: undecodable element %q: %v", f.id, e.AppendTo(nil), err)
		}
		out = append(out, envs...)
	}
	return out
}

// messages decodes the payloads f was sent, with their sequence numbers.
func (f *fakeConn) messages(t *testing.T) ([]*msg, []uint64) {
	t.Helper()
	var ms []*msg
	var seqs []uint64
	for _, e := range f.received(t) {
		if e.GetKind() != protowsv1.Kind_KIND_STREAM_MESSAGE {
			t.Fatalf("%s: kind %v, want STREAM_MESSAGE", f.id, e.GetKind())
		}
		m := &msg{}
		if err := f.codec.UnmarshalPayload(e.GetPayload(), m); err != nil {
			t.Fatal(err)
		}
		ms = append(ms, m)
		seqs = append(seqs, e.GetSeq())
	}
	return ms, seqs
}

// waitCount waits until f holds n elements.
func (f *fakeConn) waitCount(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		f.mu.Lock()
		got := len(f.elems)
		f.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-f.wake:
		case <-deadline:
			t.Fatalf("%s: got %d elements, want %d", f.id, got, n)
		}
	}
}

// joined is a membership held by a goroutine, as a stream handler would.
type joined struct {
	cancel context.CancelFunc
	err    chan error
	id     string
}

// joinFake makes call callID of f a member of room, and waits until the
// hub lists it.
func joinFake(t *testing.T, h *Hub[*msg], room string, f *fakeConn, callID uint32) *joined {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	m := fakeMember(t, ctx, h, room, f.call(callID), f.id)
	j := &joined{cancel: cancel, err: make(chan error, 1), id: m.info.ID()}
	go func() { j.err <- h.join(ctx, m) }()
	waitFor(t, func() bool { return hasMember(h.Members(room), j.id) })
	return j
}

// fakeMember returns the membership of s in room, made as Join makes it
// (so that s is delivered to as Join's stream would be) and named after a
// connection connID with subject "user-"+connID, as if s were a call of a
// protows connection.
func fakeMember(tb testing.TB, ctx context.Context, h *Hub[*msg], room string, s Stream[*msg], connID string) *member[*msg] {
	tb.Helper()
	m, err := h.newMember(ctx, room, s)
	if err != nil {
		tb.Fatal(err)
	}
	m.info.ConnID, m.info.Subject = connID, "user-"+connID
	return m
}

// end waits for the membership's Join to return.
func (j *joined) end(t *testing.T) error {
	t.Helper()
	select {
	case err := <-j.err:
		return err
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: Join did not return", j.id)
		return nil
	}
}

func hasMember(ms []Member, id string) bool {
	for _, m := range ms {
		if m.ID() == id {
			return true
		}
	}
	return false
}

// waitFor polls cond (the hub offers no channel for presence changes of
// other nodes) for up to 5 s. In a synctest bubble, where the tests that
// use it run (all but TestChaos), the polls and the heartbeats and
// presence TTLs they wait for run on the bubble's clock, and take no
// time.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(time.Millisecond)
	}
}
