// Package startertest follows docs/GETTING-STARTED.md the way a new user
// does, in a scratch directory outside the repository, and fails when the
// guide no longer works as written.
//
// The guide is the script: its sh code blocks run in order in one
// simulated terminal (the working directory and exported variables carry
// over from block to block), each file it shows is written where it says,
// and each output it shows is compared with what the commands print. Only
// the steps that fetch a published release are substituted: buf comes from
// the checkout's bin/ (built from tools/go.mod, at the version the guide
// names), `go get github.com/protows/protows/...@vX` gets a replace directive
// pointing at the checkout, and `npm install` installs the tarballs that
// `npm pack` makes of client/ts and cmd/protoc-gen-protows-es. The server
// listens on a free port of 127.0.0.1 (ADDR), and both clients call it.
//
// The test also holds examples/starter, the guide's finished project, and
// the guide together: every file the guide shows is the template's file,
// byte for byte, and the template has no file the guide does not show
// (besides go.mod, which the guide's commands make). After changing the
// template, rewrite the guide's copies with
//
//	go test ./examples/startertest -run TestGuideFiles -update
//
// It needs what `make deps` installs (node_modules, bin/buf), Node.js and
// npm, and the Go module cache that `go mod download` fills: the Go steps
// run with GOPROXY=off. npm may fetch package metadata, but the packages
// themselves are the ones package-lock.json pins, already in npm's cache.
package startertest
