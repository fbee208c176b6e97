package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	protows "github.com/protows/protows"
	"github.com/protows/protows/codec"
	protowsv1 "github.com/protows/protows/gen/go/protows/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
)

func decodeCommand() *command {
	c := &command{
		name:    "decode",
		args:    "[FRAME]",
		summary: "decode a captured frame into readable JSON envelopes",
		help: `
Decodes one WebSocket message of the protows protocol, such as a frame
copied from the browser's devtools, and prints each of its envelopes on its
own line in the JSON codec's form (docs/PROTOCOL.md, section 5). FRAME is
the frame as hex (spaces allowed), base64, or the JSON text of a
protows.v1.json frame; without FRAME, or with "-", it is read from standard
input (--input raw reads binary).

Payloads of the Protobuf codec are printed as JSON when their type is
known: a REQUEST's from its method, given the descriptors (--descriptor-set
or --proto); a REPLY's or STREAM_MESSAGE's from --method. Otherwise they
are printed as "payloadBase64".

examples:
  protows decode CiAIChABHd00VjkqFQoTY2hhdC52MS5DaGF0U2VydmljZQ==
  protows decode --descriptor-set set.binpb 0a20080a10011ddd3456392a150a13636861742e76312e4368617453657276696365
  protows decode --descriptor-set chat.binpb --method /examples.chat.v1.ChatService/Watch -  < frame.txt`,
	}
	c.flags = func(fs *flag.FlagSet) runFunc {
		var so schemaOptions
		so.define(fs)
		input := fs.String("input", "auto", "how FRAME is written: auto, hex, base64, text (a JSON frame) or raw (binary, from standard input)")
		codecName := fs.String("codec", "auto", "codec of the frame: auto (JSON when the frame starts with { or [), proto or json")
		method := fs.String("method", "", "the `METHOD` whose replies and stream messages the frame carries, to decode their payloads")
		return func(ctx context.Context, e *env, args []string) int {
			if len(args) > 1 {
				return e.usageError(c, "want at most one FRAME, got %d arguments", len(args))
			}
			switch *input {
			case "auto", "hex", "base64", "text", "raw":
			default:
				return e.usageError(c, "--input must be auto, hex, base64, text or raw, not %q", *input)
			}
			switch *codecName {
			case "auto", "proto", "json":
			default:
				return e.usageError(c, "--codec must be auto, proto or json, not %q", *codecName)
			}
			if *input == "raw" && len(args) == 1 && args[0] != "-" {
				return e.usageError(c, "--input raw reads standard input: give no FRAME")
			}
			var full string
			if *method != "" {
				var ok bool
				if full, ok = methodName(*method); !ok {
					return e.usageError(c, "--method %q is not a method name: want /package.Service/Method", *method)
				}
				if !so.offline() {
					return e.usageError(c, "--method needs the descriptors: --descriptor-set or --proto")
				}
			}
			var text []byte
			var err error
			if len(args) == 0 || args[0] == "-" {
				text, err = io.ReadAll(e.stdin)
			} else {
				text = []byte(args[0])
			}
			if err != nil {
				return e.fail(err)
			}
			frame, err := frameBytes(text, *input)
			if err != nil {
				return e.fail(err)
			}
			var s *fileSchema
			if so.offline() {
				if s, err = loadFiles(ctx, e, &so); err != nil {
					return e.fail(err)
				}
			}
			d := &decoder{schema: s}
			if full != "" {
				if d.method, err = findMethod(ctx, s, full); err != nil {
					return e.fail(err)
				}
			}
			out, err := d.decode(frame, *codecName)
			if err != nil {
				return e.fail(err)
			}
			if _, err := e.stdout.Write(out); err != nil {
				return e.fail(err)
			}
			return exitOK
		}
	}
	return c
}

// frameBytes returns the frame that text holds, written as input says.
func frameBytes(text []byte, input string) ([]byte, error) {
	if input == "raw" {
		return text, nil
	}
	t := bytes.TrimSpace(text)
	if len(t) == 0 {
		return nil, errors.New("no frame given")
	}
	if input == "auto" {
		switch {
		case t[0] == '{' || t[0] == '[':
			input = "text"
		case isHex(t):
			input = "hex"
		default:
			input = "base64"
		}
	}
	switch input {
	case "text":
		return t, nil
	case "hex":
		b, err := hex.DecodeString(string(stripSpace(t)))
		if err != nil {
			return nil, fmt.Errorf("frame is not hex: %w", err)
		}
		return b, nil
	}
	compact := string(stripSpace(t))
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(compact); err == nil {
			return b, nil
		}
	}
	if input == "base64" {
		return nil, errors.New("frame is not base64")
	}
	return nil, errors.New("frame is neither JSON text, hex nor base64")
}

func stripSpace(b []byte) []byte {
	return bytes.Join(bytes.Fields(b), nil)
}

