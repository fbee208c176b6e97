package tsbuild

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestFresh checks the build's age against its sources: missing, older
// than a source file, and newer than all of them.
func TestFresh(t *testing.T) {
	root := t.TempDir()
	src := filepath.Join(root, "client", "ts", "src", "sub", "a.ts")
	index := filepath.Join(root, "client", "ts", "dist", "index.d.ts")
	for _, p := range []string{src, index} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(src, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if fresh(root) {
		t.Error("fresh with no dist/index.d.ts")
	}
	if err := os.WriteFile(index, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := os.Chtimes(index, now, now.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if fresh(root) {
		t.Error("fresh with dist older than a source file")
	}
	if err := os.Chtimes(index, now, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if !fresh(root) {
		t.Error("not fresh with dist newer than every source file")
	}
}

// TestRuntimeNeedsModules checks the error for a checkout without npm ci.
func TestRuntimeNeedsModules(t *testing.T) {
	if err := Runtime(t.TempDir()); err == nil {
		t.Error("Runtime without node_modules: nil error")
	}
}

// TestLockExcludes checks that a second holder waits for the first: each
// open of the lock file is its own flock, as another process's would be.
func TestLockExcludes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	unlock, err := lock(path)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan func())
	go func() {
		u, err := lock(path)
		if err != nil {
			t.Error(err)
			u = func() {}
		}
		got <- u
	}()
	select {
	case u := <-got:
		u()
		t.Fatal("second lock taken while the first was held")
	case <-time.After(100 * time.Millisecond):
	}
	unlock()
	select {
	case u := <-got:
		u()
	case <-time.After(10 * time.Second):
		t.Fatal("second lock not taken after the first was released")
	}
}
