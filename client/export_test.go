package client

// WithRand replaces the source of jitter, for tests that need exact delays.
var WithRand = withRand
