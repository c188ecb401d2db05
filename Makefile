# kombosync: one command for the local stack (make dev), one for every test (make test).
# Needs Go and the PostgreSQL server binaries; no Docker. See README.md.

SHELL := /bin/bash
TEMPORAL_CLI_VERSION := v1.5.1
GO_TEST_FLAGS ?= -race -count=1 -timeout 20m

.PHONY: help build dev dev-stop dev-status dev-reset test test-short check fuzz ui-screenshots bench

help: ## list the targets
	@grep -hE '^[a-z/.-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

bin/temporal: ## build the pinned Temporal CLI (dev server + Web UI) from the Go module proxy
	@echo "building Temporal CLI $(TEMPORAL_CLI_VERSION) into bin/ (a few minutes the first time) …"
	GOBIN=$(CURDIR)/bin go install github.com/temporalio/cli/cmd/temporal@$(TEMPORAL_CLI_VERSION)

build: ## build worker, starter, webhookgw and devstack into bin/
	go build -o bin/ ./worker ./starter ./cmd/...

dev: bin/temporal build ## start the local stack (Postgres, Temporal + UI on :8233, worker, gateway); safe to re-run
	bin/devstack up

dev-stop: ## stop the local stack, keeping its state in .data/
	@if [ -x bin/devstack ]; then bin/devstack down; else go run ./cmd/devstack down; fi

dev-status: ## show what the local stack runs and where
	@go run ./cmd/devstack status

dev-reset: dev-stop ## stop the local stack and delete its state
	rm -rf .data

check: ## static checks: gofmt, go vet, workflowcheck on workflows/
	@unformatted=$$(gofmt -l $$(git ls-files --cached --others --exclude-standard '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed on:"; echo "$$unformatted"; exit 1; fi
	go vet ./...
	go vet -tags bench ./bench
	go tool workflowcheck ./workflows/...

test: bin/temporal check ## every test: static checks, unit, Postgres, Temporal dev server, end-to-end, the committed fuzz corpora
	go test $(GO_TEST_FLAGS) ./...

test-short: bin/temporal ## the fast inner loop: every test but the end-to-end ones (go test -short)
	go test -short -count=1 ./...

FUZZTIME ?= 10s
FUZZ_TARGETS := ./kombo:FuzzParseEvent ./kombo:FuzzVerify ./store:FuzzInboxStoresEveryAcceptedEvent

# Exploratory fuzzing with random inputs is not part of make test: a test gate gives the same
# answer for the same code. Run it before stopping work and commit what it finds to the corpus,
# which every go test replays.
fuzz: ## mutate the fuzz corpora for FUZZTIME each (10s); a failing input lands in testdata/fuzz, to be committed
	@set -e; for t in $(FUZZ_TARGETS); do \
		echo "fuzz $${t#*:} for $(FUZZTIME)"; \
		go test -run '^$$' -fuzz "^$${t#*:}$$" -fuzztime $(FUZZTIME) $${t%%:*}; \
	done

ui-screenshots: ## check the Temporal UI of the running make dev stack in headless Chromium and refresh docs/screenshots
	go run ./cmd/uishots -out docs/screenshots

bench: bin/temporal ## measure kombosync against this machine's limits (about 20 minutes); prints the table and writes BENCHMARKS.md
	go test -tags bench -run '^TestBenchmarks$$' -count=1 -timeout 45m -v ./bench
