package client

// WithRand replaces the source of jitter, for tests that need exact delays.
var WithRand = withRand

// WithNetDial replaces the dialing of TCP connections, for tests on an
// in-memory network.
var WithNetDial = withNetDial
