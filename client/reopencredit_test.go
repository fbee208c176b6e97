package client_test

import (
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/protows/protows/client"
	"github.com/protows/protows/codec"
	testv1 "github.com/protows/protows/gen/go/protows/test/v1"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
)

// TestReopenSendsRequestBeforeCredit: a stream re-opened after a dropped
// connection still holds what the first connection sent. When its reader
// takes enough of it before the new REQUEST goes out to grant credit, the
// CREDIT must follow the REQUEST: the server ignores a CREDIT for a call it
// does not know yet, and the client would count credit the server never
// got, and wait for messages that never come.
func TestReopenSendsRequestBeforeCredit(t *testing.T) {
	t.Parallel()
	forCodecs(t, func(t *testing.T, cd codec.Codec) {
		synctest.Test(t, func(t *testing.T) { testReopenSendsRequestBeforeCredit(t, cd) })
	})
}

func testReopenSendsRequestBeforeCredit(t *testing.T, cd codec.Codec) {
	const window = 256 // the default stream buffer
	second := make(chan []protowsv1.Kind, 1)
	fs := newMemFake(t, nil, func(fc *fakeConn) {
		if fc.n == 1 {
			envs, err := fc.read()
			if err != nil {
				return
			}
			id := envs[0].GetId()
			for n := uint32(1); n <= window; n++ {
				p, _ := fc.codec.AppendPayload(nil, &testv1.CountResponse{N: n})
				if fc.write(&protowsv1.Envelope{Id: id, Kind: protowsv1.Kind_KIND_STREAM_MESSAGE, Payload: p}) != nil {
					return
				}
			}
			fc.serve(nil) // until the test cuts the connection
			return
		}
		var kinds []protowsv1.Kind
		for len(kinds) < 2 {
			envs, err := fc.read()
			if err != nil {
				return
			}
			for _, e := range envs {
				if e.GetKind() != protowsv1.Kind_KIND_PING {
					kinds = append(kinds, e.GetKind())
				}
			}
		}
		second <- kinds
		fc.serve(nil)
	})
	var (
		st     atomic.Pointer[client.ServerStream[testv1.CountResponse]]
		opens  atomic.Int32
		readIn = make(chan int, 1)
	)
	c := fs.dial(t, client.WithCodec(cd), client.WithBeforeOpenSend(func() {
		if opens.Add(1) != 2 {
			return
		}
		// The re-opening: read most of what the first connection sent
		// before the REQUEST goes out.
		n := 0
		for range window - 56 {
			if !st.Load().Receive() {
				break
			}
			n++
		}
		readIn <- n
	}))
	s, err := client.CallServerStream[testv1.CountResponse](testCtx(t), c, countMethod, &testv1.CountRequest{})
	if err != nil {
		t.Fatal(err)
	}
	st.Store(s)
	defer s.Close()
	// All the first connection's messages are held once nothing moves.
	synctest.Wait()
	fs.mu.Lock()
	fs.conns[0].Close()
	fs.mu.Unlock()
	if n := <-readIn; n != window-56 {
		t.Fatalf("read %d held messages while re-opening, want %d", n, window-56)
	}
	kinds := <-second
	if kinds[0] != protowsv1.Kind_KIND_REQUEST || kinds[1] != protowsv1.Kind_KIND_CREDIT {
		t.Errorf("the re-opened stream sent %v, want its REQUEST, then a CREDIT", kinds)
	}
}
