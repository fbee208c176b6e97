package transport_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	testv1 "github.com/protows/protows/gen/go/protows/test/v1"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"github.com/protows/protows/router"
	"github.com/protows/protows/transport"
)

const whoMethod = "/conndone.v1.ConnDone/Who"

// TestConnContextAndDone checks what an idle connection now makes lazily
// or holds inline: the handler's context leads to its Conn, Conn.Context
// carries the Conn and is cancelled at the end, and Conn.Done is closed at
// the end whether it was first asked for before (one connection) or after
// (the other) the connection ended.
func TestConnContextAndDone(t *testing.T) {
	t.Parallel()
	synctest.Test(t, testConnContextAndDone)
}

func testConnContextAndDone(t *testing.T) {
	conns := make(chan *transport.Conn, 2)
	ts := startMemServer(t, transport.Config{}, func(r *router.Router) {
		err := router.HandleUnary(r, whoMethod, func(ctx context.Context, _ *testv1.CountRequest) (*testv1.CountResponse, error) {
			conn, ok := transport.ConnFromContext(ctx)
			if !ok {
				t.Error("no Conn in the handler's context")
			}
			conns <- conn
			return &testv1.CountResponse{}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
	var got [2]*transport.Conn
	var clients [2]*client
	for i := range clients {
		clients[i] = ts.dial(t, nil, nil)
		e := clients[i].call(1, whoMethod, &testv1.CountRequest{})
		if e.GetKind() != protowsv1.Kind_KIND_REPLY {
			t.Fatalf("reply: %v", e)
		}
		got[i] = <-conns
	}
	if got[0] == got[1] {
		t.Fatal("two connections share a Conn")
	}
	for _, conn := range got {
		if c, ok := transport.ConnFromContext(conn.Context()); !ok || c != conn {
			t.Fatalf("Conn.Context leads to %p, want %p", c, conn)
		}
		if err := conn.Context().Err(); err != nil {
			t.Fatalf("context of an open connection: %v", err)
		}
	}

	before := got[0].Done() // asked for while the connection is open
	select {
	case <-before:
		t.Fatal("Done closed while the connection is open")
	default:
	}
	clients[0].ws.Close()
	select {
	case <-before:
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed after the client left")
	}
	if got[0].Context().Err() == nil {
		t.Fatal("Conn.Context not cancelled at the end")
	}

	// Shutdown returns once every connection ended: the other connection's
	// Done, first asked for now, must come closed.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ts.Server.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-got[1].Done():
	default:
		t.Fatal("Done of an ended connection is not closed")
	}
	if got[1].Context().Err() == nil {
		t.Fatal("Conn.Context not cancelled at the end")
	}
}
