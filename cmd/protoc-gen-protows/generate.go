package main

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/compiler/protogen"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/protows/protows"
)

// The packages generated code imports.
const (
	contextPackage = protogen.GoImportPath("context")
	protowsPackage = protogen.GoImportPath("github.com/protows/protows")
	routerPackage  = protogen.GoImportPath("github.com/protows/protows/router")
	clientPackage  = protogen.GoImportPath("github.com/protows/protows/client")
)

// builtinPackage is the protobuf package of the wire protocol. Its
// AuthService is implemented by the transport, and generated code for it
// would import router and client from the package they import: a cycle.
const builtinPackage = "protows.v1"

// versionConstant is the newest protows.IsAtLeastVersion constant; the
// generated code refers to it so that it fails to compile against an older
// runtime.
const versionConstant = "IsAtLeastVersion0_1_0"

// Referencing it here keeps the constant above honest: the plugin stops
// compiling when the runtime no longer has it.
var _ = protows.IsAtLeastVersion0_1_0

// generate writes a _protows.pb.go file for each file to generate that
// declares services. It validates every file first, so a bad method fails
// the run before anything is written.
func generate(p *protogen.Plugin) error {
	ids := make(map[uint32]string)
	decls := declaredNames(p)
	var files []*protogen.File
	for _, f := range p.Files {
		if !f.Generate || len(f.Services) == 0 || string(f.Desc.Package()) == builtinPackage {
			continue
		}
		if err := check(f, ids); err != nil {
			return err
		}
		if err := checkNames(f, decls[f.GoImportPath]); err != nil {
			return err
		}
		files = append(files, f)
	}
	for _, f := range files {
		generateFile(p, f)
	}
	return nil
}

// check rejects what the generated code cannot express: two methods with
// one wire id (across the whole run, which is as far as the plugin can
// see), and two methods of a service that map to one Go name. Every kind
// of method is generated: unary, server stream, client stream,
// bidirectional.
func check(f *protogen.File, ids map[uint32]string) error {
	for _, s := range f.Services {
		goNames := make(map[string]string)
		for _, m := range s.Methods {
			full := methodName(m)
			id := protows.MethodID(full)
			if other, ok := ids[id]; ok {
				return fmt.Errorf("%s: method id %#08x of %s collides with %s; rename one of them", f.Desc.Path(), id, full, other)
			}
			ids[id] = full
			if other, ok := goNames[m.GoName]; ok {
				return fmt.Errorf("%s: methods %s and %s both become %s in Go; rename one of them", f.Desc.Path(), other, m.Desc.Name(), m.GoName)
			}
			goNames[m.GoName] = string(m.Desc.Name())
		}
	}
	return nil
}

// declaredNames returns, for each Go package of the run, the top-level
// names protoc-gen-go declares in it and what declares each.
func declaredNames(p *protogen.Plugin) map[protogen.GoImportPath]map[string]string {
	decls := make(map[protogen.GoImportPath]map[string]string)
	for _, f := range p.Files {
		names := decls[f.GoImportPath]
		if names == nil {
			names = make(map[string]string)
			decls[f.GoImportPath] = names
		}
		names[f.GoDescriptorIdent.GoName] = "the descriptor of " + f.Desc.Path()
		for _, e := range f.Enums {
			declareEnum(names, e)
		}
		for _, m := range f.Messages {
			declareMessage(names, m)
		}
		for _, x := range f.Extensions {
			names[x.GoIdent.GoName] = "extension " + string(x.Desc.FullName())
		}
	}
	return decls
}

func declareEnum(names map[string]string, e *protogen.Enum) {
	what := "enum " + string(e.Desc.FullName())
	names[e.GoIdent.GoName] = what
	names[e.GoIdent.GoName+"_name"] = what
	names[e.GoIdent.GoName+"_value"] = what
	for _, v := range e.Values {
		names[v.GoIdent.GoName] = "enum value " + string(v.Desc.FullName())
	}
}

