package main

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
)

// originList is the demo's Origin allowlist: the exact origins its page
// is served from. The transport checks WebSocket handshakes against the
// same list, and the token endpoint refuses other origins too.
//
// The list is explicit rather than the transport's default (the
// request's own Host): a page on another site that rebinds its DNS name
// to 127.0.0.1 sends a Host and an Origin that agree, so "same origin"
// would let it in, while an allowlist of the listen address does not.
type originList struct {
	origins []string
}

// defaultOrigins returns the origins of a server listening on addr: its
// http://host:port, and http://localhost:port for a loopback or
// unspecified address. A server on 0.0.0.0 reached under another name
// needs -origin.
func defaultOrigins(addr net.Addr) ([]string, error) {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok {
		return nil, fmt.Errorf("listen address %v is not TCP", addr)
	}
	port := strconv.Itoa(tcp.Port)
	var out []string
	switch {
	case tcp.IP.IsUnspecified():
		out = append(out, "http://127.0.0.1:"+port, "http://[::1]:"+port)
	default:
		out = append(out, "http://"+net.JoinHostPort(tcp.IP.String(), port))
	}
	if tcp.IP.IsLoopback() || tcp.IP.IsUnspecified() {
		out = append(out, "http://localhost:"+port)
	}
	return out, nil
}

// parseOrigins splits the -origin flag: comma-separated exact origins
// such as https://chat.example.com.
func parseOrigins(s string) ([]string, error) {
	var out []string
	for o := range strings.SplitSeq(s, ",") {
		o = strings.TrimSpace(o)
		if o == "" {
			continue
		}
		scheme, rest, ok := strings.Cut(o, "://")
		if !ok || (scheme != "http" && scheme != "https") || rest == "" || strings.ContainsAny(rest, "/*?#") {
			return nil, fmt.Errorf("origin %q: want scheme://host[:port], no path and no wildcard", o)
		}
		out = append(out, o)
	}
	return out, nil
}

func (l *originList) allows(origin string) bool {
	return slices.Contains(l.origins, origin)
}
