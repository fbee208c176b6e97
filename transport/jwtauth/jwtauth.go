// Package jwtauth is a transport.Authenticator for JSON Web Tokens, built
// on github.com/golang-jwt/jwt/v5.
//
// It accepts only the signing algorithms it is configured with (never
// "none"), and checks at construction that the key fits them, so a token
// signed with HS256 using an RSA public key as the HMAC secret (the
// "algorithm confusion" attack) cannot verify. It checks exp (required by
// default), nbf, iss and aud, and exposes every claim to handlers through
// transport.Principal.Claims.
//
//	auth, err := jwtauth.New(jwtauth.Config{
//		Key:      publicKey, // *rsa.PublicKey
//		Methods:  []string{"RS256"},
//		Issuer:   "https://auth.example.com",
//		Audience: "chat",
//	})
//	srv := transport.NewServer(r, transport.Config{Authenticator: auth})
package jwtauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/protows/protows/transport"
)

// DefaultMaxTokenLength bounds the size of a token before any parsing.
const DefaultMaxTokenLength = 8 << 10

// Config configures an Authenticator.
type Config struct {
	// Key verifies signatures: []byte for HS256/384/512, *rsa.PublicKey
	// for RS* and PS*, *ecdsa.PublicKey for ES*, ed25519.PublicKey for
	// EdDSA. Required.
	Key any
	// Methods are the accepted "alg" values, all of the Key's family.
	// Required; "none" is refused.
	Methods []string
	// Issuer, when not empty, must equal the "iss" claim.
	Issuer string
	// Audience, when not empty, must be among the "aud" claim's values.
	Audience string
	// Leeway tolerates clock skew in exp and nbf. Zero means none.
	Leeway time.Duration
	// AllowNoExpiry accepts tokens without "exp". False (the default)
	// refuses them: a token that never expires cannot be revoked by time.
	AllowNoExpiry bool
	// MaxTokenLength refuses longer tokens before parsing. Zero means
	// DefaultMaxTokenLength.
	MaxTokenLength int
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
}

// Authenticator validates JWTs. It is safe for concurrent use.
type Authenticator struct {
	cfg    Config
	parser *jwt.Parser
}

var _ transport.Authenticator = (*Authenticator)(nil)

// New returns an authenticator, or an error when the configuration is
// unsafe (no methods, "none", a key that does not fit the methods).
func New(cfg Config) (*Authenticator, error) {
	if len(cfg.Methods) == 0 {
		return nil, errors.New("jwtauth: Methods is required")
	}
	if cfg.Key == nil {
		return nil, errors.New("jwtauth: Key is required")
	}
	for _, m := range cfg.Methods {
		if err := keyFits(m, cfg.Key); err != nil {
			return nil, err
		}
	}
	if cfg.MaxTokenLength <= 0 {
		cfg.MaxTokenLength = DefaultMaxTokenLength
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(cfg.Methods),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithTimeFunc(cfg.Now),
	}
	if !cfg.AllowNoExpiry {
		opts = append(opts, jwt.WithExpirationRequired())
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	return &Authenticator{cfg: cfg, parser: jwt.NewParser(opts...)}, nil
}

// keyFits refuses algorithms that do not belong to the key's family.
func keyFits(alg string, key any) error {
	var ok bool
	switch {
	case alg == "none" || alg == "":
		return fmt.Errorf("jwtauth: algorithm %q is never accepted", alg)
	case strings.HasPrefix(alg, "HS"):
		_, ok = key.([]byte)
	case strings.HasPrefix(alg, "RS"), strings.HasPrefix(alg, "PS"):
		_, ok = key.(*rsa.PublicKey)
	case strings.HasPrefix(alg, "ES"):
		_, ok = key.(*ecdsa.PublicKey)
	case alg == "EdDSA":
		_, ok = key.(ed25519.PublicKey)
	default:
		return fmt.Errorf("jwtauth: unknown algorithm %q", alg)
	}
	if !ok {
		return fmt.Errorf("jwtauth: key of type %T does not fit algorithm %s", key, alg)
	}
	return nil
}

// Authenticate implements transport.Authenticator.
func (a *Authenticator) Authenticate(_ context.Context, token string) (*transport.Principal, error) {
	if len(token) > a.cfg.MaxTokenLength {
		return nil, fmt.Errorf("jwtauth: token longer than %d bytes", a.cfg.MaxTokenLength)
	}
	claims := jwt.MapClaims{}
	_, err := a.parser.ParseWithClaims(token, claims, func(*jwt.Token) (any, error) {
		return a.cfg.Key, nil
	})
	if err != nil {
		return nil, fmt.Errorf("jwtauth: %w", err)
	}
	sub, err := claims.GetSubject()
	if err != nil || sub == "" {
		return nil, errors.New("jwtauth: token has no subject")
	}
	p := &transport.Principal{Subject: sub, Claims: claims}
	if exp, err := claims.GetExpirationTime(); err == nil && exp != nil {
		p.ExpiresAt = exp.Time
	}
	return p, nil
}
