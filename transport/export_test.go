package transport

import "time"

// PeakQueued returns the most bytes the connection's send queue held
// (queued and being written) so far, for the tests of back-pressure.
func PeakQueued(c *Conn) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.w.peak
}

// Buffered returns how many of the client's stream messages the server
// holds for the call's handler.
func Buffered(c *Call) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.in)
}

// Fingerprint is the fingerprint of a keyed call's request, for
// BenchmarkKeyedCost.
var Fingerprint = fingerprint

// SetIdleGap sets the silence after which a connection's reader takes
// its next messages as the start of a run (read), for tests that want a
// connection to count as busy however slowly they send.
func SetIdleGap(s *Server, d time.Duration) { s.idleGap = d }
