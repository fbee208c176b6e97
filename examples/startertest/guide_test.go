//go:build unix

package startertest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/protows/protows"
)

var update = flag.Bool("update", false, "rewrite the file blocks of the docs from examples/starter")

const (
	guidePath    = "docs/GETTING-STARTED.md"
	templatePath = "examples/starter"
	// serverCommand starts the server in the guide; the test runs it in the
	// background, as the guide's second terminal implies.
	serverCommand = "go run ./server"
	// guideAddr is the address the guide's outputs show; the test's server
	// listens on a free port instead, and its outputs are compared with the
	// port put back.
	guideAddr = "127.0.0.1:8080"
)

// docsWithFiles are the documents whose captioned file blocks copy files
// of the template.
var docsWithFiles = []string{guidePath, "docs/CODEGEN.md"}

// captionRE is the line that says which file the code block after it is:
// **`path`**, the path relative to the project.
var captionRE = regexp.MustCompile("^\\*\\*`([^`]+)`\\*\\*$")

// block is a fenced code block of a Markdown document.
type block struct {
	info    string // the fence's info string: sh, text, go, ...
	caption string // the file it is, from a caption just before it; "" for none
	body    string // the content, each line ending with "\n"
	first   int    // the index of the body's first line in the document
	end     int    // the index of the closing fence
}

// parseBlocks returns the code blocks of doc whose fences start a line;
// indented blocks (in list items) are left out.
func parseBlocks(doc string) ([]block, error) {
	lines := strings.Split(doc, "\n")
	var blocks []block
	for i := 0; i < len(lines); i++ {
		info, ok := strings.CutPrefix(lines[i], "```")
		if !ok {
			continue
		}
		b := block{info: info, first: i + 1}
		for j := i - 1; j >= 0; j-- {
			if strings.TrimSpace(lines[j]) == "" {
				continue
			}
			if m := captionRE.FindStringSubmatch(lines[j]); m != nil {
				b.caption = m[1]
			}
			break
		}
		j := i + 1
		for j < len(lines) && lines[j] != "```" {
			j++
		}
		if j == len(lines) {
			return nil, fmt.Errorf("line %d: the code block is never closed", i+1)
		}
		b.end = j
		for _, l := range lines[i+1 : j] {
			b.body += l + "\n"
		}
		blocks = append(blocks, b)
		i = j
	}
	return blocks, nil
}

// commands returns the command lines of a sh block: no blanks, no comments.
func commands(body string) []string {
	var out []string
	for l := range strings.Lines(body) {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

// repoRoot returns the checkout this package is in.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func readBlocks(t *testing.T, root, doc string) []block {
	t.Helper()
	blocks, err := parseBlocks(readFile(t, filepath.Join(root, doc)))
	if err != nil {
		t.Fatalf("%s: %v", doc, err)
	}
	return blocks
}

// versions are the versions the guide names, from where the repository
// pins them.
type versions struct {
	protows       string // protows.Version: the Go module and both npm packages
	buf           string // tools/go.mod, without the "v"
	toolsProtobuf string // google.golang.org/protobuf in tools/go.mod: the repository's protoc-gen-go
	constant      string // the IsAtLeastVersion constant protoc-gen-protows refers to
	clientPeer    string // the range of @protows/client that protoc-gen-protows-es asks for
}

func readVersions(t *testing.T, root string) versions {
	t.Helper()
	toolsMod := readFile(t, filepath.Join(root, "tools", "go.mod"))
	requirement := func(path string) string {
		m := regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(path) + ` (v\S+)`).FindStringSubmatch(toolsMod)
		if m == nil {
			t.Fatalf("tools/go.mod does not require %s", path)
		}
		return m[1]
	}
	v := versions{
		protows:       protows.Version,
		buf:           strings.TrimPrefix(requirement("github.com/bufbuild/buf"), "v"),
		toolsProtobuf: requirement("google.golang.org/protobuf"),
	}
	for _, pkg := range []string{"client/ts", "cmd/protoc-gen-protows-es"} {
		var p struct {
			Version          string
			PeerDependencies map[string]string
		}
		if err := json.Unmarshal([]byte(readFile(t, filepath.Join(root, pkg, "package.json"))), &p); err != nil {
			t.Fatalf("%s/package.json: %v", pkg, err)
		}
		if p.Version != v.protows {
			t.Errorf("%s/package.json has version %q, protows.Version is %q: a release has one version (docs/GETTING-STARTED.md, Versions)", pkg, p.Version, v.protows)
		}
		if pkg == "cmd/protoc-gen-protows-es" {
			v.clientPeer = p.PeerDependencies["@protows/client"]
			if want := "^" + v.protows; v.clientPeer != want {
				t.Errorf("%s/package.json asks for @protows/client %q, want %q", pkg, v.clientPeer, want)
			}
		}
	}
	m := regexp.MustCompile(`(?m)^const versionConstant = "(IsAtLeastVersion\w+)"$`).FindStringSubmatch(
		readFile(t, filepath.Join(root, "cmd", "protoc-gen-protows", "generate.go")))
	if m == nil {
		t.Fatal("cmd/protoc-gen-protows/generate.go has no versionConstant")
	}
	v.constant = m[1]
	return v
}

