package harness

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"time"
)

// ProcStats is a snapshot of one process, as the harness measures it.
// Memory figures are 0 where the platform does not expose them (they come
// from /proc on Linux).
type ProcStats struct {
	// CPU is user plus system time since the process started.
	CPU time.Duration `json:"cpu"`
	// RSS is the resident set size now, in bytes.
	RSS int64 `json:"rss"`
	// PeakRSS is the resident high-water mark, in bytes, since the process
	// started or since the last ResetPeakRSS.
	PeakRSS int64 `json:"peakRss"`
	// WireIn and WireOut count the TCP payload bytes read and written by the
	// server's connections (WebSocket frames and handshakes); 0 in a client
	// process.
	WireIn  int64 `json:"wireIn"`
	WireOut int64 `json:"wireOut"`
	// WireWrites counts the writes to the server's connections: one
	// system call each (the counting wrapper hides the connection from
	// net.Buffers, so gorilla's two-part writes of large frames are two).
	WireWrites int64 `json:"wireWrites,omitempty"`
	// Heap is the Go heap in use plus goroutine stacks (HeapInuse +
	// StackInuse) right after a garbage collection, in bytes: what the
	// program holds, without the runtime's free spans and RSS's page
	// granularity. Only set by ReadSelf(true); 0 otherwise.
	Heap int64 `json:"heap,omitempty"`
	// Goroutines is the number of goroutines now.
	Goroutines int `json:"goroutines,omitempty"`
	// Counters are the server's own counts (see Counting), read at the
	// snapshot; nil when the server keeps none.
	Counters map[string]int64 `json:"counters,omitempty"`
}

// ReadSelf returns the calling process's figures. With freeMemory it first
// collects garbage and returns freed memory to the operating system, so that
// RSS reflects what is live, and reads Heap (use it for the before/after
// figures of bytes per connection).
func ReadSelf(freeMemory bool) ProcStats {
	s := ProcStats{}
	if freeMemory {
		debug.FreeOSMemory() // a forced GC first, then the scavenge
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		s.Heap = int64(ms.HeapInuse + ms.StackInuse)
	}
	s.CPU = processCPU()
	s.Goroutines = runtime.NumGoroutine()
	s.RSS, s.PeakRSS = readStatus()
	return s
}

// ResetPeakRSS resets the process's resident high-water mark where Linux
// allows it, so that each repetition reports its own peak.
func ResetPeakRSS() {
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// readStatus reads VmRSS and VmHWM from /proc/self/status.
func readStatus() (rss, peak int64) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Bytes()
		switch {
		case bytes.HasPrefix(line, []byte("VmRSS:")):
			rss = parseKB(line[len("VmRSS:"):])
		case bytes.HasPrefix(line, []byte("VmHWM:")):
			peak = parseKB(line[len("VmHWM:"):])
		}
	}
	return rss, peak
}

func parseKB(field []byte) int64 {
	f := bytes.Fields(field)
	if len(f) == 0 {
		return 0
	}
	n, err := strconv.ParseInt(string(f[0]), 10, 64)
	if err != nil {
		return 0
	}
	return n * 1024
}
