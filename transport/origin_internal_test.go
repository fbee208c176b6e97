package transport

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestHostAllowedByLocalAddress: without AllowedHosts, the Host of a
// browser's handshake is checked only when it arrived on a loopback
// address: the server cannot know the names of its other addresses.
func TestHostAllowedByLocalAddress(t *testing.T) {
	t.Parallel()
	oc := newOriginChecker(nil, nil)
	for _, tc := range []struct {
		name  string
		local net.Addr // nil: no local address in the context
		host  string
		want  bool
	}{
		{"loopback, rebound name", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 80}, "evil.example", false},
		{"loopback v6, rebound name", &net.TCPAddr{IP: net.IPv6loopback, Port: 80}, "evil.example:80", false},
		{"loopback, 127.0.0.2", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 80}, "127.0.0.2:80", true},
		{"loopback, v4-mapped loopback", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 80}, "[::ffff:127.0.0.1]:80", true},
		{"loopback, LOCALHOST", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 80}, "LOCALHOST:80", true},
		{"loopback, localhost.evil.example", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 80}, "localhost.evil.example", false},
		{"private address", &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 80}, "evil.example", true},
		{"no local address", nil, "evil.example", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/ws", nil)
			r.Host = tc.host
			r.Header.Set("Origin", "http://"+tc.host)
			if tc.local != nil {
				r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, tc.local))
			}
			if got := oc.hostAllowed(r); got != tc.want {
				t.Fatalf("hostAllowed = %v, want %v", got, tc.want)
			}
		})
	}
}
