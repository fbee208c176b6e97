// Package micro holds Go micro-benchmarks of protows's per-call and
// per-broadcast work that the codec benchmarks (codec/bench_test.go) do
// not cover: router dispatch of a decoded request to a typed handler
// (BenchmarkDispatch, against BenchmarkCodecOnly), and the encoding of one
// broadcast to 1000 members, once and shared against once per member
// (BenchmarkBroadcastEncode), with hub.Broadcast to in-memory members
// (BenchmarkHubBroadcast); and one unary Echo at a time against the
// protows benchmark server and the raw gorilla baseline from a minimal
// client, whose allocations per call are mostly the server's
// (BenchmarkServerEcho). It has no API; run it with
//
//	go test ./benchmarks/micro -run '^$' -bench . -benchmem
package micro
