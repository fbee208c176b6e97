// Command codecs compares protows's two wire encodings on the benchmark
// payloads: bytes on the wire and encode+decode time per request frame, and
// shows what a JSON frame looks like in devtools.
//
//	go run ./examples/codecs
package main

import (
	"fmt"
	"os"
	"testing"
	"text/tabwriter"

	"github.com/protows/protows"
	"github.com/protows/protows/benchmarks/payload"
	"github.com/protows/protows/codec"
	benchv1 "github.com/protows/protows/gen/go/protows/bench/v1"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
)

const method = "/protows.bench.v1.BenchService/Echo"

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "codecs:", err)
		os.Exit(1)
	}
}

func run() error {
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "payload\tcodec\tframe bytes\tround trip ns\tallocs\t")
	for _, size := range payload.Sizes {
		req := &benchv1.EchoRequest{Sample: payload.New(size)}
		for _, c := range []codec.Codec{codec.Proto(), codec.JSON()} {
			frame, err := encode(c, req)
			if err != nil {
				return err
			}
			r := testing.Benchmark(func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					f, _ := encode(c, req)
					envs, err := c.DecodeFrame(f)
					if err != nil {
						b.Fatal(err)
					}
					var out benchv1.EchoRequest
					if err := c.UnmarshalPayload(envs[0].Payload, &out); err != nil {
						b.Fatal(err)
					}
				}
			})
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t\n", size, c.Name(), len(frame), r.NsPerOp(), r.AllocsPerOp())
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	frame, err := encode(codec.JSON(), &benchv1.EchoRequest{Sample: payload.New(payload.Small)})
	if err != nil {
		return err
	}
	fmt.Printf("\nA small request in the JSON codec, as devtools shows it:\n%s\n", frame)
	return nil
}

// encode writes req as a request frame, naming the method the way each codec
// does: by id in the Protobuf codec, by name in the JSON codec.
func encode(c codec.Codec, req *benchv1.EchoRequest) ([]byte, error) {
	body, err := c.AppendPayload(nil, req)
	if err != nil {
		return nil, err
	}
	env := &protowsv1.Envelope{Id: 1, Kind: protowsv1.Kind_KIND_REQUEST, Payload: body}
	if c.Binary() {
		env.MethodId = protows.MethodID(method)
	} else {
		env.Method = method
	}
	return codec.MarshalFrame(c, env)
}
