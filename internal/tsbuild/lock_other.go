//go:build !unix

package tsbuild

// lock does nothing where flock is missing: there, run the packages that
// build the runtime one at a time (go test -p 1), or build it first
// (npm run build -w @protows/client).
func lock(string) (func(), error) { return func() {}, nil }
