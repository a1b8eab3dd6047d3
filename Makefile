.PHONY: all build install demo deps test test-go test-vm fuzz bench lint

GO ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo devel)

# make install [PREFIX=/usr/local] [DESTDIR=staging]: the binary, the links
# of the upstream tool names (and mount.composefs in SBINDIR, for
# mount -t composefs), the man pages and the shell completions.
PREFIX ?= /usr/local
DESTDIR ?=
BINDIR ?= $(PREFIX)/bin
SBINDIR ?= /sbin
MANDIR ?= $(PREFIX)/share/man
DATADIR ?= $(PREFIX)/share

all: build

build:
	CGO_ENABLED=0 $(GO) build -ldflags "-X main.version=$(VERSION)" -o gocfs ./cmd/gocfs

install: build
	install -D -m 0755 gocfs $(DESTDIR)$(BINDIR)/gocfs
	./gocfs install-links --target $(BINDIR)/gocfs --mount-helper-dir $(DESTDIR)$(SBINDIR) \
		--man $(DESTDIR)$(MANDIR) $(DESTDIR)$(BINDIR)
	install -d $(DESTDIR)$(DATADIR)/bash-completion/completions $(DESTDIR)$(DATADIR)/zsh/site-functions \
		$(DESTDIR)$(DATADIR)/fish/vendor_completions.d
	./gocfs completion bash > $(DESTDIR)$(DATADIR)/bash-completion/completions/gocfs
	./gocfs completion zsh > $(DESTDIR)$(DATADIR)/zsh/site-functions/_gocfs
	./gocfs completion fish > $(DESTDIR)$(DATADIR)/fish/vendor_completions.d/gocfs.fish

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
