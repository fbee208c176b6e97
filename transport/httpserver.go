package transport

import (
	"net/http"
	"time"
)

// Timeouts of NewHTTPServer.
const (
	// DefaultReadHeaderTimeout bounds the time to read a request's
	// headers: a client that sends them a byte at a time (slowloris) is
	// cut off after it.
	DefaultReadHeaderTimeout = 5 * time.Second
	// DefaultHTTPReadTimeout bounds the time to read a whole request,
	// body included (a slowly dribbled POST to another handler of the
	// same mux).
	DefaultHTTPReadTimeout = 30 * time.Second
	// DefaultIdleTimeout bounds how long a keep-alive HTTP connection may
	// wait for its next request.
	DefaultIdleTimeout = 60 * time.Second
	// DefaultMaxHeaderBytes caps a request's headers. A handshake needs
	// well under 8 KiB; net/http's own default is 1 MiB.
	DefaultMaxHeaderBytes = 64 << 10
)

// NewHTTPServer returns an http.Server for addr and h with the timeouts a
// server facing the Internet needs: ReadHeaderTimeout
// (DefaultReadHeaderTimeout) against slowloris (the Server only sees
// requests whose headers were read, so only the HTTP server can bound
// that), ReadTimeout (DefaultHTTPReadTimeout), IdleTimeout and
// MaxHeaderBytes.
//
// These timeouts end with the handshake: net/http leaves them as
// deadlines on the connection, but an upgraded connection gets the
// transport's own (Config.ReadTimeout, WriteTimeout) before its first read
// and every write, so WebSockets outlive them. WriteTimeout is left unset
// because it would cut long responses of other handlers (large files);
// set it if the mux serves none. Change any field before serving.
//
//	hs := transport.NewHTTPServer(":8080", mux)
//	go hs.ListenAndServe()
func NewHTTPServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: DefaultReadHeaderTimeout,
		ReadTimeout:       DefaultHTTPReadTimeout,
		IdleTimeout:       DefaultIdleTimeout,
		MaxHeaderBytes:    DefaultMaxHeaderBytes,
	}
}
