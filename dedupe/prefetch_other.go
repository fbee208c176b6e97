//go:build !amd64 && !arm64

package dedupe

// havePrefetch tells that prefetch does nothing on this architecture:
// Memory.Prefetch then only hashes the key for its Hint.
const havePrefetch = false

// prefetch does nothing (see prefetch_asm.go).
func prefetch(addr uintptr) {}
