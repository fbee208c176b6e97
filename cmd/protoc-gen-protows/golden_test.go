package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/protows/protows"
	"github.com/protows/protows/internal/tsbuild"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden from testdata/proto")

// The golden tests run the plugins the way users do: buf generate with local
// plugins, on the .proto files in testdata/proto, with the output of
// protoc-gen-go and protoc-gen-es beside ours so that it compiles and
// type-checks. The Go plugin is built from this package's source for every
// run; the TypeScript plugin runs from its source, which needs no build.

// plugin is one entry of a buf.gen.yaml.
type plugin struct {
	Local []string `json:"local"`
	Out   string   `json:"out"`
	Opt   []string `json:"opt,omitempty"`
}

// toolSet locates or builds every program the tests run.
type toolSet struct {
	root     string // the repository
	buf      string
	protocGo string
	protows  string // this plugin, freshly built
	protocES string
	esScript string // protoc-gen-protows-es's bin script
	node     string
	tsc      string
}

var (
	toolsOnce sync.Once
	toolsVal  toolSet
	toolsErr  error
	toolsDir  string
)

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if toolsDir != "" {
		os.RemoveAll(toolsDir)
	}
	os.Exit(code)
}

// tools returns the programs, building the missing ones once per test run.
// buf and protoc-gen-go come from bin/ when `make tools` put them there, and
// are built from tools/go.mod otherwise.
func tools(t *testing.T) toolSet {
	t.Helper()
	toolsOnce.Do(func() { toolsVal, toolsErr = findTools() })
	if toolsErr != nil {
		t.Fatal(toolsErr)
	}
	return toolsVal
}

func findTools() (toolSet, error) {
	var ts toolSet
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		return ts, err
	}
	ts.root = root
	if toolsDir, err = os.MkdirTemp("", "protoc-gen-protows-test-"); err != nil {
		return ts, err
	}
	goBuild := func(dir, pkg, out string) (string, error) {
		path := filepath.Join(toolsDir, out)
		cmd := exec.Command("go", "build", "-o", path, pkg)
		cmd.Dir = dir
		if b, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
		}
		return path, nil
	}
	binOr := func(name, pkg string) (string, error) {
		if p := filepath.Join(root, "bin", name); fileExists(p) {
			return p, nil
		}
		return goBuild(filepath.Join(root, "tools"), pkg, name)
	}
	if ts.buf, err = binOr("buf", "github.com/bufbuild/buf/cmd/buf"); err != nil {
		return ts, err
	}
	if ts.protocGo, err = binOr("protoc-gen-go", "google.golang.org/protobuf/cmd/protoc-gen-go"); err != nil {
		return ts, err
	}
	if ts.protows, err = goBuild(".", ".", "protoc-gen-protows"); err != nil {
		return ts, err
	}
	if ts.node, err = exec.LookPath("node"); err != nil {
		return ts, fmt.Errorf("the TypeScript plugin needs Node.js: %w", err)
	}
	ts.protocES = filepath.Join(root, "node_modules", ".bin", "protoc-gen-es")
	ts.tsc = filepath.Join(root, "node_modules", ".bin", "tsc")
	for _, p := range []string{ts.protocES, ts.tsc} {
		if !fileExists(p) {
			return ts, fmt.Errorf("%s is missing: run npm ci (make deps)", p)
		}
	}
	ts.esScript = filepath.Join(root, "cmd", "protoc-gen-protows-es", "bin", "protoc-gen-protows-es.js")
	return ts, nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// goPlugin and esPlugin are the two plugins under test with the options
// buf.gen.yaml gives them; extra options are appended.
func (ts toolSet) goPlugin(extra ...string) plugin {
	return plugin{Local: []string{ts.protows}, Out: "go", Opt: append([]string{"paths=source_relative"}, extra...)}
}

func (ts toolSet) esPlugin(extra ...string) plugin {
	return plugin{Local: []string{ts.node, ts.esScript}, Out: "ts", Opt: append([]string{"target=ts", "import_extension=js"}, extra...)}
}

