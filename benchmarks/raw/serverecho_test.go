package raw_test

import (
	"testing"

	"github.com/protows/protows/benchmarks/harness/harnesstest"
	"github.com/protows/protows/benchmarks/raw"
)

// TestServerEchoSmoke runs the server-bound echo for a moment in both
// codecs and at every size (harnesstest.ServerEchoSmoke).
func TestServerEchoSmoke(t *testing.T) { harnesstest.ServerEchoSmoke(t, raw.ServerEcho()) }
