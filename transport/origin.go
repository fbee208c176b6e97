package transport

import (
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
)

// originChecker decides whether a browser Origin may connect, and whether
// the request names a host the server serves.
type originChecker struct {
	all      bool // "*" was listed: every origin, explicitly
	exact    map[string]bool
	patterns []originPattern // "https://*.example.com" as scheme, suffix ".example.com", port
	hosts    []hostEntry     // Config.AllowedHosts
}

// hostEntry is one entry of Config.AllowedHosts: a host name or IP
// literal, in lower case and without brackets, and a port ("" for any).
type hostEntry struct {
	host, port string
}

type originPattern struct {
	scheme string
	suffix string // ".example.com" (with port when one was given)
}

func newOriginChecker(allowed, hosts []string) *originChecker {
	oc := &originChecker{exact: make(map[string]bool)}
	for _, h := range hosts {
		host, port := splitHost(strings.ToLower(strings.TrimSpace(h)))
		oc.hosts = append(oc.hosts, hostEntry{host: host, port: port})
	}
	for _, a := range allowed {
		a = strings.ToLower(strings.TrimSuffix(a, "/"))
		if a == "*" {
			oc.all = true
			continue
		}
		scheme, host, ok := strings.Cut(a, "://")
		if ok {
			if rest, wild := strings.CutPrefix(host, "*."); wild && rest != "" {
				oc.patterns = append(oc.patterns, originPattern{scheme: scheme, suffix: "." + rest})
				continue
			}
		}
		oc.exact[a] = true
	}
	return oc
}

// allowed reports whether r may connect. Without an allowlist only the
// request's own origin passes; a request without Origin is not a browser's
// and always passes.
func (oc *originChecker) allowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || oc.all {
		return true
	}
	o := strings.ToLower(origin)
	if o == "null" {
		// Sandboxed frames and file: pages; never matches, even exactly,
		// because every such page shares the same "null" origin.
		return false
	}
	u, err := url.Parse(o)
	if err != nil || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.User != nil {
		return false
	}
	norm := u.Scheme + "://" + u.Host
	if len(oc.exact) == 0 && len(oc.patterns) == 0 { // nothing listed
		return sameOrigin(r, u)
	}
	if oc.exact[norm] {
		return true
	}
	for _, p := range oc.patterns {
		if u.Scheme != p.scheme {
			continue
		}
		host := u.Host
		if !strings.HasSuffix(host, p.suffix) {
			continue
		}
		label := strings.TrimSuffix(host, p.suffix)
		// Exactly one non-empty label: "a.example.com" but not
		// "example.com" nor "a.b.example.com".
		if label != "" && !strings.ContainsAny(label, ".:") {
			return true
		}
	}
	return false
}

// sameOrigin compares the origin with the request's own scheme and host.
// The scheme of the request is https behind TLS; a plain-text request
// counts as http (a TLS-terminating proxy should configure AllowedOrigins).
func sameOrigin(r *http.Request, u *url.URL) bool {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return u.Scheme == scheme && strings.EqualFold(u.Host, r.Host)
}

// listed reports whether AllowedOrigins was given: then the Origin is
// checked against the list, whatever the Host.
func (oc *originChecker) listed() bool {
	return oc.all || len(oc.exact) > 0 || len(oc.patterns) > 0
}

// hostAllowed reports whether the request's Host is one the server serves.
//
// Same origin means the Origin matches the request's own Host, and the
// Host is whatever name the browser resolved: a page on
// http://evil.example:8080 whose name an attacker made resolve to the
// server's address (DNS rebinding) is, to the browser, the server's own
// origin. So the Host must be one the server serves: one of
// Config.AllowedHosts when given (checked on every handshake); without
// them, under the same-origin default, a browser's handshake that arrived
// on a loopback address must name a loopback host, because no other name
// can legitimately lead a browser there. A handshake on another address is
// not checked without AllowedHosts: the server cannot know its names.
func (oc *originChecker) hostAllowed(r *http.Request) bool {
	host, port := splitHost(strings.ToLower(r.Host))
	if len(oc.hosts) > 0 {
		for _, h := range oc.hosts {
			if h.host == host && (h.port == "" || h.port == port) {
				return true
			}
		}
		return false
	}
	if oc.listed() || r.Header.Get("Origin") == "" {
		return true
	}
	local, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok || !isLoopbackAddr(local) {
		return true
	}
	return isLoopbackHost(host)
}

// splitHost splits "host:port", "[v6]:port", "host" or "[v6]" into a host
// without brackets and a port, "" when none.
func splitHost(hostport string) (host, port string) {
	if h, p, err := net.SplitHostPort(hostport); err == nil {
		return h, p
	}
	return strings.TrimSuffix(strings.TrimPrefix(hostport, "["), "]"), ""
}

// isLoopbackAddr reports whether a connection's local address is a
// loopback address.
func isLoopbackAddr(a net.Addr) bool {
	if tcp, ok := a.(*net.TCPAddr); ok {
		return tcp.IP.IsLoopback()
	}
	ap, err := netip.ParseAddrPort(a.String())
	return err == nil && ap.Addr().IsLoopback()
}

// isLoopbackHost reports whether a host names the loopback interface:
// "localhost", a name under "localhost." (RFC 6761 reserves them for
// loopback, and browsers resolve them so without DNS), or a loopback IP
// literal (127.0.0.0/8, ::1).
func isLoopbackHost(host string) bool {
	host = strings.TrimSuffix(host, ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}
