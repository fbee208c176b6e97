//go:build unix

package codec_test

import (
	"syscall"
	"time"
)

// processCPU returns the CPU time of the process so far, for benchmarks
// that report it beside the wall time: on a host shared with other work,
// the wall time of a benchmark counts the waits for a core too.
func processCPU() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