// isHex reports whether t is hex digits, maybe split by white space, of
// an even count. A base64 text can be that too; --input tells them apart
// when it matters.
func isHex(t []byte) bool {
	t = stripSpace(t)
	if len(t)%2 != 0 {
		return false
	}
	for _, c := range t {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// decoder turns frames into JSON envelopes.
type decoder struct {
	schema *fileSchema                   // nil: no descriptors
	method protoreflect.MethodDescriptor // --method, or nil
}

// decode decodes frame with the named codec (auto, proto or json) and
// returns one JSON line per envelope.
func (d *decoder) decode(frame []byte, codecName string) ([]byte, error) {
	c := codec.Proto()
	if codecName == "json" || codecName == "auto" && len(frame) > 0 && (frame[0] == '{' || frame[0] == '[') {
		c = codec.JSON()
	}
	envs, err := c.DecodeFrame(frame)
	if err != nil {
		return nil, fmt.Errorf("the frame does not decode as %s: %w", c.Name(), err)
	}
	var out []byte
	for _, env := range envs {
		line, err := d.envelope(c, env)
		if err != nil {
			return nil, err
		}
		out = append(append(out, line...), '\n')
	}
	return out, nil
}

// envelope writes env as a JSON object, keys in the JSON codec's order.
func (d *decoder) envelope(c codec.Codec, env *protowsv1.Envelope) ([]byte, error) {
	var b bytes.Buffer
	key := func(k string, v any) {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%q:", k)
		// As the JSON codec writes strings: <, > and & as they are.
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(v)       // strings, numbers, bytes and maps of strings
		b.Truncate(b.Len() - 1) // Encode's newline
	}
	if env.GetId() != 0 {
		key("id", env.GetId())
	}
	key("kind", kindName(env.GetKind()))
	method := env.GetMethod()
	md := d.lookup(env)
	if method == "" && md != nil {
		method = "/" + string(md.Parent().FullName()) + "/" + string(md.Name())
	}
	if method != "" {
		key("method", method)
	}
	if env.GetMethodId() != 0 {
		key("methodId", env.GetMethodId())
	}
	if p := env.GetPayload(); len(p) > 0 {
		var typ protoreflect.MessageDescriptor
		switch {
		case env.GetKind() == protowsv1.Kind_KIND_REQUEST && md != nil:
			typ = md.Input()
		case (env.GetKind() == protowsv1.Kind_KIND_REPLY || env.GetKind() == protowsv1.Kind_KIND_STREAM_MESSAGE) && d.method != nil:
			typ = d.method.Output()
		}
		switch {
		case !c.Binary():
			// The JSON codec's payload is JSON already.
			if b.Len() > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`"payload":`)
			b.Write(p)
		case typ != nil:
			m := dynamicpb.NewMessage(typ)
			if err := proto.Unmarshal(p, m); err != nil {
				key("payloadBase64", p)
				key("payloadError", fmt.Sprintf("not a %s: %v", typ.FullName(), err))
				break
			}
			j, err := marshalJSON(d.schema, m)
			if err != nil {
				return nil, fmt.Errorf("payload: %w", err)
			}
			if b.Len() > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`"payload":`)
			b.Write(j)
		default:
			key("payloadBase64", p) // encoding/json writes []byte as base64
		}
	}
	if e := env.GetError(); e != nil {
		key("error", d.errorForm(c, e))
	}
	if md := env.GetMetadata(); len(md) > 0 {
		key("metadata", md) // encoding/json sorts the keys
	}
	if env.GetSeq() != 0 {
		key("seq", env.GetSeq())
	}
	if k := env.GetIdempotencyKey(); k != "" {
		key("idempotencyKey", k)
	}
	if t := env.GetTimeoutMs(); t != 0 {
		key("timeoutMs", t)
	}
	return append(append([]byte{'{'}, b.Bytes()...), '}'), nil
}

// errorForm is an error as the JSON codec writes it: code, message, and
// details as the protojson objects of their Anys (docs/PROTOCOL.md,
// section 8.1). A Protobuf detail of a type neither the program nor the
// descriptors know is {"@type": ..., "valueBase64": ...}.
func (d *decoder) errorForm(c codec.Codec, e *protowsv1.Error) any {
	type form struct {
		Code    string            `json:"code"`
		Message string            `json:"message,omitempty"`
		Details []json.RawMessage `json:"details,omitempty"`
	}
	f := form{Code: protows.Code(e.GetCode()).String(), Message: e.GetMessage()}
	for _, a := range e.GetDetails() {
		if !c.Binary() {
			f.Details = append(f.Details, a.GetValue()) // the object itself
			continue
		}
		var (
			j   []byte
			err = errors.New("no descriptors")
		)
		if d.schema != nil {
			j, err = marshalJSON(d.schema, a)
		}
		if err != nil {
			j, err = protojson.Marshal(a)
		}
		if err != nil {
			j, _ = json.Marshal(map[string]any{"@type": a.GetTypeUrl(), "valueBase64": a.GetValue()})
		}
		var out bytes.Buffer
		if json.Compact(&out, j) == nil {
			j = out.Bytes()
		}
		f.Details = append(f.Details, j)
	}
	return f
}

// lookup returns the method a REQUEST names, when the descriptors have it.
func (d *decoder) lookup(env *protowsv1.Envelope) protoreflect.MethodDescriptor {
	if d.schema == nil || env.GetKind() != protowsv1.Kind_KIND_REQUEST {
		return nil
	}
	if name := env.GetMethod(); name != "" {
		md, err := findMethod(context.Background(), d.schema, name)
		if err != nil {
			return nil
		}
		return md
	}
	return d.schema.methodByID(env.GetMethodId())
}

// kindName is the JSON codec's name of a kind ("stream_message"), or
// kind_N for a number this version does not know.
func kindName(k protowsv1.Kind) string {
	name := k.String()
	if _, err := strconv.Atoi(name); err == nil {
		return "kind_" + name
	}
	return strings.ToLower(strings.TrimPrefix(name, "KIND_"))
}
