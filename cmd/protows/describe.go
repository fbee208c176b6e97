package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	protows "github.com/protows/protows"
	"github.com/protows/protows/client"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
)

// schemaArgs sorts the arguments of list and describe, [URL] [SYMBOL],
// and opens the schema: the files given, or the server's reflection. The
// returned client, if any, is the caller's to close.
func schemaArgs(ctx context.Context, c *command, e *env, o *connOptions, args []string) (schema, *client.Client, string, int) {
	var url, symbol string
	if len(args) > 0 && isURL(args[0]) {
		url, args = args[0], args[1:]
	}
	switch len(args) {
	case 0:
	case 1:
		symbol = symbolName(args[0])
	default:
		return nil, nil, "", e.usageError(c, "want %s, got %d arguments", c.args, len(args)+boolInt(url != ""))
	}
	if url == "" && !o.schema.offline() {
		return nil, nil, "", e.usageError(c, "want a ws:// or wss:// URL, or --descriptor-set or --proto")
	}
	if url != "" {
		if err := checkURL(url); err != nil {
			return nil, nil, "", e.usageError(c, "%v", err)
		}
	}
	if _, _, err := o.check(); err != nil {
		return nil, nil, "", e.usageError(c, "%v", err)
	}
	if o.schema.offline() {
		// The files say it all: no need to ask the server.
		s, err := loadFiles(ctx, e, &o.schema)
		if err != nil {
			return nil, nil, "", e.fail(err)
		}
		return s, nil, symbol, -1
	}
	cl, s, err := connect(ctx, e, url, o)
	if err != nil {
		return nil, nil, "", e.fail(err)
	}
	return s, cl, symbol, -1
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// schemaCommand builds list or describe, which share their flags.
func schemaCommand(c *command, do func(ctx context.Context, e *env, s schema, symbol string) error) *command {
	c.flags = func(fs *flag.FlagSet) runFunc {
		var o connOptions
		o.define(fs)
		timeout := fs.Duration("timeout", 30*time.Second, "deadline of the whole command, connection included (0: none)")
		return func(ctx context.Context, e *env, args []string) int {
			if *timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, *timeout)
				defer cancel()
			}
			s, cl, symbol, status := schemaArgs(ctx, c, e, &o, args)
			if status >= 0 {
				return status
			}
			if cl != nil {
				defer cl.Close()
			}
			if err := do(ctx, e, s, symbol); err != nil {
				return e.fail(err)
			}
			return exitOK
		}
	}
	return c
}

func listCommand() *command {
	return schemaCommand(&command{
		name:    "list",
		args:    "[URL] [SERVICE]",
		summary: "list the services of a server, or the methods of a service",
		help: `
Without SERVICE, prints the fully qualified name of each service the server
at URL serves, one per line. With SERVICE, prints the full name of each of
its methods (/package.Service/Method, what call and listen take).

The server must serve reflection; with --descriptor-set or --proto the
services are those of the files, and the server is not asked (URL may be
left out).

examples:
  protows list ws://127.0.0.1:8080/ws
  protows list ws://127.0.0.1:8080/ws examples.chat.v1.ChatService
  protows list --descriptor-set chat.binpb`,
	}, func(ctx context.Context, e *env, s schema, symbol string) error {
		if symbol == "" {
			names, err := s.services(ctx)
			if err != nil {
				return err
			}
			for _, n := range names {
				fmt.Fprintln(e.stdout, n)
			}
			return nil
		}
		d, err := s.find(ctx, symbol)
		if err != nil {
			return err
		}
		sd, ok := d.(protoreflect.ServiceDescriptor)
		if !ok {
			return fmt.Errorf("%s is not a service but %s", d.FullName(), kindOf(d))
		}
		for i := range sd.Methods().Len() {
			fmt.Fprintf(e.stdout, "/%s/%s\n", sd.FullName(), sd.Methods().Get(i).Name())
		}
		return nil
	})
}

func describeCommand() *command {
	return schemaCommand(&command{
		name:    "describe",
		args:    "[URL] [SYMBOL]",
		summary: "describe a service, method, message or enum in .proto syntax",
		help: `
Prints the definition of SYMBOL in .proto syntax: a service, a method
(/package.Service/Method or package.Service.Method, with its wire id), a
message, an enum, a field or an enum value, by its fully qualified name.
Without SYMBOL, describes every service of the server.

The server must serve reflection; with --descriptor-set or --proto the
symbols are those of the files, and the server is not asked (URL may be
left out).

examples:
  protows describe ws://127.0.0.1:8080/ws examples.chat.v1.ChatService
  protows describe ws://127.0.0.1:8080/ws examples.chat.v1.SendRequest`,
	}, func(ctx context.Context, e *env, s schema, symbol string) error {
		symbols := []string{symbol}
		if symbol == "" {
			var err error
			if symbols, err = s.services(ctx); err != nil {
				return err
			}
		}
		for i, name := range symbols {
			d, err := s.find(ctx, name)
			if err != nil {
				return err
			}
			if i > 0 {
				fmt.Fprintln(e.stdout)
			}
			describe(e.stdout, d)
		}
		return nil
	})
}

