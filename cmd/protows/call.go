package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	protows "github.com/protows/protows"
	"github.com/protows/protows/client"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
)

// dial connects to url as o says.
func dial(ctx context.Context, e *env, url string, o *connOptions) (*client.Client, error) {
	c, h, err := o.check()
	if err != nil {
		return nil, err
	}
	opts := []client.Option{client.WithCodec(c), client.WithDialTimeout(o.dialTimeout)}
	if len(h) > 0 {
		opts = append(opts, client.WithHeader(h))
	}
	if o.origin != "" {
		opts = append(opts, client.WithOrigin(o.origin))
	}
	token := o.token
	if token == "" {
		token = e.getenv("PROTOWS_TOKEN")
	}
	if token != "" {
		opts = append(opts, client.WithTokenSource(func(context.Context) (string, time.Time, error) {
			return token, time.Time{}, nil
		}))
	}
	return client.Dial(ctx, url, opts...)
}

// connect checks the options, dials and finds the schema: the files
// given, or the server's reflection.
func connect(ctx context.Context, e *env, url string, o *connOptions) (*client.Client, schema, error) {
	if _, _, err := o.check(); err != nil {
		return nil, nil, err
	}
	var files *fileSchema
	if o.schema.offline() {
		var err error
		if files, err = loadFiles(ctx, e, &o.schema); err != nil {
			return nil, nil, err
		}
	}
	c, err := dial(ctx, e, url, o)
	if err != nil {
		return nil, nil, err
	}
	if files != nil {
		return c, files, nil
	}
	return c, newReflectionSchema(c), nil
}

// callOptions are the flags of call and listen.
type callOptions struct {
	conn     connOptions
	metadata listFlag
}

func (o *callOptions) define(fs *flag.FlagSet) {
	o.conn.define(fs)
	fs.Var(&o.metadata, "metadata", "request metadata entry `key=value` (docs/PROTOCOL.md, section 3.4); repeatable")
}

func (o *callOptions) callOpts() ([]client.CallOption, error) {
	if len(o.metadata) == 0 {
		return nil, nil
	}
	md := make(map[string]string)
	for _, kv := range o.metadata {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--metadata %q: want key=value", kv)
		}
		md[k] = v
	}
	return []client.CallOption{client.WithMetadata(md)}, nil
}

// callArgs checks the arguments of call and listen: URL METHOD [REQUEST].
func callArgs(c *command, e *env, o *callOptions, args []string) (url, method, request string, status int) {
	if len(args) < 2 || len(args) > 3 {
		return "", "", "", e.usageError(c, "want URL METHOD [REQUEST], got %d arguments", len(args))
	}
	if err := checkURL(args[0]); err != nil {
		return "", "", "", e.usageError(c, "%v", err)
	}
	method, ok := methodName(args[1])
	if !ok {
		return "", "", "", e.usageError(c, "%q is not a method name: want /package.Service/Method", args[1])
	}
	request = "{}"
	if len(args) == 3 {
		request = args[2]
	}
	if _, _, err := o.conn.check(); err != nil {
		return "", "", "", e.usageError(c, "%v", err)
	}
	if _, err := o.callOpts(); err != nil {
		return "", "", "", e.usageError(c, "%v", err)
	}
	return args[0], method, request, -1
}

// readRequest returns the request text: the argument, "-" for standard
// input, "@FILE" for a file.
func readRequest(e *env, arg string) ([]byte, error) {
	switch {
	case arg == "-":
		return io.ReadAll(e.stdin)
	case strings.HasPrefix(arg, "@"):
		return os.ReadFile(arg[1:])
	}
	return []byte(arg), nil
}

// newRequest decodes the JSON request of md.
func newRequest(e *env, s schema, md protoreflect.MethodDescriptor, arg string) (proto.Message, error) {
	text, err := readRequest(e, arg)
	if err != nil {
		return nil, fmt.Errorf("request: %w", err)
	}
	req := dynamicpb.NewMessage(md.Input())
	if err := (protojson.UnmarshalOptions{Resolver: s.types()}).Unmarshal(text, req); err != nil {
		return nil, fmt.Errorf("request is not a valid %s in JSON: %w", md.Input().FullName(), err)
	}
	return req, nil
}

// responseOf makes the zero dynamic messages the client decodes into
// messages of md's output type.
func responseOf(md protoreflect.MethodDescriptor) client.CallOption {
	out := md.Output()
	return client.WithResponseInitializer(func(m proto.Message) error {
		*m.(*dynamicpb.Message) = *dynamicpb.NewMessage(out)
		return nil
	})
}

