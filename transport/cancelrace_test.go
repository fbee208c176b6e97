package transport_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/protows/protows/codec"
	testv1 "github.com/protows/protows/gen/go/protows/test/v1"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"github.com/protows/protows/router"
	"github.com/protows/protows/transport"
)

const stormMethod = "/storm.v1.Storm/Watch"

// TestNothingAfterTheEnd broadcasts through Call.Enqueue to many stream
// calls from several goroutines while the client cancels them one by one:
// no envelope of a call may follow its STREAM_END, and Call.Enqueue must
// refuse with ErrCallEnded once the call ended.
func TestNothingAfterTheEnd(t *testing.T) {
	t.Parallel()
	const (
		streams      = 64
		broadcasters = 4
	)
	for _, c := range codecs {
		t.Run(c.Name(), func(t *testing.T) {
			var (
				mu    sync.Mutex
				calls = map[*transport.Call][]byte{} // running calls and their encoded message
				ready = make(chan struct{})
			)
			ts := startServer(t, transport.Config{RateLimit: -1, SendQueue: 1 << 20, MaxQueueBytes: -1}, func(r *router.Router) {
				err := router.HandleServerStream(r, stormMethod, func(ctx context.Context, _ *testv1.CountRequest, _ router.Stream[*testv1.CountResponse]) error {
					call, _ := transport.CallFromContext(ctx)
					payload, err := call.Codec().AppendPayload(nil, &testv1.CountResponse{N: call.ID()})
					if err != nil {
						return err
					}
					elem, err := call.Codec().AppendEnvelope(nil, &protowsv1.Envelope{Id: call.ID(), Kind: protowsv1.Kind_KIND_STREAM_MESSAGE, Payload: payload})
					if err != nil {
						return err
					}
					mu.Lock()
					calls[call] = elem
					if len(calls) == streams {
						close(ready)
					}
					mu.Unlock()
					<-ctx.Done()
					// The end was queued before the context was cancelled.
					if err := call.Enqueue(elem); !errors.Is(err, transport.ErrCallEnded) {
						t.Errorf("Enqueue after the end of call %d: %v, want ErrCallEnded", call.ID(), err)
					}
					return ctx.Err()
				})
				if err != nil {
					t.Fatal(err)
				}
			})
			cl := dial(t, ts.url, c, nil)
			for id := uint32(1); id <= streams; id++ {
				cl.send(cl.request(id, stormMethod, &testv1.CountRequest{}))
			}
			select {
			case <-ready:
			case <-time.After(5 * time.Second):
				t.Fatal("the streams did not start")
			}

			stop := make(chan struct{})
			var wg sync.WaitGroup
			for range broadcasters {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						select {
						case <-stop:
							return
						default:
						}
						mu.Lock()
						for call, elem := range calls {
							_ = call.Enqueue(elem) // ErrCallEnded is the point
						}
						mu.Unlock()
						// Short of a flood the client could not read
						// in time under -race.
						time.Sleep(100 * time.Microsecond)
					}
				}()
			}

			// The reader checks every envelope against the ends seen so far.
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
					e, err := cl.next(5 * time.Second)
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
			// Cancel every stream while the storm goes on: one CANCEL per
			// frame, so the ends interleave with the broadcasts.
			for id := uint32(1); id <= streams; id++ {
				frame, err := codec.MarshalFrame(c, &protowsv1.Envelope{Id: id, Kind: protowsv1.Kind_KIND_CANCEL})
				if err != nil {
					t.Fatal(err)
				}
				_ = cl.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
				if err := cl.ws.WriteMessage(cl.msgType(), frame); err != nil {
					t.Fatal(err)
				}
				time.Sleep(200 * time.Microsecond)
			}
			// The storm goes on a little after the last end, trying to
			// follow it.
			select {
			case <-allEnded:
			case <-time.After(5 * time.Second):
				t.Error("not every stream ended")
			}
			time.Sleep(20 * time.Millisecond)
			close(stop)
			wg.Wait()
			// What was queued before the PONG arrives before it.
			frame, err := codec.MarshalFrame(c, &protowsv1.Envelope{Id: 99999, Kind: protowsv1.Kind_KIND_PING})
			if err != nil {
				t.Fatal(err)
			}
			_ = cl.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if err := cl.ws.WriteMessage(cl.msgType(), frame); err != nil {
				t.Fatal(err)
			}
			r := <-done
			if r.ended != streams {
				t.Errorf("%d STREAM_ENDs, want %d", r.ended, streams)
			}
			if len(r.after) > 0 {
				t.Errorf("%d envelopes after their call's STREAM_END (ids %v)", len(r.after), r.after[:min(10, len(r.after))])
			}
			if r.before == 0 {
				t.Error("no broadcast reached the client: the storm tested nothing")
			}
			t.Logf("%d stream messages before the ends", r.before)
		})
	}
}
