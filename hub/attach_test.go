package hub_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	protows "github.com/protows/protows"
	"github.com/protows/protows/codec"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"github.com/protows/protows/hub"
	"github.com/protows/protows/hub/internal/hubtest"
	"github.com/protows/protows/transport"
)

// connEnded stands for a call that the end of its connection ended.
const connEnded = protows.Code(1 << 20)

// streamEnd reads cl until the end of call id and returns its code
// (CodeOK for a STREAM_END without error), or connEnded when the connection
// ended first.
func streamEnd(t *testing.T, cl *hubtest.Client, id uint32) protows.Code {
	t.Helper()
	for {
		e, err := cl.Next(5 * time.Second)
		if err != nil {
			return connEnded
		}
		if e.GetId() != id {
			continue
		}
		switch e.GetKind() {
		case protowsv1.Kind_KIND_STREAM_END, protowsv1.Kind_KIND_ERROR:
			return protows.Code(e.GetError().GetCode())
		case protowsv1.Kind_KIND_STREAM_MESSAGE:
			continue
		default:
			t.Fatalf("call %d: unexpected %v", id, e)
		}
	}
}

// TestMembershipEnds ends a membership in every way it can end, through
// Join (a parked handler) and Attach (a detached call), in both codecs:
// the call ends the same way in both, and the member is removed.
func TestMembershipEnds(t *testing.T) {
	t.Parallel()
	type how struct {
		name   string
		cfg    transport.Config
		method func(attach bool) string
		// end ends the membership of call 1 of cl and returns the code
		// its call ends with.
		end  func(t *testing.T, h *hub.Hub[*Msg], cl *hubtest.Client) protows.Code
		want protows.Code
		// timeoutMs is the REQUEST's timeout_ms.
		timeoutMs uint32
	}
	plain := func(attach bool) string {
		if attach {
			return hubtest.AttachMethod
		}
		return hubtest.WatchMethod
	}
	hows := []how{
		{name: "leave", method: plain, want: protows.CodeOK, end: func(t *testing.T, h *hub.Hub[*Msg], cl *hubtest.Client) protows.Code {
			cl.Leave(2, "r")
			return streamEnd(t, cl, 1)
		}},
		{name: "close", method: plain, want: protows.CodeUnavailable, end: func(t *testing.T, h *hub.Hub[*Msg], cl *hubtest.Client) protows.Code {
			if err := h.Close(); err != nil {
				t.Fatal(err)
			}
			return streamEnd(t, cl, 1)
		}},
		{name: "cancel", method: plain, want: protows.CodeCanceled, end: func(t *testing.T, h *hub.Hub[*Msg], cl *hubtest.Client) protows.Code {
			cl.Cancel(1)
			return streamEnd(t, cl, 1)
		}},
		{name: "stream timeout", want: protows.CodeDeadlineExceeded, method: func(attach bool) string {
			if attach {
				return hubtest.AttachTimeoutMethod
			}
			return hubtest.WatchTimeoutMethod
		}, end: func(t *testing.T, h *hub.Hub[*Msg], cl *hubtest.Client) protows.Code {
			return streamEnd(t, cl, 1)
		}},
		{name: "connection close", method: plain, want: connEnded, end: func(t *testing.T, h *hub.Hub[*Msg], cl *hubtest.Client) protows.Code {
			_ = cl.Raw().Close()
			return connEnded
		}},
		{name: "slow consumer", method: plain, cfg: transport.Config{SendQueue: 8, WriteTimeout: 5 * time.Second}, want: connEnded, end: func(t *testing.T, h *hub.Hub[*Msg], cl *hubtest.Client) protows.Code {
			// Far more than loopback socket buffers and a queue of 8
			// hold: the queue overflows, later broadcasts skip the
			// closing connection.
			big := strings.Repeat("x", 32<<10)
			for range 2000 {
				if err := h.Broadcast(context.Background(), "r", &Msg{Subject: big}); err != nil {
					t.Fatal(err)
				}
			}
			if code := cl.CloseCode(); code != int(protows.CloseSlowConsumer) {
				t.Fatalf("close code %d, want %d", code, protows.CloseSlowConsumer)
			}
			return connEnded
		}},
		{name: "timeout_ms", method: plain, timeoutMs: 200, want: protows.CodeDeadlineExceeded, end: func(t *testing.T, h *hub.Hub[*Msg], cl *hubtest.Client) protows.Code {
			return streamEnd(t, cl, 1)
		}},
	}
	for _, hw := range hows {
		for _, c := range []codec.Codec{codec.Proto(), codec.JSON()} {
			for _, attach := range []bool{false, true} {
				name := fmt.Sprintf("%s/%s/join", hw.name, c.Name())
				if attach {
					name = fmt.Sprintf("%s/%s/attach", hw.name, c.Name())
				}
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					h := newHub(t, hub.Config[*Msg]{})
					url := hubtest.Serve(t, h, hw.cfg)
					cl := hubtest.Dial(t, url, c)
					if hw.timeoutMs > 0 {
						cl.CallTimeout(1, hw.method(attach), "r", hw.timeoutMs)
					} else {
						cl.Call(1, hw.method(attach), "r")
					}
					hubtest.WaitMembers(t, h, "r", 1)
					if got := hw.end(t, h, cl); got != hw.want {
						t.Errorf("the call ended with %v, want %v", got, hw.want)
					}
					hubtest.WaitMembers(t, h, "r", 0)
				})
			}
		}
	}
}

// TestAttachedMembersHoldNoGoroutine attaches 1,000 connections to a
// room: the process then runs no more goroutines than it did with the
// connections alone, and the members still get broadcasts and end with
// the hub.
func TestAttachedMembersHoldNoGoroutine(t *testing.T) {
	// Not parallel: it counts the process's goroutines.
	const n = 1000
	h, err := hub.New(hub.Config[*Msg]{})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	url := hubtest.Serve(t, h, transport.Config{})
	clients := make([]*hubtest.Client, n)
	for i := range clients {
		clients[i] = hubtest.Dial(t, url, codec.Proto())
	}
	base := runtime.NumGoroutine()
	for _, cl := range clients {
		cl.Attach(1, "r")
	}
	hubtest.WaitMembers(t, h, "r", n)
	// The handlers returned; the workers that ran them exit once idle
	// (a second). With Join, n handlers would stay parked.
	const slack = 16
	deadline := time.Now().Add(15 * time.Second)
	for runtime.NumGoroutine() > base+slack {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines with %d attached members, %d without: want at most %d more", runtime.NumGoroutine(), n, base, slack)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := h.Broadcast(context.Background(), "r", &Msg{Subject: "hi"}); err != nil {
		t.Fatal(err)
	}
	for i, cl := range clients {
		if e, m := cl.NextMsg(); e.GetId() != 1 || m.GetSubject() != "hi" {
			t.Fatalf("client %d got %v %v", i, e, m)
		}
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	for i, cl := range clients {
		if code := streamEnd(t, cl, 1); code != protows.CodeUnavailable {
			t.Fatalf("client %d: the call ended with %v, want unavailable", i, code)
		}
	}
	hubtest.WaitMembers(t, h, "r", 0)
}
