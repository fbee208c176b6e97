// Command protows-load is protows's end-to-end load tool: it runs the
// benchmark scenarios (request/reply echo, server push, echo on a
// bidirectional stream, room broadcast) in
// both codecs and three payload sizes, against protows and against a raw
// gorilla/websocket baseline, and reports medians over repetitions as a
// Markdown table (stdout and benchmarks/out/results.md), JSON lines
// (results.jsonl) and a chart (results.svg).
//
//	go run ./benchmarks/cmd/protows-load -list
//	go run ./benchmarks/cmd/protows-load -sizes small -reps 3 -child
//	go run ./benchmarks/cmd/protows-load -server ws://127.0.0.1:8080/ws -scenarios echo/protows
//
// Every server binds to 127.0.0.1; -server accepts loopback URLs only. Each
// repetition is bounded by -messages and -duration. -merge adds results
// from another load tool (the Centrifuge baseline, which lives in its own
// module) to the report. The broadcast scenario with write coalescing off
// or delayed 1 ms runs only when named:
//
//	go run ./benchmarks/cmd/protows-load -child -scenarios broadcast/protows,broadcast/protows-nobatch,broadcast/protows-delay1ms -sizes small
//
// The gain of the bench messages' vtprotobuf methods: the Protobuf codec
// without them (codec.WithoutVTProto) and with deterministic payloads (the
// Sample, which has a map, encoded by proto.Marshal), on both ends,
// against the default:
//
//	go run ./benchmarks/cmd/protows-load -child -scenarios echo/protows,echo/protows-novt,echo/protows-det -sizes medium,large -codecs proto
//
// Echo on an open-loop schedule at half of raw gorilla's peak echo rate
// (measured first, or taken from earlier results with -peak-from), with
// latency from each call's due time:
//
//	go run ./benchmarks/cmd/protows-load -child -scenarios echo-paced -sizes small -peak-fraction 0.5
//
// Echo with minimal clients that write pre-encoded requests and count the
// replies without decoding them, so that the servers, not the clients,
// are compared:
//
//	go run ./benchmarks/cmd/protows-load -child -scenarios serverecho -sizes medium
//
// Both at once: the minimal clients on the open-loop schedule, so that
// the servers' latency at half of gorilla's peak is compared with the same
// client on both sides (peak from an earlier run's results):
//
//	go run ./benchmarks/cmd/protows-load -child -scenarios serverecho-paced -sizes small -peak-fraction 0.5 -peak-from peak.jsonl
//
// See benchmarks/RESULTS.md for what the columns mean.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"

	"github.com/protows/protows/benchmarks/harness"
	"github.com/protows/protows/benchmarks/protowsbench"
	"github.com/protows/protows/benchmarks/raw"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	scenarios := []harness.Scenario{
		protowsbench.Echo(), protowsbench.EchoKeyed(), raw.Echo(),
		protowsbench.Push(), raw.Push(),
		protowsbench.Bidi(),
		protowsbench.Broadcast(), raw.Broadcast(),
		protowsbench.ServerFanout(), raw.ServerFanout(),
		// Echo with minimal clients that count replies undecoded.
		protowsbench.ServerEcho(), protowsbench.ServerEchoKeyed(), raw.ServerEcho(),
		// Write coalescing off and delayed: only when named (-scenarios).
		protowsbench.BroadcastWith(protowsbench.NoBatching),
		protowsbench.BroadcastWith(protowsbench.WriteDelay1ms),
		// The Protobuf codec without vtprotobuf's methods, and with its
		// payloads deterministic: only when named.
		protowsbench.EchoWith(protowsbench.NoVTProto), protowsbench.EchoWith(protowsbench.DeterministicProto),
		protowsbench.BroadcastWith(protowsbench.NoVTProto),
		// A room with history in memory: only when named.
		protowsbench.BroadcastHistory(),
		harness.IdleOf(protowsbench.Echo()), harness.IdleOf(raw.Echo()),
		// Paced echo: only when named, with -rate or -peak-fraction.
		protowsbench.EchoPaced(), raw.EchoPaced(),
		// Paced echo with the minimal clients of serverecho, the same for
		// both servers: only when named, with -rate or -peak-fraction.
		protowsbench.ServerEchoPaced(), raw.ServerEchoPaced(),
	}
	if err := harness.Main(ctx, scenarios, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "protows-load:", err)
		os.Exit(1)
	}
}
