// Command go is the conformance driver of the Go client: it speaks the
// driver protocol of docs/CONFORMANCE.md on stdin and stdout.
//
//	go run ./conformance/cmd/protows-conformance client -- go run ./conformance/clients/go
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"

	"github.com/protows/protows/conformance/clients/go/driver"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := driver.Serve(ctx, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "protows conformance driver (go):", err)
		os.Exit(1)
	}
}
