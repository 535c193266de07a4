# hoplite developer entry points. CI runs `make test` (.ci/run).

SHELL := /bin/bash
GO ?= go
GOBIN_DIR := $(shell $(GO) env GOPATH)/bin
# The whole suite, interop included, runs in a few minutes on 2 cores; the
# timeout only stops a hang well inside CI's limit.
TEST_TIMEOUT ?= 15m
# Local state for `make run` (tmp/ is git-ignored).
RUN_DIR := $(CURDIR)/tmp/run
# Fuzzing time per Fuzz* target: `make fuzz` uses FUZZTIME, the short pass
# at the end of `make test` FUZZTIME_SHORT (about 7 targets, so CI spends a
# minute or two there). go test's default 10m timeout bounds each run, so
# keep FUZZTIME below it.
FUZZTIME ?= 60s
FUZZTIME_SHORT ?= 5s

.PHONY: build run test fuzz

build:
	$(GO) build -o bin/hoplite ./cmd/hoplite

# run serves the built-in config (https://localhost:8443 -> 127.0.0.1:9080)
# in front of `hoplite origin`; Ctrl-C stops both.
run: build
	@mkdir -p $(RUN_DIR)
	@bin/hoplite origin --listen 127.0.0.1:9080 & origin=$$!; \
	trap 'kill $$origin 2>/dev/null; wait $$origin 2>/dev/null' EXIT; \
	echo "origin: hoplite origin on 127.0.0.1:9080 (pid $$origin)"; \
	echo "Try it, once hoplite below says it is serving:"; \
	echo "  bin/hoplite ca --data $(RUN_DIR) > $(RUN_DIR)/root.pem"; \
	echo "  curl --http1.1 --cacert $(RUN_DIR)/root.pem https://localhost:8443/hello"; \
	echo "  curl --http2   --cacert $(RUN_DIR)/root.pem https://localhost:8443/hello"; \
	echo "  gtlsclient --quiet --exit-on-all-streams-close --download=$(RUN_DIR) 127.0.0.1 8443 https://localhost:8443/hello && cat $(RUN_DIR)/hello"; \
	echo "  (gtlsclient, from Debian's ngtcp2-client, speaks HTTP/3; it does not verify the certificate)"; \
	bin/hoplite run --data $(RUN_DIR)

test:
	scripts/install-deps.sh
	$(GO) vet ./...
	@unformatted=$$(gofmt -l .); \
	if [ -n "$$unformatted" ]; then \
		echo "gofmt: these files need formatting:"; echo "$$unformatted"; \
		gofmt -d $$unformatted; exit 1; \
	fi
	PATH="$(GOBIN_DIR):$$PATH" $(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./...
	# Tests that exercise a quic-go client data race (see the file) run
	# without the race detector.
	$(GO) test -count=1 -run '^TestHTTP3No0RTTControl$$' ./frontend
	$(call fuzz_all,$(FUZZTIME_SHORT))

# fuzz runs every Fuzz* target in the repository for FUZZTIME each.
fuzz:
	$(call fuzz_all,$(FUZZTIME))

# fuzz_all runs each Fuzz* target for $(1), one at a time (the fuzzer
# already uses every core). Packages are those with a "func Fuzz" in a test
# file; go test -list names their targets. A passing target prints one
# line; a failing one prints the fuzzer's output, including the path of the
# crashing input it saved under the package's testdata/fuzz/. Every target
# runs; the pass fails at the end if any failed.
define fuzz_all
	@set -o pipefail; \
	pkgs=$$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); \
	log=$$(mktemp); trap 'rm -f "$$log"' EXIT; failed=; \
	echo "fuzz: each target for $(1)"; \
	for pkg in $$pkgs; do \
		names=$$($(GO) test -list '^Fuzz' "$$pkg" | grep '^Fuzz') || { echo "fuzz: cannot list $$pkg"; exit 1; }; \
		for name in $$names; do \
			if $(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(1) "$$pkg" >"$$log" 2>&1; then \
				printf '  ok    %-22s %-26s %s\n' "$$pkg" "$$name" "$$(grep -o 'execs: [0-9]*\|baseline coverage: [0-9/]*' "$$log" | tail -n1)"; \
			else \
				printf '  FAIL  %-22s %s\n' "$$pkg" "$$name"; sed 's/^/        /' "$$log"; failed="$$failed $$name"; \
			fi; \
		done; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: failed:$$failed"; exit 1; fi
endef

# bench runs the benchmark suite against nginx, HAProxy, h2o and Caddy and
# writes docs/bench/ (results.md, chart.png); see scripts/bench.sh for the
# BENCH_* settings. About 10 minutes on 2 cores; not part of `make test`.
.PHONY: bench
bench:
	scripts/bench.sh
