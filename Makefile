.PHONY: all build demo deps test test-go test-vm fuzz bench lint

GO ?= go

all: build

build:
	CGO_ENABLED=0 $(GO) build -o gocfs ./cmd/gocfs

demo:
	$(GO) run ./cmd/gocfs demo

deps:
	scripts/install-deps.sh

# The whole suite: unit and real-mount tests (as root), then the fs-verity VM.
test: deps lint test-go test-vm

test-go:
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 20m ./...

# Each fuzz target for a short while (FUZZTIME=10m for a longer run).
FUZZTIME ?= 30s
fuzz:
	scripts/fuzz.sh $(FUZZTIME)

bench:
	bench/run.sh

STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
lint:
	@test -z "$$(gofmt -l .)" || { gofmt -l .; echo "gofmt needed"; exit 1; }
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...


# fs-verity tests in a throwaway qemu VM (Debian 6.12 kernel); needs root on
# Debian for apt-get. See test/vm/README.md.
test-vm:
	test/vm/run.sh
