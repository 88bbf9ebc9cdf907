# engined build. Tools are pinned and installed through the Go module proxy
# into .tools/, so nothing is downloaded from anywhere else.
SHELL := /bin/bash
GO ?= go
TOOLS := $(CURDIR)/.tools
export PATH := $(TOOLS):$(PATH)

# Every build, vet, test and `go run` compiles with the seccomp tag and cgo:
# without them libcontainer in the shim cannot apply seccomp profiles (it
# needs libseccomp), and engined then applies and reports none. GOFLAGS is
# appended to, so flags from the environment still count; the tool installs
# below reset it. CGO_ENABLED=1 makes a missing gcc an error instead of a
# silent build without cgo.
GO_TAGS := seccomp
GOFLAGS += -tags=$(GO_TAGS)
export GOFLAGS
export CGO_ENABLED := 1

BUF_VERSION := v1.75.0
PROTOC_GEN_GO_VERSION := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
GRPC_GATEWAY_VERSION := v2.33.0
TTRPC_VERSION := v1.2.10

VERSION ?= 0.1.0-dev
COMMIT ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -X github.com/engined/engined/internal/version.Version=$(VERSION) \
           -X github.com/engined/engined/internal/version.GitCommit=$(COMMIT) \
           -X github.com/engined/engined/internal/version.BuildTime=$(shell date -u +%Y-%m-%dT%H:%M:%SZ)

DOCKER_HOST_ADDR ?= unix:///run/engined/docker.sock

.PHONY: all build install generate check-generated tools deps docker-cli run image test test-unit bench vet clean fuzz

all: build

# engined and our CLI need no C: with Go's own resolver and user lookup
# (netgo, osusergo) they link statically, as dockerd's release builds
# do. No dynamic loader and libc at each start: 3.4 MB less idle RSS for
# engined here, and a quicker start. The shim alone links libseccomp.
STATIC_TAGS := $(GO_TAGS),netgo,osusergo

build:
	@mkdir -p bin
	$(GO) build -tags $(STATIC_TAGS) -ldflags '$(LDFLAGS)' -o bin/ ./cmd/engined ./cmd/docker
	$(GO) build -tags $(GO_TAGS) -ldflags '$(LDFLAGS)' -o bin/ ./cmd/shim
	@! ldd bin/engined >/dev/null 2>&1 || { echo "bin/engined is not static"; exit 1; }
	@$(GO) version -m bin/shim | grep -q -- '-tags=$(GO_TAGS)' || { echo "bin/shim was built without -tags $(GO_TAGS)"; exit 1; }

# Installs under $(DESTDIR)$(PREFIX): engined and its shim side by side in
# libexec/engined (engined starts the shim beside its own binary), engined
# linked into bin, and our CLI as bin/$(CLI_NAME) with its bash and zsh
# completion. The CLI is engined-docker unless CLI_NAME=docker is asked
# for; even then a docker that is not ours (the Docker CLI) is not
# replaced without FORCE=1.
PREFIX ?= /usr/local
CLI_NAME ?= engined-docker
install: build
	@target=$(DESTDIR)$(PREFIX)/bin/$(CLI_NAME); \
	if [ -e "$$target" ] && ! "$$target" engine >/dev/null 2>&1 && [ "$(FORCE)" != 1 ]; then \
		echo "$$target exists and is not engined's CLI: not replaced (FORCE=1 replaces it)"; exit 1; \
	fi
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/libexec/engined \
		$(DESTDIR)$(PREFIX)/share/bash-completion/completions $(DESTDIR)$(PREFIX)/share/zsh/site-functions
	install -m 0755 bin/engined bin/shim $(DESTDIR)$(PREFIX)/libexec/engined/
	ln -sfn ../libexec/engined/engined $(DESTDIR)$(PREFIX)/bin/engined
	install -m 0755 bin/docker $(DESTDIR)$(PREFIX)/bin/$(CLI_NAME)
	$(DESTDIR)$(PREFIX)/bin/$(CLI_NAME) completion bash > $(DESTDIR)$(PREFIX)/share/bash-completion/completions/$(CLI_NAME)
	$(DESTDIR)$(PREFIX)/bin/$(CLI_NAME) completion zsh > $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_$(CLI_NAME)

$(TOOLS)/buf:
	GOBIN=$(TOOLS) GOFLAGS= $(GO) install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
