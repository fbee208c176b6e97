// Package reflection serves protows server reflection: the built-in
// service protows.reflection.v1.ReflectionService, which tells a client
// the services a server serves and hands out the descriptors of their
// methods and messages, so that generic tools (the protows command, see
// cmd/protows) can list, describe and call them without the .proto files,
// as gRPC's server reflection does.
//
// Reflection is off by default: a server serves it only when its operator
// registers it on the server's router, after or before the other services:
//
//	r := router.New()
//	_ = chatv1.RegisterChatServiceHandler(r, chat)
//	if err := reflection.Register(r); err != nil { ... }
//	srv := transport.NewServer(r, transport.Config{})
//
// It is an ordinary service on the router: the transport's authentication
// gate and the router's interceptors apply to it as to every other method,
// so a server that authenticates its connections answers reflection only
// to authenticated clients, and an interceptor may restrict it further.
//
// What it reveals: ListServices names the services of every method
// registered on the router when it is called (so methods registered later
// are included). FileContainingSymbol answers only for symbols defined in
// the files of those services or in their transitive dependencies, never
// for other descriptors the program happens to link in. Descriptors come
// from protoregistry.GlobalFiles, where generated Go code registers its
// files (WithResolver changes that); a service whose descriptor is not
// there is listed but cannot be described. docs/PROTOCOL.md, section 13,
// specifies the service.
package reflection

import (
	"context"
	"slices"
	"strings"

	protows "github.com/protows/protows"
	reflectionv1 "github.com/protows/protows/gen/go/protows/reflection/v1"
	"github.com/protows/protows/router"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// The full names of the reflection service's methods.
const (
	// ListServicesMethod lists the served services.
	ListServicesMethod = reflectionv1.ReflectionServiceListServicesMethod
	// FileContainingSymbolMethod returns the file descriptors of a symbol.
	FileContainingSymbolMethod = reflectionv1.ReflectionServiceFileContainingSymbolMethod
)

// Resolver finds descriptors by their fully qualified name.
// *protoregistry.Files implements it.
type Resolver interface {
	FindDescriptorByName(protoreflect.FullName) (protoreflect.Descriptor, error)
}

var _ Resolver = (*protoregistry.Files)(nil)

// Option configures the reflection service.
type Option func(*config)

type config struct {
	files Resolver
}

// WithResolver sets where descriptors are looked up. Nil (the default)
// means protoregistry.GlobalFiles, which holds every file of the generated
// Go code linked into the program.
func WithResolver(files Resolver) Option {
	return func(c *config) { c.files = files }
}

// Register puts the reflection service on r. It describes the methods
// registered on r at the time of each call. It fails as the router's
// registration does, for instance when the service is registered twice.
func Register(r *router.Router, opts ...Option) error {
	return reflectionv1.RegisterReflectionServiceHandler(r, newService(r.Methods, opts))
}

// service implements the reflection service for the methods that methods
// lists.
type service struct {
	methods func() []string
	files   Resolver
}

var _ reflectionv1.ReflectionServiceHandler = (*service)(nil)

func newService(methods func() []string, opts []Option) *service {
	var c config
	for _, o := range opts {
		o(&c)
	}
	if c.files == nil {
		c.files = protoregistry.GlobalFiles
	}
	return &service{methods: methods, files: c.files}
}

// ListServices implements reflectionv1.ReflectionServiceHandler.
func (s *service) ListServices(context.Context, *reflectionv1.ListServicesRequest) (*reflectionv1.ListServicesResponse, error) {
	return &reflectionv1.ListServicesResponse{Services: s.services()}, nil
}

// FileContainingSymbol implements reflectionv1.ReflectionServiceHandler.
func (s *service) FileContainingSymbol(_ context.Context, req *reflectionv1.FileContainingSymbolRequest) (*reflectionv1.FileContainingSymbolResponse, error) {
	name := protoreflect.FullName(strings.TrimPrefix(req.GetSymbol(), "."))
	if !name.IsValid() {
		return nil, protows.Errorf(protows.CodeInvalidArgument, "%q is not a fully qualified name", req.GetSymbol())
	}
	// The same answer for an unknown symbol and for one outside the served
	// files: the reply must not tell what else the program links in.
	notFound := protows.Errorf(protows.CodeNotFound, "symbol %q not found", name)
	d, err := s.files.FindDescriptorByName(name)
	if err != nil {
		return nil, notFound
	}
	file := d.ParentFile()
	served := make(map[string]bool)
	for _, svc := range s.services() {
		sd, err := s.files.FindDescriptorByName(protoreflect.FullName(svc))
		if err != nil {
			continue
		}
		if _, ok := sd.(protoreflect.ServiceDescriptor); ok {
			for _, f := range withDependencies(sd.ParentFile()) {
				served[f.Path()] = true
			}
		}
	}
	if !served[file.Path()] {
		return nil, notFound
	}
	res := &reflectionv1.FileContainingSymbolResponse{}
	for _, f := range withDependencies(file) {
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(protodesc.ToFileDescriptorProto(f))
		if err != nil {
			return nil, protows.Errorf(protows.CodeInternal, "encode the descriptor of %s: %w", f.Path(), err)
		}
		res.FileDescriptorProtos = append(res.FileDescriptorProtos, b)
	}
	return res, nil
}

// services returns the sorted, distinct service names of the methods.
func (s *service) services() []string {
	var names []string
	for _, m := range s.methods() {
		if svc, ok := serviceOf(m); ok {
			names = append(names, svc)
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// serviceOf returns the service part of a full method name,
// "/pkg.Service/Method".
func serviceOf(method string) (string, bool) {
	if !protows.ValidMethodName(method) {
		return "", false
	}
	svc, _, ok := strings.Cut(method[1:], "/")
	return svc, ok
}

// withDependencies returns f, then each of its transitive imports once,
// in depth-first order. Placeholders (imports the resolver did not have)
// are left out: there is nothing to send for them.
func withDependencies(f protoreflect.FileDescriptor) []protoreflect.FileDescriptor {
	var out []protoreflect.FileDescriptor
	seen := make(map[string]bool)
	var visit func(protoreflect.FileDescriptor)
	visit = func(f protoreflect.FileDescriptor) {
		if seen[f.Path()] || f.IsPlaceholder() {
			return
		}
		seen[f.Path()] = true
		out = append(out, f)
		imports := f.Imports()
		for i := range imports.Len() {
			visit(imports.Get(i).FileDescriptor)
		}
	}
	visit(f)
	return out
}
