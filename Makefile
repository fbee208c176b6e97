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

.PHONY: all demo demo-cluster test deps tools generate check-generated lint fmt vet gotest guide npm-test conformance chromium bench bench-results scale scale-cluster scale-idle fuzz clean

all: test

## demo: the chat demo on http://127.0.0.1:8080 (DEMO_FLAGS: go run
## ./examples/chat -help). Its page is built and committed, so Go is all
## it needs.
DEMO_FLAGS ?=
demo:
	go run ./examples/chat $(DEMO_FLAGS)

## demo-cluster: the chat demo as 3 nodes joined by an embedded NATS server,
## on ports 8080, 8081 and 8082.
demo-cluster:
	go run ./examples/chat -cluster 3 $(DEMO_FLAGS)

## test: everything CI checks, from a fresh clone.
test: deps check-generated lint gotest guide npm-test conformance

deps: node_modules/.installed tools
	go mod download
	cd tools && go mod download

node_modules/.installed: package.json package-lock.json client/ts/package.json cmd/protoc-gen-protows-es/package.json examples/chat/web/package.json conformance/clients/ts/package.json
	npm ci --no-audit --no-fund
	touch $@

## tools: the pinned code generators, built into bin/, and protows's own
## plugins: protoc-gen-protows (Go) into bin/; protoc-gen-protows-es is
## JavaScript that needs no build (npm links it into node_modules/.bin).
tools:
	cd tools && GOBIN=$(CURDIR)/bin go install tool
	go build -o bin/protoc-gen-protows ./cmd/protoc-gen-protows

## generate: regenerate gen/ from proto/ with local plugins only; then
## the vtprotobuf fast marshalers of the benchmark messages
## (buf.gen.vtproto.yaml), after buf.gen.yaml, which cleans gen/.
generate: deps
	buf generate
	buf generate --template buf.gen.vtproto.yaml

## check-generated: fail when committed generated code is stale.
check-generated: generate
	@git diff --exit-code --stat -- gen || { echo 'generated code is stale: run make generate and commit gen/'; exit 1; }
	@untracked=$$(git ls-files --others --exclude-standard -- gen); \
	if [ -n "$$untracked" ]; then echo "generated files not committed: $$untracked"; exit 1; fi

## lint: buf lint and breaking checks, gofmt, go vet, tidy modules (the
## Centrifuge peer's module too, which make bench builds).
lint: deps
	buf lint
	buf breaking --against '$(BREAKING_AGAINST)'
	@bad=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^gen/')); \
	if [ -n "$$bad" ]; then echo "gofmt needed: $$bad"; exit 1; fi
	go vet $(GO_PKGS)
	go mod tidy -diff
	cd benchmarks/centrifuge && go vet ./... && go mod tidy -diff

## gotest: the Go tests, but for the guide's (make guide runs it alone, so
## that its builds do not compete with timing-sensitive tests) and the
## conformance suite's (make conformance runs them).
## gotest: every Go package under the race detector. The race runtime
## sleeps 1 s when each test binary exits (to collect late reports);
## atexit_sleep_ms=0 saves that second per package.
gotest:
	GORACE=atexit_sleep_ms=0 go test -race -count=1 $$(go list $(GO_PKGS) | grep -v -e '/examples/startertest$$' -e '/conformance')

## guide: follow docs/GETTING-STARTED.md in a scratch directory outside the
## checkout, as a new project does (examples/startertest): the checkout
## stands in for the published Go module and npm packages; buf generate, a
## server on a free loopback port, the Go and Node.js clients. Also checks
## that the guide shows examples/starter's files as they are. About a
## minute.
guide: deps
	go test -count=1 ./examples/startertest

## npm-test: the TypeScript runtime (client/ts): golden vectors, the Go test
## server in both codecs, headless Chromium, npm pack; then the chat demo's
## page (examples/chat/web): its committed bundle is fresh, and two Chromium
## pages chat through the demo server. Chromium comes from Debian's packages
## (CI runs as root on a fresh machine).
npm-test: deps chromium
	npm test -w client/ts
	npm test -w examples/chat/web