func declareMessage(names map[string]string, m *protogen.Message) {
	if m.Desc.IsMapEntry() {
		return
	}
	names[m.GoIdent.GoName] = "message " + string(m.Desc.FullName())
	for _, e := range m.Enums {
		declareEnum(names, e)
	}
	for _, n := range m.Messages {
		declareMessage(names, n)
	}
	for _, f := range m.Fields {
		if f.Oneof != nil && !f.Oneof.Desc.IsSynthetic() {
			names[f.GoIdent.GoName] = "oneof field " + string(f.Desc.FullName())
		}
	}
	for _, x := range m.Extensions {
		names[x.GoIdent.GoName] = "extension " + string(x.Desc.FullName())
	}
}

// checkNames rejects a file whose generated Go names are already declared
// in its Go package (by protoc-gen-go or for another service), which would
// not compile, and records them.
func checkNames(f *protogen.File, names map[string]string) error {
	for _, s := range f.Services {
		generated := []string{handlerName(s), "Register" + handlerName(s), unimplementedName(s), clientName(s), "New" + clientName(s)}
		for _, m := range s.Methods {
			generated = append(generated, nameConstant(m), idConstant(m))
		}
		for _, name := range generated {
			if other, ok := names[name]; ok {
				return fmt.Errorf("%s: %s, generated for service %s, is also the Go name of %s in package %s; rename one of them", f.Desc.Path(), name, s.Desc.FullName(), other, f.GoImportPath)
			}
			names[name] = "the code generated for service " + string(s.Desc.FullName())
		}
	}
	return nil
}

// methodName is the full name of m on the wire: "/package.Service/Method".
func methodName(m *protogen.Method) string {
	return "/" + string(m.Parent.Desc.FullName()) + "/" + string(m.Desc.Name())
}

func generateFile(p *protogen.Plugin, f *protogen.File) {
	g := p.NewGeneratedFile(f.GeneratedFilenamePrefix+"_protows.pb.go", f.GoImportPath)
	g.P("// Code generated by protoc-gen-protows. DO NOT EDIT.")
	g.P("// versions:")
	g.P("// - protoc-gen-protows v", version)
	g.P("// source: ", f.Desc.Path())
	g.P()
	g.P("package ", f.GoPackageName)
	g.P()
	g.P("// This is a compile-time assertion that this generated file and the protows")
	g.P("// package it uses are compatible. If it fails to compile, the file was")
	g.P("// generated by a protoc-gen-protows newer than the protows module the")
	g.P("// program builds with: update github.com/protows/protows.")
	g.P("const _ = ", protowsPackage.Ident(versionConstant))
	g.P()
	for _, s := range f.Services {
		generateService(g, s)
	}
}

func generateService(g *protogen.GeneratedFile, s *protogen.Service) {
	generateConstants(g, s)
	generateHandler(g, s)
	generateRegister(g, s)
	generateUnimplemented(g, s)
	generateClient(g, s)
}

// Go names of what is generated for a service or method.
func handlerName(s *protogen.Service) string       { return s.GoName + "Handler" }
func unimplementedName(s *protogen.Service) string { return "Unimplemented" + s.GoName + "Handler" }
func clientName(s *protogen.Service) string        { return s.GoName + "Client" }
func nameConstant(m *protogen.Method) string       { return m.Parent.GoName + m.GoName + "Method" }
func idConstant(m *protogen.Method) string         { return nameConstant(m) + "ID" }

func generateConstants(g *protogen.GeneratedFile, s *protogen.Service) {
	if len(s.Methods) == 0 {
		return
	}
	g.P("// Full names of the ", s.Desc.FullName(), " methods, as the JSON codec")
	g.P("// sends them and routers register them.")
	g.P("const (")
	for _, m := range s.Methods {
		g.P("// ", nameConstant(m), " is the full name of ", m.Desc.FullName(), ".")
		deprecated(g, m)
		g.P(nameConstant(m), " = ", fmt.Sprintf("%q", methodName(m)))
	}
	g.P(")")
	g.P()
	g.P("// Wire ids of the ", s.Desc.FullName(), " methods, as the Protobuf codec")
	g.P("// sends them: protows.MethodID of the full names.")
	g.P("const (")
	for _, m := range s.Methods {
		g.P("// ", idConstant(m), " is the wire id of ", m.Desc.FullName(), ".")
		deprecated(g, m)
		g.P(idConstant(m), " uint32 = ", fmt.Sprintf("%#08x", protows.MethodID(methodName(m))))
	}
	g.P(")")
	g.P()
}

