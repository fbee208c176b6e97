// Package prommetrics adapts transport.Metrics to Prometheus
// (github.com/prometheus/client_golang). It lives in its own package so
// that servers that do not use Prometheus do not link it.
//
//	m, err := prommetrics.New(prometheus.DefaultRegisterer)
//	srv := transport.NewServer(r, transport.Config{Metrics: m})
//
// Metrics, all prefixed "protows_":
//
//	connections_open{subprotocol}                 gauge
//	connections_total{subprotocol}                counter
//	connections_closed_total{subprotocol,code}    counter
//	handshakes_rejected_total{reason}             counter
//	messages_received_total{subprotocol}          counter
//	messages_sent_total{subprotocol}              counter
//	received_bytes_total{subprotocol}             counter
//	sent_bytes_total{subprotocol}                 counter
//	handler_duration_seconds{method,outcome}      histogram
//	send_queue_drops_total                        counter
//	connections_shed_total                        counter (transport.LoadMetrics)
//
// The hub's rooms and brokers have their own adapter, package
// github.com/protows/protows/hub/prommetrics; deploy/grafana has a
// dashboard of both.
package prommetrics

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/protows/protows/transport"
)

// Metrics implements transport.Metrics with Prometheus collectors.
type Metrics struct {
	open         *prometheus.GaugeVec
	total        *prometheus.CounterVec
	closed       *prometheus.CounterVec
	rejected     *prometheus.CounterVec
	msgsIn       *prometheus.CounterVec
	msgsOut      *prometheus.CounterVec
	bytesIn      *prometheus.CounterVec
	bytesOut     *prometheus.CounterVec
	handlerTime  *prometheus.HistogramVec
	sendQueueDrp prometheus.Counter
	shed         prometheus.Counter
}

var (
	_ transport.Metrics     = (*Metrics)(nil)
	_ transport.LoadMetrics = (*Metrics)(nil)
)

// New creates the collectors and registers them with reg (for example
// prometheus.DefaultRegisterer, or a prometheus.NewRegistry()).
func New(reg prometheus.Registerer) (*Metrics, error) {
	const ns = "protows"
	m := &Metrics{
		open: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "connections_open",
			Help: "Open WebSocket connections."}, []string{"subprotocol"}),
		total: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "connections_total",
			Help: "Accepted WebSocket connections."}, []string{"subprotocol"}),
		closed: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "connections_closed_total",
			Help: "Ended connections by close code."}, []string{"subprotocol", "code"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "handshakes_rejected_total",
			Help: "Refused handshakes by reason."}, []string{"reason"}),
		msgsIn: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "messages_received_total",
			Help: "WebSocket messages received."}, []string{"subprotocol"}),
		msgsOut: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "messages_sent_total",
			Help: "WebSocket messages (frames of batched envelopes) sent."}, []string{"subprotocol"}),
		bytesIn: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "received_bytes_total",
			Help: "Bytes of WebSocket messages received, after decompression."}, []string{"subprotocol"}),
		bytesOut: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "sent_bytes_total",
			Help: "Bytes of WebSocket messages sent, before compression."}, []string{"subprotocol"}),
		handlerTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "handler_duration_seconds",
			Help:    "Time handlers ran, by method and outcome.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10)}, []string{"method", "outcome"}),
		sendQueueDrp: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "send_queue_drops_total",
			Help: "Connections closed with 4008 because their send queue overflowed."}),
		shed: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "connections_shed_total",
			Help: "Connections shed because the server ran Config.MaxCalls calls: they drain and close with 1013."}),
	}
	for _, c := range []prometheus.Collector{m.open, m.total, m.closed, m.rejected, m.msgsIn, m.msgsOut, m.bytesIn, m.bytesOut, m.handlerTime, m.sendQueueDrp, m.shed} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// ConnOpened implements transport.Metrics.
func (m *Metrics) ConnOpened(sub string) {
	m.open.WithLabelValues(sub).Inc()
	m.total.WithLabelValues(sub).Inc()
}

// ConnClosed implements transport.Metrics.
func (m *Metrics) ConnClosed(sub string, code int) {
	m.open.WithLabelValues(sub).Dec()
	m.closed.WithLabelValues(sub, strconv.Itoa(code)).Inc()
}

// HandshakeRejected implements transport.Metrics.
func (m *Metrics) HandshakeRejected(reason string) { m.rejected.WithLabelValues(reason).Inc() }

// MessageIn implements transport.Metrics.
func (m *Metrics) MessageIn(sub string, n int) {
	m.msgsIn.WithLabelValues(sub).Inc()
	m.bytesIn.WithLabelValues(sub).Add(float64(n))
}

// MessageOut implements transport.Metrics.
func (m *Metrics) MessageOut(sub string, n int) {
	m.msgsOut.WithLabelValues(sub).Inc()
	m.bytesOut.WithLabelValues(sub).Add(float64(n))
}

// CallDone implements transport.Metrics.
func (m *Metrics) CallDone(method, outcome string, d time.Duration) {
	m.handlerTime.WithLabelValues(method, outcome).Observe(d.Seconds())
}

// SendQueueDropped implements transport.Metrics.
func (m *Metrics) SendQueueDropped() { m.sendQueueDrp.Inc() }

// ConnShed implements transport.LoadMetrics.
func (m *Metrics) ConnShed() { m.shed.Inc() }
