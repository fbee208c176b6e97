// Command scale measures room fan-out at scale: it holds many concurrent
// WebSocket connections (10,000 by default) in one hub room of a protows
// server and broadcasts to them at a steady rate, then prints deliveries
// per second, delivery latency percentiles and the server's memory per
// connection as a Markdown table.
//
//	go run ./benchmarks/scale -conns 10000 -rate 10 -duration 30s -codec both
//	make scale
//
// # Processes
//
// One binary plays three roles, chosen by the environment variable
// PROTOWS_SCALE_ROLE (set by the driver when it starts itself again):
//
//   - the driver (no role): starts the server and the load process,
//     waits until the room has every member, publishes, collects the
//     figures and prints the report;
//   - the server: transport.NewServer with a router and a hub.Hub; a
//     server-streaming Join method makes the caller a room member, a unary
//     Publish method broadcasts its Sample to the room; /stats reports its
//     memory, CPU time and member count as JSON;
//   - the load process: the room members, as lean raw clients
//     (gorilla/websocket and the codec package speaking docs/PROTOCOL.md:
//     one REQUEST to Join, then STREAM_MESSAGEs), one goroutine and one
//     small read buffer each, since a full client.Client per member would
//     cost more memory than the server being measured.
//
// The server and the members run in separate processes because each end of
// a loopback connection is a file descriptor and a process may open at most
// 20,000 here; both also report their own memory separately that way. The
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
// numbers check.)
//
// Memory is measured in the server after a GC and debug.FreeOSMemory,
// before the members connect and once they have all joined: the
// difference of the resident set (VmRSS), of the Go heap's live objects and
// of goroutine stacks, divided by the number of members. Kernel memory
// (socket and TCP structures, buffers) is not part of a process's resident
// set; the growth of the machine's slab memory (/proc/meminfo), which
// covers both ends of each connection, is reported beside it, indicatively.
//
// # Bounds
//
// Everything binds to loopback. Every process stops by itself: the children
// exit when the driver closes their standard input or after -timeout, and
// the driver gives up after -timeout.
package main