func generateHandler(g *protogen.GeneratedFile, s *protogen.Service) {
	g.P("// ", handlerName(s), " is the server side of ", s.Desc.FullName(), ":")
	g.P("// implement it and put it on a router with Register", handlerName(s), ".")
	serviceComments(g, s)
	g.P("type ", handlerName(s), " interface {")
	for _, m := range s.Methods {
		comment(g, m.Comments.Leading)
		if m.Comments.Leading != "" {
			deprecated(g, m)
		} else if methodDeprecated(m) {
			g.P("// Deprecated: ", m.Desc.FullName(), deprecatedText)
		}
		g.P(m.GoName, handlerSignature(g, m))
	}
	g.P("}")
	g.P()
}

// handlerSignature is the parameter and result list of m in the handler
// interface, without names.
func handlerSignature(g *protogen.GeneratedFile, m *protogen.Method) string {
	ctx := g.QualifiedGoIdent(contextPackage.Ident("Context"))
	in := "*" + g.QualifiedGoIdent(m.Input.GoIdent)
	out := "*" + g.QualifiedGoIdent(m.Output.GoIdent)
	switch {
	case m.Desc.IsStreamingClient() && m.Desc.IsStreamingServer():
		return "(" + ctx + ", " + g.QualifiedGoIdent(routerPackage.Ident("BidiStream")) + "[" + in + ", " + out + "]) error"
	case m.Desc.IsStreamingClient():
		return "(" + ctx + ", " + g.QualifiedGoIdent(routerPackage.Ident("ClientStream")) + "[" + in + "]) (" + out + ", error)"
	case m.Desc.IsStreamingServer():
		return "(" + ctx + ", " + in + ", " + g.QualifiedGoIdent(routerPackage.Ident("Stream")) + "[" + out + "]) error"
	}
	return "(" + ctx + ", " + in + ") (" + out + ", error)"
}

func generateRegister(g *protogen.GeneratedFile, s *protogen.Service) {
	name := "Register" + handlerName(s)
	g.P("// ", name, " registers every method of h on r, passing opts to each")
	g.P("// registration. It stops at the first method the router refuses (a")
	g.P("// duplicate name, a colliding id) and returns that error; the methods")
	g.P("// registered before it stay registered.")
	serviceDeprecated(g, s)
	g.P("func ", name, "(r *", routerPackage.Ident("Router"), ", h ", handlerName(s), ", opts ...", routerPackage.Ident("HandlerOption"), ") error {")
	for _, m := range s.Methods {
		fn := routerPackage.Ident("HandleUnary")
		switch {
		case m.Desc.IsStreamingClient() && m.Desc.IsStreamingServer():
			fn = routerPackage.Ident("HandleBidiStream")
		case m.Desc.IsStreamingClient():
			fn = routerPackage.Ident("HandleClientStream")
		case m.Desc.IsStreamingServer():
			fn = routerPackage.Ident("HandleServerStream")
		}
		g.P("if err := ", fn, "(r, ", nameConstant(m), ", h.", m.GoName, ", opts...); err != nil {")
		g.P("return err")
		g.P("}")
	}
	g.P("return nil")
	g.P("}")
	g.P()
}

