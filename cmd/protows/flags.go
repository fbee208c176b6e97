package main

import (
	"flag"
	"fmt"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"time"

	"github.com/protows/protows/codec"
)

// parseArgs parses the flags of fs wherever they are among args (the flag
// package stops at the first argument that is not a flag) and returns the
// other arguments, in order. "--" ends the flags: what follows it is
// positional.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// listFlag is a flag that may be given several times.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ", ") }

func (l *listFlag) Set(v string) error {
	*l = append(*l, v)
	return nil
}

// schemaOptions say where descriptors come from when not from the
// server's reflection service.
type schemaOptions struct {
	descriptorSets listFlag
	protos         listFlag
}

func (o *schemaOptions) define(fs *flag.FlagSet) {
	fs.Var(&o.descriptorSets, "descriptor-set", "read descriptors from this FileDescriptorSet (`FILE`, from buf build -o FILE.binpb or protoc --include_imports --descriptor_set_out) instead of server reflection; repeatable")
	fs.Var(&o.protos, "proto", "compile this .proto `FILE` with buf build (buf on PATH) for its descriptors instead of server reflection; repeatable")
}

// offline reports whether descriptors come from files.
func (o *schemaOptions) offline() bool {
	return len(o.descriptorSets) > 0 || len(o.protos) > 0
}

// connOptions configure the connection to a server.
type connOptions struct {
	token       string
	headers     listFlag
	codec       string
	origin      string
	dialTimeout time.Duration
	schema      schemaOptions
}

func (o *connOptions) define(fs *flag.FlagSet) {
	fs.StringVar(&o.token, "token", "", "bearer `TOKEN` sent in the handshake's Authorization header (default: $PROTOWS_TOKEN)")
	fs.Var(&o.headers, "header", "add a handshake header, `\"Name: value\"`; repeatable")
	fs.StringVar(&o.codec, "codec", "proto", "wire codec: proto (binary frames) or json (text frames)")
	fs.StringVar(&o.origin, "origin", "", "Origin header of the handshake, for servers that check it (default: none)")
	fs.DurationVar(&o.dialTimeout, "connect-timeout", 10*time.Second, "bound on connecting: TCP, TLS and the WebSocket handshake")
	o.schema.define(fs)
}

// check validates the options and returns the codec and the headers.
func (o *connOptions) check() (codec.Codec, http.Header, error) {
	var c codec.Codec
	switch o.codec {
	case "proto":
		c = codec.Proto()
	case "json":
		c = codec.JSON()
	default:
		return nil, nil, fmt.Errorf("--codec must be proto or json, not %q", o.codec)
	}
	h := make(http.Header)
	for _, kv := range o.headers {
		name, value, ok := strings.Cut(kv, ":")
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			return nil, nil, fmt.Errorf("--header %q: want \"Name: value\"", kv)
		}
		switch textproto.CanonicalMIMEHeaderKey(name) {
		case "Authorization":
			return nil, nil, fmt.Errorf("--header %q: use --token", kv)
		case "Origin":
			return nil, nil, fmt.Errorf("--header %q: use --origin", kv)
		}
		if strings.HasPrefix(strings.ToLower(name), "sec-websocket-") {
			return nil, nil, fmt.Errorf("--header %q: the WebSocket headers are the client's", kv)
		}
		h.Add(name, strings.TrimSpace(value))
	}
	if o.dialTimeout <= 0 {
		return nil, nil, fmt.Errorf("--connect-timeout must be positive")
	}
	return c, h, nil
}

// checkURL checks that s is a ws:// or wss:// URL.
func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("URL %q: %v", s, err)
	}
	if u.Scheme != "ws" && u.Scheme != "wss" || u.Host == "" {
		return fmt.Errorf("URL %q: want ws://HOST/PATH or wss://HOST/PATH", s)
	}
	return nil
}

// isURL tells a URL argument from a symbol, which never holds "://".
func isURL(s string) bool {
	return strings.Contains(s, "://")
}

// methodName turns "/pkg.Svc/Method", "pkg.Svc/Method" or
// "pkg.Svc.Method" into the full method name "/pkg.Svc/Method".
func methodName(s string) (string, bool) {
	s = strings.TrimPrefix(s, "/")
	if svc, m, ok := strings.Cut(s, "/"); ok {
		if svc == "" || m == "" || strings.Contains(m, "/") {
			return "", false
		}
		return "/" + svc + "/" + m, true
	}
	i := strings.LastIndexByte(s, '.')
	if i <= 0 || i == len(s)-1 {
		return "", false
	}
	return "/" + s[:i] + "/" + s[i+1:], true
}

// symbolName turns a method's full name into its descriptor name
// ("/pkg.Svc/Method" into "pkg.Svc.Method"); other symbols pass through,
// without a leading dot.
func symbolName(s string) string {
	if strings.HasPrefix(s, "/") || strings.Contains(s, "/") {
		s = strings.ReplaceAll(strings.TrimPrefix(s, "/"), "/", ".")
	}
	return strings.TrimPrefix(s, ".")
}
