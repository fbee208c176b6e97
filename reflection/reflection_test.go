package reflection_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	protows "github.com/protows/protows"
	"github.com/protows/protows/client"
	"github.com/protows/protows/codec"
	reflectionv1 "github.com/protows/protows/gen/go/protows/reflection/v1"
	testv1 "github.com/protows/protows/gen/go/protows/test/v1"
	"github.com/protows/protows/internal/testservice"
	"github.com/protows/protows/reflection"
	"github.com/protows/protows/router"
	"github.com/protows/protows/transport"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// serve runs r on a loopback server until the test ends and returns a
// client of the reflection service connected with codec c.
func serve(t *testing.T, r *router.Router, c codec.Codec) *reflectionv1.ReflectionServiceClient {
	t.Helper()
	quiet := slog.New(slog.DiscardHandler)
	srv := transport.NewServer(r, transport.Config{Logger: quiet})
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		hs.Config.SetKeepAlivesEnabled(false)
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		hs.Close()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cl, err := client.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http"), client.WithCodec(c))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	return reflectionv1.NewReflectionServiceClient(cl)
}

func testRouter(t *testing.T, opts ...reflection.Option) *router.Router {
	t.Helper()
	r := router.New(router.WithLogger(slog.New(slog.DiscardHandler)))
	if err := testservice.Register(r); err != nil {
		t.Fatal(err)
	}
	if err := reflection.Register(r, opts...); err != nil {
		t.Fatal(err)
	}
	return r
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestListServices(t *testing.T) {
	for _, c := range []codec.Codec{codec.Proto(), codec.JSON()} {
		t.Run(c.Name(), func(t *testing.T) {
			r := testRouter(t)
			rc := serve(t, r, c)
			res, err := rc.ListServices(ctx(t), &reflectionv1.ListServicesRequest{})
			if err != nil {
				t.Fatal(err)
			}
			want := []string{"protows.reflection.v1.ReflectionService", "protows.test.v1.TestService"}
			if !slices.Equal(res.GetServices(), want) {
				t.Errorf("services %q, want %q", res.GetServices(), want)
			}
			// A method registered after the service was is listed too.
			err = router.HandleUnary(r, "/late.v1.LateService/Get",
				func(context.Context, *testv1.EchoRequest) (*testv1.EchoResponse, error) { return nil, nil })
			if err != nil {
				t.Fatal(err)
			}
			res, err = rc.ListServices(ctx(t), &reflectionv1.ListServicesRequest{})
			if err != nil {
				t.Fatal(err)
			}
			want = []string{"late.v1.LateService", "protows.reflection.v1.ReflectionService", "protows.test.v1.TestService"}
			if !slices.Equal(res.GetServices(), want) {
				t.Errorf("after a late registration: services %q, want %q", res.GetServices(), want)
			}
		})
	}
}

// files decodes a FileContainingSymbol reply into a registry, which fails
// unless every dependency is in it.
func files(t *testing.T, res *reflectionv1.FileContainingSymbolResponse) (*protoregistry.Files, []string) {
	t.Helper()
	set := &descriptorpb.FileDescriptorSet{}
	var names []string
	for _, b := range res.GetFileDescriptorProtos() {
		fdp := &descriptorpb.FileDescriptorProto{}
		if err := proto.Unmarshal(b, fdp); err != nil {
			t.Fatal(err)
		}
		set.File = append(set.File, fdp)
		names = append(names, fdp.GetName())
	}
	reg, err := protodesc.NewFiles(set)
	if err != nil {
		t.Fatalf("the files are not a complete set: %v", err)
	}
	return reg, names
}

func TestFileContainingSymbol(t *testing.T) {
	testFiles := []string{"protows/test/v1/test.proto", "google/protobuf/duration.proto"}
	tests := []struct {
		symbol string
		files  []string
		kind   string
	}{
		{"protows.test.v1.TestService", testFiles, "service"},
		{".protows.test.v1.TestService", testFiles, "service"},
		{"protows.test.v1.TestService.Count", testFiles, "method"},
		{"protows.test.v1.CountRequest", testFiles, "message"},
		{"protows.test.v1.CountRequest.interval", testFiles, "field"},
		// A dependency of a served file is served.
		{"google.protobuf.Duration", []string{"google/protobuf/duration.proto"}, "message"},
		{"protows.reflection.v1.ListServicesResponse", []string{"protows/reflection/v1/reflection.proto"}, "message"},
	}
	for _, c := range []codec.Codec{codec.Proto(), codec.JSON()} {
		t.Run(c.Name(), func(t *testing.T) {
			rc := serve(t, testRouter(t), c)
			for _, tt := range tests {
				res, err := rc.FileContainingSymbol(ctx(t), &reflectionv1.FileContainingSymbolRequest{Symbol: tt.symbol})
				if err != nil {
					t.Fatalf("%s: %v", tt.symbol, err)
				}
				reg, names := files(t, res)
				if !slices.Equal(names, tt.files) {
					t.Errorf("%s: files %q, want %q", tt.symbol, names, tt.files)
				}
				d, err := reg.FindDescriptorByName(protoreflect.FullName(strings.TrimPrefix(tt.symbol, ".")))
				if err != nil {
					t.Fatalf("%s: not in the files sent: %v", tt.symbol, err)
				}
				var kind string
				switch d.(type) {
				case protoreflect.ServiceDescriptor:
					kind = "service"
				case protoreflect.MethodDescriptor:
					kind = "method"
				case protoreflect.MessageDescriptor:
					kind = "message"
				case protoreflect.FieldDescriptor:
					kind = "field"
				}
				if kind != tt.kind {
					t.Errorf("%s is a %s, want a %s", tt.symbol, kind, tt.kind)
				}
			}
			// The descriptor sent is the one the server was built with.
			res, err := rc.FileContainingSymbol(ctx(t), &reflectionv1.FileContainingSymbolRequest{Symbol: "protows.test.v1.EchoRequest"})
			if err != nil {
				t.Fatal(err)
			}
			got := &descriptorpb.FileDescriptorProto{}
			if err := proto.Unmarshal(res.GetFileDescriptorProtos()[0], got); err != nil {
				t.Fatal(err)
			}
			if want := protodesc.ToFileDescriptorProto(testv1.File_protows_test_v1_test_proto); !proto.Equal(got, want) {
				t.Errorf("descriptor differs from the generated one:\n got %v\nwant %v", got, want)
			}
		})
	}
}

func TestFileContainingSymbolRefusals(t *testing.T) {
	r := testRouter(t)
	// Served, but its descriptor is nowhere: listed, not described.
	err := router.HandleUnary(r, "/hand.v1.HandService/Get",
		func(context.Context, *testv1.EchoRequest) (*testv1.EchoResponse, error) { return nil, nil })
	if err != nil {
		t.Fatal(err)
	}
	rc := serve(t, r, codec.Proto())
	tests := []struct {
		symbol string
		code   protows.Code
	}{
		{"protows.test.v1.NoSuchMessage", protows.CodeNotFound},
		// Linked into the program (the transport uses it) but not served:
		// not revealed, and not told apart from an unknown symbol.
		{"protows.v1.Envelope", protows.CodeNotFound},
		{"protows.bench.v1.BenchService", protows.CodeNotFound},
		{"hand.v1.HandService", protows.CodeNotFound},
		{"", protows.CodeInvalidArgument},
		{"protows..test", protows.CodeInvalidArgument},
		{"/protows.test.v1.TestService/Echo", protows.CodeInvalidArgument},
	}
	for _, tt := range tests {
		_, err := rc.FileContainingSymbol(ctx(t), &reflectionv1.FileContainingSymbolRequest{Symbol: tt.symbol})
		if protows.CodeOf(err) != tt.code {
			t.Errorf("%q: %v, want code %s", tt.symbol, err, tt.code)
		}
	}
	_, err = rc.FileContainingSymbol(ctx(t), &reflectionv1.FileContainingSymbolRequest{Symbol: "protows.v1.Envelope"})
	if want := `symbol "protows.v1.Envelope" not found`; protows.AsError(err).Message() != want {
		t.Errorf("message %q, want %q", protows.AsError(err).Message(), want)
	}
}

func TestWithResolver(t *testing.T) {
	// An empty registry: nothing can be described, services are still
	// listed.
	rc := serve(t, testRouter(t, reflection.WithResolver(new(protoregistry.Files))), codec.Proto())
	res, err := rc.ListServices(ctx(t), &reflectionv1.ListServicesRequest{})
	if err != nil || len(res.GetServices()) != 2 {
		t.Fatalf("ListServices: %v, %v", res, err)
	}
	_, err = rc.FileContainingSymbol(ctx(t), &reflectionv1.FileContainingSymbolRequest{Symbol: "protows.test.v1.TestService"})
	if protows.CodeOf(err) != protows.CodeNotFound {
		t.Errorf("FileContainingSymbol with an empty resolver: %v, want not_found", err)
	}
}

func TestOffByDefault(t *testing.T) {
	r := router.New()
	if err := testservice.Register(r); err != nil {
		t.Fatal(err)
	}
	rc := serve(t, r, codec.JSON())
	_, err := rc.ListServices(ctx(t), &reflectionv1.ListServicesRequest{})
	if protows.CodeOf(err) != protows.CodeUnimplemented {
		t.Errorf("ListServices on a server without reflection: %v, want unimplemented", err)
	}
}

func TestRegisterTwice(t *testing.T) {
	r := router.New()
	if err := reflection.Register(r); err != nil {
		t.Fatal(err)
	}
	if err := reflection.Register(r); !errors.Is(err, router.ErrDuplicate) {
		t.Errorf("second Register: %v, want router.ErrDuplicate", err)
	}
}

// TestProtocolDocument: docs/PROTOCOL.md, section 13, gives the methods'
// names and ids as they are.
func TestProtocolDocument(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "PROTOCOL.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{reflection.ListServicesMethod, reflection.FileContainingSymbolMethod} {
		row := fmt.Sprintf("| `%s` | `0x%08x` |", m, protows.MethodID(m))
		if !strings.Contains(string(doc), row) {
			t.Errorf("PROTOCOL.md lacks the row %q", row)
		}
	}
}