// generate runs buf generate on the module in dir (paths limits it to some
// files) and returns the output directory, or buf's error output.
func (ts toolSet) generate(t *testing.T, dir string, paths []string, plugins ...plugin) (string, error) {
	t.Helper()
	tmp := t.TempDir()
	template, err := json.Marshal(map[string]any{"version": "v2", "plugins": plugins})
	if err != nil {
		t.Fatal(err)
	}
	// A YAML file, written as JSON, which YAML includes.
	templatePath := filepath.Join(tmp, "buf.gen.yaml")
	if err := os.WriteFile(templatePath, template, 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(tmp, "out")
	args := []string{"generate", "--template", templatePath, "-o", out}
	for _, p := range paths {
		args = append(args, "--path", p)
	}
	cmd := exec.Command(ts.buf, append(args, ".")...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("buf generate: %w: %s", err, stderr.String())
	}
	return out, nil
}

func TestGolden(t *testing.T) {
	ts := tools(t)
	out, err := ts.generate(t, filepath.Join("testdata", "proto"), nil,
		plugin{Local: []string{ts.protocGo}, Out: "go", Opt: []string{"paths=source_relative"}},
		ts.goPlugin(),
		plugin{Local: []string{ts.protocES}, Out: "ts", Opt: []string{"target=ts", "import_extension=js"}},
		ts.esPlugin(),
	)
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "golden")
	if *update {
		if err := os.RemoveAll(golden); err != nil {
			t.Fatal(err)
		}
		if err := os.CopyFS(golden, os.DirFS(out)); err != nil {
			t.Fatal(err)
		}
	}
	got, want := readTree(t, out), readTree(t, golden)
	for name, w := range want {
		g, ok := got[name]
		switch {
		case !ok:
			t.Errorf("%s: in testdata/golden but not generated", name)
		case !bytes.Equal(g, w):
			t.Errorf("%s differs from testdata/golden (run go test -update to accept): %s", name, firstDiff(g, w))
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("%s: generated but not in testdata/golden (run go test -update to accept)", name)
		}
	}
	// Files without services get no output from either plugin.
	for _, name := range []string{"go/plain/v1/plain_protows.pb.go", "ts/plain/v1/plain_protows.ts"} {
		if _, ok := got[name]; ok {
			t.Errorf("%s generated for a file without services", name)
		}
	}
	if len(want) == 0 {
		t.Error("testdata/golden is empty")
	}
}

// TestGoldenStreams generates the Go and TypeScript code of a service with
// a method of every kind (testdata/streams) and compares it with
// testdata/golden-streams.
func TestGoldenStreams(t *testing.T) {
	ts := tools(t)
	out, err := ts.generate(t, filepath.Join("testdata", "streams"), nil,
		plugin{Local: []string{ts.protocGo}, Out: "go", Opt: []string{"paths=source_relative"}},
		ts.goPlugin(),
		plugin{Local: []string{ts.protocES}, Out: "ts", Opt: []string{"target=ts", "import_extension=js"}},
		ts.esPlugin(),
	)
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "golden-streams")
	if *update {
		if err := os.RemoveAll(golden); err != nil {
			t.Fatal(err)
		}
		if err := os.CopyFS(golden, os.DirFS(out)); err != nil {
			t.Fatal(err)
		}
	}
	got, want := readTree(t, out), readTree(t, golden)
	if len(want) == 0 {
		t.Fatal("testdata/golden-streams is empty")
	}
	for name, w := range want {
		if g, ok := got[name]; !ok || !bytes.Equal(g, w) {
			t.Errorf("%s differs from testdata/golden-streams (run go test -update to accept): %s", name, firstDiff(g, w))
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("%s: generated but not in testdata/golden-streams (run go test -update to accept)", name)
		}
	}
	code := string(want["go/streams/v1/streams_protows.pb.go"])
	for _, s := range []string{
		"Sum(context.Context, router.ClientStream[*Number]) (*Total, error)",
		"Running(context.Context, router.BidiStream[*Number, *Total]) error",
		"router.HandleClientStream(r, TallySumMethod, h.Sum, opts...)",
		"router.HandleBidiStream(r, TallyRunningMethod, h.Running, opts...)",
		"client.CallClientStream[Number, Total](ctx, c.client, TallySumMethod, opts...)",
		"client.CallBidiStream[Number, Total](ctx, c.client, TallyRunningMethod, opts...)",
	} {
		if !strings.Contains(code, s) {
			t.Errorf("the generated code lacks %q", s)
		}
	}
	// A stream from the client is never retried, idempotent or not.
	if strings.Contains(code, "client.Idempotent") {
		t.Error("the generated client passes Idempotent for a client stream")
	}
	tsCode := string(want["ts/streams/v1/streams_protows.ts"])
	for _, s := range []string{
		"add(request: MessageInitShape<typeof NumberSchema>, options?: CallOptions): Promise<Total> {",
		"count(request: MessageInitShape<typeof NumberSchema>, options?: StreamOptions): AsyncIterable<Number> {",
		"sum(requests: AsyncIterable<MessageInitShape<typeof NumberSchema>> | Iterable<MessageInitShape<typeof NumberSchema>>, options?: ClientStreamOptions): Promise<Total> {",
		"return this.#client.clientStream(Tally.method.sum, requests, options);",
		"running(options?: ClientStreamOptions): BidiStream<typeof NumberSchema, typeof TotalSchema> {",
		"return this.#client.bidiStream(Tally.method.running, options);",
	} {
		if !strings.Contains(tsCode, s) {
			t.Errorf("the generated TypeScript lacks %q", s)
		}
	}
	if strings.Contains(tsCode, "idempotent: true") {
		t.Error("the generated TypeScript client passes idempotent for a client stream")
	}
}