func generateUnimplemented(g *protogen.GeneratedFile, s *protogen.Service) {
	name := unimplementedName(s)
	g.P("// ", name, " answers every method of ", s.Desc.FullName(), " with")
	g.P("// CodeUnimplemented. Embed it in a handler to keep compiling when methods")
	g.P("// are added to the service.")
	serviceDeprecated(g, s)
	g.P("type ", name, " struct{}")
	g.P()
	g.P("var _ ", handlerName(s), " = ", name, "{}")
	g.P()
	for _, m := range s.Methods {
		g.P("// ", m.GoName, " answers CodeUnimplemented.")
		deprecated(g, m)
		g.P("func (", name, ") ", m.GoName, handlerSignature(g, m), " {")
		if m.Desc.IsStreamingServer() { // server streams and bidirectional
			g.P("return ", unimplementedError(g, m))
		} else {
			g.P("return nil, ", unimplementedError(g, m))
		}
		g.P("}")
		g.P()
	}
}

func unimplementedError(g *protogen.GeneratedFile, m *protogen.Method) string {
	return g.QualifiedGoIdent(protowsPackage.Ident("Errorf")) + "(" +
		g.QualifiedGoIdent(protowsPackage.Ident("CodeUnimplemented")) + `, "%s is not implemented", ` + nameConstant(m) + ")"
}

func generateClient(g *protogen.GeneratedFile, s *protogen.Service) {
	name := clientName(s)
	g.P("// ", name, " calls ", s.Desc.FullName(), " through a protows client.")
	g.P("// Its methods are safe for concurrent use.")
	serviceComments(g, s)
	g.P("type ", name, " struct {")
	g.P("client *", clientPackage.Ident("Client"))
	g.P("}")
	g.P()
	g.P("// New", name, " returns a client of ", s.Desc.FullName(), " that makes its calls on c.")
	serviceDeprecated(g, s)
	g.P("func New", name, "(c *", clientPackage.Ident("Client"), ") *", name, " {")
	g.P("return &", name, "{client: c}")
	g.P("}")
	g.P()
	callOption := g.QualifiedGoIdent(clientPackage.Ident("CallOption"))
	for _, m := range s.Methods {
		in := "*" + g.QualifiedGoIdent(m.Input.GoIdent)
		out := g.QualifiedGoIdent(m.Output.GoIdent)
		opts := "opts..."
		// Streams from the client are never resumed, so never retried.
		if idempotent(m) && !m.Desc.IsStreamingClient() {
			opts = "append([]" + callOption + "{" + g.QualifiedGoIdent(clientPackage.Ident("Idempotent")) + "()}, opts...)..."
		}
		if m.Comments.Leading != "" {
			comment(g, m.Comments.Leading)
			g.P("//")
		} else {
			g.P("// ", m.GoName, " calls ", m.Desc.FullName(), ".")
		}
		inType := g.QualifiedGoIdent(m.Input.GoIdent)
		switch {
		case m.Desc.IsStreamingClient() && m.Desc.IsStreamingServer():
			g.P("// Send messages with Send and CloseSend when done; read the server's")
			g.P("// with Receive until it returns io.EOF (the server ended the stream")
			g.P("// cleanly) or another error. Close stops the call early. A reconnect")
			g.P("// ends it with CodeUnavailable: it is never resumed.")
		case m.Desc.IsStreamingClient():
			g.P("// Send messages with Send, then CloseAndReceive for the response. A")
			g.P("// reconnect ends the call with CodeUnavailable: it is never resumed.")
		case m.Desc.IsStreamingServer():
			g.P("// Read the stream with Receive and Msg until Receive returns false; Err")
			g.P("// then says why it ended (nil when the server ended it cleanly). Close")
			g.P("// stops it early. After a reconnect the client opens the stream again")
			g.P("// and Gap reports it.")
		default:
			g.P("// It returns the response, or an error whose protows.Code says why the")
			g.P("// call failed.")
		}
		if idempotent(m) && !m.Desc.IsStreamingClient() {
			g.P("// The method is idempotent, so the call is retried after a reconnect.")
		}
		deprecated(g, m)
		switch {
		case m.Desc.IsStreamingClient() && m.Desc.IsStreamingServer():
			g.P("func (c *", name, ") ", m.GoName, "(ctx ", contextPackage.Ident("Context"), ", opts ...", callOption, ") (*", clientPackage.Ident("BidiStream"), "[", inType, ", ", out, "], error) {")
			g.P("return ", clientPackage.Ident("CallBidiStream"), "[", inType, ", ", out, "](ctx, c.client, ", nameConstant(m), ", ", opts, ")")
		case m.Desc.IsStreamingClient():
			g.P("func (c *", name, ") ", m.GoName, "(ctx ", contextPackage.Ident("Context"), ", opts ...", callOption, ") (*", clientPackage.Ident("ClientStream"), "[", inType, ", ", out, "], error) {")
			g.P("return ", clientPackage.Ident("CallClientStream"), "[", inType, ", ", out, "](ctx, c.client, ", nameConstant(m), ", ", opts, ")")
		case m.Desc.IsStreamingServer():
			g.P("func (c *", name, ") ", m.GoName, "(ctx ", contextPackage.Ident("Context"), ", req ", in, ", opts ...", callOption, ") (*", clientPackage.Ident("ServerStream"), "[", out, "], error) {")
			g.P("return ", clientPackage.Ident("CallServerStream"), "[", out, "](ctx, c.client, ", nameConstant(m), ", req, ", opts, ")")
		default:
			g.P("func (c *", name, ") ", m.GoName, "(ctx ", contextPackage.Ident("Context"), ", req ", in, ", opts ...", callOption, ") (*", out, ", error) {")
			g.P("return ", clientPackage.Ident("CallUnary"), "[", out, "](ctx, c.client, ", nameConstant(m), ", req, ", opts, ")")
		}
		g.P("}")
		g.P()
	}
}

