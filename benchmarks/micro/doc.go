// Package micro holds Go micro-benchmarks of protows's per-call work that
// the codec benchmarks (codec/bench_test.go) do not cover: router dispatch
// of a decoded request to a typed handler. It has no API; run it with
//
//	go test ./benchmarks/micro -run '^$' -bench . -benchmem
package micro
