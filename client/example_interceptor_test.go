package client_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"
	"time"

	"github.com/protows/protows"
	"github.com/protows/protows/client"
	testv1 "github.com/protows/protows/gen/go/protows/test/v1"
	"google.golang.org/protobuf/proto"
)

// requestID is an interceptor that adds a metadata entry (the per-call
// header of docs/PROTOCOL.md, section 3.4) to every call, unary or stream.
type requestID struct{ next func() string }

func (r requestID) WrapUnary(next client.UnaryFunc) client.UnaryFunc {
	return func(ctx context.Context, call *client.Call) (proto.Message, error) {
		call.SetMetadata("x-request-id", r.next())
		return next(ctx, call)
	}
}

func (r requestID) WrapStream(next client.StreamFunc) client.StreamFunc {
	return func(ctx context.Context, call *client.Call) (client.Stream, error) {
		call.SetMetadata("x-request-id", r.next())
		return next(ctx, call)
	}
}

// An interceptor that adds a metadata entry to every call. The example's
// server echoes the entry back in its reply's metadata.
func ExampleWithInterceptors_metadata() {
	url, stop := startExampleServer()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	n := 0
	ids := requestID{next: func() string { n++; return fmt.Sprintf("req-%d", n) }}
	c, err := client.Dial(ctx, url, client.WithInterceptors(ids))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	var reply map[string]string
	_, err = client.CallUnary[testv1.EchoResponse](ctx, c, "/protows.test.v1.TestService/Echo",
		&testv1.EchoRequest{Text: "hi"}, client.ReplyMetadata(&reply))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("the server saw", reply["x-request-id"])
	// Output: the server saw req-1
}

// The client's logging interceptor, LogCalls, logs each call when it ends:
// successes at debug level, failures at info level, streams with their
// message count.
func ExampleLogCalls() {
	url, stop := startExampleServer()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		// Times vary from run to run: leave them out of the example.
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey || a.Key == "duration" {
				return slog.Attr{}
			}
			return a
		},
	}))
	c, err := client.Dial(ctx, url, client.WithInterceptors(client.LogCalls(logger)))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	_, _ = client.CallUnary[testv1.EchoResponse](ctx, c, "/protows.test.v1.TestService/Echo", &testv1.EchoRequest{})
	_, _ = client.CallUnary[testv1.FailResponse](ctx, c, "/protows.test.v1.TestService/Fail",
		&testv1.FailRequest{Code: uint32(protows.CodeNotFound), Message: "no such room"})
	stream, err := client.CallServerStream[testv1.CountResponse](ctx, c, "/protows.test.v1.TestService/Count",
		&testv1.CountRequest{Count: 2})
	if err != nil {
		log.Fatal(err)
	}
	for stream.Receive() {
	}
	// Output:
	// level=DEBUG msg="protows client: call" method=/protows.test.v1.TestService/Echo code=ok
	// level=INFO msg="protows client: call" method=/protows.test.v1.TestService/Fail code=not_found err="no such room"
	// level=DEBUG msg="protows client: call" method=/protows.test.v1.TestService/Count code=ok messages=2
}
