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

.PHONY: all build generate check-generated tools deps run test test-unit bench vet clean

all: build

build:
	@mkdir -p bin
	$(GO) build -tags $(GO_TAGS) -ldflags '$(LDFLAGS)' -o bin/ ./cmd/engined ./cmd/shim ./cmd/docker
	@$(GO) version -m bin/shim | grep -q -- '-tags=$(GO_TAGS)' || { echo "bin/shim was built without -tags $(GO_TAGS)"; exit 1; }

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
	curl ca-certificates iproute2 procps systemd tar docker-registry busybox-static tini
deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	$(GO) mod download

# Builds and starts engined in the foreground with the default roots.
run: deps build
	@echo "engined starting; in another shell: export DOCKER_HOST=$(DOCKER_HOST_ADDR)"
	exec ./bin/engined --host $(DOCKER_HOST_ADDR)

vet:
	$(GO) vet -tags $(GO_TAGS) ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.\(gw\.\)\?go$$')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# All tests: unit and end-to-end (the e2e tests start real engined
# processes and need root).
test: deps build check-generated vet
	$(GO) test -count=1 -timeout 30m ./...

test-unit: build
	$(GO) test -count=1 -short ./...

# Benchmarks against dockerd (Debian's docker.io, installed here if missing).
bench: deps build
	@dpkg -s docker.io >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io
	$(GO) run ./bench/pull -engined ./bin/engined
	$(GO) run ./bench/run -engined ./bin/engined

clean:
	rm -rf bin .tools
