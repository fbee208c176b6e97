package client_test

import (
	"context"
	"testing"

	"github.com/protows/protows/client"
	testv1 "github.com/protows/protows/gen/go/protows/test/v1"
	"github.com/protows/protows/transport"
)

// BenchmarkUnary measures Echo round trips against the real server over
// loopback, per codec: one caller at a time, and many sharing the client.
func BenchmarkUnary(b *testing.B) {
	for _, cd := range codecs {
		b.Run(cd.Name(), func(b *testing.B) {
			// No rate limit: the benchmark sends as fast as it can.
			srv := startReal(b, "127.0.0.1:0", transport.Config{RateLimit: -1}, nil)
			ctx := context.Background()
			c, err := client.Dial(ctx, srv.url, client.WithCodec(cd))
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			req := &testv1.EchoRequest{Text: "hello"}
			b.Run("serial", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := client.CallUnary[testv1.EchoResponse](ctx, c, echoMethod, req); err != nil {
						b.Fatal(err)
					}
				}
			})
			for _, keyed := range []bool{false, true} {
				name, opts := "parallel", []client.CallOption(nil)
				if keyed {
					// Every call with a fresh idempotency key: the client's
					// outbox and the server's window on every call.
					name, opts = "parallel-keyed", []client.CallOption{client.ExactlyOnce()}
				}
				b.Run(name, func(b *testing.B) {
					b.ReportAllocs()
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							if _, err := client.CallUnary[testv1.EchoResponse](ctx, c, echoMethod, req, opts...); err != nil {
								b.Error(err)
								return
							}
						}
					})
				})
			}
		})
	}
}
