package harness

import (
	"fmt"
	"net"
	"net/url"
)

// checkLoopback refuses a server URL whose host is not a loopback address:
// the load tool floods what it connects to, and must never do that to
// another machine.
func checkLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("server URL: %w", err)
	}
	if u.Scheme != "ws" {
		return fmt.Errorf("server URL %q: want a ws:// URL", raw)
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("server URL %q: only loopback servers (127.0.0.1, [::1], localhost) may be loaded", raw)
}
