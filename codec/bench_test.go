package codec_test

import (
	"testing"

	"github.com/protows/protows"
	"github.com/protows/protows/benchmarks/payload"
	"github.com/protows/protows/codec"
	benchv1 "github.com/protows/protows/gen/go/protows/bench/v1"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
)

// The codec micro-benchmarks encode and decode one request frame (payload
// plus envelope plus frame) for each payload size, in each codec, and report
// the frame's size on the wire as the "wire-B" metric.
//
//	go test ./codec -run '^$' -bench . -benchmem -count 6 | benchstat -

func BenchmarkEncode(b *testing.B) {
	for _, c := range codecs() {
		for _, size := range payload.Sizes {
			b.Run(c.Name()+"/"+string(size), func(b *testing.B) {
				req := &benchv1.EchoRequest{Sample: payload.New(size)}
				var buf, elem []byte
				var err error
				b.ReportAllocs()
				for b.Loop() {
					var body []byte
					body, err = c.AppendPayload(nil, req)
					if err != nil {
						b.Fatal(err)
					}
					elem, err = c.AppendEnvelope(elem[:0], requestEnvelope(c, body))
					if err != nil {
						b.Fatal(err)
					}
					buf = codec.AppendFrame(c, buf[:0], elem)
				}
				b.ReportMetric(float64(len(buf)), "wire-B")
			})
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, c := range codecs() {
		for _, size := range payload.Sizes {
			b.Run(c.Name()+"/"+string(size), func(b *testing.B) {
				body, err := c.AppendPayload(nil, &benchv1.EchoRequest{Sample: payload.New(size)})
				if err != nil {
					b.Fatal(err)
				}
				frame, err := codec.MarshalFrame(c, requestEnvelope(c, body))
				if err != nil {
					b.Fatal(err)
				}
				b.SetBytes(int64(len(frame)))
				b.ReportAllocs()
				for b.Loop() {
					envs, err := c.DecodeFrame(frame)
					if err != nil {
						b.Fatal(err)
					}
					var req benchv1.EchoRequest
					if err := c.UnmarshalPayload(envs[0].Payload, &req); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(len(frame)), "wire-B")
			})
		}
	}
}

func requestEnvelope(c codec.Codec, body []byte) *protowsv1.Envelope {
	const method = "/protows.bench.v1.BenchService/Echo"
	e := &protowsv1.Envelope{Id: 1000, Kind: protowsv1.Kind_KIND_REQUEST, Payload: body}
	if c.Binary() {
		e.MethodId = protows.MethodID(method)
	} else {
		e.Method = method
	}
	return e
}

// BenchmarkPayloadModes measures AppendPayload of an EchoResponse in the
// Protobuf codec's modes: vtprotobuf's methods (the default; the map
// entries in any order), deterministic (WithDeterministicPayloads: the
// bench Sample has a map, so proto.Marshal in key order) and
// WithoutVTProto. Besides the wall time it reports the process's CPU time
// per operation (cpu-ns/op), which a host busy with other work inflates
// less:
//
//	go test ./codec -run '^$' -bench PayloadModes -benchmem -count 6 | benchstat -col /mode -
func BenchmarkPayloadModes(b *testing.B) {
	modes := []struct {
		name string
		c    codec.Codec
	}{
		{"vtproto", codec.Proto()},
		{"deterministic", codec.Proto(codec.WithDeterministicPayloads())},
		{"novt", codec.Proto(codec.WithoutVTProto())},
	}
	for _, size := range payload.Sizes {
		res := &benchv1.EchoResponse{Sample: payload.New(size)}
		for _, m := range modes {
			b.Run("size="+string(size)+"/mode="+m.name, func(b *testing.B) {
				var buf []byte
				var err error
				b.ReportAllocs()
				cpu0, ok := processCPU()
				for b.Loop() {
					if buf, err = m.c.AppendPayload(buf[:0], res); err != nil {
						b.Fatal(err)
					}
				}
				if cpu1, _ := processCPU(); ok {
					b.ReportMetric(float64(cpu1-cpu0)/float64(b.N), "cpu-ns/op")
				}
			})
		}
	}
}
