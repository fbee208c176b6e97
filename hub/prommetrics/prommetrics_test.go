package prommetrics_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"github.com/protows/protows/hub"
	"github.com/protows/protows/hub/prommetrics"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type msg = protowsv1.AuthenticateResponse

// TestHubMetrics drives a real hub (a member joins, a broadcast, a leave)
// and reads the collectors back; the adapter's other methods directly.
func TestHubMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m, err := prommetrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	member := make(chan struct{}, 1)
	h, err := hub.New(hub.Config[*msg]{
		Metrics: m,
		// No presence messages: the hook only says when the member is in.
		Presence: func(ev hub.PresenceEvent) (*msg, bool) {
			if ev.Joined {
				member <- struct{}{}
			}
			return nil, false
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan *msg, 1)
	joined := make(chan error, 1)
	go func() {
		joined <- h.Join(ctx, "r", streamFunc(func(x *msg) error { got <- x; return nil }))
	}()
	select {
	case <-member:
	case <-time.After(5 * time.Second):
		t.Fatal("no member")
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP protows_hub_members Room memberships on this node.
# TYPE protows_hub_members gauge
protows_hub_members 1
`), "protows_hub_members"); err != nil {
		t.Fatal(err)
	}
	if err := h.Broadcast(ctx, "r", &msg{Subject: "hi"}); err != nil {
		t.Fatal(err)
	}
	<-got
	cancel()
	<-joined
	m.Dropped("slow_consumer")
	m.Gap(3)
	m.Published("broadcast", time.Millisecond, nil)
	m.Published("broadcast", time.Millisecond, errors.New("broker down"))

	want := `
# HELP protows_hub_broadcasts_total Messages for members by kind (room, all, direct) and origin (local, remote).
# TYPE protows_hub_broadcasts_total counter
protows_hub_broadcasts_total{kind="room",origin="local"} 1
# HELP protows_hub_broker_publish_errors_total Messages the broker refused, by kind.
# TYPE protows_hub_broker_publish_errors_total counter
protows_hub_broker_publish_errors_total{kind="broadcast"} 1
# HELP protows_hub_broker_publishes_total Messages handed to the broker, by kind.
# TYPE protows_hub_broker_publishes_total counter
protows_hub_broker_publishes_total{kind="broadcast"} 2
# HELP protows_hub_deliveries_total Messages queued to members on this node.
# TYPE protows_hub_deliveries_total counter
protows_hub_deliveries_total 1
# HELP protows_hub_drops_total Messages that did not reach a member, by reason.
# TYPE protows_hub_drops_total counter
protows_hub_drops_total{reason="slow_consumer"} 1
# HELP protows_hub_gaps_total Losses of another node's messages, shown to members as skipped sequence numbers.
# TYPE protows_hub_gaps_total counter
protows_hub_gaps_total 1
# HELP protows_hub_members Room memberships on this node.
# TYPE protows_hub_members gauge
protows_hub_members 0
# HELP protows_hub_missed_messages_total Messages of other nodes lost in gaps, when the count is known.
# TYPE protows_hub_missed_messages_total counter
protows_hub_missed_messages_total 3
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"protows_hub_broadcasts_total", "protows_hub_broker_publish_errors_total", "protows_hub_broker_publishes_total",
		"protows_hub_deliveries_total", "protows_hub_drops_total", "protows_hub_gaps_total", "protows_hub_members",
		"protows_hub_missed_messages_total"); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(reg, "protows_hub_broker_publish_duration_seconds"); n != 1 {
		t.Errorf("publish duration series: %d", n)
	}
}

type streamFunc func(*msg) error

func (f streamFunc) Send(m *msg) error { return f(m) }
