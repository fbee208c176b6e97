package protowsbench_test

import (
	"testing"

	"github.com/protows/protows/benchmarks/harness/harnesstest"
	"github.com/protows/protows/benchmarks/protowsbench"
)

// TestEchoPaced runs paced echo at a rate far below what the server does
// (harnesstest.PacedSmoke).
func TestEchoPaced(t *testing.T) { harnesstest.PacedSmoke(t, protowsbench.EchoPaced()) }

// TestServerEchoPaced runs the minimal clients of serverecho paced, as
// TestEchoPaced.
func TestServerEchoPaced(t *testing.T) { harnesstest.PacedSmoke(t, protowsbench.ServerEchoPaced()) }
