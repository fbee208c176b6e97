package dedupe_test

import (
	"context"
	"fmt"

	"github.com/protows/protows/dedupe"
)

// A window answers the second send of a call with the first outcome, and
// refuses the key with another request. A transport.Server does this for
// every REQUEST with an idempotency key.
func ExampleMemory() {
	w := dedupe.NewMemory(dedupe.MemoryConfig{MaxEntries: 1000})
	ctx := context.Background()
	k := dedupe.Key{Principal: "alice", Method: "/shop.v1.Orders/Place", ID: "4f8e2c1a"}
	fp := dedupe.Fingerprint{1} // the SHA-256 of the request

	o, _ := w.Begin(ctx, k, fp) // a new key: run the handler
	fmt.Println("first send runs the handler:", o == nil)
	_ = w.Finish(ctx, k, &dedupe.Outcome{Codec: "protows.v1.json", Payload: []byte(`{"order":"o-17"}`)})

	o, _ = w.Begin(ctx, k, fp)
	fmt.Printf("second send gets %s\n", o.Payload)

	_, err := w.Begin(ctx, k, dedupe.Fingerprint{2})
	fmt.Println(err)
	// Output:
	// first send runs the handler: true
	// second send gets {"order":"o-17"}
	// dedupe: idempotency key already used with a different request: key "4f8e2c1a" of /shop.v1.Orders/Place
}
