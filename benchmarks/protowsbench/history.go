package protowsbench

import (
	"context"

	"github.com/protows/protows/benchmarks/harness"
	benchv1 "github.com/protows/protows/gen/go/protows/bench/v1"
	"github.com/protows/protows/hub"
)

// BroadcastHistory is Broadcast on a hub whose room keeps history in the
// server's memory (hub.NewMemoryHistory, default bounds: 1,000 messages,
// 10 minutes): every broadcast is numbered and stored before it is
// delivered, and members open their streams as the Go client always does,
// with resume (docs/PROTOCOL.md, section 14). It is the counterpart of
// Centrifuge's broadcast with history on (benchmarks/centrifuge), and runs
// only when named (-scenarios broadcast/protows-history).
func BroadcastHistory() harness.Scenario {
	return harness.Scenario{
		Name: "broadcast", Impl: Impl + "-history", Codecs: []string{harness.CodecProto, harness.CodecJSON},
		Shape:    harness.Fanout,
		Explicit: true,
		NewServer: func(harness.Params) (harness.Server, error) {
			return newServer(hub.Config[*benchv1.Sample]{History: hub.NewMemoryHistory(hub.HistoryLimits{})}, nil)
		},
		Connect: func(ctx context.Context, url string, p harness.Params) (harness.Load, error) {
			return connectBroadcast(ctx, url, p, nil)
		},
	}
}