// TestGuideFiles checks that the documents show the template's files as
// they are, that the guide shows every file of the template, and that the
// versions they name are the repository's.
func TestGuideFiles(t *testing.T) {
	root := repoRoot(t)
	shown := map[string]bool{}
	for _, doc := range docsWithFiles {
		path := filepath.Join(root, doc)
		text := readFile(t, path)
		blocks, err := parseBlocks(text)
		if err != nil {
			t.Fatalf("%s: %v", doc, err)
		}
		lines := strings.Split(text, "\n")
		changed := false
		// Backwards, so that rewriting a block keeps the line numbers of the
		// blocks before it.
		for _, b := range slices.Backward(blocks) {
			if b.caption == "" {
				continue
			}
			if doc == guidePath {
				shown[b.caption] = true
			}
			want, err := os.ReadFile(filepath.Join(root, templatePath, filepath.FromSlash(b.caption)))
			if err != nil {
				t.Errorf("%s line %d shows %s, which %s does not have: %v", doc, b.first, b.caption, templatePath, err)
				continue
			}
			if b.body == string(want) {
				continue
			}
			if *update {
				body := strings.Split(strings.TrimSuffix(string(want), "\n"), "\n")
				lines = slices.Concat(lines[:b.first], body, lines[b.end:])
				changed = true
				continue
			}
			t.Errorf("%s line %d: the block of %s differs from %s/%s: run go test ./examples/startertest -run TestGuideFiles -update", doc, b.first, b.caption, templatePath, b.caption)
		}
		if changed {
			if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("rewrote the file blocks of %s", doc)
		}
	}

	// Every file of the template is in the guide, except go.mod, which the
	// guide's commands make (TestGuideRuns compares the two). What the
	// template's .gitignore leaves out (a run in place) does not count.
	tmpl := filepath.Join(root, templatePath)
	err := filepath.WalkDir(tmpl, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(tmpl, path)
		rel = filepath.ToSlash(rel)
		switch {
		case d.IsDir() && (rel == "gen" || rel == "dist" || rel == "node_modules"):
			return fs.SkipDir
		case d.IsDir() || rel == "go.mod":
		case !shown[rel]:
			t.Errorf("%s/%s is not in %s: show it there, with a caption **`%s`**", templatePath, rel, guidePath, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	v := readVersions(t, root)
	guide := readFile(t, filepath.Join(root, guidePath))
	for what, s := range map[string]string{
		"buf's version (tools/go.mod)":                           v.buf,
		"protoc-gen-go's version (protobuf in tools/go.mod)":     v.toolsProtobuf,
		"the module's tag (protows.Version)":                     "v" + v.protows,
		"the IsAtLeastVersion constant generated code refers to": v.constant,
		"the peer range of protoc-gen-protows-es on the client":  "`" + v.clientPeer + "`",
	} {
		if !strings.Contains(guide, s) {
			t.Errorf("%s does not name %s, %s", guidePath, what, s)
		}
	}
	checkStarterPackage(t, root, v)
	checkStarterGoMod(t, root, v)
	checkReadme(t, root, v)
}

// checkStarterPackage checks the template's package.json: the protows
// packages at the release's version, the others at the versions of this
// repository's package-lock.json.
func checkStarterPackage(t *testing.T, root string, v versions) {
	t.Helper()
	var pkg struct{ Dependencies, DevDependencies map[string]string }
	if err := json.Unmarshal([]byte(readFile(t, filepath.Join(root, templatePath, "package.json"))), &pkg); err != nil {
		t.Fatalf("%s/package.json: %v", templatePath, err)
	}
	var lock struct {
		Packages map[string]struct{ Version string }
	}
	if err := json.Unmarshal([]byte(readFile(t, filepath.Join(root, "package-lock.json"))), &lock); err != nil {
		t.Fatalf("package-lock.json: %v", err)
	}
	deps := map[string]string{}
	for name, ver := range pkg.Dependencies {
		deps[name] = ver
	}
	for name, ver := range pkg.DevDependencies {
		deps[name] = ver
	}
	for _, name := range []string{"@protows/client", "@protows/protoc-gen-protows-es"} {
		if deps[name] != v.protows {
			t.Errorf("%s/package.json: %s is %q, want %q (protows.Version)", templatePath, name, deps[name], v.protows)
		}
		delete(deps, name)
	}
	for name, ver := range deps {
		if locked := lock.Packages["node_modules/"+name].Version; ver != locked {
			t.Errorf("%s/package.json: %s is %q, package-lock.json has %q", templatePath, name, ver, locked)
		}
	}
}

// checkStarterGoMod checks that the template's go.mod asks for the Go of
// protows and the release's module.
func checkStarterGoMod(t *testing.T, root string, v versions) {
	t.Helper()
	goLine := regexp.MustCompile(`(?m)^go \S+$`)
	mod := readFile(t, filepath.Join(root, templatePath, "go.mod"))
	if got, want := goLine.FindString(mod), goLine.FindString(readFile(t, filepath.Join(root, "go.mod"))); got != want {
		t.Errorf("%s/go.mod says %q, the protows module %q", templatePath, got, want)
	}
	if want := "github.com/protows/protows v" + v.protows + "\n"; !strings.Contains(mod, want) {
		t.Errorf("%s/go.mod does not require %s", templatePath, strings.TrimSpace(want))
	}
}

// readmeSection is the part of README.md about a project of one's own.
const readmeSection = "## Your own project"

// checkReadme checks that the commands of README's section on a project of
// one's own are the guide's.
func checkReadme(t *testing.T, root string, v versions) {
	t.Helper()
	guideLines := map[string]bool{}
	for _, b := range readBlocks(t, root, guidePath) {
		if b.info == "sh" {
			for _, c := range commands(withVersion(b.body, v)) {
				guideLines[c] = true
			}
		}
	}
	readme := readFile(t, filepath.Join(root, "README.md"))
	_, section, ok := strings.Cut(readme, "\n"+readmeSection+"\n")
	if !ok {
		t.Fatalf("README.md has no section %q", readmeSection)
	}
	if i := strings.Index(section, "\n## "); i >= 0 {
		section = section[:i]
	}
	blocks, err := parseBlocks(section)
	if err != nil {
		t.Fatalf("README.md, %s: %v", readmeSection, err)
	}
	n := 0
	for _, b := range blocks {
		if b.info != "sh" {
			continue
		}
		for _, c := range commands(b.body) {
			n++
			if !guideLines[c] {
				t.Errorf("README.md (%s) runs %q, which %s does not", readmeSection, c, guidePath)
			}
		}
	}
	if n == 0 {
		t.Errorf("README.md (%s) shows no command of %s", readmeSection, guidePath)
	}
}

// withVersion puts the release's version in for the placeholder of the
// guide's upgrade commands.
func withVersion(s string, v versions) string {
	return strings.ReplaceAll(s, "X.Y.Z", v.protows)
}

// quote quotes s for bash.
func quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// TestGuideRuns follows the guide in a scratch directory: see the package
// documentation.
func TestGuideRuns(t *testing.T) {
	start := time.Now()
	root := repoRoot(t)
	v := readVersions(t, root)
	blocks := readBlocks(t, root, guidePath)
	for _, tool := range []string{"bash", "node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the guide needs %s: %v", tool, err)
		}
	}

	scratch := t.TempDir()
	work := filepath.Join(scratch, "home") // where the guide's first command runs
	packs := filepath.Join(scratch, "packs")
	for _, d := range []string{work, packs} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	buf := bufBinary(t, root, v, scratch)
	clientTgz := packClient(t, root, scratch, packs)
	pluginTgz := npmPack(t, filepath.Join(root, "cmd", "protoc-gen-protows-es"), packs)
	t.Logf("tools and packages ready after %v", time.Since(start).Round(time.Millisecond))

	// The steps that fetch a published release, and what the test runs
	// instead. Each must occur in the guide.
	goGet := "go get github.com/protows/protows/cmd/protoc-gen-protows@v" + v.protows
	subs := map[string]string{
		"go install github.com/bufbuild/buf/cmd/buf@v" + v.buf: `mkdir -p "$(go env GOPATH)/bin" && ln -sf ` + quote(buf) + ` "$(go env GOPATH)/bin/buf"`,
		goGet: "go mod edit -replace github.com/protows/protows=" + quote(root) +
			" && touch go.sum && sort -u -o go.sum go.sum " + quote(filepath.Join(root, "go.sum")) + " && " + goGet,
		"npm install": "npm pkg set dependencies.@protows/client=" + quote("file:"+clientTgz) +
			" devDependencies.@protows/protoc-gen-protows-es=" + quote("file:"+pluginTgz) + " && npm install",
		"npm install --save-exact @protows/client@" + v.protows + " @protows/protoc-gen-protows-es@" + v.protows: "npm install --save-exact " +
			quote("file:"+clientTgz) + " " + quote("file:"+pluginTgz),
	}
	used := map[string]bool{}
	// The calls whose output the guide must show, so that the test sees
	// them succeed.
	checked := map[string]bool{"go run ./client": false, "node dist/client.js": false}

	sh := newShell(t, root, scratch, work)
	var server *background
	var firstCall time.Duration // until the first client's output was right
	for i := 0; i < len(blocks); i++ {
		b := blocks[i]
		switch {
		case b.caption != "":
			path := filepath.Join(sh.dir, filepath.FromSlash(b.caption))
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(b.body), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		case b.info != "sh":
			continue
		}
		var expect *block
		if i+1 < len(blocks) && blocks[i+1].info == "text" {
			expect = &blocks[i+1]
			i++
		}
		cmds := commands(withVersion(b.body, v))
		startServer := len(cmds) > 0 && cmds[len(cmds)-1] == serverCommand
		if startServer {
			cmds = cmds[:len(cmds)-1]
		}
		for j, c := range cmds {
			if s, ok := subs[c]; ok {
				cmds[j] = s
				used[c] = true
			}
		}
		blockStart := time.Now()
		out := sh.run(t, strings.Join(cmds, "\n"), b.first)
		if startServer {
			if server != nil {
				t.Fatalf("%s line %d starts a second server", guidePath, b.first)
			}
			server = sh.start(t, serverCommand)
			out = server.firstLine
			sh.setenv("ADDR", server.addr)
		}
		t.Logf("%s line %d: %v\n%s", guidePath, b.first, time.Since(blockStart).Round(time.Millisecond), b.body)
		if expect != nil {
			if server != nil {
				out = strings.ReplaceAll(out, server.addr, guideAddr)
			}
			if out != expect.body {
				t.Fatalf("%s line %d: the commands printed\n%s\nthe guide shows (line %d)\n%s", guidePath, b.first, out, expect.first, expect.body)
			}
			if !startServer && firstCall == 0 {
				firstCall = time.Since(start)
			}
			for _, c := range cmds {
				if _, ok := checked[c]; ok {
					checked[c] = true
				}
			}
		}
	}
	for c := range subs {
		if !used[c] {
			t.Errorf("%s does not run %q: update the substitutions of this test with the guide", guidePath, c)
		}
	}
	for c, ok := range checked {
		if !ok {
			t.Errorf("%s does not show what %q prints", guidePath, c)
		}
	}
	if server == nil {
		t.Fatalf("%s never runs %q", guidePath, serverCommand)
	}
	server.stop(t)

	// The template's go.mod is what the guide's commands made, but for the
	// replace directive, the go line (go mod init writes the toolchain's)
	// and blank lines.
	norm := func(mod string) string {
		var keep []string
		for l := range strings.Lines(mod) {
			if strings.TrimSpace(l) != "" && !strings.HasPrefix(l, "replace ") && !strings.HasPrefix(l, "go ") && !strings.HasPrefix(l, "toolchain ") {
				keep = append(keep, l)
			}
		}
		return strings.TrimSpace(strings.Join(keep, ""))
	}
	made := readFile(t, filepath.Join(sh.dir, "go.mod"))
	if got, want := norm(made), norm(readFile(t, filepath.Join(root, templatePath, "go.mod"))); got != want {
		t.Errorf("%s/go.mod is not what the guide makes: the guide's go.mod, but for its go and replace lines, is\n%s", templatePath, made)
	}
	t.Logf("the guide took %v from nothing to the first call, %v in all (packing the npm packages and linking buf included)",
		firstCall.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}

// bufBinary returns buf at the version of tools/go.mod: bin/buf from `make
// tools`, or built from tools/go.mod when it is missing.
func bufBinary(t *testing.T, root string, v versions, scratch string) string {
	t.Helper()
	path := filepath.Join(root, "bin", "buf")
	if _, err := os.Stat(path); err != nil {
		path = filepath.Join(scratch, "buf")
		cmd := exec.Command("go", "build", "-o", path, "github.com/bufbuild/buf/cmd/buf")
		cmd.Dir = filepath.Join(root, "tools")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("building buf: %v\n%s", err, b)
		}
	}
	out, err := exec.Command(path, "--version").Output()
	if err != nil {
		t.Fatalf("%s --version: %v", path, err)
	}
	if got := strings.TrimSpace(string(out)); got != v.buf {
		t.Fatalf("%s is buf %s, tools/go.mod pins %s: run make tools", path, got, v.buf)
	}
	return path
}

// npmPack packs the npm package in dir into packs and returns the tarball.
func npmPack(t *testing.T, dir, packs string) string {
	t.Helper()
	cmd := exec.Command("npm", "pack", "--json", "--pack-destination", packs)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("npm pack in %s: %v\n%s", dir, err, stderr.Bytes())
	}
	var packed []struct{ Filename string }
	if err := json.Unmarshal(out, &packed); err != nil || len(packed) != 1 {
		t.Fatalf("npm pack in %s printed %s: %v", dir, out, err)
	}
	return filepath.Join(packs, packed[0].Filename)
}

