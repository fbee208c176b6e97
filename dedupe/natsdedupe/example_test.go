package natsdedupe_test

import (
	"context"
	"log"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/protows/protows/dedupe/natsdedupe"
	"github.com/protows/protows/router"
	"github.com/protows/protows/transport"
)

// Every node of a cluster opens the same bucket: a call sent again after a
// failover, to another node, gets the first node's outcome.
func Example() {
	nc, err := nats.Connect("nats://127.0.0.1:4222", nats.MaxReconnects(-1))
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	store, err := natsdedupe.New(ctx, js, natsdedupe.Config{Replicas: 3})
	if err != nil {
		log.Fatal(err)
	}
	r := router.New()
	// Register the services on r, then:
	srv := transport.NewServer(r, transport.Config{Dedupe: store})
	_ = srv // mount it: http.Handle("/ws", srv)
}
