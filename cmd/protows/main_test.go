package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	testv1 "github.com/protows/protows/gen/go/protows/test/v1"
	"github.com/protows/protows/internal/testservice"
	"github.com/protows/protows/reflection"
	"github.com/protows/protows/router"
	"github.com/protows/protows/transport"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/known/durationpb"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// server is a test server on loopback.
type server struct {
	url    string
	issuer *testservice.TokenIssuer
}

type serverConfig struct {
	reflection bool
	auth       bool
	origins    []string
}

// startServer serves the test service, with an interceptor that makes
// Echo of the text "?" answer with what the call carried: its metadata and
// the connection's X-Test handshake header.
func startServer(t *testing.T, sc serverConfig) *server {
	t.Helper()
	quiet := slog.New(slog.DiscardHandler)
	show := func(next router.HandlerFunc) router.HandlerFunc {
		return func(ctx context.Context, call *router.Call) (proto.Message, error) {
			req, ok := call.Request.(*testv1.EchoRequest)
			if !ok || req.GetText() != "?" {
				return next(ctx, call)
			}
			tc, _ := transport.CallFromContext(ctx)
			var parts []string
			for k, v := range tc.Metadata() {
				parts = append(parts, k+"="+v)
			}
			sort.Strings(parts)
			parts = append(parts, "x-test: "+tc.Conn().Metadata()["x-test"])
			return &testv1.EchoResponse{Text: strings.Join(parts, "; ")}, nil
		}
	}
	r := router.New(router.WithLogger(quiet), router.WithInterceptors(show))
	if err := testservice.Register(r); err != nil {
		t.Fatal(err)
	}
	if sc.reflection {
		if err := reflection.Register(r); err != nil {
			t.Fatal(err)
		}
	}
	s := &server{}
	cfg := transport.Config{
		Logger:         quiet,
		AllowedOrigins: sc.origins,
		ConnMetadata: func(r *http.Request) map[string]string {
			return map[string]string{"x-test": r.Header.Get("X-Test")}
		},
	}
	if sc.auth {
		var err error
		if s.issuer, err = testservice.NewTokenIssuer(); err != nil {
			t.Fatal(err)
		}
		cfg.Authenticator = s.issuer.Authenticator()
	}
	srv := transport.NewServer(r, cfg)
	hs := httptest.NewServer(srv)
	s.url = "ws" + strings.TrimPrefix(hs.URL, "http")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		hs.Close()
	})
	return s
}