// marshalJSON writes m as compact protojson. protojson adds random white
// space on purpose; compacting makes the output stable.
func marshalJSON(s schema, m proto.Message) ([]byte, error) {
	b, err := protojson.MarshalOptions{Resolver: s.types()}.Marshal(m)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

func callCommand() *command {
	c := &command{
		name:    "call",
		args:    "URL METHOD [REQUEST]",
		summary: "call a unary method and print its reply as JSON",
		help: `
Calls the unary METHOD (/package.Service/Method) of the server at URL
(ws:// or wss://) with REQUEST, the request message in JSON (protojson:
lowerCamelCase field names, 64-bit integers as strings); "-" reads it from
standard input, "@FILE" from a file; the default is {}. Prints the reply
as indented JSON on standard output.

The request and reply types come from the server's reflection service, or
from --descriptor-set or --proto. On failure it prints "code: message" on
standard error and exits with 64 + the code (69 not_found, 78 unavailable, ...).

example:
  protows call --token "$TOKEN" ws://127.0.0.1:8080/ws /examples.chat.v1.ChatService/Send '{"room":"lobby","text":"hi"}'`,
	}
	c.flags = func(fs *flag.FlagSet) runFunc {
		var o callOptions
		o.define(fs)
		timeout := fs.Duration("timeout", 30*time.Second, "deadline of the whole command, connection included (0: none)")
		return func(ctx context.Context, e *env, args []string) int {
			url, method, request, status := callArgs(c, e, &o, args)
			if status >= 0 {
				return status
			}
			if *timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, *timeout)
				defer cancel()
			}
			cl, s, err := connect(ctx, e, url, &o.conn)
			if err != nil {
				return e.fail(err)
			}
			defer cl.Close()
			md, err := findMethod(ctx, s, method)
			if err != nil {
				return e.fail(err)
			}
			if md.IsStreamingServer() {
				return e.fail(fmt.Errorf("%s is a server-streaming method: use protows listen", method))
			}
			req, err := newRequest(e, s, md, request)
			if err != nil {
				return e.fail(err)
			}
			opts, _ := o.callOpts()
			res, err := client.CallUnary[dynamicpb.Message](ctx, cl, method, req, append(opts, responseOf(md))...)
			if err != nil {
				return e.fail(err)
			}
			b, err := marshalJSON(s, res)
			if err != nil {
				return e.fail(fmt.Errorf("reply: %w", err))
			}
			var out bytes.Buffer
			if err := json.Indent(&out, b, "", "  "); err != nil {
				return e.fail(fmt.Errorf("reply: %w", err))
			}
			out.WriteByte('\n')
			if _, err := e.stdout.Write(out.Bytes()); err != nil {
				return e.fail(err)
			}
			return exitOK
		}
	}
	return c
}

func listenCommand() *command {
	c := &command{
		name:    "listen",
		args:    "URL METHOD [REQUEST]",
		summary: "open a server stream and print its messages as JSON lines",
		help: `
Opens the server-streaming METHOD (/package.Service/Method) of the server at
URL with REQUEST (JSON, "-" for standard input, "@FILE"; default {}) and
prints each message on its own line as

  {"seq":N,"message":{...}}

where seq is the room sequence number (0 when the message is not a room
broadcast, docs/PROTOCOL.md section 3.5), and "gap":true comes before
"message" when messages may be missing before this one (the stream was
re-opened after a reconnection, or seq skipped).

It listens until the server ends the stream (exit 0, or 64 + the code of
its error), until --count messages or --duration passed (exit 0), or until
Ctrl-C (exit 0: the stream is cancelled).

example:
  protows listen --token "$TOKEN" ws://127.0.0.1:8080/ws /examples.chat.v1.ChatService/Watch '{"room":"lobby"}'`,
	}
	c.flags = func(fs *flag.FlagSet) runFunc {
		var o callOptions
		o.define(fs)
		count := fs.Int("count", 0, "stop after this many messages (0: no limit)")
		duration := fs.Duration("duration", 0, "stop listening after this long (0: no limit)")
		return func(ctx context.Context, e *env, args []string) int {
			url, method, request, status := callArgs(c, e, &o, args)
			if status >= 0 {
				return status
			}
			if *count < 0 || *duration < 0 {
				return e.usageError(c, "--count and --duration must not be negative")
			}
			// stop ends the stream the way the user asked to (Ctrl-C,
			// --duration): not a failure.
			stop := ctx
			if *duration > 0 {
				var cancel context.CancelFunc
				stop, cancel = context.WithTimeout(ctx, *duration)
				defer cancel()
			}
			cl, s, err := connect(stop, e, url, &o.conn)
			if err != nil {
				return e.failUnlessStopped(stop, err)
			}
			defer cl.Close()
			md, err := findMethod(stop, s, method)
			if err != nil {
				return e.failUnlessStopped(stop, err)
			}
			if !md.IsStreamingServer() {
				return e.fail(fmt.Errorf("%s is a unary method: use protows call", method))
			}
			req, err := newRequest(e, s, md, request)
			if err != nil {
				return e.fail(err)
			}
			opts, _ := o.callOpts()
			stream, err := client.CallServerStream[dynamicpb.Message](stop, cl, method, req, append(opts, responseOf(md))...)
			if err != nil {
				return e.failUnlessStopped(stop, err)
			}
			defer stream.Close()
			n := 0
			for stream.Receive() {
				b, err := marshalJSON(s, stream.Msg())
				if err != nil {
					return e.fail(fmt.Errorf("message: %w", err))
				}
				line := fmt.Appendf(nil, `{"seq":%d,`, stream.Seq())
				if stream.Gap() {
					line = append(line, `"gap":true,`...)
				}
				line = append(append(append(line, `"message":`...), b...), "}\n"...)
				if _, err := e.stdout.Write(line); err != nil {
					return e.fail(err)
				}
				if n++; *count > 0 && n >= *count {
					return exitOK
				}
			}
			if err := stream.Err(); err != nil {
				return e.failUnlessStopped(stop, err)
			}
			return exitOK
		}
	}
	return c
}

// failUnlessStopped is fail, except when ctx ended: the user stopped the
// command (Ctrl-C, --duration), which is a success.
func (e *env) failUnlessStopped(ctx context.Context, err error) int {
	if ctx.Err() != nil && (protows.CodeOf(err) == protows.CodeCanceled || protows.CodeOf(err) == protows.CodeDeadlineExceeded) {
		return exitOK
	}
	return e.fail(err)
}