// readTree returns the files under dir by slash-separated relative path.
func readTree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := make(map[string][]byte)
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(path)
		files[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return files
}

// firstDiff describes the first line where got and want differ.
func firstDiff(got, want []byte) string {
	g, w := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	for i := 0; i < len(g) || i < len(w); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl || i >= len(g) || i >= len(w) {
			return fmt.Sprintf("line %d: got %q, want %q", i+1, gl, wl)
		}
	}
	return "same lines"
}

// TestGoldenGoVets compiles and vets the golden Go packages: generated code
// that compiles against the router and client of this checkout.
func TestGoldenGoVets(t *testing.T) {
	cmd := exec.Command("go", "vet", "./testdata/golden/go/...", "./testdata/golden-streams/go/...")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go vet of the golden Go code: %v\n%s", err, b)
	}
}

// TestTypeScriptTypeChecks type-checks, under --strict and more, the golden
// TypeScript (with protoc-gen-es's output and the @protows/client runtime)
// and protoc-gen-protows-es itself, which is JavaScript with JSDoc types.
func TestTypeScriptTypeChecks(t *testing.T) {
	ts := tools(t)
	if err := tsbuild.Runtime(ts.root); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(ts.tsc, "-p", filepath.Join("testdata", "tsconfig.json"))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tsc: %v\n%s", err, b)
	}
}

// TestGoldenMethodIDs checks every method id constant in the golden Go code
// against protows.MethodID of the name constant it belongs to.
func TestGoldenMethodIDs(t *testing.T) {
	var files []string
	for name := range readTree(t, filepath.Join("testdata", "golden", "go")) {
		if strings.HasSuffix(name, "_protows.pb.go") {
			files = append(files, filepath.Join("testdata", "golden", "go", filepath.FromSlash(name)))
		}
	}
	checked := 0
	for _, path := range files {
		consts := stringConstants(t, path)
		for name, value := range consts {
			base, ok := strings.CutSuffix(name, "MethodID")
			if !ok {
				continue
			}
			full, ok := consts[base+"Method"]
			if !ok {
				t.Errorf("%s: %s has no %sMethod", path, name, base)
				continue
			}
			id, err := strconv.ParseUint(value, 0, 32)
			if err != nil {
				t.Fatalf("%s: %s = %s: %v", path, name, value, err)
			}
			if got, want := uint32(id), protows.MethodID(mustUnquote(t, full)); got != want {
				t.Errorf("%s: %s = %#08x, protows.MethodID(%s) = %#08x", path, name, got, full, want)
			}
			checked++
		}
	}
	if checked < 20 {
		t.Errorf("checked %d method ids in %d files, want at least 20", checked, len(files))
	}
}

// stringConstants returns the constants declared in a Go file, by name, as
// the source text of their values.
func stringConstants(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	consts := make(map[string]string)
	for _, decl := range f.Decls {
		gd, ok := decl.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, name := range vs.Names {
				if lit, ok := vs.Values[i].(*ast.BasicLit); ok {
					consts[name.Name] = lit.Value
				}
			}
		}
	}
	return consts
}

