package transport_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/golang-jwt/jwt/v5"
	protows "github.com/protows/protows"
	"github.com/protows/protows/codec"
	testv1 "github.com/protows/protows/gen/go/protows/test/v1"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"github.com/protows/protows/internal/testservice"
	"github.com/protows/protows/transport"
	"github.com/protows/protows/transport/jwtauth"
)

func newIssuer(t *testing.T) *testservice.TokenIssuer {
	t.Helper()
	iss, err := testservice.NewTokenIssuer()
	if err != nil {
		t.Fatal(err)
	}
	return iss
}

func mint(t *testing.T, iss *testservice.TokenIssuer, sub string, ttl time.Duration) string {
	t.Helper()
	tok, _, err := iss.Mint(sub, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (cl *client) authenticate(id uint32, token string) *protowsv1.Envelope {
	cl.t.Helper()
	return cl.call(id, transport.AuthenticateMethod, &protowsv1.AuthenticateRequest{Token: token})
}

func (cl *client) whoami(id uint32) string {
	cl.t.Helper()
	e := cl.call(id, testservice.WhoamiMethod, &testv1.WhoamiRequest{})
	if e.GetKind() != protowsv1.Kind_KIND_REPLY {
		cl.t.Fatalf("whoami: %v", e)
	}
	var who testv1.WhoamiResponse
	cl.decode(e, &who)
	return who.GetSubject()
}

func TestAuthHeader(t *testing.T) {
	t.Parallel()
	iss := newIssuer(t)
	ts := startServer(t, transport.Config{Authenticator: iss.Authenticator()})
	for _, c := range codecs {
		t.Run(c.Name(), func(t *testing.T) {
			cl := dial(t, ts.url, c, http.Header{"Authorization": {"Bearer " + mint(t, iss, "alice", time.Hour)}})
			if sub := cl.whoami(1); sub != "alice" {
				t.Fatalf("subject %q", sub)
			}
			for _, bad := range []string{"Bearer nope", "Bearer " + mint(t, iss, "bob", -time.Minute), "Basic YTpi", "Bearer"} {
				_, resp, err := dialErr(ts.url, c, http.Header{"Authorization": {bad}})
				if err == nil || resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != `Bearer error="invalid_token"` {
					t.Fatalf("%q: %v %v", bad, err, resp)
				}
			}
		})
	}
}

func TestAuthInBand(t *testing.T) {
	t.Parallel()
	iss := newIssuer(t)
	for _, c := range codecs {
		t.Run(c.Name(), func(t *testing.T) {
			t.Parallel()
			ts := startServer(t, transport.Config{Authenticator: iss.Authenticator()})

			cl := dial(t, ts.url, c, nil)
			// Before authentication every other call is refused.
			wantError(t, cl.call(1, testservice.EchoMethod, &testv1.EchoRequest{}), protowsv1.Kind_KIND_ERROR, protows.CodeUnauthenticated)
			e := cl.authenticate(2, mint(t, iss, "alice", time.Hour))
			var res protowsv1.AuthenticateResponse
			cl.decode(e, &res)
			if e.GetKind() != protowsv1.Kind_KIND_REPLY || res.GetSubject() != "alice" || res.GetExpiresAt() < time.Now().Unix() {
				t.Fatalf("authenticate: %v %v", e, &res)
			}
			if sub := cl.whoami(3); sub != "alice" {
				t.Fatalf("subject %q", sub)
			}
			// Refresh with another subject: permission_denied, still alice.
			wantError(t, cl.authenticate(4, mint(t, iss, "mallory", time.Hour)), protowsv1.Kind_KIND_ERROR, protows.CodePermissionDenied)
			// An invalid refresh: unauthenticated, the connection stays.
			wantError(t, cl.authenticate(5, "garbage"), protowsv1.Kind_KIND_ERROR, protows.CodeUnauthenticated)
			if sub := cl.whoami(6); sub != "alice" {
				t.Fatalf("subject after refused refreshes %q", sub)
			}
			// A valid refresh.
			if e := cl.authenticate(7, mint(t, iss, "alice", 2*time.Hour)); e.GetKind() != protowsv1.Kind_KIND_REPLY {
				t.Fatal(e)
			}

			// A failed first authentication closes with 4501.
			bad := dial(t, ts.url, c, nil)
			wantError(t, bad.authenticate(1, mint(t, iss, "x", -time.Minute)), protowsv1.Kind_KIND_ERROR, protows.CodeUnauthenticated)
			bad.expectClose(protows.CloseUnauthenticated)
		})
	}
}

func TestAuthDeadline(t *testing.T) {
	t.Parallel()
	iss := newIssuer(t)
	for _, c := range codecs {
		t.Run(c.Name(), func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) { testAuthDeadline(t, iss, c) })
		})
	}
}

