# protows: the two commands that matter are `make demo` and `make test`.
# Everything they need is installed by the targets themselves, on a fresh
# machine with Go and Node.js: Go modules, the pinned Go tools (tools/go.mod),
# npm packages (npm ci).

SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
export PATH := $(CURDIR)/bin:/usr/local/go/bin:$(PATH)
# Tests bind to loopback only; the Go tool never asks for more.
export GOFLAGS := -buildvcs=false

GO_PKGS := ./...
# buf breaking compares against the main branch; a clone without one (a
# detached checkout, say) compares against HEAD.
HASH := \#
BREAKING_AGAINST := .git$(HASH)$(shell git rev-parse -q --verify main >/dev/null 2>&1 && echo branch=main || echo ref=HEAD)

.PHONY: all demo test deps tools generate check-generated lint fmt vet gotest bench fuzz clean

all: test

## demo: run the demo.
demo: deps
	go run ./examples/codecs

## test: everything CI checks, from a fresh clone.
test: deps check-generated lint gotest

deps: node_modules/.installed tools
	go mod download
	cd tools && go mod download

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

## tools: the pinned code generators, built into bin/.
tools:
	cd tools && GOBIN=$(CURDIR)/bin go install tool

## generate: regenerate gen/ from proto/ with local plugins only.
generate: deps
	buf generate

## check-generated: fail when committed generated code is stale.
check-generated: generate
	@git diff --exit-code --stat -- gen || { echo 'generated code is stale: run make generate and commit gen/'; exit 1; }
	@untracked=$$(git ls-files --others --exclude-standard -- gen); \
	if [ -n "$$untracked" ]; then echo "generated files not committed: $$untracked"; exit 1; fi

## lint: buf lint and breaking checks, gofmt, go vet, tidy modules.
lint: deps
	buf lint
	buf breaking --against '$(BREAKING_AGAINST)'
	@bad=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^gen/')); \
	if [ -n "$$bad" ]; then echo "gofmt needed: $$bad"; exit 1; fi
	go vet $(GO_PKGS)
	go mod tidy -diff

gotest:
	go test -race -count=1 $(GO_PKGS)

## bench: codec micro-benchmarks (later: the end-to-end load tool).
bench: deps
	go test ./codec -run '^$$' -bench . -benchmem -count 6

## fuzz: run each decoder fuzz target for a while.
fuzz:
	go test ./codec -run '^$$' -fuzz FuzzProtoDecodeFrame -fuzztime 60s
	go test ./codec -run '^$$' -fuzz FuzzJSONDecodeFrame -fuzztime 60s

clean:
	rm -rf bin node_modules