func mustUnquote(t *testing.T, s string) string {
	t.Helper()
	u, err := strconv.Unquote(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestESMethodID checks that the TypeScript plugin hashes names as
// protows.MethodID does.
func TestESMethodID(t *testing.T) {
	ts := tools(t)
	names := []string{
		"/acme.store.v1.StoreService/GetItem",
		"/collide.v1.FirstService/M74449",
		"/collide.v1.SecondService/M617264",
		"/a.B/C",
		"/\u00e9t\u00e9.v1.\u00c9t\u00e9/\u00c9",
	}
	arg, err := json.Marshal(names)
	if err != nil {
		t.Fatal(err)
	}
	src := fmt.Sprintf("import { methodId } from %q;\nfor (const n of JSON.parse(process.argv[1])) console.log(methodId(n));",
		"file://"+filepath.ToSlash(filepath.Join(ts.root, "cmd", "protoc-gen-protows-es", "src", "method-id.js")))
	out, err := exec.Command(ts.node, "--input-type=module", "-e", src, string(arg)).Output()
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Fields(string(out))
	if len(got) != len(names) {
		t.Fatalf("node printed %q for %d names", out, len(names))
	}
	for i, name := range names {
		if want := strconv.FormatUint(uint64(protows.MethodID(name)), 10); got[i] != want {
			t.Errorf("methodId(%q) = %s in JavaScript, protows.MethodID = %s", name, got[i], want)
		}
	}
}

// TestVersions checks that both plugins carry the protows module's version.
func TestVersions(t *testing.T) {
	ts := tools(t)
	for _, cmd := range []*exec.Cmd{
		exec.Command(ts.protows, "--version"),
		exec.Command(ts.node, ts.esScript, "--version"),
	} {
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
		if got := strings.TrimSpace(string(out)); !strings.HasSuffix(got, " v"+protows.Version) {
			t.Errorf("%s printed %q, want version %s", cmd, got, protows.Version)
		}
	}
}

// TestRejected runs both plugins on inputs they must refuse, and checks
// that each fails with an error that names the problem.
func TestRejected(t *testing.T) {
	ts := tools(t)
	tests := []struct {
		dir  string
		want string
		// goOnly: the TypeScript plugin accepts it (a Go naming
		// problem), and its output contains esWant (file name to text).
		goOnly bool
		esWant map[string]string
	}{
		{dir: "collision", want: "of /collide.v1.SecondService/M617264 collides with /collide.v1.FirstService/M74449"},
		{dir: "goname", want: "methods GetItem and get_item both become GetItem in Go", goOnly: true},
		{dir: "goclash", want: "PromiseClient, generated for service goclash.v1.Promise, is also the Go name of message goclash.v1.PromiseClient", goOnly: true,
			// protoplugin imports the message under another name.
			esWant: map[string]string{"ts/clash_protows.ts": "PromiseClient as PromiseClient$1"}},
		{dir: "goconst", want: "FooBarMethodMethod, generated for service goconst.v1.FooBar, is also the Go name of the code generated for service goconst.v1.Foo", goOnly: true},
	}
	for _, tt := range tests {
		dir := filepath.Join("testdata", "errors", tt.dir)
		t.Run(tt.dir+"/go", func(t *testing.T) {
			t.Parallel()
			_, err := ts.generate(t, dir, nil, ts.goPlugin())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
		t.Run(tt.dir+"/es", func(t *testing.T) {
			t.Parallel()
			out, err := ts.generate(t, dir, nil, ts.esPlugin())
			if tt.goOnly {
				if err != nil {
					t.Fatalf("got %v, want success", err)
				}
				files := readTree(t, out)
				if len(files) == 0 {
					t.Error("no output")
				}
				for name, want := range tt.esWant {
					if !bytes.Contains(files[name], []byte(want)) {
						t.Errorf("%s does not contain %q:\n%s", name, want, files[name])
					}
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestUnknownOption(t *testing.T) {
	ts := tools(t)
	dir := filepath.Join("testdata", "proto")
	paths := []string{"plain/v1/plain.proto"}
	for _, p := range []plugin{ts.goPlugin("shiny=true"), ts.esPlugin("shiny=true")} {
		_, err := ts.generate(t, dir, paths, p)
		if want := `unknown option "shiny"`; err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want an error containing %q", p.Local[len(p.Local)-1], err, want)
		}
	}
}

// TestBuiltinPackageSkipped checks that neither plugin writes code for
// protows.v1, whose AuthService the transport serves itself.
func TestBuiltinPackageSkipped(t *testing.T) {
	ts := tools(t)
	out, err := ts.generate(t, filepath.Join(ts.root, "proto"), []string{"protows/v1"}, ts.goPlugin(), ts.esPlugin())
	if err != nil {
		t.Fatal(err)
	}
	if files := readTree(t, out); len(files) != 0 {
		t.Errorf("generated %d files for protows.v1, want none", len(files))
	}
}
