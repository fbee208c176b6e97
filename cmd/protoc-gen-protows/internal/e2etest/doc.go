// Package e2etest holds the end-to-end test of the code protoc-gen-protows
// generates: the golden packages in ../../testdata/golden/go (and
// ../../testdata/golden-streams/go, a method of every kind) served by a
// real transport.Server and called through their generated clients. It has
// no code of its own.
package e2etest