// kindOf names the kind of a descriptor, with its article.
func kindOf(d protoreflect.Descriptor) string {
	switch d := d.(type) {
	case protoreflect.ServiceDescriptor:
		return "a service"
	case protoreflect.MethodDescriptor:
		return "a method"
	case protoreflect.MessageDescriptor:
		return "a message"
	case protoreflect.EnumDescriptor:
		return "an enum"
	case protoreflect.EnumValueDescriptor:
		return "an enum value"
	case protoreflect.FieldDescriptor:
		if d.IsExtension() {
			return "an extension"
		}
		return "a field"
	case protoreflect.OneofDescriptor:
		return "a oneof"
	case protoreflect.FileDescriptor:
		return "a file"
	}
	return "a symbol"
}

// describe writes d in .proto syntax, after a line that says what it is.
func describe(w io.Writer, d protoreflect.Descriptor) {
	p := &printer{w: w}
	fmt.Fprintf(w, "%s is %s:\n", d.FullName(), kindOf(d))
	switch d := d.(type) {
	case protoreflect.ServiceDescriptor:
		p.service(d)
	case protoreflect.MethodDescriptor:
		name := "/" + string(d.Parent().FullName()) + "/" + string(d.Name())
		p.line("// %s, method id 0x%08x", name, protows.MethodID(name))
		p.method(d)
	case protoreflect.MessageDescriptor:
		p.message(d)
	case protoreflect.EnumDescriptor:
		p.enum(d)
	case protoreflect.EnumValueDescriptor:
		p.comments(d)
		p.line("%s = %d;", d.Name(), d.Number())
	case protoreflect.FieldDescriptor:
		p.field(d)
	case protoreflect.OneofDescriptor:
		p.oneof(d)
	}
}

// printer writes descriptors in .proto syntax, with the comments of the
// source when the descriptors kept them (buf build does, generated Go code
// does not).
type printer struct {
	w      io.Writer
	indent int
}

func (p *printer) line(format string, args ...any) {
	fmt.Fprintf(p.w, "%s%s\n", strings.Repeat("  ", p.indent), fmt.Sprintf(format, args...))
}

func (p *printer) comments(d protoreflect.Descriptor) {
	c := d.ParentFile().SourceLocations().ByDescriptor(d).LeadingComments
	if c == "" {
		return
	}
	for _, l := range strings.Split(strings.TrimSuffix(c, "\n"), "\n") {
		p.line("//%s", strings.TrimRight(l, " "))
	}
}

func (p *printer) service(d protoreflect.ServiceDescriptor) {
	p.comments(d)
	p.line("service %s {", d.Name())
	p.indent++
	for i := range d.Methods().Len() {
		p.method(d.Methods().Get(i))
	}
	p.indent--
	p.line("}")
}

func (p *printer) method(d protoreflect.MethodDescriptor) {
	p.comments(d)
	stream := func(b bool) string {
		if b {
			return "stream "
		}
		return ""
	}
	rpc := fmt.Sprintf("rpc %s(%s%s) returns (%s%s)", d.Name(),
		stream(d.IsStreamingClient()), d.Input().FullName(), stream(d.IsStreamingServer()), d.Output().FullName())
	opts, _ := d.Options().(*descriptorpb.MethodOptions)
	if lvl := opts.GetIdempotencyLevel(); lvl != descriptorpb.MethodOptions_IDEMPOTENCY_UNKNOWN {
		p.line("%s {", rpc)
		p.line("  option idempotency_level = %s;", lvl)
		p.line("}")
		return
	}
	p.line("%s;", rpc)
}

func (p *printer) message(d protoreflect.MessageDescriptor) {
	p.comments(d)
	p.line("message %s {", d.Name())
	p.indent++
	fields := d.Fields()
	for i := range fields.Len() {
		f := fields.Get(i)
		if o := f.ContainingOneof(); o != nil && !o.IsSynthetic() {
			if o.Fields().Get(0) == f {
				p.oneof(o)
			}
			continue
		}
		p.field(f)
	}
	for i := range d.Messages().Len() {
		if m := d.Messages().Get(i); !m.IsMapEntry() {
			p.message(m)
		}
	}
	for i := range d.Enums().Len() {
		p.enum(d.Enums().Get(i))
	}
	p.indent--
	p.line("}")
}

func (p *printer) oneof(d protoreflect.OneofDescriptor) {
	p.comments(d)
	p.line("oneof %s {", d.Name())
	p.indent++
	for i := range d.Fields().Len() {
		p.field(d.Fields().Get(i))
	}
	p.indent--
	p.line("}")
}

func (p *printer) field(f protoreflect.FieldDescriptor) {
	p.comments(f)
	var typ string
	switch {
	case f.IsMap():
		typ = fmt.Sprintf("map<%s, %s>", typeName(f.MapKey()), typeName(f.MapValue()))
	case f.IsList():
		typ = "repeated " + typeName(f)
	case f.Cardinality() == protoreflect.Required:
		typ = "required " + typeName(f)
	case f.HasOptionalKeyword():
		typ = "optional " + typeName(f)
	default:
		typ = typeName(f)
	}
	p.line("%s %s = %d;", typ, f.Name(), f.Number())
}

func typeName(f protoreflect.FieldDescriptor) string {
	switch f.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return string(f.Message().FullName())
	case protoreflect.EnumKind:
		return string(f.Enum().FullName())
	}
	return f.Kind().String()
}

func (p *printer) enum(d protoreflect.EnumDescriptor) {
	p.comments(d)
	p.line("enum %s {", d.Name())
	p.indent++
	for i := range d.Values().Len() {
		v := d.Values().Get(i)
		p.comments(v)
		p.line("%s = %d;", v.Name(), v.Number())
	}
	p.indent--
	p.line("}")
}
