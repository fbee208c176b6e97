package main

import (
	"embed"
	"fmt"
	"io/fs"
	"net/http"
)

// The page, built from web/src by esbuild (npm run build -w
// examples/chat/web) and committed, so that go run needs no npm. The
// browser test checks that the committed build matches the sources.
//
//go:embed web/dist
var webDist embed.FS

// webFiles returns the built page.
func webFiles() (fs.FS, error) {
	sub, err := fs.Sub(webDist, "web/dist")
	if err != nil {
		return nil, fmt.Errorf("embedded page: %w", err)
	}
	if _, err := fs.Stat(sub, "index.html"); err != nil {
		return nil, fmt.Errorf("embedded page has no index.html (run npm run build -w examples/chat/web): %w", err)
	}
	return sub, nil
}

// contentSecurityPolicy lets the page load only its own script and style
// and connect only to its own origin ('self' covers ws: and wss: of the
// same host in CSP level 3), and refuses framing.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// handlePage serves the page at / and each of its files by name, and
// nothing else, so that GET /token is a 405 rather than a missing file.
func handlePage(mux *http.ServeMux, files fs.FS) error {
	h := pageHandler(files)
	mux.Handle("GET /{$}", h)
	entries, err := fs.ReadDir(files, ".")
	if err != nil {
		return fmt.Errorf("page files: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			mux.Handle("GET /"+e.Name(), h)
		}
	}
	return nil
}

// pageHandler serves the page's files with headers that keep it from
// being framed, sniffed or extended with foreign scripts.
func pageHandler(files fs.FS) http.Handler {
	fileServer := http.FileServerFS(files)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		fileServer.ServeHTTP(w, r)
	})
}
