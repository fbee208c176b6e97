package transport_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gorilla/websocket"
	"github.com/protows/protows/codec"
	testv1 "github.com/protows/protows/gen/go/protows/test/v1"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"github.com/protows/protows/internal/testservice"
	"github.com/protows/protows/transport"
)

func TestOriginAllowlist(t *testing.T) {
	t.Parallel()
	ts := startServer(t, transport.Config{AllowedOrigins: []string{"https://app.example.com", "https://*.example.com"}})
	for _, tc := range []struct {
		origin string
		want   int
	}{
		{"https://app.example.com", http.StatusSwitchingProtocols},
		{"https://APP.example.com", http.StatusSwitchingProtocols},
		{"https://a.example.com", http.StatusSwitchingProtocols},
		{"", http.StatusSwitchingProtocols}, // not a browser
		{"https://example.com", http.StatusForbidden},
		{"https://evil.example", http.StatusForbidden},
		{"https://app.example.com.evil.com", http.StatusForbidden},
		{"https://a.b.example.com", http.StatusForbidden},
		{"null", http.StatusForbidden},
		{"http://app.example.com", http.StatusForbidden},       // wrong scheme
		{"wss://app.example.com", http.StatusForbidden},        // wrong scheme
		{"https://app.example.com:8443", http.StatusForbidden}, // wrong port
		{"https://app.example.com/path", http.StatusForbidden},
		{"not a url", http.StatusForbidden},
	} {
		t.Run(tc.origin, func(t *testing.T) {
			hdr := http.Header{}
			if tc.origin != "" {
				hdr.Set("Origin", tc.origin)
			}
			cl, resp, err := dialErr(ts.url, codec.Proto(), hdr)
			if cl != nil {
				defer cl.ws.Close()
			}
			if resp == nil {
				t.Fatalf("no response: %v", err)
			}
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}
	// The server keeps serving after the refusals.
	cl := dial(t, ts.url, codec.Proto(), nil)
	if e := cl.call(1, testservice.EchoMethod, &testv1.EchoRequest{}); e.GetKind() != protowsv1.Kind_KIND_REPLY {
		t.Fatal(e)
	}
}

func TestOriginDefaultSameOrigin(t *testing.T) {
	t.Parallel()
	ts := startServer(t, transport.Config{})
	for _, tc := range []struct {
		origin string
		want   int
	}{
		{ts.http.URL, http.StatusSwitchingProtocols},
		{"https://" + strings.TrimPrefix(ts.http.URL, "http://"), http.StatusForbidden},
		{"http://evil.example", http.StatusForbidden},
		{"null", http.StatusForbidden},
	} {
		cl, resp, _ := dialErr(ts.url, codec.JSON(), http.Header{"Origin": {tc.origin}})
		if cl != nil {
			cl.ws.Close()
		}
		if resp == nil || resp.StatusCode != tc.want {
			t.Fatalf("origin %s: %v, want %d", tc.origin, resp, tc.want)
		}
	}
}

// TestDNSRebinding: under the same-origin default, a browser page whose
// host name resolves to the server's loopback address (DNS rebinding) is
// same-origin to the browser, but names a host the server does not serve:
// refused. Loopback names pass; AllowedHosts lists the names explicitly.
func TestDNSRebinding(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		cfg    transport.Config
		host   string // "" leaves the dialed 127.0.0.1:port
		origin string // a scheme and host; the port is the server's
		want   int
	}{
		{"rebound name", transport.Config{}, "evil.example", "http://evil.example", http.StatusForbidden},
		{"rebound name, trailing dot", transport.Config{}, "evil.example.", "http://evil.example.", http.StatusForbidden},
		{"loopback IP", transport.Config{}, "", "http://127.0.0.1", http.StatusSwitchingProtocols},
		{"localhost", transport.Config{}, "localhost", "http://localhost", http.StatusSwitchingProtocols},
		{"a name under localhost", transport.Config{}, "app.localhost", "http://app.localhost", http.StatusSwitchingProtocols},
		{"IPv6 loopback", transport.Config{}, "[::1]", "http://[::1]", http.StatusSwitchingProtocols},
		{"not a browser", transport.Config{}, "evil.example", "", http.StatusSwitchingProtocols},
		{"allowlisted origin", transport.Config{AllowedOrigins: []string{"http://evil.example:PORT"}}, "evil.example", "http://evil.example", http.StatusSwitchingProtocols},
		{"allowed host", transport.Config{AllowedHosts: []string{"chat.example.com"}}, "chat.example.com", "http://chat.example.com", http.StatusSwitchingProtocols},
		{"allowed host and port", transport.Config{AllowedHosts: []string{"Chat.Example.com:PORT"}}, "chat.example.com", "http://chat.example.com", http.StatusSwitchingProtocols},
		{"allowed host, other port", transport.Config{AllowedHosts: []string{"chat.example.com:1"}}, "chat.example.com", "http://chat.example.com", http.StatusForbidden},
		{"host not listed", transport.Config{AllowedHosts: []string{"chat.example.com"}}, "", "http://127.0.0.1", http.StatusForbidden},
		{"host not listed, not a browser", transport.Config{AllowedHosts: []string{"chat.example.com"}}, "evil.example", "", http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The port is known once the server runs; PORT in the
			// configuration stands for it.
			cfg := tc.cfg
			ts := startServerWithPort(t, func(port string) transport.Config {
				fix := func(l []string) []string {
					out := make([]string, len(l))
					for i, s := range l {
						out[i] = strings.ReplaceAll(s, "PORT", port)
					}
					return out
				}
				cfg.AllowedOrigins, cfg.AllowedHosts = fix(cfg.AllowedOrigins), fix(cfg.AllowedHosts)
				return cfg
			})
			port := ts.http.Listener.Addr().(*net.TCPAddr).Port
			hdr := http.Header{}
			if tc.host != "" {
				hdr.Set("Host", fmt.Sprintf("%s:%d", tc.host, port))
			}
			if tc.origin != "" {
				hdr.Set("Origin", fmt.Sprintf("%s:%d", tc.origin, port))
			}
			cl, resp, err := dialErr(ts.url, codec.JSON(), hdr)
			if cl != nil {
				cl.ws.Close()
			}
			if resp == nil {
				t.Fatalf("no response: %v", err)
			}
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
			if tc.want == http.StatusForbidden {
				body, _ := io.ReadAll(resp.Body)
				if !strings.Contains(string(body), "not allowed") {
					t.Fatalf("body %q", body)
				}
			}
		})
	}
}

