// Package protowsbench is the protows side of the load benchmarks: the
// echo, push and broadcast scenarios on protows's transport, router, hub and
// Go client, with default settings except where a load test needs otherwise
// (see Server).
//
// The scenarios do the same work as their raw gorilla/websocket baselines
// (package raw) with the same payload bytes, so that the ratio of the two is
// what the framework costs:
//
//   - echo: BenchService.Echo, InFlight calls at once per connection;
//   - push: BenchService.Push, streams of Burst messages back to back per
//     connection;
//   - bidi: BenchService.EchoStream, one bidirectional stream per
//     connection with InFlight samples in flight (protows only: its
//     baselines are the echo scenarios of the same run);
//   - broadcast: Conns members in one hub room, one publisher, at most
//     InFlight publishes ahead of the deliveries;
//   - serverfanout and serverecho: broadcast's and echo's servers driven
//     by minimal clients (harness.Members, harness.Echoers) that count
//     messages without decoding them, so that the server is what is
//     measured.
//
// The broadcast scenario also runs with write coalescing changed
// (BroadcastWith with NoBatching or WriteDelay1ms: impls
// "protows-nobatch" and "protows-delay1ms"), and the echo and broadcast
// scenarios with the Protobuf codec's vtprotobuf path off (EchoWith and
// BroadcastWith with NoVTProto: impl "protows-novt"), when selected by
// name. The
// server counts the payload marshals of Samples through a wrapping codec
// (harness.Counting), which only hub broadcasts make: the report's
// marshals/bcast column, one per broadcast with encode-once.
//
// The room methods are registered by name (RoomJoinMethod,
// RoomPublishMethod) with the bench messages, since bench.proto declares no
// room service.
package protowsbench
