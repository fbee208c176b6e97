package e2etest

import (
	"context"
	"fmt"
	"log"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/protows/protows/client"
	storev1 "github.com/protows/protows/cmd/protoc-gen-protows/testdata/golden/go/acme/store/v1"
	"github.com/protows/protows/codec"
	"github.com/protows/protows/router"
	"github.com/protows/protows/transport"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// clockServer implements the generated storev1.ClockHandler. Embedding the
// generated UnimplementedClockHandler answers the methods it does not
// implement (here Now) with CodeUnimplemented.
type clockServer struct {
	storev1.UnimplementedClockHandler
}

func (clockServer) Ticks(ctx context.Context, req *storev1.TicksRequest, s router.Stream[*timestamppb.Timestamp]) error {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range req.GetCount() {
		if err := s.Send(timestamppb.New(start.Add(time.Duration(i) * time.Minute))); err != nil {
			return err
		}
	}
	return nil
}

// Example serves a generated handler and calls it through the generated
// client: the code docs/CODEGEN.md walks through.
func Example() {
	// Server: register the handler on a router, serve the router.
	r := router.New()
	if err := storev1.RegisterClockHandler(r, clockServer{}); err != nil {
		log.Fatal(err)
	}
	srv := transport.NewServer(r, transport.Config{})
	hs := httptest.NewServer(srv)
	defer hs.Close()
	defer srv.Shutdown(context.Background())

	// Client: dial, wrap the connection in the generated client, call.
	ctx := context.Background()
	c, err := client.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http"), client.WithCodec(codec.JSON()))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	clock := storev1.NewClockClient(c)

	stream, err := clock.Ticks(ctx, &storev1.TicksRequest{Count: 3})
	if err != nil {
		log.Fatal(err)
	}
	for stream.Receive() {
		fmt.Println(stream.Msg().AsTime().Format(time.TimeOnly))
	}
	fmt.Println("stream error:", stream.Err())

	_, err = clock.Now(ctx, &emptypb.Empty{})
	fmt.Println(err)
	// Output:
	// 00:00:00
	// 00:01:00
	// 00:02:00
	// stream error: <nil>
	// protows: unimplemented: /acme.store.v1.Clock/Now is not implemented
}
