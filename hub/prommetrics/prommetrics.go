// Package prommetrics adapts hub.Metrics to Prometheus
// (github.com/prometheus/client_golang), beside the transport's adapter
// (package transport/prommetrics). It lives in its own package so that
// servers that do not use Prometheus do not link it.
//
//	m, err := prommetrics.New(prometheus.DefaultRegisterer)
//	h, err := hub.New(hub.Config[*chatv1.RoomEvent]{Metrics: m})
//
// Metrics, all prefixed "protows_hub_":
//
//	members                                   gauge      memberships on this node
//	broadcasts_total{kind,origin}             counter    kind: room, all, direct; origin: local, remote
//	deliveries_total                          counter    messages queued to members
//	drops_total{reason}                       counter    slow_consumer, closed, encode, send, malformed
//	gaps_total                                counter    losses of another node's messages
//	missed_messages_total                     counter    messages lost in those gaps, when known
//	broker_publishes_total{kind}              counter    messages handed to the broker
//	broker_publish_errors_total{kind}         counter    ... that the broker refused
//	broker_publish_duration_seconds{kind}     histogram  how long Broker.Publish took
//
// The load a server sheds (Config.MaxCalls) is the transport's:
// protows_connections_shed_total. Two hubs in one process need two
// registries, or one wrapped with prometheus.WrapRegistererWith and a label
// that tells them apart.
package prommetrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/protows/protows/hub"
)

// Metrics implements hub.Metrics with Prometheus collectors.
type Metrics struct {
	members     prometheus.Gauge
	broadcasts  *prometheus.CounterVec
	deliveries  prometheus.Counter
	drops       *prometheus.CounterVec
	gaps        prometheus.Counter
	missed      prometheus.Counter
	publishes   *prometheus.CounterVec
	pubErrors   *prometheus.CounterVec
	pubDuration *prometheus.HistogramVec
}

var _ hub.Metrics = (*Metrics)(nil)

// New creates the collectors and registers them with reg (for example
// prometheus.DefaultRegisterer, or a prometheus.NewRegistry()).
func New(reg prometheus.Registerer) (*Metrics, error) {
	const ns, sub = "protows", "hub"
	m := &Metrics{
		members: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "members",
			Help: "Room memberships on this node."}),
		broadcasts: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "broadcasts_total",
			Help: "Messages for members by kind (room, all, direct) and origin (local, remote)."}, []string{"kind", "origin"}),
		deliveries: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "deliveries_total",
			Help: "Messages queued to members on this node."}),
		drops: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "drops_total",
			Help: "Messages that did not reach a member, by reason."}, []string{"reason"}),
		gaps: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "gaps_total",
			Help: "Losses of another node's messages, shown to members as skipped sequence numbers."}),
		missed: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "missed_messages_total",
			Help: "Messages of other nodes lost in gaps, when the count is known."}),
		publishes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "broker_publishes_total",
			Help: "Messages handed to the broker, by kind."}, []string{"kind"}),
		pubErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "broker_publish_errors_total",
			Help: "Messages the broker refused, by kind."}, []string{"kind"}),
		pubDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "broker_publish_duration_seconds",
			Help:    "Time Broker.Publish took, by kind.",
			Buckets: prometheus.ExponentialBuckets(0.00001, 4, 10)}, []string{"kind"}),
	}
	for _, c := range []prometheus.Collector{m.members, m.broadcasts, m.deliveries, m.drops, m.gaps, m.missed, m.publishes, m.pubErrors, m.pubDuration} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// MemberJoined implements hub.Metrics.
func (m *Metrics) MemberJoined() { m.members.Inc() }

// MemberLeft implements hub.Metrics.
func (m *Metrics) MemberLeft() { m.members.Dec() }

// Broadcast implements hub.Metrics.
func (m *Metrics) Broadcast(kind, origin string) { m.broadcasts.WithLabelValues(kind, origin).Inc() }

// Delivered implements hub.Metrics.
func (m *Metrics) Delivered(n int) { m.deliveries.Add(float64(n)) }

// Dropped implements hub.Metrics.
func (m *Metrics) Dropped(reason string) { m.drops.WithLabelValues(reason).Inc() }

// Gap implements hub.Metrics.
func (m *Metrics) Gap(missed uint64) {
	m.gaps.Inc()
	m.missed.Add(float64(missed))
}

// Published implements hub.Metrics.
func (m *Metrics) Published(kind string, d time.Duration, err error) {
	m.publishes.WithLabelValues(kind).Inc()
	m.pubDuration.WithLabelValues(kind).Observe(d.Seconds())
	if err != nil {
		m.pubErrors.WithLabelValues(kind).Inc()
	}
}
