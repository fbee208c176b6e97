package transport_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"time"

	"github.com/gorilla/websocket"
	"github.com/protows/protows/codec"
	testv1 "github.com/protows/protows/gen/go/protows/test/v1"
	"github.com/protows/protows/router"
	"github.com/protows/protows/transport"
)

func ExampleNewServer() {
	r := router.New()
	_ = router.HandleUnary(r, "/protows.test.v1.TestService/Echo",
		func(ctx context.Context, req *testv1.EchoRequest) (*testv1.EchoResponse, error) {
			conn, _ := transport.ConnFromContext(ctx)
			return &testv1.EchoResponse{Text: req.GetText() + " via " + conn.Subprotocol()}, nil
		})
	srv := transport.NewServer(r, transport.Config{Logger: quietLogger()})
	hs := httptest.NewServer(srv) // in production: transport.NewHTTPServer
	defer hs.Close()

	// A raw client: one JSON frame out, one back.
	d := websocket.Dialer{Subprotocols: []string{codec.JSONName}}
	ws, _, err := d.Dial("ws"+strings.TrimPrefix(hs.URL, "http"), nil)
	if err != nil {
		panic(err)
	}
	_ = ws.WriteMessage(websocket.TextMessage, []byte(`{"id":1,"kind":"request","method":"/protows.test.v1.TestService/Echo","payload":{"text":"hi"}}`))
	_, frame, _ := ws.ReadMessage()
	fmt.Println(string(frame))

	// The client reads while the server shuts down, and so answers its
	// close frame at once.
	closed := make(chan error, 1)
	go func() {
		_, _, err := ws.ReadMessage()
		closed <- err
	}()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
	fmt.Println(<-closed)
	ws.Close()
	// Output:
	// {"id":1,"kind":"reply","payload":{"text":"hi via protows.v1.json"}}
	// websocket: close 1001 (going away): server shutting down
}

// Behind a reverse proxy every connection comes from the proxy's address,
// so MaxConnsPerIP would count all clients as one. ClientIP takes the
// client's address from X-Forwarded-For, but only for requests from the
// trusted proxy, and only the last entry, the one the proxy appended
// itself: the entries before it are whatever the client sent.
func ExampleConfig_clientIP() {
	proxy := netip.MustParsePrefix("10.0.0.0/8") // the proxy's network
	clientIP := func(r *http.Request) string {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			return r.RemoteAddr
		}
		peer, err := netip.ParseAddr(host)
		if err != nil || !proxy.Contains(peer) {
			return host // not through the proxy: the peer is the client
		}
		xff := r.Header.Values("X-Forwarded-For")
		if len(xff) == 0 {
			return host
		}
		last := xff[len(xff)-1]
		last = strings.TrimSpace(last[strings.LastIndexByte(last, ',')+1:])
		if ip, err := netip.ParseAddr(last); err == nil {
			return ip.String()
		}
		return host
	}
	srv := transport.NewServer(nil, transport.Config{ClientIP: clientIP, MaxConnsPerIP: 10, Logger: quietLogger()})
	_ = srv

	r := httptest.NewRequest(http.MethodGet, "/ws", nil)
	r.RemoteAddr = "10.1.2.3:40000"
	r.Header.Set("X-Forwarded-For", "192.0.2.66, 203.0.113.7") // a spoofed first entry
	fmt.Println(clientIP(r))
	r.RemoteAddr = "198.51.100.9:40000" // not the proxy: the header is ignored
	fmt.Println(clientIP(r))
	// Output:
	// 203.0.113.7
	// 198.51.100.9
}
