package client_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/protows/protows"
	"github.com/protows/protows/client"
	"github.com/protows/protows/codec"
	testv1 "github.com/protows/protows/gen/go/protows/test/v1"
	"github.com/protows/protows/internal/testservice"
	"github.com/protows/protows/router"
	"github.com/protows/protows/transport"
	"google.golang.org/protobuf/proto"
)

func Example() {
	url, stop := startExampleServer()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	c, err := client.Dial(ctx, url, client.WithCodec(codec.JSON()))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	res, err := client.CallUnary[testv1.EchoResponse](ctx, c, "/protows.test.v1.TestService/Echo",
		&testv1.EchoRequest{Text: "hello"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.GetText())

	_, err = client.CallUnary[testv1.FailResponse](ctx, c, "/protows.test.v1.TestService/Fail",
		&testv1.FailRequest{Code: uint32(protows.CodeNotFound), Message: "no such room"})
	fmt.Println(protows.CodeOf(err), err)

	stream, err := client.CallServerStream[testv1.CountResponse](ctx, c, "/protows.test.v1.TestService/Count",
		&testv1.CountRequest{Count: 3})
	if err != nil {
		log.Fatal(err)
	}
	for stream.Receive() {
		fmt.Println(stream.Msg().GetN())
	}
	fmt.Println("stream error:", stream.Err())
	// Output:
	// hello
	// not_found protows: not_found: /protows.test.v1.TestService/Fail: no such room
	// 1
	// 2
	// 3
	// stream error: <nil>
}

// Generated clients wrap CallUnary and CallServerStream; they mark methods
// declared idempotent in the .proto (Echo here) with Idempotent.
func Example_generatedClient() {
	url, stop := startExampleServer()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	c, err := client.Dial(ctx, url)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	svc := testv1.NewTestServiceClient(c)
	res, err := svc.Echo(ctx, &testv1.EchoRequest{Text: "generated"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.GetText())
	who, err := svc.Whoami(ctx, &testv1.WhoamiRequest{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(who.GetSubprotocol())
	// Output:
	// generated
	// protows.v1.proto
}

func ExampleWithTokenSource() {
	tokens := func(ctx context.Context) (string, time.Time, error) {
		// Fetch a token from your identity provider; the client asks again
		// shortly before expiry and after the server refused the token.
		return "eyJhbGciOi...", time.Now().Add(time.Hour), nil
	}
	states := make(chan client.State, 8)
	c, err := client.Dial(context.Background(), "wss://chat.example.com/ws",
		client.WithTokenSource(tokens),
		client.WithBackoff(client.Backoff{Initial: time.Second, Max: time.Minute}),
		client.WithStateFunc(func(s client.State, err error) {
			select {
			case states <- s:
			default: // never block the client
			}
		}))
	if err != nil {
		log.Print(err)
		return
	}
	defer c.Close()
}

// startExampleServer serves the test service on a loopback port.
func startExampleServer() (url string, stop func()) {
	// The server echoes a request's x-request-id in its reply's metadata,
	// for ExampleWithInterceptors_metadata.
	echoID := func(next router.HandlerFunc) router.HandlerFunc {
		return func(ctx context.Context, call *router.Call) (proto.Message, error) {
			if tc, ok := transport.CallFromContext(ctx); ok {
				if id, ok := tc.Metadata()["x-request-id"]; ok {
					tc.SetReplyMetadata("x-request-id", id)
				}
			}
			return next(ctx, call)
		}
	}
	r := router.New(router.WithLogger(slog.New(slog.DiscardHandler)), router.WithInterceptors(echoID))
	if err := testservice.Register(r); err != nil {
		log.Fatal(err)
	}
	ws := transport.NewServer(r, transport.Config{Logger: slog.New(slog.DiscardHandler)})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	hs := &http.Server{Handler: ws, ReadHeaderTimeout: 5 * time.Second}
	go hs.Serve(ln)
	return "ws://" + ln.Addr().String() + "/", func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		hs.Shutdown(ctx)
		ws.Shutdown(ctx)
	}
}
