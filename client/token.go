package client

import (
	"context"
	"fmt"
	"time"

	"github.com/protows/protows"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
)

// authenticateMethod is the built-in method that presents a token in band.
const authenticateMethod = "/protows.v1.AuthService/Authenticate"

// maxRefreshLead caps how long before expiry the client refreshes a token.
const maxRefreshLead = time.Minute

// tokenState is the current token. Only Dial and then the supervising
// goroutine touch it, one after the other, so it needs no lock.
type tokenState struct {
	value    string
	expiry   time.Time // zero: does not expire
	obtained time.Time
}

// refreshAt returns when to ask for the next token: a fifth of the token's
// lifetime before it expires, at most a minute before. The zero time means
// never.
func (t tokenState) refreshAt() time.Time {
	if t.expiry.IsZero() {
		return time.Time{}
	}
	lead := min(t.expiry.Sub(t.obtained)/5, maxRefreshLead)
	return t.expiry.Add(-lead)
}

// stale reports whether the token must be replaced before the next dial.
func (t tokenState) stale(now time.Time) bool {
	if t.value == "" {
		return true
	}
	at := t.refreshAt()
	return !at.IsZero() && !now.Before(at)
}

// fetchToken asks the token source for a new token.
func (c *Client) fetchToken(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.dialTimeout)
	defer cancel()
	value, expiry, err := c.cfg.tokens(ctx)
	if err != nil {
		return protows.NewError(protows.CodeUnauthenticated, fmt.Errorf("client: token source: %w", err))
	}
	c.token = tokenState{value: value, expiry: expiry, obtained: time.Now()}
	return nil
}

// refreshInBand gets a new token and presents it on cn with
// AuthService/Authenticate, so that the connection outlives the old token.
// On failure the server keeps the old credential and, when it expires,
// closes with 4009; the client then reconnects with a fresh token.
func (c *Client) refreshInBand(cn *conn) {
	log := c.cfg.logger
	if err := c.fetchToken(c.ctx); err != nil {
		log.Warn("protows client: token refresh", "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.dialTimeout)
	defer cancel()
	payload, err := c.cfg.codec.AppendPayload(nil, &protowsv1.AuthenticateRequest{Token: c.token.value})
	if err != nil {
		log.Warn("protows client: in-band authentication", "err", err)
		return
	}
	env, err := cn.unary(ctx, authenticateMethod, payload, nil)
	if err != nil {
		log.Warn("protows client: in-band authentication", "err", err)
		return
	}
	var res protowsv1.AuthenticateResponse
	if err := c.cfg.codec.UnmarshalPayload(env.GetPayload(), &res); err != nil {
		log.Warn("protows client: in-band authentication reply", "err", err)
		return
	}
	log.Debug("protows client: token refreshed", "subject", res.GetSubject(), "expires_at", res.GetExpiresAt())
}