$(TOOLS)/protoc-gen-go:
	GOBIN=$(TOOLS) GOFLAGS= $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
$(TOOLS)/protoc-gen-go-grpc:
	GOBIN=$(TOOLS) GOFLAGS= $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
$(TOOLS)/protoc-gen-grpc-gateway:
	GOBIN=$(TOOLS) GOFLAGS= $(GO) install github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway@$(GRPC_GATEWAY_VERSION)
$(TOOLS)/protoc-gen-go-ttrpc:
	GOBIN=$(TOOLS) GOFLAGS= $(GO) install github.com/containerd/ttrpc/cmd/protoc-gen-go-ttrpc@$(TTRPC_VERSION)

tools: $(TOOLS)/buf $(TOOLS)/protoc-gen-go $(TOOLS)/protoc-gen-go-grpc $(TOOLS)/protoc-gen-grpc-gateway $(TOOLS)/protoc-gen-go-ttrpc

generate: tools
	buf lint
	buf generate --template buf.gen.yaml
	buf generate --template buf.gen.shim.yaml

# Regenerates into the tree and fails if that changed anything: the committed
# code must be what the .proto files and pinned plugins produce.
check-generated: generate
	@if [ -n "$$(git status --porcelain -- proto)" ]; then \
		git status --short -- proto; git diff --stat -- proto; \
		echo "generated code in proto/ is stale: run 'make generate' and commit"; exit 1; \
	fi

# Packages the build and the tests need on a fresh Debian machine: cgo and
# libseccomp (headers through pkg-config) for the shim, libseccomp2 at run
# time, and what the tests drive.
APT_PACKAGES := gcc libc6-dev make git pkg-config libseccomp-dev libseccomp2 nftables \
	curl ca-certificates iproute2 procps systemd tar docker-registry busybox-static tini docker-compose
deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@[ -x $(DOCKER_CLI) ] || $(MAKE) --no-print-directory docker-cli
	$(GO) mod download

# The tests and the README drive the Docker CLI at $(DOCKER_CLI). Without
# one, Debian's docker.io gives its client (20.10, API 1.41); its daemon is
# neither started nor enabled (policy-rc.d refuses the start), since a
# running dockerd would take over the host's firewall.
DOCKER_CLI := /usr/local/bin/docker
docker-cli:
	@echo "no Docker CLI at $(DOCKER_CLI): installing Debian's docker.io for its client"
	@printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d; \
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io; rc=$$?; \
	rm -f /usr/sbin/policy-rc.d; [ $$rc -eq 0 ] || exit $$rc; \
	if command -v systemctl >/dev/null; then systemctl disable --now docker.socket docker.service containerd.service >/dev/null 2>&1 || true; fi; \
	ln -sf /usr/bin/docker $(DOCKER_CLI)

# Builds and starts engined with the default roots, in the foreground. Once
# it answers, `make image` gives it a busybox image if it has none, so
# `docker run busybox` works with no registry. engined runs as a background
# job of this shell, where SIGINT is ignored: the trap turns Ctrl-C into the
# SIGTERM that stops it cleanly.
run: deps build
	@echo "engined starting; in another shell: export DOCKER_HOST=$(DOCKER_HOST_ADDR)"
	@./bin/engined --host $(DOCKER_HOST_ADDR) & pid=$$!; \
	trap 'kill -TERM $$pid 2>/dev/null' INT TERM; \
	$(MAKE) --no-print-directory image || { kill -TERM $$pid; wait $$pid; exit 1; }; \
	wait $$pid; wait $$pid