func testAuthDeadline(t *testing.T, iss *testservice.TokenIssuer, c codec.Codec) {
	const authTimeout = 200 * time.Millisecond
	ts := startMemServer(t, transport.Config{Authenticator: iss.Authenticator(), AuthTimeout: authTimeout})
	start := time.Now()
	cl := ts.dial(t, c, nil)
	e := cl.recv()
	if e.GetId() != 0 {
		t.Fatalf("want ERROR id 0, got %v", e)
	}
	wantError(t, e, protowsv1.Kind_KIND_ERROR, protows.CodeUnauthenticated)
	cl.expectClose(protows.CloseUnauthenticated)
	if d := time.Since(start); d != authTimeout {
		t.Errorf("closed after %v, want at the deadline, %v", d, authTimeout)
	}

	// Authenticated in time: no close at the deadline.
	ok := ts.dial(t, c, nil)
	ok.authenticate(1, mint(t, iss, "alice", time.Hour))
	time.Sleep(3 * authTimeout)
	if sub := ok.whoami(2); sub != "alice" {
		t.Fatal(sub)
	}
}

func TestTokenExpiry(t *testing.T) {
	t.Parallel()
	iss := newIssuer(t)
	for _, c := range codecs {
		t.Run(c.Name(), func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) { testTokenExpiry(t, iss, c) })
		})
	}
}

func testTokenExpiry(t *testing.T, iss *testservice.TokenIssuer, c codec.Codec) {
	ts := startMemServer(t, transport.Config{Authenticator: iss.Authenticator()})
	// JWT expiry has a resolution of one second; the bubble's clock
	// starts on a whole second.
	start := time.Now()
	cl := ts.dial(t, c, http.Header{"Authorization": {"Bearer " + mint(t, iss, "alice", time.Second)}})
	// Refreshed before expiry: survives the first token's expiry.
	refreshed := ts.dial(t, c, http.Header{"Authorization": {"Bearer " + mint(t, iss, "bob", time.Second)}})
	if e := refreshed.authenticate(1, mint(t, iss, "bob", time.Hour)); e.GetKind() != protowsv1.Kind_KIND_REPLY {
		t.Fatal(e)
	}
	cl.expectClose(protows.CloseTokenExpired)
	if d := time.Since(start); d != time.Second {
		t.Errorf("closed %v after the token was minted, want at its expiry, 1s", d)
	}
	if sub := refreshed.whoami(2); sub != "bob" {
		t.Fatal(sub)
	}
}

func TestAuthenticateWithoutAuthenticator(t *testing.T) {
	t.Parallel()
	ts := startServer(t, transport.Config{})
	cl := dial(t, ts.url, codec.JSON(), nil)
	wantError(t, cl.authenticate(1, "x"), protowsv1.Kind_KIND_ERROR, protows.CodeUnimplemented)
	if sub := cl.whoami(2); sub != "" {
		t.Fatal(sub)
	}
}

// TestBadTokens presents each bad JWT to an RS256 server, in the handshake
// (HTTP 401) and in band (ERROR unauthenticated, close 4501); the server
// keeps serving a good token afterwards.
func TestBadTokens(t *testing.T) {
	t.Parallel()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, _ := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	auth, err := jwtauth.New(jwtauth.Config{Key: &priv.PublicKey, Methods: []string{"RS256"}, Issuer: "iss", Audience: "aud"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	claims := func(mod func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims{"sub": "alice", "iss": "iss", "aud": "aud", "exp": now.Add(time.Hour).Unix()}
		if mod != nil {
			mod(c)
		}
		return c
	}
	sign := func(m jwt.SigningMethod, key any, c jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(m, c).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	good := sign(jwt.SigningMethodRS256, priv, claims(nil))
	bad := map[string]string{
		"garbage":                   "not-a-jwt",
		"alg none":                  sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims(nil)),
		"HS256 with RSA public key": sign(jwt.SigningMethodHS256, pubPEM, claims(nil)),
		"expired":                   sign(jwt.SigningMethodRS256, priv, claims(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Hour).Unix() })),
		"wrong iss":                 sign(jwt.SigningMethodRS256, priv, claims(func(c jwt.MapClaims) { c["iss"] = "evil" })),
		"wrong aud":                 sign(jwt.SigningMethodRS256, priv, claims(func(c jwt.MapClaims) { c["aud"] = "evil" })),
		"thousands of dots":         strings.Repeat(".", 6000),
	}
	for _, c := range codecs {
		t.Run(c.Name(), func(t *testing.T) {
			t.Parallel()
			ts := startServer(t, transport.Config{Authenticator: auth})
			for name, tok := range bad {
				_, resp, err := dialErr(ts.url, c, http.Header{"Authorization": {"Bearer " + tok}})
				if err == nil || resp.StatusCode != http.StatusUnauthorized {
					t.Fatalf("%s in the header: %v", name, resp)
				}
				cl := dial(t, ts.url, c, nil)
				wantError(t, cl.authenticate(1, tok), protowsv1.Kind_KIND_ERROR, protows.CodeUnauthenticated)
				cl.expectClose(protows.CloseUnauthenticated)
			}
			cl := dial(t, ts.url, c, http.Header{"Authorization": {"Bearer " + good}})
			if sub := cl.whoami(1); sub != "alice" {
				t.Fatalf("good token: %q", sub)
			}
		})
	}
}