// idempotent reports whether calls to m may be repeated safely, so that the
// client retries them after a reconnect.
func idempotent(m *protogen.Method) bool {
	opts, _ := m.Desc.Options().(*descriptorpb.MethodOptions)
	switch opts.GetIdempotencyLevel() {
	case descriptorpb.MethodOptions_NO_SIDE_EFFECTS, descriptorpb.MethodOptions_IDEMPOTENT:
		return true
	}
	return false
}

func methodDeprecated(m *protogen.Method) bool {
	opts, _ := m.Desc.Options().(*descriptorpb.MethodOptions)
	return opts.GetDeprecated()
}

func serviceIsDeprecated(s *protogen.Service) bool {
	opts, _ := s.Desc.Options().(*descriptorpb.ServiceOptions)
	return opts.GetDeprecated()
}

// serviceComments copies the service's comments from the .proto file,
// after a blank comment line.
func serviceComments(g *protogen.GeneratedFile, s *protogen.Service) {
	if s.Comments.Leading != "" {
		g.P("//")
		comment(g, s.Comments.Leading)
	}
	serviceDeprecated(g, s)
}

// comment writes comments from the .proto file as Go comment lines,
// without buf's lint directives, which are not documentation.
func comment(g *protogen.GeneratedFile, c protogen.Comments) {
	var lines []string
	for _, line := range strings.Split(strings.TrimSuffix(string(c), "\n"), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "buf:lint:ignore ") {
			continue
		}
		lines = append(lines, line)
	}
	for len(lines) > 0 && strings.TrimSpace(lines[len(lines)-1]) == "" {
		lines = lines[:len(lines)-1]
	}
	for _, line := range lines {
		g.P("//", line)
	}
}

// deprecatedText ends a Deprecated paragraph after the element's full name.
const deprecatedText = " is deprecated in its .proto file."

func serviceDeprecated(g *protogen.GeneratedFile, s *protogen.Service) {
	if serviceIsDeprecated(s) {
		g.P("//")
		g.P("// Deprecated: ", s.Desc.FullName(), deprecatedText)
	}
}

// deprecated marks a declaration for m as deprecated, in a paragraph after
// the comment lines already written for it.
func deprecated(g *protogen.GeneratedFile, m *protogen.Method) {
	if methodDeprecated(m) {
		g.P("//")
		g.P("// Deprecated: ", m.Desc.FullName(), deprecatedText)
	}
}
