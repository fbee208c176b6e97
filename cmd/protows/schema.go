package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"

	protows "github.com/protows/protows"
	"github.com/protows/protows/client"
	reflectionv1 "github.com/protows/protows/gen/go/protows/reflection/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

// schema finds the descriptors of services, methods and messages.
type schema interface {
	// services returns the fully qualified names of the services, sorted.
	services(ctx context.Context) ([]string, error)
	// find returns the descriptor of a fully qualified name.
	find(ctx context.Context, name string) (protoreflect.Descriptor, error)
	// types resolves the message types found so far, for google.protobuf.Any
	// in JSON.
	types() *dynamicpb.Types
}

// fileSchema serves descriptors read from files.
type fileSchema struct {
	files *protoregistry.Files
	all   *dynamicpb.Types
}

var _ schema = (*fileSchema)(nil)

// loadFiles reads the descriptor sets and compiles the .proto files of o.
func loadFiles(ctx context.Context, e *env, o *schemaOptions) (*fileSchema, error) {
	var fdps []*descriptorpb.FileDescriptorProto
	for _, path := range o.descriptorSets {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		set := &descriptorpb.FileDescriptorSet{}
		if err := proto.Unmarshal(b, set); err != nil {
			return nil, fmt.Errorf("%s is not a FileDescriptorSet: %w", path, err)
		}
		fdps = append(fdps, set.GetFile()...)
	}
	for _, path := range o.protos {
		set, err := compile(ctx, e, path)
		if err != nil {
			return nil, err
		}
		fdps = append(fdps, set.GetFile()...)
	}
	files, err := newFiles(fdps)
	if err != nil {
		return nil, err
	}
	return &fileSchema{files: files, all: dynamicpb.NewTypes(files)}, nil
}

// compile runs buf build on a .proto file: its image, with the imports, is
// a FileDescriptorSet.
func compile(ctx context.Context, e *env, path string) (*descriptorpb.FileDescriptorSet, error) {
	buf := e.buf
	if buf == "" {
		var err error
		if buf, err = exec.LookPath("buf"); err != nil {
			return nil, fmt.Errorf("--proto needs buf on PATH (or use --descriptor-set): %w", err)
		}
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, buf, "build", path, "-o", "-#format=binpb")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("buf build %s: %w: %s", path, err, strings.TrimSpace(stderr.String()))
	}
	set := &descriptorpb.FileDescriptorSet{}
	if err := proto.Unmarshal(stdout.Bytes(), set); err != nil {
		return nil, fmt.Errorf("buf build %s: %w", path, err)
	}
	return set, nil
}

// newFiles builds a registry from file descriptors, each file once. An
// import that is missing is taken from the files linked into this program
// (the well-known types), so that a set built without its imports works
// when they are only those.
func newFiles(fdps []*descriptorpb.FileDescriptorProto) (*protoregistry.Files, error) {
	byName := make(map[string]*descriptorpb.FileDescriptorProto)
	set := &descriptorpb.FileDescriptorSet{}
	add := func(f *descriptorpb.FileDescriptorProto) {
		if _, ok := byName[f.GetName()]; !ok {
			byName[f.GetName()] = f
			set.File = append(set.File, f)
		}
	}
	for _, f := range fdps {
		add(f)
	}
	for i := 0; i < len(set.File); i++ {
		for _, dep := range set.File[i].GetDependency() {
			if _, ok := byName[dep]; ok {
				continue
			}
			fd, err := protoregistry.GlobalFiles.FindFileByPath(dep)
			if err != nil {
				return nil, fmt.Errorf("%s imports %s, which the descriptors lack (build the set with its imports: buf build does, protoc needs --include_imports)", set.File[i].GetName(), dep)
			}
			add(protodesc.ToFileDescriptorProto(fd))
		}
	}
	files, err := protodesc.NewFiles(set)
	if err != nil {
		return nil, fmt.Errorf("descriptors: %w", err)
	}
	return files, nil
}

func (s *fileSchema) services(context.Context) ([]string, error) {
	var names []string
	s.files.RangeFiles(func(f protoreflect.FileDescriptor) bool {
		for i := range f.Services().Len() {
			names = append(names, string(f.Services().Get(i).FullName()))
		}
		return true
	})
	slices.Sort(names)
	return names, nil
}

