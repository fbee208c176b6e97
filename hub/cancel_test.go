package hub_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/protows/protows/codec"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"github.com/protows/protows/hub"
	"github.com/protows/protows/hub/internal/hubtest"
	"github.com/protows/protows/transport"
)

// TestNoBroadcastAfterCancel broadcasts to a room without pause while the
// client cancels its memberships' streams: the transport queues each
// STREAM_END before it cancels the handler's context, so a broadcast in
// between must be refused (transport.Call.Enqueue), never sent after the
// end.
func TestNoBroadcastAfterCancel(t *testing.T) {
	t.Parallel()
	const streams = 32
	for _, c := range []codec.Codec{codec.Proto(), codec.JSON()} {
		t.Run(c.Name(), func(t *testing.T) {
			h := newHub(t, hub.Config[*Msg]{})
			url := hubtest.Serve(t, h, transport.Config{RateLimit: -1, SendQueue: 1 << 20, MaxQueueBytes: -1})
			cl := hubtest.Dial(t, url, c)
			for id := uint32(1); id <= streams; id++ {
				cl.Watch(id, "storm")
			}
			hubtest.WaitMembers(t, h, "storm", streams)

			stop := make(chan struct{})
			var wg sync.WaitGroup
			for range 2 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for k := int64(1); ; k++ {
						select {
						case <-stop:
							return
						default:
						}
						if err := h.Broadcast(context.Background(), "storm", &Msg{ExpiresAt: k}); err != nil {
							t.Error(err)
							return
						}
						time.Sleep(50 * time.Microsecond) // a storm the client can read under -race
					}
				}()
			}

			type result struct {
				ended, before int
				after         []uint32
			}
			done := make(chan result, 1)
			allEnded := make(chan struct{})
			go func() {
				var r result
				ended := map[uint32]bool{}
				for {
					e, err := cl.Next(5 * time.Second)
					if err != nil {
						t.Errorf("read: %v", err)
						done <- r
						return
					}
					switch {
					case e.GetKind() == protowsv1.Kind_KIND_PONG:
						done <- r
						return
					case ended[e.GetId()]:
						r.after = append(r.after, e.GetId())
					case e.GetKind() == protowsv1.Kind_KIND_STREAM_END:
						ended[e.GetId()] = true
						if r.ended++; r.ended == streams {
							close(allEnded)
						}
					case e.GetKind() == protowsv1.Kind_KIND_STREAM_MESSAGE:
						r.before++
					default:
						t.Errorf("unexpected %v", e)
					}
				}
			}()
			send := func(e *protowsv1.Envelope) {
				frame, err := codec.MarshalFrame(c, e)
				if err != nil {
					t.Fatal(err)
				}
				typ := websocket.BinaryMessage
				if !c.Binary() {
					typ = websocket.TextMessage
				}
				_ = cl.Raw().SetWriteDeadline(time.Now().Add(5 * time.Second))
				if err := cl.Raw().WriteMessage(typ, frame); err != nil {
					t.Fatal(err)
				}
			}
			for id := uint32(1); id <= streams; id++ {
				send(&protowsv1.Envelope{Id: id, Kind: protowsv1.Kind_KIND_CANCEL})
				time.Sleep(200 * time.Microsecond)
			}
			select {
			case <-allEnded:
			case <-time.After(10 * time.Second):
				t.Error("not every stream ended")
			}
			hubtest.WaitMembers(t, h, "storm", 0)
			close(stop)
			wg.Wait()
			// Everything queued before the PONG arrives before it.
			send(&protowsv1.Envelope{Id: 99999, Kind: protowsv1.Kind_KIND_PING})
			r := <-done
			if r.ended != streams {
				t.Errorf("%d STREAM_ENDs, want %d", r.ended, streams)
			}
			if len(r.after) > 0 {
				t.Errorf("%d broadcasts after their call's STREAM_END (ids %v)", len(r.after), r.after[:min(10, len(r.after))])
			}
			if r.before == 0 {
				t.Error("no broadcast reached the client: the storm tested nothing")
			}
			t.Logf("%d broadcasts received before the ends", r.before)
		})
	}
}
