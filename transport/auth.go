package transport

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"
)

// Authenticator validates a bearer token. The transport calls it for an
// Authorization header during the handshake and for in-band Authenticate
// calls (on the connection's read loop, so later requests of the same
// connection wait for it). It must be safe for concurrent use.
type Authenticator interface {
	// Authenticate returns the principal the token names, or an error
	// when the token is not valid. The error's text is logged, never sent
	// to the client.
	Authenticate(ctx context.Context, token string) (*Principal, error)
}

// AuthenticatorFunc adapts a function to Authenticator.
type AuthenticatorFunc func(ctx context.Context, token string) (*Principal, error)

// Authenticate implements Authenticator.
func (f AuthenticatorFunc) Authenticate(ctx context.Context, token string) (*Principal, error) {
	return f(ctx, token)
}

// Principal is an authenticated caller. It is immutable once returned by
// an Authenticator.
type Principal struct {
	// Subject names the caller (the JWT "sub" claim). A refresh must keep
	// it.
	Subject string
	// ExpiresAt is when the credential stops being valid; the zero time
	// means never. The connection closes with 4009 at that time unless it
	// was refreshed.
	ExpiresAt time.Time
	// Claims are the token's claims, for handlers to read (the JWT
	// authenticator stores its map of claims here).
	Claims map[string]any
}

// errNoBearer is returned by bearerToken for a malformed Authorization
// header.
var errNoBearer = errors.New("transport: Authorization header is not a bearer token")

// bearerToken returns the token of an "Authorization: Bearer" header, ""
// when there is no such header.
func bearerToken(h http.Header) (string, error) {
	v := h.Get("Authorization")
	if v == "" {
		return "", nil
	}
	scheme, tok, ok := strings.Cut(v, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return "", errNoBearer
	}
	return strings.TrimSpace(tok), nil
}
