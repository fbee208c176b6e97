package main

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Stats is one measurement of a process, as /stats reports it.
type Stats struct {
	// Members is the number of members of the room on this node, the
	// connections of this server process (server only).
	Members int `json:"members"`
	// RoomMembers is the number of members of the room on every node
	// this node knows of (server only): its own and, with several
	// nodes, the others' as their presence messages told it.
	RoomMembers int `json:"roomMembers"`
	// RSS and HWM are the resident set and its peak (VmRSS, VmHWM), in
	// bytes.
	RSS int64 `json:"rss"`
	HWM int64 `json:"hwm"`
	// HeapLive is the bytes of live heap objects (after a GC when asked).
	HeapLive int64 `json:"heapLive"`
	// Stacks is the bytes of goroutine stacks.
	Stacks int64 `json:"stacks"`
	// GoTotal is all the memory the Go runtime has mapped.
	GoTotal int64 `json:"goTotal"`
	// Goroutines is the number of goroutines.
	Goroutines int64 `json:"goroutines"`
	// CPU is the user and system CPU time used so far.
	CPU time.Duration `json:"cpu"`
	// KernelSlab is the kernel's slab memory of the whole machine
	// (/proc/meminfo Slab), where socket, file and TCP structures live:
	// both ends of every loopback connection, and whatever other programs
	// allocate meanwhile.
	KernelSlab int64 `json:"kernelSlab"`
	// Events are the server's counts of drops, gaps, NATS errors and
	// publications to NATS (see Events), NATSError its first NATS
	// asynchronous error (server only).
	Events    map[string]int64 `json:"events,omitempty"`
	NATSError string           `json:"natsError,omitempty"`
}

var statMetrics = []string{
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/heap/stacks:bytes",
	"/memory/classes/total:bytes",
	"/sched/goroutines:goroutines",
}

// readStats measures the calling process. With gc, it first collects
// garbage and returns free pages to the system (debug.FreeOSMemory), so
// that RSS is the memory in use rather than what the runtime keeps.
func readStats(gc bool) Stats {
	if gc {
		debug.FreeOSMemory() // runs a GC first
	}
	samples := make([]metrics.Sample, len(statMetrics))
	for i, n := range statMetrics {
		samples[i].Name = n
	}
	metrics.Read(samples)
	v := func(i int) int64 {
		if samples[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return int64(samples[i].Value.Uint64())
	}
	st := Stats{HeapLive: v(0), Stacks: v(1), GoTotal: v(2), Goroutines: v(3)}
	st.RSS, st.HWM = procStatus()
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		st.CPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	st.KernelSlab = kernelSlab()
	return st
}

// procStatus returns VmRSS and VmHWM of /proc/self/status in bytes, or
// zeros where /proc is missing.
func procStatus() (rss, hwm int64) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		kb, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		switch f[0] {
		case "VmRSS:":
			rss = kb << 10
		case "VmHWM:":
			hwm = kb << 10
		}
	}
	return rss, hwm
}

// kernelSlab returns the Slab line of /proc/meminfo in bytes, or 0.
func kernelSlab() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "Slab:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// cores is the number of CPUs the Go runtime uses, for the report.
func cores() int { return runtime.GOMAXPROCS(0) }
