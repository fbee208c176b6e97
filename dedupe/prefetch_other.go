//go:build !amd64 && !arm64

package dedupe

// havePrefetch tells that prefetch does nothing on this architecture:
// Memory.Prefetch then returns at once.
const havePrefetch = false

// prefetch does nothing (see prefetch_asm.go).
func prefetch(addr uintptr) {}
