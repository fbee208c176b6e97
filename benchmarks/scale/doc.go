// Command scale measures room fan-out at scale: it holds many concurrent
// WebSocket connections (10,000 by default) in one hub room of a protows
// server and broadcasts to them at a steady rate, then prints deliveries
// per second, delivery latency percentiles and the server's memory per
// connection as a Markdown table.
//
//	go run ./benchmarks/scale -conns 10000 -rate 10 -duration 30s -codec both
//	make scale
//
// With -nodes it measures the room across server processes joined by NATS
// (hub/natsbroker), the members spread over them and over -load-procs
// load processes:
//
//	go run ./benchmarks/scale -nodes 3 -load-procs 3 -conns 45000 -rate 1 -duration 60s
//	make scale-cluster
//
// # Processes
//
// One binary plays four roles, chosen by the environment variable
// PROTOWS_SCALE_ROLE (set by the driver when it starts itself again):
//
//   - the driver (no role): starts the servers and the load processes,
//     waits until the room has every member, publishes to the first
//     server, collects the figures and prints the report;
//   - the server (-nodes of them): transport.NewServer with a router and
//     a hub.Hub; a server-streaming Join method makes the caller a room
//     member, a unary Publish method broadcasts its Sample to the room;
//     /stats reports its memory, CPU time, member counts and events (the
//     hub's drops and gaps, its NATS connection's errors, the warnings it
//     logged) as JSON, /debug/pprof/ its profiles. With several nodes each
//     hub has a natsbroker on one shared subject, under the hub's default
//     heartbeat and presence TTL;
//   - the NATS server (only with -nodes above 1): nats-server/v2, the one
//     the tests embed, alone in a process so that its CPU and memory are
//     its own; its /stats adds the server's message and byte counters;
//   - the load process: the room members, as lean raw clients
//     (gorilla/websocket and the codec package speaking docs/PROTOCOL.md:
//     one REQUEST to Join, then STREAM_MESSAGEs), one goroutine and one
//     small read buffer each, since a full client.Client per member would
//     cost more memory than the server being measured.
//
// Member i of all connects to server i mod -nodes; the load processes
// take consecutive shares of the members. The servers and the members run
// in separate processes because each end of a loopback connection is a
// file descriptor and a process may open at most 20,000 here (the driver
// refuses more than 19,900 per process); both also report their own memory separately that way. The
// members spread over several loopback source addresses (127.0.0.2 and up)
// so that ephemeral ports, and TIME_WAIT left by earlier runs, never run
// short.
//
// # Measurements
//
// The driver stamps every published Sample with the time of publication
// (Unix nanoseconds); each member records now minus that stamp on receipt,
// in the same clock, so latency is publish-to-delivery, including the
// Publish request, the broadcast and the member's decoding. Deliveries per
// second count every member's receipts between the first and the last. A
// member also checks that it received every message exactly once, with
// consecutive room sequence numbers. (The server runs the publisher's
// requests concurrently, so the room's order may differ from the order of
// publication; every member sees the room's order, which the sequence
// numbers check.) Each load process sends its latencies to the driver as
// histograms (1.6% buckets) by node, which the driver merges: the
// percentiles are over every member of every process, and by node.
//
// Memory is measured in the server after a GC and debug.FreeOSMemory,
// before the members connect and once they have all joined: the
// difference of the resident set (VmRSS), of the Go heap's live objects and
// of goroutine stacks, divided by the number of members (by node: the
// members connected to that node; with several nodes the growth also
// holds the presence of the other nodes' members, which every hub keeps).
// Kernel memory
// (socket and TCP structures, buffers) is not part of a process's resident
// set; the growth of the machine's slab memory (/proc/meminfo), which
// covers both ends of each connection, is reported beside it, indicatively.
//
// # Idle connections and members
//
// With -idle the driver publishes nothing: it measures the server empty,
// with -conns connections that called nothing, and with each of them a
// member of the room, after a GC and two seconds of calm each time (the
// transport's idle workers exit after one). It does so -runs times for
// every server of -servers, in turn (A B A B ...), each a build of this
// command, perhaps of another revision, and reports the medians: RSS per
// idle connection, per idle member (its connection included), and the
// membership alone. make scale-idle compares main with the working tree:
//
//	go run ./benchmarks/scale -idle -conns 5000 -runs 3 -servers main=/tmp/scale-main,head=
//
// # Bounds
//
// Everything binds to loopback. Every process stops by itself: the children
// exit when the driver closes their standard input or after -timeout, and
// the driver gives up after -timeout.
package main
