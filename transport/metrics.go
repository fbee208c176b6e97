package transport

import "time"

// Metrics receives the server's measurements. Implementations must be safe
// for concurrent use and fast: they are called on every message. The
// prommetrics package adapts it to Prometheus; NopMetrics ignores
// everything.
type Metrics interface {
	// ConnOpened counts an accepted connection.
	ConnOpened(subprotocol string)
	// ConnClosed counts an ended connection with the close code sent or
	// received (1006 when none).
	ConnClosed(subprotocol string, code int)
	// HandshakeRejected counts a refused handshake; reason is one of
	// "origin", "subprotocol", "query_token", "unauthenticated",
	// "limit", "draining", "not_websocket", "upgrade".
	HandshakeRejected(reason string)
	// MessageIn counts a received WebSocket message and its size.
	MessageIn(subprotocol string, bytes int)
	// MessageOut counts a sent WebSocket message (one frame, maybe a
	// batch) and its size.
	MessageOut(subprotocol string, bytes int)
	// CallDone observes a finished call: its method, its outcome ("ok" or
	// an error code name) and how long the handler ran.
	CallDone(method, outcome string, d time.Duration)
	// SendQueueDropped counts a connection closed because its send queue
	// overflowed.
	SendQueueDropped()
}

// LoadMetrics is an optional interface of a Metrics, found by type
// assertion: the load the server sheds, which a Metrics without it sees
// only as 1013 close codes, long after the overload.
type LoadMetrics interface {
	// ConnShed counts a connection shed because the server ran
	// Config.MaxCalls calls: the REQUEST beyond the limit got ERROR
	// unavailable, and the connection drains and closes with 1013.
	ConnShed()
}

// NopMetrics is a Metrics that records nothing.
type NopMetrics struct{}

var _ Metrics = NopMetrics{}

// ConnOpened implements Metrics.
func (NopMetrics) ConnOpened(string) {}

// ConnClosed implements Metrics.
func (NopMetrics) ConnClosed(string, int) {}

// HandshakeRejected implements Metrics.
func (NopMetrics) HandshakeRejected(string) {}

// MessageIn implements Metrics.
func (NopMetrics) MessageIn(string, int) {}

// MessageOut implements Metrics.
func (NopMetrics) MessageOut(string, int) {}

// CallDone implements Metrics.
func (NopMetrics) CallDone(string, string, time.Duration) {}

// SendQueueDropped implements Metrics.
func (NopMetrics) SendQueueDropped() {}
