package transport

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestTruncateReason(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want int
	}{
		{"short", 5},
		{strings.Repeat("a", 123), 123},
		{strings.Repeat("a", 500), 123},
		{strings.Repeat("é", 100), 122},      // 2-byte runes: cut before a split rune
		{"a" + strings.Repeat("€", 60), 121}, // 3-byte runes after an offset of 1
	} {
		got := truncateReason(tc.in)
		if len(got) != tc.want || !utf8.ValidString(got) || !strings.HasPrefix(tc.in, got) {
			t.Errorf("truncateReason(%d bytes) = %d bytes, want %d", len(tc.in), len(got), tc.want)
		}
	}
}
