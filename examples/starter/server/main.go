// Command server serves GreetService on ws://127.0.0.1:8080/ws (the ADDR
// environment variable changes the address) until it is interrupted.
package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/protows/protows"
	"github.com/protows/protows/router"
	"github.com/protows/protows/transport"

	greetv1 "example.com/starter/gen/go/greet/v1"
)

// greeter implements greetv1.GreetServiceHandler.
type greeter struct {
	// Embedded so that the server keeps compiling when methods are added:
	// they answer unimplemented until they are written.
	greetv1.UnimplementedGreetServiceHandler
}

func (greeter) Greet(ctx context.Context, req *greetv1.GreetRequest) (*greetv1.GreetResponse, error) {
	if req.GetName() == "" {
		return nil, protows.Errorf(protows.CodeInvalidArgument, "name is empty")
	}
	return &greetv1.GreetResponse{Greeting: "Hello, " + req.GetName() + "!"}, nil
}

func (greeter) Countdown(ctx context.Context, req *greetv1.CountdownRequest, s router.Stream[*greetv1.CountdownResponse]) error {
	for n := req.GetStart(); n > 0; n-- {
		if err := s.Send(&greetv1.CountdownResponse{N: n}); err != nil {
			return err // the caller went away
		}
	}
	return nil // ends the stream cleanly
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	r := router.New()
	if err := greetv1.RegisterGreetServiceHandler(r, greeter{}); err != nil {
		log.Fatal(err)
	}
	ws := transport.NewServer(r, transport.Config{})
	mux := http.NewServeMux()
	mux.Handle("/ws", ws)
	hs := transport.NewHTTPServer(cmp.Or(os.Getenv("ADDR"), "127.0.0.1:8080"), mux)

	ln, err := net.Listen("tcp", hs.Addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("listening on ws://%s/ws\n", ln.Addr())
	go func() {
		if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			log.Fatal(err)
		}
	}()

	<-ctx.Done() // Ctrl-C or SIGTERM
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The HTTP server stops accepting; the protows server lets running calls
	// finish, ends streams with unavailable and closes connections with 1001.
	if err := errors.Join(hs.Shutdown(ctx), ws.Shutdown(ctx)); err != nil {
		log.Fatal(err)
	}
	fmt.Println("stopped")
}