func (s *server) token(t *testing.T, sub string) string {
	t.Helper()
	tok, _, err := s.issuer.Mint(sub, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// result is what a run of the command did.
type result struct {
	status         int
	stdout, stderr string
}

// runCLI runs the command in process with args, stdin and environment.
func runCLI(ctx context.Context, t *testing.T, stdin string, environ map[string]string, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	e := &env{
		stdin:  strings.NewReader(stdin),
		stdout: &stdout,
		stderr: &stderr,
		getenv: func(k string) string { return environ[k] },
		buf:    bufPath(t),
	}
	status := run(ctx, args, e)
	return result{status: status, stdout: stdout.String(), stderr: stderr.String()}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

var (
	bufOnce sync.Once
	bufBin  string
	bufErr  error
)

// bufPath returns the repository's pinned buf (bin/buf, from make tools),
// building it from the tools module when it is missing.
func bufPath(t *testing.T) string {
	t.Helper()
	bufOnce.Do(func() {
		root, err := filepath.Abs(filepath.Join("..", ".."))
		if err != nil {
			bufErr = err
			return
		}
		bufBin = filepath.Join(root, "bin", "buf")
		if _, err := os.Stat(bufBin); err == nil {
			return
		}
		bufBin = filepath.Join(os.TempDir(), fmt.Sprintf("protows-cli-test-buf-%d", os.Getpid()))
		cmd := exec.Command("go", "build", "-o", bufBin, "github.com/bufbuild/buf/cmd/buf")
		cmd.Dir = filepath.Join(root, "tools")
		if out, err := cmd.CombinedOutput(); err != nil {
			bufErr = fmt.Errorf("build buf: %w\n%s", err, out)
		}
	})
	if bufErr != nil {
		t.Fatal(bufErr)
	}
	return bufBin
}

// descriptorSet writes the descriptor set of the test service's file (and
// its import) and returns its path.
func descriptorSet(t *testing.T, files ...protoreflect.FileDescriptor) string {
	t.Helper()
	set := &descriptorpb.FileDescriptorSet{}
	for _, f := range files {
		set.File = append(set.File, protodesc.ToFileDescriptorProto(f))
	}
	b, err := proto.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "set.binpb")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func testSet(t *testing.T) string {
	return descriptorSet(t, testv1.File_protows_test_v1_test_proto, durationpb.File_google_protobuf_duration_proto)
}

// golden compares a run with testdata/golden/NAME.txt. The server's URL
// reads ws://SERVER/ws there.
func golden(t *testing.T, name, url string, args []string, r result) {
	t.Helper()
	norm := func(s string) string {
		if url != "" {
			s = strings.ReplaceAll(s, url, "ws://SERVER/ws")
		}
		// The protobuf module's errors put a space or, at random per
		// build, a no-break space after "proto:".
		return strings.ReplaceAll(s, "proto:\u00a0", "proto: ")
	}
	shown := make([]string, len(args))
	for i, a := range args {
		shown[i] = norm(a)
		if strings.HasSuffix(a, ".binpb") {
			shown[i] = "SET.binpb"
		}
	}
	got := fmt.Sprintf("$ protows %s\nstatus %d\n--- stdout\n%s--- stderr\n%s",
		strings.Join(shown, " "), r.status, norm(r.stdout), norm(r.stderr))
	path := filepath.Join("testdata", "golden", name+".txt")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test ./cmd/protows -update writes it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from %s:\n--- got\n%s\n--- want\n%s", name, path, got, want)
	}
}

// TestAgainstReflection runs each command against a server that serves
// reflection, in both codecs: the output must not depend on the codec.
func TestAgainstReflection(t *testing.T) {
	s := startServer(t, serverConfig{reflection: true})
	tests := []struct {
		name  string
		stdin string
		args  []string
	}{
		{"list", "", []string{"list", "{URL}"}},
		{"list_service", "", []string{"list", "{URL}", "protows.test.v1.TestService"}},
		{"list_not_a_service", "", []string{"list", "{URL}", "protows.test.v1.EchoRequest"}},
		{"describe", "", []string{"describe", "{URL}"}},
		{"describe_method", "", []string{"describe", "{URL}", "/protows.test.v1.TestService/Count"}},
		{"describe_message", "", []string{"describe", "{URL}", "protows.test.v1.CountRequest"}},
		{"describe_field", "", []string{"describe", "{URL}", "protows.test.v1.CountRequest.interval"}},
		{"describe_dependency", "", []string{"describe", "{URL}", "google.protobuf.Duration"}},
		// Linked into the server, not served: not revealed.
		{"describe_not_served", "", []string{"describe", "{URL}", "protows.v1.Envelope"}},
		{"call", "", []string{"call", "{URL}", "/protows.test.v1.TestService/Echo", `{"text":"héllo <&>","padding":"AAE="}`}},
		{"call_dotted", "", []string{"call", "{URL}", "protows.test.v1.TestService.Echo", `{"text":"a"}`}},
		{"call_default_request", "", []string{"call", "{URL}", "/protows.test.v1.TestService/Echo"}},
		{"call_stdin", `{"text":"from stdin"}`, []string{"call", "{URL}", "/protows.test.v1.TestService/Echo", "-"}},
		{"call_flags_last", "", []string{"call", "{URL}", "/protows.test.v1.TestService/Echo", `{"text":"?"}`, "--metadata", "b=2", "--metadata", "a=1", "--header", "X-Test: yes"}},
		{"call_error", "", []string{"call", "{URL}", "/protows.test.v1.TestService/Fail", `{"code":5,"message":"no such room"}`}},
		{"call_unknown_method", "", []string{"call", "{URL}", "/protows.test.v1.TestService/Nope"}},
		{"call_bad_request", "", []string{"call", "{URL}", "/protows.test.v1.TestService/Echo", `{"txt":"typo"}`}},
		{"call_stream_method", "", []string{"call", "{URL}", "/protows.test.v1.TestService/Count"}},
		{"listen", "", []string{"listen", "{URL}", "/protows.test.v1.TestService/Count", `{"count":3}`}},
		{"listen_error", "", []string{"listen", "{URL}", "/protows.test.v1.TestService/Count", `{"count":2,"failCode":9}`}},
		{"listen_count", "", []string{"listen", "--count", "2", "{URL}", "/protows.test.v1.TestService/Count", `{"interval":"0.005s"}`}},
		{"listen_unary_method", "", []string{"listen", "{URL}", "/protows.test.v1.TestService/Echo"}},
	}
	for _, codecName := range []string{"proto", "json"} {
		t.Run(codecName, func(t *testing.T) {
			for _, tt := range tests {
				args := []string{tt.args[0], "--codec", codecName}
				for _, a := range tt.args[1:] {
					args = append(args, strings.ReplaceAll(a, "{URL}", s.url))
				}
				r := runCLI(testCtx(t), t, tt.stdin, nil, args...)
				// The golden file shows the command without --codec.
				shown := append([]string{args[0]}, args[3:]...)
				golden(t, tt.name, s.url, shown, r)
			}
		})
	}
}

// TestListenDuration stops listening after --duration, a success.
func TestListenDuration(t *testing.T) {
	s := startServer(t, serverConfig{reflection: true})
	start := time.Now()
	r := runCLI(testCtx(t), t, "", nil, "listen", "--duration", "300ms", s.url,
		"/protows.test.v1.TestService/Count", `{"interval":"0.01s"}`)
	if r.status != exitOK || r.stderr != "" {
		t.Fatalf("status %d, stderr %q", r.status, r.stderr)
	}
	if el := time.Since(start); el < 300*time.Millisecond || el > 5*time.Second {
		t.Errorf("listened %v, want about 300ms", el)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) < 3 || lines[0] != `{"seq":0,"message":{"n":1}}` || lines[2] != `{"seq":0,"message":{"n":3}}` {
		t.Errorf("output %q", r.stdout)
	}
}

// TestListenInterrupted cancels the command's context, as Ctrl-C does:
// the stream is cancelled and the command succeeds.
func TestListenInterrupted(t *testing.T) {
	s := startServer(t, serverConfig{reflection: true})
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	out := &signalWriter{first: make(chan struct{})}
	var stderr bytes.Buffer
	e := &env{stdin: strings.NewReader(""), stdout: out, stderr: &stderr, getenv: func(string) string { return "" }}
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"listen", s.url, "/protows.test.v1.TestService/Count", `{"interval":"0.01s"}`}, e)
	}()
	select {
	case <-out.first:
	case <-time.After(10 * time.Second):
		t.Fatal("no message")
	}
	cancel()
	select {
	case status := <-done:
		if status != exitOK || stderr.Len() != 0 {
			t.Errorf("status %d, stderr %q", status, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("listen did not stop")
	}
	if !strings.HasPrefix(out.String(), `{"seq":0,"message":{"n":1}}`+"\n") {
		t.Errorf("output %q", out.String())
	}
}

// signalWriter closes first on its first write.
type signalWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	first chan struct{}
}

