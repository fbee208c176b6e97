package otelprotows_test

import (
	"context"
	"log"

	"github.com/protows/protows/client"
	"github.com/protows/protows/otelprotows"
	"github.com/protows/protows/router"
	"github.com/protows/protows/transport"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// A server and a client traced with the same tracer provider (in practice
// each process has its own, exporting to a collector).
func Example() {
	tp := sdktrace.NewTracerProvider() // add an exporter: sdktrace.WithBatcher(exp)
	defer tp.Shutdown(context.Background())

	r := router.New(router.WithInterceptors(
		otelprotows.ServerInterceptor(otelprotows.WithTracerProvider(tp))))
	srv := transport.NewServer(r, transport.Config{})
	_ = srv // mount it: mux.Handle("/ws", srv)

	c, err := client.Dial(context.Background(), "wss://chat.example.com/ws",
		client.WithInterceptors(otelprotows.ClientInterceptor(otelprotows.WithTracerProvider(tp))))
	if err != nil {
		log.Print(err)
		return
	}
	defer c.Close()
}
