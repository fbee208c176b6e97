package hub_test

import (
	"context"
	"fmt"
	"log/slog"

	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"github.com/protows/protows/hub"
	"github.com/protows/protows/router"
)

// A server-streaming handler makes its client a member of a room: Attach
// returns at once, and the stream stays open, without a goroutine, until
// the client leaves. Any handler can broadcast to the room.
func Example() {
	h, err := hub.New(hub.Config[*protowsv1.AuthenticateResponse]{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	defer h.Close()

	r := router.New()
	_ = router.HandleServerStream(r, "/rooms.v1.Rooms/Watch",
		func(ctx context.Context, req *protowsv1.AuthenticateRequest, s router.Stream[*protowsv1.AuthenticateResponse]) error {
			return h.Attach(ctx, req.GetToken(), s)
		})
	_ = router.HandleUnary(r, "/rooms.v1.Rooms/Say",
		func(ctx context.Context, req *protowsv1.AuthenticateRequest) (*protowsv1.AuthenticateResponse, error) {
			err := h.Broadcast(ctx, "lobby", &protowsv1.AuthenticateResponse{Subject: req.GetToken()})
			return &protowsv1.AuthenticateResponse{}, err
		})
	fmt.Println(len(r.Methods()), "methods")
	// Output: 2 methods
}

// Presence turns joins and leaves into messages for the room.
func ExampleConfig_presence() {
	h, _ := hub.New(hub.Config[*protowsv1.AuthenticateResponse]{
		Logger: slog.New(slog.DiscardHandler),
		Presence: func(ev hub.PresenceEvent) (*protowsv1.AuthenticateResponse, bool) {
			verb := " left"
			if ev.Joined {
				verb = " joined"
			}
			return &protowsv1.AuthenticateResponse{Subject: ev.Member.Room + ": someone" + verb}, true
		},
	})
	defer h.Close()

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	printed := make(chan string, 8)
	go func() {
		defer close(done)
		// Outside a server (here, a test), messages go through the
		// stream's Send.
		_ = h.Join(ctx, "lobby", printer(printed))
	}()
	<-printed // the member's own join: it is in the room
	_ = h.Broadcast(context.Background(), "lobby", &protowsv1.AuthenticateResponse{Subject: "hello"})
	cancel()
	<-done
	// Output:
	// lobby: someone joined
	// hello
}

// printer prints what it is sent, and hands it on.
type printer chan<- string

func (p printer) Send(m *protowsv1.AuthenticateResponse) error {
	fmt.Println(m.GetSubject())
	p <- m.GetSubject()
	return nil
}
