package jwtauth_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/protows/protows/transport/jwtauth"
)

func sign(t *testing.T, m jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func good(now time.Time) jwt.MapClaims {
	return jwt.MapClaims{
		"sub": "alice", "iss": "https://auth.example", "aud": "chat",
		"exp": now.Add(time.Hour).Unix(), "room": "lobby",
	}
}

func with(c jwt.MapClaims, k string, v any) jwt.MapClaims {
	out := jwt.MapClaims{}
	for kk, vv := range c {
		out[kk] = vv
	}
	if v == nil {
		delete(out, k)
	} else {
		out[k] = v
	}
	return out
}

func TestRS256(t *testing.T) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, _ := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	auth, err := jwtauth.New(jwtauth.Config{Key: &priv.PublicKey, Methods: []string{"RS256"}, Issuer: "https://auth.example", Audience: "chat"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	otherKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	noneTok := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, good(now))
	for _, tc := range []struct {
		name  string
		token string
		ok    bool
	}{
		{"valid", sign(t, jwt.SigningMethodRS256, priv, good(now)), true},
		{"alg none", noneTok, false},
		{"alg none without signature dot", strings.TrimSuffix(noneTok, "."), false},
		{"HS256 signed with the RSA public key", sign(t, jwt.SigningMethodHS256, pubPEM, good(now)), false},
		{"HS256 signed with the DER public key", sign(t, jwt.SigningMethodHS256, pubDER, good(now)), false},
		{"RS384 not pinned", sign(t, jwt.SigningMethodRS384, priv, good(now)), false},
		{"other key", sign(t, jwt.SigningMethodRS256, otherKey, good(now)), false},
		{"wrong iss", sign(t, jwt.SigningMethodRS256, priv, with(good(now), "iss", "https://evil.example")), false},
		{"no iss", sign(t, jwt.SigningMethodRS256, priv, with(good(now), "iss", nil)), false},
		{"wrong aud", sign(t, jwt.SigningMethodRS256, priv, with(good(now), "aud", "other")), false},
		{"aud list with ours", sign(t, jwt.SigningMethodRS256, priv, with(good(now), "aud", []string{"x", "chat"})), true},
		{"expired", sign(t, jwt.SigningMethodRS256, priv, with(good(now), "exp", now.Add(-time.Minute).Unix())), false},
		{"no exp", sign(t, jwt.SigningMethodRS256, priv, with(good(now), "exp", nil)), false},
		{"nbf in the future", sign(t, jwt.SigningMethodRS256, priv, with(good(now), "nbf", now.Add(time.Hour).Unix())), false},
		{"no sub", sign(t, jwt.SigningMethodRS256, priv, with(good(now), "sub", nil)), false},
		{"thousands of dots", strings.Repeat(".", 5000), false},
		{"dots in a long header", "eyJ" + strings.Repeat(".", 7000) + "x", false},
		{"empty", "", false},
		{"garbage", "a.b.c", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			p, err := auth.Authenticate(context.Background(), tc.token)
			if time.Since(start) > time.Second {
				t.Fatalf("took %v", time.Since(start))
			}
			if (err == nil) != tc.ok {
				t.Fatalf("err %v, want ok=%v", err, tc.ok)
			}
			if tc.ok {
				if p.Subject != "alice" || p.Claims["room"] != "lobby" || p.ExpiresAt.Unix() != good(now)["exp"] {
					t.Fatalf("principal %+v", p)
				}
			}
		})
	}
}

func TestConfigRefusesUnsafe(t *testing.T) {
	priv, _ := rsa.GenerateKey(rand.Reader, 2048)
	for _, tc := range []struct {
		name string
		cfg  jwtauth.Config
	}{
		{"no methods", jwtauth.Config{Key: []byte("k")}},
		{"none", jwtauth.Config{Key: []byte("k"), Methods: []string{"none"}}},
		{"HS with RSA key", jwtauth.Config{Key: &priv.PublicKey, Methods: []string{"HS256"}}},
		{"RS with HMAC key", jwtauth.Config{Key: []byte("k"), Methods: []string{"RS256"}}},
		{"mixed families", jwtauth.Config{Key: &priv.PublicKey, Methods: []string{"RS256", "HS256"}}},
		{"no key", jwtauth.Config{Methods: []string{"HS256"}}},
		{"unknown alg", jwtauth.Config{Key: []byte("k"), Methods: []string{"XX1"}}},
	} {
		if _, err := jwtauth.New(tc.cfg); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
}

func TestHS256AndLength(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	auth, err := jwtauth.New(jwtauth.Config{Key: key, Methods: []string{"HS256"}, MaxTokenLength: 512})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if _, err := auth.Authenticate(context.Background(), sign(t, jwt.SigningMethodHS256, key, good(now))); err != nil {
		t.Fatal(err)
	}
	long := sign(t, jwt.SigningMethodHS256, key, with(good(now), "pad", strings.Repeat("x", 600)))
	if _, err := auth.Authenticate(context.Background(), long); err == nil || !strings.Contains(err.Error(), "longer") {
		t.Fatalf("long token: %v", err)
	}
}

func ExampleNew() {
	auth, err := jwtauth.New(jwtauth.Config{
		Key:      []byte("a secret of at least 32 bytes...."),
		Methods:  []string{"HS256"},
		Issuer:   "https://auth.example",
		Audience: "chat",
	})
	if err != nil {
		panic(err)
	}
	_, err = auth.Authenticate(context.Background(), "not.a.token")
	fmt.Println("refused:", err != nil)
	// Output: refused: true
}
