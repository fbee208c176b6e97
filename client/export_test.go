package client

// WithRand replaces the source of jitter, for tests that need exact delays.
var WithRand = withRand

// WithBeforeOpenSend runs f when a server stream (re-)opens, after it is
// registered and before its REQUEST is sent.
var WithBeforeOpenSend = withBeforeOpenSend

// WithNetDial replaces the dialing of TCP connections, for tests on an
// in-memory network.
var WithNetDial = withNetDial

// OutboxLen returns the number of calls in c's outbox.
func OutboxLen(c *Client) int {
	c.outbox.mu.Lock()
	defer c.outbox.mu.Unlock()
	return len(c.outbox.entries)
}
