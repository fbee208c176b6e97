package main

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
	"github.com/protows/protows/transport/jwtauth"
)

// Claims of the demo's tokens, checked by the authenticator.
const (
	tokenIssuer   = "protows-chat-demo"
	tokenAudience = "protows-chat"
	// maxNameRunes bounds a nickname, which every member list carries.
	maxNameRunes = 32
	// maxTokenForm bounds the body of POST /token.
	maxTokenForm = 1 << 10
	// minTokenTTL keeps the refresh (a fifth of the lifetime before
	// expiry) far enough from the expiry for a round trip.
	minTokenTTL = 2 * time.Second
)

// tokens mints the demo's short-lived HS256 tokens with a key made
// at start: a restart invalidates every token, and the page fetches a new
// one when it reconnects.
type tokens struct {
	key  []byte
	ttl  time.Duration
	now  func() time.Time
	auth *jwtauth.Authenticator
}

func newTokens(ttl time.Duration, now func() time.Time) (*tokens, error) {
	if ttl < minTokenTTL {
		return nil, fmt.Errorf("token lifetime %v is below %v", ttl, minTokenTTL)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("token key: %w", err)
	}
	auth, err := jwtauth.New(jwtauth.Config{
		Key:      key,
		Methods:  []string{"HS256"},
		Issuer:   tokenIssuer,
		Audience: tokenAudience,
		Now:      now,
	})
	if err != nil {
		return nil, err
	}
	return &tokens{key: key, ttl: ttl, now: now, auth: auth}, nil
}

// mint returns a token for name and its expiry.
func (t *tokens) mint(name string) (string, time.Time, error) {
	now := t.now()
	// JWT times are whole seconds: round the expiry down so that the page
	// never believes the token lives longer than it does.
	exp := now.Add(t.ttl).Truncate(time.Second)
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{
		Subject:   name,
		Issuer:    tokenIssuer,
		Audience:  jwt.ClaimStrings{tokenAudience},
		IssuedAt:  jwt.NewNumericDate(now),
		NotBefore: jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(exp),
	})
	s, err := tok.SignedString(t.key)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign token: %w", err)
	}
	return s, exp, nil
}

// checkName accepts 1 to 32 printable characters, trimmed of spaces.
func checkName(name string) (string, error) {
	name = strings.TrimSpace(name)
	if n := utf8.RuneCountInString(name); n == 0 || n > maxNameRunes || !utf8.ValidString(name) {
		return "", fmt.Errorf("name must be 1 to %d characters", maxNameRunes)
	}
	for _, r := range name {
		if !unicode.IsPrint(r) && r != ' ' {
			return "", fmt.Errorf("name has a character that does not print: %U", r)
		}
	}
	return name, nil
}

// tokenResponse is the JSON answer of POST /token.
type tokenResponse struct {
	// Token is the JWT: sub is the nickname.
	Token string `json:"token"`
	// ExpiresAt is the token's expiry, in Unix seconds.
	ExpiresAt int64 `json:"expiresAt"`
	// Node names the server node that minted it (the one the page talks
	// to), for the cluster demo.
	Node string `json:"node"`
}

// tokenHandler serves POST /token with a form field "name": anyone may
// pick any nickname (this is a demo, not a login), but only pages of the
// demo's own origins may ask, and the token lives briefly. Answers: 200
// with a tokenResponse, 400 for a bad name, 403 for a foreign Origin, 405
// for other methods (the mux), 413 for a body over 1 KiB.
func tokenHandler(t *tokens, origins *originList, node string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if o := r.Header.Get("Origin"); o != "" && !origins.allows(o) {
			http.Error(w, "origin not allowed", http.StatusForbidden)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxTokenForm)
		if err := r.ParseForm(); err != nil {
			status := http.StatusBadRequest
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				status = http.StatusRequestEntityTooLarge
			}
			http.Error(w, "bad form: "+err.Error(), status)
			return
		}
		name, err := checkName(r.PostForm.Get("name"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		tok, exp, err := t.mint(name)
		if err != nil {
			http.Error(w, "could not mint a token", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(tokenResponse{Token: tok, ExpiresAt: exp.Unix(), Node: node})
	}
}