// packClient packs @protows/client from a copy of client/ts, whose prepack
// compiles it: compiling in place would rewrite client/ts/dist, which other
// tests read at the same time.
func packClient(t *testing.T, root, scratch, packs string) string {
	t.Helper()
	src := filepath.Join(root, "client", "ts")
	dst := filepath.Join(scratch, "client-ts")
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() {
			switch rel {
			case "node_modules", "dist", "build-test":
				return fs.SkipDir
			}
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		if strings.HasSuffix(rel, ".tgz") || !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatalf("copying client/ts: %v", err)
	}
	// The workspace's packages, for the build (tsc and the runtime's
	// dependencies).
	if err := os.Symlink(filepath.Join(root, "node_modules"), filepath.Join(dst, "node_modules")); err != nil {
		t.Fatal(err)
	}
	return npmPack(t, dst, packs)
}

// shell runs the guide's blocks as one terminal would: each block starts in
// the directory and with the exported variables the previous one left.
type shell struct {
	dir   string
	env   []string
	state string // where a block leaves its directory and environment
}

// newShell returns a shell whose environment is a new user's: the Go
// module cache and build cache are the machine's (warm), but GOPATH (where
// go install writes) is new, PATH has neither the checkout nor any GOPATH
// bin directory, and the Go commands may not download (GOPROXY=off).
func newShell(t *testing.T, root, scratch, work string) *shell {
	t.Helper()
	goEnv := func(name string) string {
		out, err := exec.Command("go", "env", name).Output()
		if err != nil {
			t.Fatalf("go env %s: %v", name, err)
		}
		return strings.TrimSpace(string(out))
	}
	modCache, goBin := goEnv("GOMODCACHE"), goEnv("GOBIN")
	drop := map[string]bool{goBin: true}
	for _, p := range filepath.SplitList(goEnv("GOPATH")) {
		drop[filepath.Join(p, "bin")] = true
	}
	var path []string
	for _, p := range filepath.SplitList(os.Getenv("PATH")) {
		if drop[p] || p == root || strings.HasPrefix(p, root+string(filepath.Separator)) {
			continue
		}
		path = append(path, p)
	}
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(strings.ToLower(name), "npm_"), userGoEnv[name], name == "PATH", name == "ADDR":
			continue
		}
		env = append(env, kv)
	}
	env = append(env,
		"PATH="+strings.Join(path, string(filepath.ListSeparator)),
		"GOPATH="+filepath.Join(scratch, "gopath"),
		"GOMODCACHE="+modCache,
		"GOPROXY=off",
		"GOFLAGS=",
		"npm_config_prefer_offline=true",
		"npm_config_audit=false",
		"npm_config_fund=false",
		"npm_config_update_notifier=false",
	)
	state := filepath.Join(scratch, "state")
	if err := os.Mkdir(state, 0o755); err != nil {
		t.Fatal(err)
	}
	return &shell{dir: work, env: env, state: state}
}