func (s *fileSchema) find(_ context.Context, name string) (protoreflect.Descriptor, error) {
	d, err := s.files.FindDescriptorByName(protoreflect.FullName(name))
	if err != nil {
		return nil, fmt.Errorf("%s is not in the descriptors given", name)
	}
	return d, nil
}

func (s *fileSchema) types() *dynamicpb.Types { return s.all }

// reflectionSchema asks the server's reflection service, and keeps what it
// was told.
type reflectionSchema struct {
	rc     *reflectionv1.ReflectionServiceClient
	byName map[string]*descriptorpb.FileDescriptorProto
	files  *protoregistry.Files
}

var _ schema = (*reflectionSchema)(nil)

func newReflectionSchema(c *client.Client) *reflectionSchema {
	return &reflectionSchema{
		rc:     reflectionv1.NewReflectionServiceClient(c),
		byName: make(map[string]*descriptorpb.FileDescriptorProto),
		files:  new(protoregistry.Files),
	}
}

// noReflection explains an unimplemented answer to a reflection call.
func noReflection(err error) error {
	if protows.CodeOf(err) == protows.CodeUnimplemented {
		return protows.Errorf(protows.CodeUnimplemented,
			"the server does not serve reflection: pass --descriptor-set or --proto")
	}
	return err
}

func (s *reflectionSchema) services(ctx context.Context) ([]string, error) {
	res, err := s.rc.ListServices(ctx, &reflectionv1.ListServicesRequest{})
	if err != nil {
		return nil, noReflection(err)
	}
	return res.GetServices(), nil
}

func (s *reflectionSchema) find(ctx context.Context, name string) (protoreflect.Descriptor, error) {
	if d, err := s.files.FindDescriptorByName(protoreflect.FullName(name)); err == nil {
		return d, nil
	}
	res, err := s.rc.FileContainingSymbol(ctx, &reflectionv1.FileContainingSymbolRequest{Symbol: name})
	if err != nil {
		return nil, noReflection(err)
	}
	for _, b := range res.GetFileDescriptorProtos() {
		fdp := &descriptorpb.FileDescriptorProto{}
		if err := proto.Unmarshal(b, fdp); err != nil {
			return nil, fmt.Errorf("the server's descriptors: %w", err)
		}
		if _, ok := s.byName[fdp.GetName()]; !ok {
			s.byName[fdp.GetName()] = fdp
		}
	}
	fdps := make([]*descriptorpb.FileDescriptorProto, 0, len(s.byName))
	for _, f := range s.byName {
		fdps = append(fdps, f)
	}
	files, err := newFiles(fdps)
	if err != nil {
		return nil, fmt.Errorf("the server's descriptors: %w", err)
	}
	s.files = files
	d, err := files.FindDescriptorByName(protoreflect.FullName(name))
	if err != nil {
		return nil, fmt.Errorf("the server's descriptors lack %s", name)
	}
	return d, nil
}

func (s *reflectionSchema) types() *dynamicpb.Types { return dynamicpb.NewTypes(s.files) }

// findMethod returns the descriptor of a method, by its full name
// ("/pkg.Svc/Method").
func findMethod(ctx context.Context, s schema, method string) (protoreflect.MethodDescriptor, error) {
	d, err := s.find(ctx, symbolName(method))
	if err != nil {
		return nil, err
	}
	md, ok := d.(protoreflect.MethodDescriptor)
	if !ok {
		return nil, fmt.Errorf("%s is not a method but %s", d.FullName(), kindOf(d))
	}
	if md.IsStreamingClient() {
		return nil, errors.New(method + " streams from the client (a client-streaming or bidirectional method), which the protows command does not call: it sends one request")
	}
	return md, nil
}

// methodByID returns the method whose wire id is id, if the files have
// one.
func (s *fileSchema) methodByID(id uint32) protoreflect.MethodDescriptor {
	var found protoreflect.MethodDescriptor
	s.files.RangeFiles(func(f protoreflect.FileDescriptor) bool {
		for i := range f.Services().Len() {
			sd := f.Services().Get(i)
			for j := range sd.Methods().Len() {
				md := sd.Methods().Get(j)
				if protows.MethodID("/"+string(sd.FullName())+"/"+string(md.Name())) == id {
					found = md
					return false
				}
			}
		}
		return true
	})
	return found
}
