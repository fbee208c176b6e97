package transport

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	protows "github.com/protows/protows"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
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

// authMethodID is the method id of AuthenticateMethod.
var authMethodID = protows.MethodID(AuthenticateMethod)

// authTimers are a connection's authentication timers, under Conn.mu.
type authTimers struct {
	gen      int         // invalidates expiry timers of replaced credentials
	deadline *time.Timer // Config.AuthTimeout for the first Authenticate
	expiry   *time.Timer // the principal's ExpiresAt
}

// stop stops the timers.
func (a *authTimers) stop() {
	if a.deadline != nil {
		a.deadline.Stop()
	}
	if a.expiry != nil {
		a.expiry.Stop()
	}
}

// authenticate serves the built-in AuthService/Authenticate on the read
// loop, so that requests after it in the same frame see its outcome.
func (c *Conn) authenticate(id uint32, payload []byte) bool {
	cfg := &c.srv.cfg
	if cfg.Authenticator == nil {
		c.sendError(id, protows.CodeUnimplemented, "this server does not authenticate")
		return true
	}
	current := c.principal.Load()
	// A failure before the first success ends the connection (4501); a
	// failed refresh keeps the current credential.
	fail := func(msg string) bool {
		c.sendError(id, protows.CodeUnauthenticated, msg)
		if current == nil {
			c.Close(protows.CloseUnauthenticated, "authentication failed")
			return false
		}
		return true
	}
	var req protowsv1.AuthenticateRequest
	if err := c.codec.UnmarshalPayload(payload, &req); err != nil {
		return fail("undecodable AuthenticateRequest")
	}
	// The authenticator may do I/O: let the writer run meanwhile.
	c.cork(false)
	ctx, cancel := context.WithTimeout(&c.ctx, cfg.AuthTimeout)
	p, err := cfg.Authenticator.Authenticate(ctx, req.GetToken())
	cancel()
	c.cork(true)
	if err != nil || p == nil {
		c.logger().Info("protows: authentication failed", "err", err)
		return fail("invalid token")
	}
	if current != nil && p.Subject != current.Subject {
		c.sendError(id, protows.CodePermissionDenied, "a refreshed token must have the same subject")
		return true
	}
	if cfg.Authorize != nil {
		c.cork(false)
		ctx, cancel := context.WithTimeout(&c.ctx, cfg.AuthTimeout)
		err := cfg.Authorize(ctx, c, p)
		cancel()
		c.cork(true)
		if err != nil {
			c.logger().Info("protows: principal not authorized", "subject", p.Subject, "err", err)
			c.sendError(id, protows.CodePermissionDenied, "forbidden")
			c.Close(protows.CloseForbidden, "forbidden")
			return false
		}
	}
	c.setPrincipal(p)
	var exp int64
	if !p.ExpiresAt.IsZero() {
		exp = p.ExpiresAt.Unix()
	}
	res, err := c.codec.AppendPayload(nil, &protowsv1.AuthenticateResponse{Subject: p.Subject, ExpiresAt: exp})
	if err != nil {
		c.sendError(id, protows.CodeInternal, "encode reply")
		return true
	}
	c.send(&protowsv1.Envelope{Id: id, Kind: protowsv1.Kind_KIND_REPLY, Payload: res})
	return true
}

// authorizeHandshake applies Config.Authorize to the principal of a
// handshake token; a refusal closes with ERROR permission_denied and 4503.
func (c *Conn) authorizeHandshake(p *Principal) {
	cfg := &c.srv.cfg
	if cfg.Authorize == nil || p == nil {
		return
	}
	ctx, cancel := context.WithTimeout(&c.ctx, cfg.HandshakeTimeout)
	err := cfg.Authorize(ctx, c, p)
	cancel()
	if err != nil {
		c.logger().Info("protows: principal not authorized", "subject", p.Subject, "err", err)
		c.closeAfterError(protows.CodePermissionDenied, "forbidden", protows.CloseForbidden, "forbidden")
	}
}

// setPrincipal installs a credential and arms its expiry.
func (c *Conn) setPrincipal(p *Principal) {
	c.principal.Store(p)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.auth.stop()
	c.auth.deadline, c.auth.expiry = nil, nil
	c.auth.gen++
	if p.ExpiresAt.IsZero() || c.state.closeDecided() {
		return
	}
	gen := c.auth.gen
	c.auth.expiry = time.AfterFunc(time.Until(p.ExpiresAt), func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.auth.gen == gen {
			c.closeLocked(protows.CloseTokenExpired, "token expired", false)
		}
	})
}

// armAuthDeadline starts the in-band authentication deadline.
func (c *Conn) armAuthDeadline() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.auth.deadline = time.AfterFunc(c.srv.cfg.AuthTimeout, func() {
		if c.principal.Load() != nil {
			return
		}
		c.closeAfterError(protows.CodeUnauthenticated, "no authentication within "+c.srv.cfg.AuthTimeout.String(), protows.CloseUnauthenticated, "authentication deadline passed")
	})
}