func TestSubprotocolNegotiation(t *testing.T) {
	t.Parallel()
	ts := startServer(t, transport.Config{})
	d := websocket.Dialer{Subprotocols: []string{"v2.other", codec.JSONName, codec.ProtoName}}
	ws, _, err := d.Dial(ts.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ws.Subprotocol() != codec.JSONName {
		t.Fatalf("subprotocol %q", ws.Subprotocol())
	}
	ws.Close()

	// None offered: the default codec, and no header (RFC 6455).
	cl := dial(t, ts.url, nil, nil)
	if cl.ws.Subprotocol() != "" {
		t.Fatalf("subprotocol header %q without an offer", cl.ws.Subprotocol())
	}
	e := cl.call(1, testservice.WhoamiMethod, &testv1.WhoamiRequest{})
	var who testv1.WhoamiResponse
	cl.decode(e, &who)
	if who.GetSubprotocol() != codec.ProtoName {
		t.Fatalf("default codec %q", who.GetSubprotocol())
	}

	// Only unknown ones: 400 naming the supported.
	d = websocket.Dialer{Subprotocols: []string{"PROTOWS.V1.PROTO"}}
	_, resp, err := d.Dial(ts.url, nil)
	if err == nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("unknown subprotocol: %v %v", err, resp)
	}
	body, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(body), "protows.v1.proto, protows.v1.json") {
		t.Fatalf("body %q", body)
	}
}

