package codec

import (
	"errors"
	"fmt"
	"slices"
)

// ErrNoCommonSubprotocol is returned by Negotiate when a client offers
// subprotocols but none that the registry knows.
var ErrNoCommonSubprotocol = errors.New("codec: none of the offered subprotocols is supported")

// Registry holds the codecs a server or client accepts, keyed by subprotocol,
// and the default used when a client offers none. A Registry is immutable
// once built and safe for concurrent use.
type Registry struct {
	codecs []Codec // in order of preference; codecs[0] is the default
}

// NewRegistry returns a registry of the given codecs. The first is the
// default. It returns an error when no codec is given or two share a name.
func NewRegistry(def Codec, more ...Codec) (*Registry, error) {
	if def == nil {
		return nil, errors.New("codec: a registry needs a default codec")
	}
	codecs := append([]Codec{def}, more...)
	for i, c := range codecs {
		if c == nil {
			return nil, errors.New("codec: nil codec")
		}
		for _, prev := range codecs[:i] {
			if prev.Name() == c.Name() {
				return nil, fmt.Errorf("codec: subprotocol %q registered twice", c.Name())
			}
		}
	}
	return &Registry{codecs: codecs}, nil
}

// DefaultRegistry returns a new registry of Proto (the default) and JSON.
func DefaultRegistry() *Registry {
	return &Registry{codecs: []Codec{Proto(), JSON()}}
}

// Default returns the codec used when a client offers no subprotocol.
func (r *Registry) Default() Codec {
	return r.codecs[0]
}

// Lookup returns the codec for a subprotocol.
func (r *Registry) Lookup(subprotocol string) (Codec, bool) {
	for _, c := range r.codecs {
		if c.Name() == subprotocol {
			return c, true
		}
	}
	return nil, false
}

// Names returns the supported subprotocols, the default first.
func (r *Registry) Names() []string {
	names := make([]string, len(r.codecs))
	for i, c := range r.codecs {
		names[i] = c.Name()
	}
	return names
}

// Negotiate picks the codec for a handshake from the subprotocols a client
// offered, in the client's order of preference (RFC 6455, section 4.2.2). No
// offer at all selects the default; offers that are all unknown are an error
// wrapping ErrNoCommonSubprotocol, which a server answers with HTTP 400.
func (r *Registry) Negotiate(offered []string) (Codec, error) {
	if len(offered) == 0 {
		return r.Default(), nil
	}
	for _, name := range offered {
		if c, ok := r.Lookup(name); ok {
			return c, nil
		}
	}
	return nil, fmt.Errorf("%w: offered %q, supported %q", ErrNoCommonSubprotocol, offered, slices.Clone(r.Names()))
}