func (w *signalWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.buf.Len() == 0 {
		close(w.first)
	}
	return w.buf.Write(p)
}

func (w *signalWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// TestWithoutReflection: the commands say that the server has no
// reflection, and work with descriptors from files.
func TestWithoutReflection(t *testing.T) {
	s := startServer(t, serverConfig{})
	set := testSet(t)
	protoFile := filepath.Join("..", "..", "proto", "protows", "test", "v1", "test.proto")
	tests := []struct {
		name string
		args []string
	}{
		{"noreflection_list", []string{"list", s.url}},
		{"noreflection_call", []string{"call", s.url, "/protows.test.v1.TestService/Echo", `{"text":"a"}`}},
		{"set_list", []string{"list", "--descriptor-set", set}},
		{"set_list_url", []string{"list", s.url, "--descriptor-set", set}},
		{"set_describe", []string{"describe", "--descriptor-set", set, "protows.test.v1.TestService"}},
		{"set_call", []string{"call", "--descriptor-set", set, s.url, "/protows.test.v1.TestService/Echo", `{"text":"from a set"}`}},
		{"set_listen", []string{"listen", "--descriptor-set", set, s.url, "/protows.test.v1.TestService/Count", `{"count":2}`}},
		{"set_unknown_method", []string{"call", "--descriptor-set", set, s.url, "/protows.test.v1.TestService/Nope"}},
		// buf build keeps the comments of the source.
		{"proto_describe", []string{"describe", "--proto", protoFile, "protows.test.v1.CountRequest"}},
		{"proto_call", []string{"call", "--proto", protoFile, s.url, "/protows.test.v1.TestService/Echo", `{"text":"from a .proto"}`}},
	}
	for _, codecName := range []string{"proto", "json"} {
		t.Run(codecName, func(t *testing.T) {
			for _, tt := range tests {
				args := append([]string{tt.args[0], "--codec", codecName}, tt.args[1:]...)
				r := runCLI(testCtx(t), t, "", nil, args...)
				golden(t, tt.name, s.url, append([]string{args[0]}, args[3:]...), r)
			}
		})
	}
}

// TestDescriptorSetWithoutImports: a set built without its imports works
// when they are well-known types (linked into the command), and says what
// is missing otherwise.
func TestDescriptorSetWithoutImports(t *testing.T) {
	s := startServer(t, serverConfig{})
	set := descriptorSet(t, testv1.File_protows_test_v1_test_proto)
	r := runCLI(testCtx(t), t, "", nil, "call", "--descriptor-set", set, s.url,
		"/protows.test.v1.TestService/Sleep", `{"delay":"0.001s"}`)
	if r.status != exitOK || !strings.Contains(r.stdout, `"slept"`) {
		t.Errorf("status %d, stdout %q, stderr %q", r.status, r.stdout, r.stderr)
	}

	lonely := &descriptorpb.FileDescriptorProto{
		Name:       proto.String("lonely.proto"),
		Package:    proto.String("lonely"),
		Dependency: []string{"elsewhere.proto"},
		Syntax:     proto.String("proto3"),
	}
	b, _ := proto.Marshal(&descriptorpb.FileDescriptorSet{File: []*descriptorpb.FileDescriptorProto{lonely}})
	path := filepath.Join(t.TempDir(), "lonely.binpb")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	r = runCLI(testCtx(t), t, "", nil, "list", "--descriptor-set", path)
	want := "protows: lonely.proto imports elsewhere.proto, which the descriptors lack (build the set with its imports: buf build does, protoc needs --include_imports)\n"
	if r.status != exitFailure || r.stderr != want {
		t.Errorf("status %d, stderr %q, want %q", r.status, r.stderr, want)
	}
	if r := runCLI(testCtx(t), t, "", nil, "list", "--descriptor-set", filepath.Join(t.TempDir(), "none.binpb")); r.status != exitFailure {
		t.Errorf("missing file: status %d", r.status)
	}
	if r := runCLI(testCtx(t), t, "", nil, "list", "--descriptor-set", "main.go"); r.status != exitFailure || !strings.Contains(r.stderr, "not a FileDescriptorSet") {
		t.Errorf("not a set: status %d, stderr %q", r.status, r.stderr)
	}
}

// TestAuthentication: --token and $PROTOWS_TOKEN authenticate in the
// handshake; without them the server refuses.
func TestAuthentication(t *testing.T) {
	s := startServer(t, serverConfig{reflection: true, auth: true})
	whoami := []string{s.url, "/protows.test.v1.TestService/Whoami"}
	for _, codecName := range []string{"proto", "json"} {
		r := runCLI(testCtx(t), t, "", nil, append([]string{"call", "--codec", codecName}, whoami...)...)
		if r.status != exitCode+16 || !strings.HasPrefix(r.stderr, "unauthenticated: ") {
			t.Errorf("%s, no token: status %d, stderr %q", codecName, r.status, r.stderr)
		}
		r = runCLI(testCtx(t), t, "", nil, append([]string{"call", "--codec", codecName, "--token", s.token(t, "alice")}, whoami...)...)
		// The reply names the subprotocol: --codec chose it.
		sub := fmt.Sprintf("\"subprotocol\": \"protows.v1.%s\"", codecName)
		if r.status != exitOK || !strings.Contains(r.stdout, "\"subject\": \"alice\"") || !strings.Contains(r.stdout, sub) {
			t.Errorf("%s, --token: status %d, stdout %q, stderr %q", codecName, r.status, r.stdout, r.stderr)
		}
		env := map[string]string{"PROTOWS_TOKEN": s.token(t, "bob")}
		r = runCLI(testCtx(t), t, "", env, append([]string{"call", "--codec", codecName}, whoami...)...)
		if r.status != exitOK || !strings.Contains(r.stdout, "\"subject\": \"bob\"") || !strings.Contains(r.stdout, sub) {
			t.Errorf("%s, $PROTOWS_TOKEN: status %d, stdout %q, stderr %q", codecName, r.status, r.stdout, r.stderr)
		}
		r = runCLI(testCtx(t), t, "", nil, "list", "--codec", codecName, "--token", "not-a-jwt", s.url)
		if r.status != exitCode+16 {
			t.Errorf("%s, bad token: status %d, stderr %q", codecName, r.status, r.stderr)
		}
	}
}

// TestOrigin: --origin sets the handshake's Origin, which the server
// checks against its allowlist.
func TestOrigin(t *testing.T) {
	s := startServer(t, serverConfig{reflection: true, origins: []string{"https://app.example.com"}})
	r := runCLI(testCtx(t), t, "", nil, "list", "--origin", "https://app.example.com", s.url)
	if r.status != exitOK || !strings.Contains(r.stdout, "protows.test.v1.TestService\n") {
		t.Errorf("allowed origin: status %d, stdout %q, stderr %q", r.status, r.stdout, r.stderr)
	}
	r = runCLI(testCtx(t), t, "", nil, "list", "--origin", "https://evil.example.net", s.url)
	if r.status != exitCode+7 || !strings.HasPrefix(r.stderr, "permission_denied: ") {
		t.Errorf("refused origin: status %d, stderr %q", r.status, r.stderr)
	}
}

// TestUnreachable: a server that is not there is unavailable (78).
func TestUnreachable(t *testing.T) {
	hs := httptest.NewServer(nil)
	url := "ws" + strings.TrimPrefix(hs.URL, "http")
	hs.Close()
	r := runCLI(testCtx(t), t, "", nil, "call", url, "/a.B/C")
	if r.status != exitCode+14 || !strings.HasPrefix(r.stderr, "unavailable: ") {
		t.Errorf("status %d, stderr %q", r.status, r.stderr)
	}
	// With descriptors from files, list and describe do not need it.
	r = runCLI(testCtx(t), t, "", nil, "describe", url, "--descriptor-set", testSet(t), "protows.test.v1.EchoRequest")
	if r.status != exitOK || !strings.HasPrefix(r.stdout, "protows.test.v1.EchoRequest is a message:\n") {
		t.Errorf("describe with a set: status %d, stdout %q, stderr %q", r.status, r.stdout, r.stderr)
	}
}

// TestUsage: every command has --help (exit 0, on stdout), and usage
// errors exit 2 with a message on stderr.
func TestUsage(t *testing.T) {
	ctx := testCtx(t)
	for _, c := range commands() {
		for _, help := range [][]string{{c.name, "--help"}, {c.name, "-help"}, {c.name, "-h"}, {"help", c.name}} {
			r := runCLI(ctx, t, "", nil, help...)
			if r.status != exitOK || r.stderr != "" || !strings.HasPrefix(r.stdout, "usage: protows "+c.name+" [flags] "+c.args+"\n") ||
				!strings.Contains(r.stdout, "\nflags:\n") {
				t.Errorf("%q: status %d, stdout %q, stderr %q", help, r.status, r.stdout, r.stderr)
			}
		}
	}
	for _, help := range [][]string{{"help"}, {"--help"}, {"-h"}} {
		r := runCLI(ctx, t, "", nil, help...)
		if r.status != exitOK || !strings.Contains(r.stdout, "commands:\n") {
			t.Errorf("%q: status %d, stdout %q", help, r.status, r.stdout)
		}
	}
	usageErrors := []struct {
		args []string
		want string // in stderr
	}{
		{nil, "usage: protows COMMAND"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"help", "frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"call", "--nope", "ws://h/ws", "/a.B/C"}, "flag provided but not defined: -nope"},
		{[]string{"call", "ws://h/ws"}, "want URL METHOD [REQUEST], got 1 arguments"},
		{[]string{"call", "http://h/ws", "/a.B/C"}, "want ws://HOST/PATH or wss://HOST/PATH"},
		{[]string{"call", "ws://h/ws", "Method"}, `"Method" is not a method name`},
		{[]string{"call", "--codec", "xml", "ws://h/ws", "/a.B/C"}, "--codec must be proto or json"},
		{[]string{"call", "--header", "Authorization: Bearer x", "ws://h/ws", "/a.B/C"}, "use --token"},
		{[]string{"call", "--header", "Origin: x", "ws://h/ws", "/a.B/C"}, "use --origin"},
		{[]string{"call", "--header", "no colon", "ws://h/ws", "/a.B/C"}, `want "Name: value"`},
		{[]string{"call", "--metadata", "novalue", "ws://h/ws", "/a.B/C"}, "want key=value"},
		{[]string{"listen", "--count", "-1", "ws://h/ws", "/a.B/C"}, "must not be negative"},
		{[]string{"list"}, "want a ws:// or wss:// URL, or --descriptor-set or --proto"},
		{[]string{"list", "ws://h/ws", "a.B", "c.D"}, "got 3 arguments"},
		{[]string{"describe", "protows.test.v1.TestService"}, "want a ws:// or wss:// URL"},
		{[]string{"decode", "a", "b"}, "want at most one FRAME"},
		{[]string{"decode", "--input", "morse", "a"}, "--input must be"},
		{[]string{"decode", "--codec", "xml", "a"}, "--codec must be"},
		{[]string{"decode", "--method", "/a.B/C", "0a00"}, "--method needs the descriptors"},
		{[]string{"decode", "--input", "raw", "0a00"}, "--input raw reads standard input"},
	}
	for _, tt := range usageErrors {
		r := runCLI(ctx, t, "", nil, tt.args...)
		if r.status != exitUsage || !strings.Contains(r.stderr, tt.want) || r.stdout != "" {
			t.Errorf("%q: status %d, stdout %q, stderr %q, want status 2 and %q", tt.args, r.status, r.stdout, r.stderr, tt.want)
		}
	}
}

func TestMethodName(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"/a.B/C", "/a.B/C", true},
		{"a.B/C", "/a.B/C", true},
		{"a.B.C", "/a.B/C", true},
		{"B.C", "/B/C", true},
		{"C", "", false},
		{"a.B.", "", false},
		{"/a.B/", "", false},
		{"//C", "", false},
		{"/a/B/C", "", false},
	}
	for _, tt := range tests {
		got, ok := methodName(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("methodName(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

// TestParseArgs: flags anywhere, "--" ends them.
func TestParseArgs(t *testing.T) {
	tests := []struct {
		args      []string
		pos       []string
		codec     string
		metadatas int
	}{
		{[]string{"u", "m"}, []string{"u", "m"}, "", 0},
		{[]string{"--codec", "json", "u", "m"}, []string{"u", "m"}, "json", 0},
		{[]string{"u", "--codec=json", "m", "--metadata", "a=1"}, []string{"u", "m"}, "json", 1},
		{[]string{"u", "--", "--codec", "-"}, []string{"u", "--codec", "-"}, "", 0},
		{[]string{"u", "-", "m"}, []string{"u", "-", "m"}, "", 0},
	}
	for _, tt := range tests {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		c := fs.String("codec", "", "")
		var md listFlag
		fs.Var(&md, "metadata", "")
		pos, err := parseArgs(fs, tt.args)
		if err != nil || strings.Join(pos, "|") != strings.Join(tt.pos, "|") || *c != tt.codec || len(md) != tt.metadatas {
			t.Errorf("parseArgs(%q) = %q, %v (codec %q, %d metadata)", tt.args, pos, err, *c, len(md))
		}
	}
}