// userGoEnv are the Go variables a new user's shell does not have (or
// that the test sets); the others (GOCACHE, GOTOOLCHAIN, ...) stay.
var userGoEnv = map[string]bool{
	"GOBIN": true, "GOPATH": true, "GOMODCACHE": true, "GOPROXY": true,
	"GOFLAGS": true, "GOWORK": true, "GOOS": true, "GOARCH": true,
}

const stateVar = "STARTERTEST_STATE"

// run runs script with bash -e and returns what it printed on stdout.
func (sh *shell) run(t *testing.T, script string, line int) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	full := "set -euo pipefail\n" + script + "\npwd > \"$" + stateVar + "/pwd\"\nenv -0 > \"$" + stateVar + "/env\"\n"
	cmd := exec.CommandContext(ctx, "bash", "-c", full)
	cmd.Dir = sh.dir
	cmd.Env = append(slices.Clip(sh.env), stateVar+"="+sh.state)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s line %d: %v\n%s\nstdout:\n%s\nstderr:\n%s", guidePath, line, err, script, stdout.Bytes(), stderr.Bytes())
	}
	sh.dir = strings.TrimSpace(readFile(t, filepath.Join(sh.state, "pwd")))
	sh.env = sh.env[:0]
	for kv := range strings.SplitSeq(readFile(t, filepath.Join(sh.state, "env")), "\x00") {
		if kv != "" && !strings.HasPrefix(kv, stateVar+"=") {
			sh.env = append(sh.env, kv)
		}
	}
	return stdout.String()
}

