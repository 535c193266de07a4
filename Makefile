# hoplite developer entry points. CI runs `make test` (.ci/run).

SHELL := /bin/bash
GO ?= go
GOBIN_DIR := $(shell $(GO) env GOPATH)/bin
# The whole suite, interop included, runs in a few minutes on 2 cores; the
# timeout only stops a hang well inside CI's limit.
TEST_TIMEOUT ?= 15m
# Local state for `make run` (tmp/ is git-ignored).
RUN_DIR := $(CURDIR)/tmp/run

.PHONY: build run test

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
