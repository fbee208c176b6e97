package reflection_test

import (
	"context"
	"log"
	"net/http"

	testv1 "github.com/protows/protows/gen/go/protows/test/v1"
	"github.com/protows/protows/reflection"
	"github.com/protows/protows/router"
	"github.com/protows/protows/transport"
)

// Reflection is opt-in: register it on the router beside the services it
// describes. `protows list ws://HOST/ws` then lists them, and
// `protows call` calls them without their .proto files.
func ExampleRegister() {
	r := router.New()
	err := router.HandleUnary(r, testv1.TestServiceEchoMethod,
		func(_ context.Context, req *testv1.EchoRequest) (*testv1.EchoResponse, error) {
			return &testv1.EchoResponse{Text: req.GetText()}, nil
		})
	if err != nil {
		log.Fatal(err)
	}
	if err := reflection.Register(r); err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/ws", transport.NewServer(r, transport.Config{}))
	_ = transport.NewHTTPServer("127.0.0.1:8080", mux).ListenAndServe()
}