func TestHandshakeRefusals(t *testing.T) {
	t.Parallel()
	ts := startServer(t, transport.Config{})
	// Not a WebSocket request.
	resp, err := http.Get(ts.http.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("plain GET: %d", resp.StatusCode)
	}
	// A token in the query.
	for _, q := range []string{"?access_token=x", "?token=x"} {
		_, resp, err := dialErr(ts.url+q, codec.Proto(), nil)
		if err == nil || resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("query token %s: %v", q, resp)
		}
	}
}

func TestConnectionLimits(t *testing.T) {
	t.Parallel()
	t.Run("global", func(t *testing.T) {
		t.Parallel()
		ts := startServer(t, transport.Config{MaxConns: 2})
		dial(t, ts.url, codec.Proto(), nil)
		dial(t, ts.url, codec.Proto(), nil)
		_, resp, err := dialErr(ts.url, codec.Proto(), nil)
		if err == nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "5" {
			t.Fatalf("over the limit: %v %v", err, resp)
		}
	})
	t.Run("per-ip", func(t *testing.T) {
		t.Parallel()
		ts := startServer(t, transport.Config{MaxConnsPerIP: 1, RetryAfter: 2e9})
		dial(t, ts.url, codec.Proto(), nil)
		_, resp, err := dialErr(ts.url, codec.Proto(), nil)
		if err == nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "2" {
			t.Fatalf("over the limit: %v %v", err, resp)
		}
	})
}

// TestConnectBurst dials 1,000 times, 50 at once, against a limit of 20:
// 20 are served, every other handshake gets 503, and the 20 still work.
func TestConnectBurst(t *testing.T) {
	t.Parallel()
	const limit, total, parallel = 20, 1000, 50
	ts := startServer(t, transport.Config{MaxConns: limit})
	var (
		mu       sync.Mutex
		accepted []*client
		refused  atomic.Int64
		other    atomic.Int64
		wg       sync.WaitGroup
		next     atomic.Int64
	)
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= total {
				cl, resp, err := dialErr(ts.url, codec.Proto(), nil)
				switch {
				case err == nil:
					mu.Lock()
					accepted = append(accepted, cl)
					mu.Unlock()
				case resp != nil && resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != "":
					refused.Add(1)
				default:
					other.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	defer func() {
		for _, cl := range accepted {
			cl.ws.Close()
		}
	}()
	if len(accepted) != limit || refused.Load() != total-limit || other.Load() != 0 {
		t.Fatalf("accepted %d, refused %d, other %d", len(accepted), refused.Load(), other.Load())
	}
	for i, cl := range accepted {
		cl.t = t
		if e := cl.call(uint32(i+1), testservice.EchoMethod, &testv1.EchoRequest{Text: "x"}); e.GetKind() != protowsv1.Kind_KIND_REPLY {
			t.Fatal(e)
		}
	}
}

func TestCompressionOffByDefault(t *testing.T) {
	t.Parallel()
	ts := startServer(t, transport.Config{})
	d := websocket.Dialer{Subprotocols: []string{codec.ProtoName}, EnableCompression: true}
	ws, resp, err := d.Dial(ts.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if ext := resp.Header.Get("Sec-WebSocket-Extensions"); ext != "" {
		t.Fatalf("compression negotiated by default: %q", ext)
	}
	ts2 := startServer(t, transport.Config{EnableCompression: true})
	ws2, resp, err := d.Dial(ts2.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws2.Close()
	if ext := resp.Header.Get("Sec-WebSocket-Extensions"); !strings.Contains(ext, "permessage-deflate") {
		t.Fatalf("compression not negotiated when enabled: %q", ext)
	}
}

func TestOriginWildcardIsExplicit(t *testing.T) {
	t.Parallel()
	ts := startServer(t, transport.Config{AllowedOrigins: []string{"*"}})
	cl, resp, err := dialErr(ts.url, codec.Proto(), http.Header{"Origin": {"https://anywhere.example"}})
	if err != nil {
		t.Fatalf("explicit * refused an origin: %v %v", err, resp)
	}
	cl.ws.Close()
}