## conformance: the conformance suite (docs/CONFORMANCE.md). Every server
## case in both codecs against the Go server and every client case against
## the Go client (go test ./conformance/...), then every client case
## against the TypeScript runtime in Node.js and in headless Chromium,
## through their drivers (conformance/clients/ts). Cases of the pending
## list (conformance/pending.json) are expected to fail; one that passes
## fails the run. Per-case reports go to conformance/out/. The Go tests run
## without -race: many cases bound the server's timing, which the race
## detector slows several times; gotest covers the server under -race.
## About a minute on 2 cores.
CONFORMANCE_OUT := conformance/out
CONFORMANCE := $(CONFORMANCE_OUT)/protows-conformance client -q -pending reference
conformance: deps chromium
	mkdir -p $(CONFORMANCE_OUT)
	go test -count=1 ./conformance/...
	npm run build -w client/ts
	npm run build -w conformance/clients/ts
	go build -o $(CONFORMANCE_OUT)/protows-conformance ./conformance/cmd/protows-conformance
	$(CONFORMANCE) -target ts-node -report $(CONFORMANCE_OUT)/ts-node.txt -json $(CONFORMANCE_OUT)/ts-node.json -- node conformance/clients/ts/dist/node.js
	$(CONFORMANCE) -target ts-chromium -report $(CONFORMANCE_OUT)/ts-chromium.txt -json $(CONFORMANCE_OUT)/ts-chromium.json -- node conformance/clients/ts/dist/chromium.js

chromium:
	command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

