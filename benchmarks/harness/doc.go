// Package harness runs protows's load benchmarks: it serves a scenario's
// server side on loopback, connects its client side, applies load within a
// count and a time bound, repeats, and reports medians over the
// repetitions as a Markdown table, JSON lines and an SVG chart.
//
// A Scenario is a server side (an http.Handler) and a client side (a Load)
// of one benchmark as one implementation does it: protows
// (benchmarks/protowsbench), raw gorilla/websocket (benchmarks/raw) or
// Centrifuge (benchmarks/centrifuge, a module of its own). A load tool is a
// main package that passes its scenarios to Main:
//
//	func main() {
//		err := harness.Main(ctx, []harness.Scenario{raw.Echo(), raw.Push()}, os.Args[1:])
//		...
//	}
//
// # What is measured
//
// For each repetition: messages delivered (calls completed, for echo) per
// second; payload bytes per second; latency percentiles (p50, p95, p99, by
// nearest rank, over a uniform sample of at most 200,000 latencies); TCP
// bytes per payload-carrying WebSocket message, counted on the server's
// accepted connections; CPU seconds per million messages for the server
// and the client process; their peak resident memory; the server's
// memory growth per connection when the connections are opened, before
// any load, both as resident memory (RSS, after a forced GC and
// debug.FreeOSMemory: what the operating system sees, runtime overhead and
// page granularity included) and as Go heap plus goroutine stacks
// (HeapInuse + StackInuse after the same GC: what the program holds); and,
// for servers that implement Counting, the growth of their counters (the
// protows broadcast server's payload marshals, reported per broadcast).
// The idle scenario waits IdleSettle after connecting before it measures,
// so that goroutines the handshakes left behind have ended. The report
// shows each figure's median over the repetitions, and for msgs/s the
// spread (half the range, relative to the median).
//
// # Paced loads and the short page
//
// A Paced scenario (echo-paced, serverecho-paced) sends on an open-loop
// Schedule: each call at its due time whatever the replies do, its
// latency measured from the due time, so that queueing behind slow
// replies is counted rather than hidden (coordinated omission); p999 is reported beside the other
// percentiles. Its rate is -rate, or -peak-fraction of the saturated
// msgs/s of -peak-of (raw gorilla echo) for the same codec and size,
// measured first or read from -peak-from result files. Besides the full
// report, WriteSummary and WriteSummarySVG write a short page (NAME-summary.md
// and .svg): protows's msgs/s and bytes on the wire per codec and payload,
// the ratios against raw gorilla, Centrifuge and JSON on one log scale, and
// paced latency; -summary-into splices it into a page between its
// SummaryBegin and SummaryEnd markers (make bench-results: RESULTS.md).
//
// # Where the server runs
//
// By default in the load tool's process: simple, but CPU and memory are
// then those of server and clients together, and the report says so (mode
// "in-process", client columns empty). With Config.Child (-child) each
// repetition's server runs in a fresh child process (the same executable,
// run by Main with a hidden flag), so server and client figures are apart
// and every repetition starts from a clean heap (mode "child"); with
// -server-cpuprofile each child also writes a CPU profile. With
// Config.ServerURL (-server) the load goes to a running server on loopback,
// and only client figures and latencies are known (mode "external"); a load
// tool run with -serve is such a server:
//
//	protows-load -serve 127.0.0.1:8080 -scenarios echo/protows
//	protows-load -server ws://127.0.0.1:8080/ws -scenarios echo/protows
//
// # Loads that take turns
//
// Two loads on servers of their own meet different machines (a shared
// host drifts within seconds) and different heaps. A Scenario that names
// a Partner, run with Config.Interleave (-interleave 100ms), runs with it
// on one server, its own, per repetition: both loads connect, each runs
// one unmeasured turn, then they take turns of Interleave, A B B A A B
// ..., until each had Params.Duration. Each turn's calls and server CPU go
// to the load that ran it (Rep.Turns), and the report compares the two
// over pairs of adjacent turns (the keyed row: serverecho/protows-keyed,
// whose partner is serverecho/protows).
//
// # Bounds and safety
//
// Every server binds to 127.0.0.1, and -server accepts loopback URLs only.
// A repetition ends at its message count or its duration, whichever comes
// first; what is in flight then is waited for (and counted), and a load that
// does not stop within a grace period fails the run instead of hanging it.
//
// # Platform
//
// CPU comes from getrusage; memory from /proc/self/status (Linux). Where
// they are missing the report shows "–".
package harness