SOCKET := $(patsubst unix://%,%,$(DOCKER_HOST_ADDR))
# Imports busybox:latest into the running engined at $(DOCKER_HOST_ADDR),
# made from Debian's busybox-static (/bin/busybox and a link per applet),
# unless it has one already.
image:
	@for i in $$(seq 300); do curl -sf --unix-socket $(SOCKET) http://x/_ping >/dev/null && break; sleep 0.1; done
	@if curl -sf --unix-socket $(SOCKET) http://x/images/busybox/json >/dev/null; then \
		echo "busybox image present"; \
	else \
		d=$$(mktemp -d) && trap 'rm -rf $$d' EXIT && \
		mkdir -p $$d/bin $$d/etc $$d/root $$d/tmp && chmod 1777 $$d/tmp && cp /bin/busybox $$d/bin/busybox && \
		for a in $$(/bin/busybox --list-full); do mkdir -p $$d/$$(dirname $$a); [ -e $$d/$$a ] || ln -s /bin/busybox $$d/$$a; done && \
		printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > $$d/etc/passwd && \
		printf 'root:x:0:\nnogroup:x:65534:\n' > $$d/etc/group && \
		tar -C $$d --numeric-owner --owner=0 --group=0 -c . | \
		curl -sSf --unix-socket $(SOCKET) -X POST -H 'Content-Type: application/x-tar' --data-binary @- \
			'http://x/images/create?fromSrc=-&repo=busybox&tag=latest&changes=CMD%20%5B%22sh%22%5D&changes=ENV%20PATH%3D%2Fusr%2Flocal%2Fsbin%3A%2Fusr%2Flocal%2Fbin%3A%2Fusr%2Fsbin%3A%2Fusr%2Fbin%3A%2Fsbin%3A%2Fbin' >/dev/null && \
		echo "imported busybox:latest (Debian's busybox-static)"; \
	fi

vet:
	$(GO) vet -tags $(GO_TAGS) ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.\(gw\.\)\?go$$')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# Go fuzz targets, each bounded; go test runs one fuzz target per call.
# Their seed corpora (f.Add and testdata/fuzz/) also run in plain go test.
# Go 1.26's coordinator can end a duration-bound run with a bare "context
# deadline exceeded" and no failing input (go.dev/issue/75804, fixed in
# 1.27): that alone is reported and not counted; any failing input is.
FUZZTIME ?= 15s
FUZZMINIMIZETIME ?= 5s
FUZZ_TARGETS := ./internal/archive:FuzzApply ./internal/filters:FuzzParse ./internal/container:FuzzContainerCreate ./internal/image:FuzzLoad
fuzz:
	@for t in $(FUZZ_TARGETS); do \
		echo "fuzz $${t#*:} in $${t%%:*} for $(FUZZTIME)"; \
		out=$$($(GO) test -run '^$$' -fuzz "^$${t#*:}\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZETIME) $${t%%:*} 2>&1); rc=$$?; \
		echo "$$out" | grep -v '^fuzz: elapsed'; \
		if [ $$rc -ne 0 ]; then \
			if echo "$$out" | grep -q '^    context deadline exceeded$$' && ! echo "$$out" | grep -q 'Failing input written'; then \
				echo "fuzz $${t#*:}: the go.dev/issue/75804 stop race, no failing input: not counted"; \
			else exit 1; fi; \
		fi; \
	done

# All tests: unit and end-to-end (the e2e tests start real engined
# processes and need root).
test: deps build check-generated vet fuzz
	$(GO) test -count=1 -timeout 70m ./...

test-unit: build
	$(GO) test -count=1 -short ./...

# Benchmarks against Debian's dockerd (docker.io), installed if missing
# with its services neither started (policy-rc.d refuses, an existing
# policy-rc.d is kept) nor enabled: the benchmarks start their own dockerd
# in private roots (bench/api and bench/run: each daemon in a network
# namespace of its own, with its default bridge and firewall rules, gone
# with the namespace). pull: a registry image; api: the engine's own work
# through the API, lists at 10,000, restarts, memory; run: docker run --rm
# through the Docker CLI; cli: our CLI against runc run; build; then the
# engine's side of one endpoint (BenchmarkAttach, root only).
bench: deps build
	@if ! dpkg -s docker.io >/dev/null 2>&1; then \
		own=""; [ -e /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d; own=1; }; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io; rc=$$?; \
		[ -z "$$own" ] || rm -f /usr/sbin/policy-rc.d; [ $$rc -eq 0 ] || exit $$rc; \
		if command -v systemctl >/dev/null; then systemctl disable --now docker.socket docker.service containerd.service >/dev/null 2>&1 || true; fi; \
	fi
	$(GO) run ./bench/pull -engined ./bin/engined
	$(GO) run ./bench/api -engined ./bin/engined
	$(GO) run ./bench/run -engined ./bin/engined -detached 0 -runs 9
	$(GO) run ./bench/cli -engined ./bin/engined -cli ./bin/docker
	$(GO) run ./bench/build -engined ./bin/engined
	$(GO) test -tags $(GO_TAGS) -run '^$$' -bench Attach -benchtime 200x -count 3 ./internal/network

clean:
	rm -rf bin .tools
