//go:build amd64 || arm64

package transport

import (
	"testing"
	"unsafe"
)

// TestKeyedCallSize keeps a keyedCall the size smallKeyedPayload's comment
// gives on 64-bit platforms: a size class of the allocator, which a
// larger one would waste.
func TestKeyedCallSize(t *testing.T) {
	if n := unsafe.Sizeof(keyedCall{}); n != 352 {
		t.Errorf("a keyedCall takes %d bytes, not 352: change smallKeyedPayload so that it fills a size class", n)
	}
}
