package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/protows/protows/client"
	"github.com/protows/protows/codec"
	chatv1 "github.com/protows/protows/gen/go/examples/chat/v1"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.DiscardHandler)

// startTestNode runs a node on a free loopback port until the test ends.
func startTestNode(t *testing.T, cfg nodeConfig) *node {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listener = ln
	if cfg.TokenTTL == 0 {
		cfg.TokenTTL = time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	n, err := startNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := n.shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return n
}

// postToken asks n for a token for name, with the given Origin ("" for
// none), and returns the response and its body.
func postToken(t *testing.T, n *node, name, origin string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, n.url+"/token", strings.NewReader(url.Values{"name": {name}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, body
}

// tokenSource fetches tokens for name from n as the page does, counting
// them.
func tokenSource(n *node, name string, count *atomic.Int32) client.TokenSource {
	return func(ctx context.Context) (string, time.Time, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.url+"/token", strings.NewReader(url.Values{"name": {name}}.Encode()))
		if err != nil {
			return "", time.Time{}, err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return "", time.Time{}, err
		}
		defer res.Body.Close()
		var tr tokenResponse
		if err := json.NewDecoder(res.Body).Decode(&tr); err != nil {
			return "", time.Time{}, err
		}
		if count != nil {
			count.Add(1)
		}
		return tr.Token, time.Unix(tr.ExpiresAt, 0), nil
	}
}

// dialChat connects a Go client to n as name.
func dialChat(t *testing.T, n *node, name string, c codec.Codec, opts ...client.Option) *chatv1.ChatServiceClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	opts = append([]client.Option{client.WithCodec(c), client.WithTokenSource(tokenSource(n, name, nil)), client.WithLogger(quiet)}, opts...)
	cl, err := client.Dial(ctx, "ws"+strings.TrimPrefix(n.url, "http")+"/ws", opts...)
	if err != nil {
		t.Fatalf("dial %s: %v", name, err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	return chatv1.NewChatServiceClient(cl)
}
