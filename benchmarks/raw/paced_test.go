package raw_test

import (
	"testing"

	"github.com/protows/protows/benchmarks/harness/harnesstest"
	"github.com/protows/protows/benchmarks/raw"
)

// TestEchoPaced runs paced echo at a rate far below what the server does
// (harnesstest.PacedSmoke).
func TestEchoPaced(t *testing.T) { harnesstest.PacedSmoke(t, raw.EchoPaced()) }

// TestServerEchoPaced runs the minimal clients of serverecho paced, as
// TestEchoPaced.
func TestServerEchoPaced(t *testing.T) { harnesstest.PacedSmoke(t, raw.ServerEchoPaced()) }
