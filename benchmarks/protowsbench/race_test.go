//go:build race

package protowsbench_test

// raceEnabled: the race detector slows the million-message test tenfold;
// it checks the same property on fewer messages.
const raceEnabled = true