## bench: codec and dispatch micro-benchmarks, room history (a broadcast
## with and without it, JetStream's publish latency and fan-out against the
## in-memory broker, the time to recover 1,000 missed messages), then the
## end-to-end load tool: protows against raw gorilla/websocket, JSON against
## Protobuf, echo on one bidirectional stream against unary echo and raw
## echo (the same runs), with and without idempotency keys
## (echo/protows-keyed, and serverecho/protows-keyed beside
## serverecho/protows: the key's cost to the server alone), Protobuf echo
## without the bench messages'
## vtprotobuf methods (echo/protows-novt, medium and large: about 7 s),
## and 1,000,000 samples through one bidirectional
## stream, room
## fan-out against Centrifuge (a module of its own, benchmarks/centrifuge),
## at full speed and at a steady rate to 1,000 members, with write
## coalescing on, off and delayed 1 ms (broadcast), and with room history
## on in both (broadcast/centrifuge-history, broadcast/protows-history), and
## echo paced on an open-loop schedule at half of raw gorilla's peak echo
## rate (echo-paced: latency percentiles of protows and raw gorilla at the
## same rate).
## Implementations take
## turns: each run does one repetition of every implementation of a
## scenario, codec and size back to back, and the runs repeat, so that a
## machine whose load drifts affects them alike. One report goes to stdout and
## benchmarks/out/ (results.md, .jsonl, .svg, and the short page
## results-summary.md and .svg); `make bench-results` puts the short page at
## the top of benchmarks/RESULTS.md. The
## BENCH_* variables change the load (benchmarks/out/bin/protows-load -help).
## It needs only Go; modules download on first use.
## Budget: under 10 minutes on a fresh clone, 2 cores. On a quiet host
## (2026-12-04) it took 7 min 15 s warm, 7 min 50 s on a fresh clone. Since
## then the micro-benchmarks run fewer counts and shorter (about -45 s),
## large fan-out and the coalescing variants 3 rounds instead of 5 (about
## -90 s), and paced echo was added (+25 s): about 6 min on a fresh clone
## of a quiet host, leaving about 4 min for scenarios being added. Measured
## 2026-12-06 with the host loaded by other sessions (load average 9-28):
## 10 min 14 s before these changes (warm), 13 min 18 s after (fresh clone,
## module cache warm); RESULTS.md has the parts. With server-bound fan-out
## (+2.5 min) and rooms with history (+30 s) it took 10 min 40 s warm at
## load average 4-7 (20:17 UTC), so small and medium fan-out against
## Centrifuge now runs 3 rounds instead of 5 (about -50 s).
## With those trims and vtprotobuf off/on echo (+7 s) it took 8 min 23 s
## at load average 1-2 (2026-12-06, 22:38 UTC, benchmarks/out removed).
## On a slower machine (2026-12-07, twice the CPU per echo call) the same
## took 11 min 1 s, so: the codec and micro benchmarks run 100 ms each
## (about -28 s), large fan-out 3 s a repetition (about -9 s), and steady
## fan-out 1 s, without the coalescing variants, which the server-bound
## and the small and medium fan-out runs still measure (about -48 s).
## Server-bound echo with and without keys (+20 s): 9 min 57 s there
## (2026-12-07, 02:35 UTC, benchmarks/out removed), at the budget's edge.
## Measured in turns on one server (2 s of each a round instead of 1 s,
## about +15 s): 9 min 14 s (2026-12-07, 04:06 UTC, benchmarks/out
## removed).
BENCH_LOAD_FLAGS ?= -child -reps 1 -duration 1s -messages 100000
# The cost of idempotency keys to the server alone: server-bound echo
# (minimal clients that do not decode) with and without a new key on every
# call, small payloads (the costliest case for the key), on one server
# whose window is full, the two loads taking turns of 100 ms for 2 s each
# (-interleave: benchmarks/README.md says why); about 11 s a round.
BENCH_KEYED_FLAGS ?= -child -reps 1 -duration 2s -interleave 100ms -messages 0 -scenarios serverecho/protows,serverecho/protows-keyed -sizes small
BENCH_REPS ?= 3
# One bidirectional stream carrying 1,000,000 samples (2,000,000 messages,
# each way), 64 in flight: its server's peak RSS is the memory of a long
# stream (TestBidiMillionConstantMemory checks that the heap stays flat).
BENCH_BIDI_MILLION_FLAGS ?= -child -reps 1 -duration 0 -messages 2000000 -conns 1 -inflight 64 -scenarios bidi/protows -sizes small -codecs proto
BENCH_FANOUT_REPS ?= 3
BENCH_FANOUT_FLAGS ?= -child -reps 1 -duration 1s -messages 100000 -scenarios broadcast -sizes small,medium
# Large fan-out delivers a few hundred messages a second: 3 s make each
# repetition more than a handful of publishes (about 11). It is the
# costliest part (about 43 s a run), and its ratio is a tie that the
# medians of 3 show as well as those of 5; so are the coalescing variants.
BENCH_FANOUT_LARGE_REPS ?= 3
BENCH_FANOUT_LARGE_FLAGS ?= -child -reps 1 -duration 3s -messages 100000 -scenarios broadcast -sizes large
BENCH_COALESCING_REPS ?= 3
# Echo on an open-loop schedule at half the median msgs/s of saturated raw
# gorilla echo in the main runs above (same codec and size), protows and raw
# gorilla taking turns; latency from each call's due time.
BENCH_PACED_REPS ?= 3
BENCH_PACED_FLAGS ?= -child -reps 1 -duration 2s -messages 0 -scenarios echo-paced -sizes small -peak-fraction 0.5
BENCH_STEADY_REPS ?= 3
BENCH_STEADY_FLAGS ?= -child -reps 1 -duration 1s -messages 0 -scenarios broadcast -sizes small -members 1000 -rate 20
# Server-bound fan-out (serverfanout): members that count envelopes without
# decoding them, so that the server limits the rate; 1,000 and 5,000
# members, 1,000,000 deliveries or 2 s per repetition; protows, the raw
# coalescing gorilla hub and Centrifuge take turns. About 2.5 minutes.
BENCH_SERVERFANOUT_REPS ?= 3
BENCH_SERVERFANOUT_MEMBERS ?= 1000 5000
BENCH_SERVERFANOUT_FLAGS ?= -child -reps 1 -duration 2s -messages 1000000 -scenarios serverfanout -sizes small
# Rooms with history: Centrifuge's memory-engine history (HistorySize,
# HistoryTTL, recovery on) against protows's hub.NewMemoryHistory, the two
# taking turns; about 30 s.
BENCH_HISTORY_REPS ?= 3
BENCH_HISTORY_FLAGS ?= -child -reps 1 -duration 1s -messages 100000 -scenarios broadcast -sizes small
BENCH_OUT = benchmarks/out
BENCH_BIN = $(BENCH_OUT)/bin
bench:
	go test ./codec -run '^$$' -bench . -benchmem -count 3 -benchtime 100ms
	go test ./benchmarks/micro -run '^$$' -bench . -benchmem -benchtime 100ms
	go test ./hub -run '^$$' -bench 'Broadcast$$' -benchmem -count 3 -benchtime 300ms
	go test ./hub/natsbroker -run '^$$' -bench 'HistoryPublish|HistoryFanOut' -benchtime 5000x
	go test ./hub/natsbroker -run '^$$' -bench 'Recovery' -benchtime 20x
	mkdir -p $(BENCH_BIN) && rm -f $(BENCH_OUT)/*.jsonl
	go build -o $(BENCH_BIN)/protows-load ./benchmarks/cmd/protows-load
	cd benchmarks/centrifuge && go build -o ../out/bin/centrifuge-load .
	for i in $$(seq $(BENCH_REPS)); do \
		$(BENCH_BIN)/protows-load $(BENCH_LOAD_FLAGS) -name main-$$i -scenarios echo,push,bidi,idle >/dev/null || exit 1; \
		$(BENCH_BIN)/protows-load $(BENCH_LOAD_FLAGS) -name novt-$$i -scenarios echo/protows-novt \
			-sizes medium,large -codecs proto >/dev/null || exit 1; \
		$(BENCH_BIN)/protows-load $(BENCH_KEYED_FLAGS) -name keyed-$$i >/dev/null || exit 1; \
	done
	for i in $$(seq $(BENCH_PACED_REPS)); do \
		$(BENCH_BIN)/protows-load $(BENCH_PACED_FLAGS) -name paced-$$i \
			-peak-from $$(ls $(BENCH_OUT)/main-*.jsonl | paste -sd, -) >/dev/null || exit 1; \
	done
	$(BENCH_BIN)/protows-load $(BENCH_BIDI_MILLION_FLAGS) -name bidi-million >/dev/null
	for i in $$(seq $(BENCH_FANOUT_REPS)); do \
		$(BENCH_BIN)/centrifuge-load $(BENCH_FANOUT_FLAGS) -out $(BENCH_OUT) -name fanout-centrifuge-$$i >/dev/null && \
		$(BENCH_BIN)/protows-load $(BENCH_FANOUT_FLAGS) -name fanout-protows-$$i \
			-scenarios broadcast/protows,broadcast/gorilla >/dev/null || exit 1; \
		if [ $$i -le $(BENCH_FANOUT_LARGE_REPS) ]; then \
			$(BENCH_BIN)/centrifuge-load $(BENCH_FANOUT_LARGE_FLAGS) -out $(BENCH_OUT) -name fanout-large-centrifuge-$$i >/dev/null && \
			$(BENCH_BIN)/protows-load $(BENCH_FANOUT_LARGE_FLAGS) -name fanout-large-protows-$$i \
				-scenarios broadcast/protows,broadcast/gorilla >/dev/null || exit 1; \
		fi; \
		if [ $$i -le $(BENCH_COALESCING_REPS) ]; then \
			$(BENCH_BIN)/protows-load $(BENCH_FANOUT_FLAGS) -name coalescing-$$i \
				-scenarios broadcast/protows-nobatch,broadcast/protows-delay1ms -sizes small >/dev/null || exit 1; \
		fi; \
	done
	for i in $$(seq $(BENCH_STEADY_REPS)); do \
		$(BENCH_BIN)/centrifuge-load $(BENCH_STEADY_FLAGS) -out $(BENCH_OUT) -name steady-centrifuge-$$i >/dev/null && \
		$(BENCH_BIN)/protows-load $(BENCH_STEADY_FLAGS) -name steady-protows-$$i \
			-scenarios broadcast/protows,broadcast/gorilla >/dev/null || exit 1; \
	done
	for i in $$(seq $(BENCH_SERVERFANOUT_REPS)); do for n in $(BENCH_SERVERFANOUT_MEMBERS); do \
		$(BENCH_BIN)/protows-load $(BENCH_SERVERFANOUT_FLAGS) -members $$n -name serverfanout-$$n-protows-$$i >/dev/null && \
		$(BENCH_BIN)/centrifuge-load $(BENCH_SERVERFANOUT_FLAGS) -members $$n -out $(BENCH_OUT) -name serverfanout-$$n-centrifuge-$$i >/dev/null || exit 1; \
	done; done
	for i in $$(seq $(BENCH_HISTORY_REPS)); do \
		$(BENCH_BIN)/centrifuge-load $(BENCH_HISTORY_FLAGS) -out $(BENCH_OUT) -name history-centrifuge-$$i \
			-scenarios broadcast/centrifuge-history >/dev/null && \
		$(BENCH_BIN)/protows-load $(BENCH_HISTORY_FLAGS) -name history-protows-$$i \
			-scenarios broadcast/protows-history >/dev/null || exit 1; \
	done
	$(BENCH_BIN)/protows-load -no-run -merge $$(ls $(BENCH_OUT)/*.jsonl | paste -sd, -)

## bench-results: put the short results page of the last `make bench`
## (benchmarks/out/results-summary.md and .svg) at the top of
## benchmarks/RESULTS.md, between its summary markers, and its chart in
## benchmarks/summary.svg.
bench-results:
	test -f $(BENCH_OUT)/results.jsonl || (echo "run make bench first" >&2; exit 1)
	go build -o $(BENCH_BIN)/protows-load ./benchmarks/cmd/protows-load
	$(BENCH_BIN)/protows-load -no-run -quiet -merge $(BENCH_OUT)/results.jsonl -summary-into benchmarks/RESULTS.md >/dev/null

## scale: room fan-out at 10,000 connections (benchmarks/scale): a server
## process and a load process on loopback, one room, a steady broadcast;
## prints deliveries/s, latency percentiles and server memory per
## connection (benchmarks/RESULTS.md). Not part of test; about 2.5 minutes.
SCALE_FLAGS ?= -conns 10000 -rate 5 -duration 30s -codec both
scale:
	go run ./benchmarks/scale $(SCALE_FLAGS)

## scale-cluster: the same across nodes (benchmarks/scale -nodes): a NATS
## server process, 3 server processes joined through hub/natsbroker and 3
## load processes, one room of 45,000 members (15,000 per process, under
## the 20,000 open files of each), the publisher on the first node; then
## one node with as many members as a process can hold. Prints the figures
## of each node and of NATS (benchmarks/RESULTS.md). Not part of test or
## bench; about 4 minutes, 45,000 loopback connections at its peak.
SCALE_CLUSTER_FLAGS ?= -nodes 3 -load-procs 3 -conns 45000 -rate 1 -duration 60s -timeout 4m
SCALE_NODE_FLAGS ?= -nodes 1 -load-procs 2 -conns 19800 -rate 1 -duration 60s -timeout 4m
scale-cluster:
	go run ./benchmarks/scale $(SCALE_CLUSTER_FLAGS)
	go run ./benchmarks/scale $(SCALE_NODE_FLAGS)

## scale-idle: the server memory of an idle connection and of an idle room
## member, 5,000 of each, for a build of SCALE_BASE (main by default) and of
## the working tree, alternating, medians of 3 runs (benchmarks/RESULTS.md).
## About a minute per codec.
SCALE_BASE ?= main
SCALE_IDLE_FLAGS ?= -conns 5000 -runs 3
scale-idle:
	@d=$$(mktemp -d) && trap 'rm -rf "$$d"' EXIT && \
	git archive $(SCALE_BASE) | tar -x -C "$$d/" && \
	(cd "$$d" && go build -o "$$d/scale-base" ./benchmarks/scale) && \
	go build -o "$$d/scale-head" ./benchmarks/scale && \
	for c in proto json; do \
		"$$d/scale-head" -idle -codec $$c $(SCALE_IDLE_FLAGS) -servers "$(SCALE_BASE)=$$d/scale-base,head=$$d/scale-head" || exit 1; \
	done

## fuzz: run each decoder fuzz target for a while.
fuzz:
	go test ./codec -run '^$$' -fuzz 'FuzzProtoDecodeFrame$$' -fuzztime 60s
	go test ./codec -run '^$$' -fuzz 'FuzzJSONDecodeFrame$$' -fuzztime 60s
	go test ./codec -run '^$$' -fuzz 'FuzzJSONDecodeFrameSameAsStd$$' -fuzztime 60s

clean:
	rm -rf bin node_modules
