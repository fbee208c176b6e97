//go:build !unix

package harness

import "time"

// processCPU is unknown off Unix: the report shows CPU figures as 0.
func processCPU() time.Duration { return 0 }
