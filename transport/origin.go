package transport

import (
	"net/http"
	"net/url"
	"strings"
)

// originChecker decides whether a browser Origin may connect.
type originChecker struct {
	all      bool // "*" was listed: every origin, explicitly
	exact    map[string]bool
	patterns []originPattern // "https://*.example.com" as scheme, suffix ".example.com", port
}

type originPattern struct {
	scheme string
	suffix string // ".example.com" (with port when one was given)
}

func newOriginChecker(allowed []string) *originChecker {
	oc := &originChecker{exact: make(map[string]bool)}
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
