package natsbroker_test

import (
	"log"

	"github.com/nats-io/nats.go"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"github.com/protows/protows/hub"
	"github.com/protows/protows/hub/natsbroker"
)

// Each server node connects to NATS and gives its hub a broker; rooms are
// then shared by the clients of every node.
func Example() {
	nc, err := nats.Connect("nats://127.0.0.1:4222",
		nats.MaxReconnects(-1), // ride out NATS restarts
		nats.Name("chat-node-1"))
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	h, err := hub.New(hub.Config[*protowsv1.AuthenticateResponse]{
		Broker: natsbroker.New(nc, natsbroker.Config{Subject: "chat.rooms"}),
		Node:   "node-1",
	})
	if err != nil {
		log.Fatal(err)
	}
	defer h.Close()
	// Serve h.Join from a server-streaming handler, broadcast from any.
}
