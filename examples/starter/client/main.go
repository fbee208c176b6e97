// Command client calls GreetService on ws://127.0.0.1:8080/ws (the ADDR
// environment variable changes the address).
package main

import (
	"cmp"
	"context"
	"fmt"
	"log"
	"os"
	"strings"
	"time"

	"github.com/protows/protows"
	"github.com/protows/protows/client"

	greetv1 "example.com/starter/gen/go/greet/v1"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// The Protobuf codec (binary frames) is the default;
	// client.WithCodec(codec.JSON()) switches to JSON text frames.
	c, err := client.Dial(ctx, "ws://"+cmp.Or(os.Getenv("ADDR"), "127.0.0.1:8080")+"/ws")
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	greet := greetv1.NewGreetServiceClient(c)

	res, err := greet.Greet(ctx, &greetv1.GreetRequest{Name: "Go"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.GetGreeting())

	_, err = greet.Greet(ctx, &greetv1.GreetRequest{})
	fmt.Println("empty name:", protows.CodeOf(err))

	stream, err := greet.Countdown(ctx, &greetv1.CountdownRequest{Start: 3})
	if err != nil {
		log.Fatal(err)
	}
	defer stream.Close()
	var ns []string
	for stream.Receive() {
		ns = append(ns, fmt.Sprint(stream.Msg().GetN()))
	}
	if err := stream.Err(); err != nil {
		log.Fatal(err)
	}
	fmt.Println("countdown:", strings.Join(ns, " "))
}
