// Command centrifuge is the peer baseline of protows's load benchmarks: the
// room fan-out scenario on Centrifuge (github.com/centrifugal/centrifuge
// with the centrifuge-go client), measured by protows's harness with the same
// members, payloads and window as the protows and raw gorilla broadcasts.
//
// It lives in a module of its own so that protows's module never depends on
// Centrifuge. It writes its results as JSON lines, which protows-load merges
// into its report:
//
//	cd benchmarks/centrifuge
//	go run . -sizes small,medium -members 100 -out ../out -name centrifuge
//	cd ../.. && go run ./benchmarks/cmd/protows-load -merge benchmarks/out/centrifuge.jsonl
//
// The flags are protows-load's (see harness.Main); servers bind to loopback.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"

	"github.com/protows/protows/benchmarks/harness"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := harness.Main(ctx, []harness.Scenario{Broadcast(), ServerFanout(), BroadcastHistory()}, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "centrifuge:", err)
		os.Exit(1)
	}
}
