package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestTokenEndpoint(t *testing.T) {
	t.Parallel()
	n := startTestNode(t, nodeConfig{TokenTTL: 90 * time.Second, Name: "n1"})
	own := n.origins[0]
	for _, tc := range []struct {
		name, nick, origin string
		status             int
	}{
		{"nickname", "alice", "", http.StatusOK},
		{"own origin", "Zoë Ünal", own, http.StatusOK},
		{"localhost origin", "bob", "http://localhost:" + own[strings.LastIndex(own, ":")+1:], http.StatusOK},
		{"spaces trimmed", "  carol  ", "", http.StatusOK},
		{"empty", "", "", http.StatusBadRequest},
		{"only spaces", "   ", "", http.StatusBadRequest},
		{"too long", strings.Repeat("x", maxNameRunes+1), "", http.StatusBadRequest},
		{"control character", "a\x07b", "", http.StatusBadRequest},
		{"invalid UTF-8", "a\xffb", "", http.StatusBadRequest},
		{"foreign origin", "mallory", "http://evil.example", http.StatusForbidden},
		{"null origin", "mallory", "null", http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, body := postToken(t, n, tc.nick, tc.origin)
			if res.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", res.StatusCode, tc.status, body)
			}
			if tc.status != http.StatusOK {
				return
			}
			if ct := res.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if cc := res.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control %q", cc)
			}
			var tr tokenResponse
			if err := json.Unmarshal(body, &tr); err != nil {
				t.Fatal(err)
			}
			if tr.Node != "n1" {
				t.Errorf("node %q", tr.Node)
			}
			// The token is what the WebSocket endpoint accepts: same key,
			// issuer and audience, the nickname as subject.
			p, err := n.tokens.auth.Authenticate(context.Background(), tr.Token)
			if err != nil {
				t.Fatalf("the minted token does not authenticate: %v", err)
			}
			if want := strings.TrimSpace(tc.nick); p.Subject != want {
				t.Errorf("subject %q, want %q", p.Subject, want)
			}
			if got := time.Until(p.ExpiresAt); got <= 88*time.Second || got > 90*time.Second {
				t.Errorf("expires in %v, want about 90s", got)
			}
			if p.ExpiresAt.Unix() != tr.ExpiresAt {
				t.Errorf("expiresAt %d, token says %d", tr.ExpiresAt, p.ExpiresAt.Unix())
			}
		})
	}

	t.Run("GET", func(t *testing.T) {
		res, err := http.Get(n.url + "/token?name=alice")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusMethodNotAllowed {
			t.Fatalf("status %d, want 405", res.StatusCode)
		}
	})
	t.Run("body too large", func(t *testing.T) {
		res, err := http.Post(n.url+"/token", "application/x-www-form-urlencoded", strings.NewReader("name=a&pad="+strings.Repeat("x", maxTokenForm)))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("status %d, want 413", res.StatusCode)
		}
	})
}

// A token of another key, an expired token and a token for another
// audience are all refused: the authenticator checks what it should.
func TestTokensRefuseForeignAndExpired(t *testing.T) {
	t.Parallel()
	now := time.Now()
	clock := func() time.Time { return now }
	a, err := newTokens(time.Minute, clock)
	if err != nil {
		t.Fatal(err)
	}
	b, err := newTokens(time.Minute, clock)
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := b.mint("alice")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.auth.Authenticate(context.Background(), tok); err == nil {
		t.Fatal("a token of another process's key was accepted")
	}
	tok, _, err = a.mint("alice")
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Minute)
	if _, err := a.auth.Authenticate(context.Background(), tok); err == nil {
		t.Fatal("an expired token was accepted")
	}
	if _, err := newTokens(time.Second, clock); err == nil {
		t.Fatal("a lifetime below the minimum was accepted")
	}
}
