// Package raw is the baseline of protows's load benchmarks: the same
// scenarios (echo, push, broadcast) written directly on gorilla/websocket,
// with no framework, so that the framework's cost is a ratio rather than a
// guess.
//
// The baselines carry exactly the payload bytes a protows envelope would
// carry (codec.Proto or codec.JSON payload encoding of the bench messages),
// in binary or text messages, and do the same application work: the echo
// server decodes each request and encodes a reply, push servers encode each
// message, broadcast members decode each delivery. What they lack is what
// protows adds: envelopes and correlation ids, routing, concurrent calls per
// connection, send queues and their batching.
//
// Each function returns a harness.Scenario; the load tool
// (benchmarks/cmd/protows-load) runs them:
//
//	go run ./benchmarks/cmd/protows-load -scenarios gorilla -sizes small
package raw