func (sh *shell) setenv(name, value string) {
	sh.env = slices.DeleteFunc(sh.env, func(kv string) bool { return strings.HasPrefix(kv, name+"=") })
	sh.env = append(sh.env, name+"="+value)
}

// background is the guide's server, running in its own process group as in
// a terminal of its own.
type background struct {
	cmd       *exec.Cmd
	addr      string // host:port it listens on
	firstLine string
	lines     chan string // the rest of its stdout, closed at EOF
	stderr    *bytes.Buffer
}

var listeningRE = regexp.MustCompile(`^listening on ws://(\S+)/ws\n$`)

// start runs command with ADDR set to a free port of 127.0.0.1 and waits
// for its first line, which names the address.
func (sh *shell) start(t *testing.T, command string) *background {
	t.Helper()
	cmd := exec.Command("bash", "-c", command)
	cmd.Dir = sh.dir
	cmd.Env = append(slices.Clip(sh.env), "ADDR=127.0.0.1:0")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	bg := &background{cmd: cmd, lines: make(chan string, 16), stderr: new(bytes.Buffer)}
	cmd.Stderr = bg.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			_ = cmd.Wait()
		}
	})
	go func() {
		defer close(bg.lines)
		r := bufio.NewReader(stdout)
		for {
			l, err := r.ReadString('\n')
			if l != "" {
				bg.lines <- l
			}
			if err != nil {
				return
			}
		}
	}()
	select {
	case l, ok := <-bg.lines:
		m := listeningRE.FindStringSubmatch(l)
		if !ok || m == nil {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			_ = cmd.Wait()
			t.Fatalf("%s printed %q first, want listening on ws://ADDR/ws\nstderr:\n%s", command, l, bg.stderr.Bytes())
		}
		bg.firstLine, bg.addr = l, m[1]
	case <-time.After(3 * time.Minute):
		t.Fatalf("%s printed nothing for 3 minutes\nstderr:\n%s", command, bg.stderr.Bytes())
	}
	return bg
}

