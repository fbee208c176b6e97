//go:build !race

package protowsbench_test

const raceEnabled = false
