package transport

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