// stop interrupts the server as Ctrl-C does (the whole process group: go
// run and the server) and checks that it shut down cleanly: it printed
// "stopped", which it does only when both servers shut down without error,
// and nothing on stderr but the transport's connection lines (Info by
// default, as the guide says). (go run itself exits with status 1 when
// interrupted, whatever the program's status.)
func (bg *background) stop(t *testing.T) {
	t.Helper()
	if err := syscall.Kill(-bg.cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	var rest strings.Builder
	timeout := time.After(30 * time.Second)
	for done := false; !done; {
		select {
		case l, ok := <-bg.lines:
			rest.WriteString(l)
			done = !ok
		case <-timeout:
			t.Fatalf("the server did not stop within 30 s of SIGINT; it printed %q\nstderr:\n%s", rest.String(), bg.stderr.Bytes())
		}
	}
	err := bg.cmd.Wait()
	var other []string
	for l := range strings.Lines(bg.stderr.String()) {
		if !strings.Contains(l, "INFO protows: connection open ") && !strings.Contains(l, "INFO protows: connection closed ") {
			other = append(other, l)
		}
	}
	if rest.String() != "stopped\n" || len(other) > 0 {
		t.Errorf("after SIGINT the server printed %q (want %q) and exited with %v; stderr:\n%s", rest.String(), "stopped\n", err, bg.stderr.Bytes())
	}
}
