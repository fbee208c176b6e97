package micro_test

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
	"github.com/protows/protows/benchmarks/harness"
	"github.com/protows/protows/benchmarks/payload"
	"github.com/protows/protows/benchmarks/protowsbench"
	"github.com/protows/protows/benchmarks/raw"
	"github.com/protows/protows/codec"
	benchv1 "github.com/protows/protows/gen/go/protows/bench/v1"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
)

// BenchmarkServerEcho measures one unary Echo round trip at a time against
// the protows benchmark server and the raw gorilla baseline, from a
// minimal client that sends prepared frames and only reads the replies, so
// that most of the time and every allocation but gorilla's read buffer of
// the client is the server's.
func BenchmarkServerEcho(b *testing.B) {
	for _, impl := range []string{"gorilla", "protows"} {
		for _, cn := range []string{harness.CodecProto, harness.CodecJSON} {
			for _, size := range payload.Sizes {
				b.Run(impl+"/"+cn+"/"+string(size), func(b *testing.B) {
					c := codec.Proto()
					mt := websocket.BinaryMessage
					if cn == harness.CodecJSON {
						c, mt = codec.JSON(), websocket.TextMessage
					}
					p := harness.Params{Codec: cn, Size: size}
					var srv harness.Server
					var err error
					if impl == "gorilla" {
						srv, err = raw.Echo().NewServer(p)
					} else {
						srv, err = protowsbench.Echo().NewServer(p)
					}
					if err != nil {
						b.Fatal(err)
					}
					hs := httptest.NewServer(srv)
					defer srv.Close()
					defer hs.Close()
					body, err := c.AppendPayload(nil, &benchv1.EchoRequest{Sample: payload.New(size)})
					if err != nil {
						b.Fatal(err)
					}
					msg := body
					d := websocket.Dialer{}
					if impl == "protows" {
						d.Subprotocols = []string{c.Name()}
						msg, err = codec.MarshalFrame(c, &protowsv1.Envelope{Id: 1, Kind: protowsv1.Kind_KIND_REQUEST, MethodId: benchv1.BenchServiceEchoMethodID, Payload: body})
						if err != nil {
							b.Fatal(err)
						}
					}
					ws, _, err := d.Dial("ws"+strings.TrimPrefix(hs.URL, "http"), nil)
					if err != nil {
						b.Fatal(err)
					}
					defer ws.Close()
					b.ReportAllocs()
					b.SetBytes(int64(2 * len(body)))
					for b.Loop() {
						if err := ws.WriteMessage(mt, msg); err != nil {
							b.Fatal(err)
						}
						if _, _, err := ws.ReadMessage(); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		}
	}
}
