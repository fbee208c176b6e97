package harness_test

import (
	"fmt"
	"os"
	"time"

	"github.com/protows/protows/benchmarks/harness"
)

// Results from any load tool, even one in another module, are written and
// reported the same way.
func ExampleWriteMarkdown() {
	rep := harness.Rep{
		Messages: 50_000, Elapsed: time.Second, PayloadBytes: 50_000 * 60, Frames: 50_000,
		WireBytes: 50_000 * 64, ServerWrites: 25_000, P50: time.Millisecond, P95: 2 * time.Millisecond, P99: 3 * time.Millisecond,
		ServerCPU: 500 * time.Millisecond, ClientCPU: 400 * time.Millisecond, ServerConnBytes: -1,
	}
	res := []harness.Result{{
		Scenario: "broadcast", Impl: "centrifuge", Codec: harness.CodecProto, Size: "small",
		Conns: 100, InFlight: 8, Mode: harness.ModeChild, Reps: []harness.Rep{rep},
	}}
	if err := harness.WriteMarkdown(os.Stdout, res); err != nil {
		fmt.Println(err)
	}
	// Output:
	// | scenario | impl | codec | size | conns × in flight (or window) | mode | reps | msgs/s | payload MB/s | p50 ms | p95 ms | p99 ms | wire B/msg | server writes/msg | server CPU s/M | client CPU s/M | server peak RSS MB | client peak RSS MB | server B/conn | server heap B/conn | marshals/bcast |
	// |---|---|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
	// | broadcast | centrifuge | proto | small | 100 × 8 | child | 1 | 50,000 | 3.00 | 1.00 | 2.00 | 3.00 | 64.0 | 0.500 | 10.0 | 8.00 | – | – | – | – | – |
}
