package main

import (
	"context"
	"net/http"
	"time"

	"github.com/centrifugal/centrifuge"
	"github.com/protows/protows/benchmarks/harness"
)

// historyImpl is the implementation name of the broadcast with history on.
const historyImpl = "centrifuge-history"

// The history the channel keeps in BroadcastHistory: protows's default
// room history bounds (hub.DefaultHistoryMessages, DefaultHistoryAge).
const (
	historySize = 1000
	historyTTL  = 10 * time.Minute
)

// BroadcastHistory is Broadcast with the channel's history on: every
// publication is stored in the memory engine's history stream (HistorySize,
// HistoryTTL) and numbered before it is delivered, and members subscribe
// with recovery on (their publications carry offsets, which the client
// tracks), as protows's broadcast/protows-history keeps the room's history
// in memory and members track their position. It runs only when named
// (-scenarios broadcast/centrifuge-history).
func BroadcastHistory() harness.Scenario {
	return harness.Scenario{
		Name: "broadcast", Impl: historyImpl, Codecs: []string{harness.CodecProto, harness.CodecJSON},
		Shape:    harness.Fanout,
		Explicit: true,
		NewServer: func(harness.Params) (harness.Server, error) {
			return newHistoryServer()
		},
		Connect: connect,
	}
}

// newHistoryServer is newServer (scenario.go) with history and recovery
// on for the channel; the rest of its configuration is the same.
func newHistoryServer() (harness.Server, error) {
	node, err := centrifuge.New(centrifuge.Config{
		LogLevel:           centrifuge.LogLevelNone,
		ClientQueueMaxSize: 64 << 20, // as newServer: no member is disconnected as slow
	})
	if err != nil {
		return nil, err
	}
	node.OnConnecting(func(context.Context, centrifuge.ConnectEvent) (centrifuge.ConnectReply, error) {
		return centrifuge.ConnectReply{Credentials: &centrifuge.Credentials{UserID: "bench"}}, nil
	})
	node.OnConnect(func(c *centrifuge.Client) {
		c.OnSubscribe(func(_ centrifuge.SubscribeEvent, cb centrifuge.SubscribeCallback) {
			cb(centrifuge.SubscribeReply{Options: centrifuge.SubscribeOptions{EnableRecovery: true}}, nil)
		})
		c.OnPublish(func(_ centrifuge.PublishEvent, cb centrifuge.PublishCallback) {
			cb(centrifuge.PublishReply{Options: centrifuge.PublishOptions{HistorySize: historySize, HistoryTTL: historyTTL}}, nil)
		})
	})
	if err := node.Run(); err != nil {
		return nil, err
	}
	ws := centrifuge.NewWebsocketHandler(node, centrifuge.WebsocketConfig{
		CheckOrigin:      func(r *http.Request) bool { return r.Header.Get("Origin") == "" },
		MessageSizeLimit: 1 << 20,
	})
	return harness.ServerFunc{Handler: ws, CloseFunc: func() error {
		ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
		defer cancel()
		return node.Shutdown(ctx)
	}}, nil
}
