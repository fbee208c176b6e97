//go:build amd64 || arm64

package dedupe

// havePrefetch tells that prefetch asks the processor to load.
const havePrefetch = true

// prefetch asks the processor to start loading the line of memory at addr
// into its caches, and returns at once; addr need not be valid, and is
// only read by the processor (prefetch_amd64.s, prefetch_arm64.s).
//
//go:noescape
func prefetch(addr uintptr)
