// Package tsbuild builds the TypeScript runtime, @protows/client, for tests
// that compile generated TypeScript against it.
//
// Generated TypeScript imports the runtime's published types and code,
// which its build writes to client/ts/dist. go test runs packages in
// parallel processes, and the build deletes dist/ before it compiles, so
// two packages building at once would each see the other's half-written
// dist/. Runtime serializes the builds of one checkout with a file lock and
// builds only when dist/ is missing or older than a source file.
//
//	if err := tsbuild.Runtime(root); err != nil {
//		t.Fatal(err)
//	}
package tsbuild

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// Runtime makes client/ts/dist in the checkout at root current: it builds
// @protows/client when dist/ is missing, as in a fresh clone, or older than
// a file of client/ts/src, as in a checkout that moved on. It holds a lock
// in root's node_modules (which npm ci made) while it looks and builds, so
// a caller that returns from Runtime sees a whole dist/.
func Runtime(root string) error {
	modules := filepath.Join(root, "node_modules")
	if _, err := os.Stat(modules); err != nil {
		return fmt.Errorf("tsbuild: %s is missing: run npm ci (make deps)", modules)
	}
	unlock, err := lock(filepath.Join(modules, ".protows-runtime-build.lock"))
	if err != nil {
		return fmt.Errorf("tsbuild: %w", err)
	}
	defer unlock()
	if fresh(root) {
		return nil
	}
	cmd := exec.Command("npm", "run", "build", "--workspace", "@protows/client")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("tsbuild: building @protows/client: %w\n%s", err, b)
	}
	return nil
}

// fresh reports whether client/ts/dist was built after the last change to
// client/ts/src. index.d.ts stands for the build: tsc writes it with the
// rest, and the lock keeps anyone from looking while a build runs.
func fresh(root string) bool {
	built, err := os.Stat(filepath.Join(root, "client", "ts", "dist", "index.d.ts"))
	if err != nil {
		return false
	}
	stale := false
	_ = filepath.WalkDir(filepath.Join(root, "client", "ts", "src"), func(_ string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if info, err := d.Info(); err == nil && info.ModTime().After(built.ModTime()) {
			stale = true
			return filepath.SkipAll
		}
		return nil
	})
	return !stale
}
