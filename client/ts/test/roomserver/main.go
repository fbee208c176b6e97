// Command roomserver serves a room with history (docs/PROTOCOL.md section
// 14) for the TypeScript runtime's tests: examples.chat.v1.ChatService's
// Watch and Send on a hub whose history is kept in memory, so that a
// restart starts a new epoch. It binds to loopback by default and prints
// exactly one line, "listening on http://HOST:PORT", once it accepts
// connections, as cmd/protows-testserver does.
//
//	go run ./client/ts/test/roomserver -addr 127.0.0.1:0 -history 1000 -static ./www
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	chatv1 "github.com/protows/protows/gen/go/examples/chat/v1"
	"github.com/protows/protows/hub"
	"github.com/protows/protows/router"
	"github.com/protows/protows/transport"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "roomserver:", err)
		os.Exit(1)
	}
}

func run() error {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	history := flag.Int("history", 0, "messages kept per room (0: the default, 1000)")
	readTimeout := flag.Duration("read-timeout", 0, "heartbeat read timeout (0: default 60s)")
	static := flag.String("static", "", "directory served at /")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	h, err := hub.New(hub.Config[*chatv1.RoomEvent]{
		Logger:  logger,
		History: hub.NewMemoryHistory(hub.HistoryLimits{Messages: *history}),
	})
	if err != nil {
		return err
	}
	defer func() { _ = h.Close() }()
	r := router.New(router.WithLogger(logger))
	if err := chatv1.RegisterChatServiceHandler(r, rooms{hub: h}); err != nil {
		return err
	}
	ws := transport.NewServer(r, transport.Config{Logger: logger, ReadTimeout: *readTimeout})
	mux := http.NewServeMux()
	mux.Handle("/ws", ws)
	if *static != "" {
		mux.Handle("/", http.FileServer(http.Dir(*static)))
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	hs := transport.NewHTTPServer("", mux)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	fmt.Printf("listening on http://%s\n", ln.Addr())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = hs.Shutdown(sctx)
	if err := ws.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// rooms is ChatService reduced to what the tests use: Watch joins a room,
// Send broadcasts a message with the request's text to it.
type rooms struct {
	chatv1.UnimplementedChatServiceHandler
	hub *hub.Hub[*chatv1.RoomEvent]
}

// Watch joins the room until the call ends; the hub resumes it from the
// REQUEST's resume.
func (s rooms) Watch(ctx context.Context, req *chatv1.WatchRequest, st router.Stream[*chatv1.RoomEvent]) error {
	return s.hub.Join(ctx, req.GetRoom(), st)
}

// Send broadcasts the text to the room, whether the caller is a member or not.
func (s rooms) Send(ctx context.Context, req *chatv1.SendRequest) (*chatv1.SendResponse, error) {
	ev := &chatv1.RoomEvent{Room: req.GetRoom(), Event: &chatv1.RoomEvent_Message{Message: &chatv1.ChatMessage{Text: req.GetText()}}}
	if err := s.hub.Broadcast(ctx, req.GetRoom(), ev); err != nil {
		return nil, err
	}
	return &chatv1.SendResponse{}, nil
}
