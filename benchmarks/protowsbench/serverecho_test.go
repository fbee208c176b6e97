package protowsbench_test

import (
	"testing"

	"github.com/protows/protows/benchmarks/harness/harnesstest"
	"github.com/protows/protows/benchmarks/protowsbench"
)

// TestServerEchoSmoke runs the server-bound echo for a moment in both
// codecs and at every size (harnesstest.ServerEchoSmoke).
func TestServerEchoSmoke(t *testing.T) { harnesstest.ServerEchoSmoke(t, protowsbench.ServerEcho()) }

// TestServerEchoKeyedSmoke runs the keyed server-bound echo as
// TestServerEchoSmoke runs the plain one.
func TestServerEchoKeyedSmoke(t *testing.T) {
	harnesstest.ServerEchoSmoke(t, protowsbench.ServerEchoKeyed())
}
