# Everyday commands. `make help` lists them.
GO ?= go
STATICCHECK_VERSION ?= v0.8.2
GOBIN := $(shell $(GO) env GOPATH)/bin

.PHONY: help run test check fmt vet staticcheck build bench tools

help: ## list the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

run: ## run pimhook with the embedded store in ./pimhook-data
	$(GO) run ./cmd/pimhook

test: ## run every test with the race detector
	$(GO) test -race -count=1 -timeout 20m ./...

check: fmt vet staticcheck ## gofmt, go vet and staticcheck

fmt: ## fail if a file is not gofmt-formatted
	@out="$$(gofmt -l .)"; if [ -n "$$out" ]; then echo "not gofmt-formatted:"; echo "$$out"; exit 1; fi

vet: ## go vet
	$(GO) vet ./...

staticcheck: tools ## staticcheck
	$(GOBIN)/staticcheck ./...

tools: ## install the pinned staticcheck
	@test -x $(GOBIN)/staticcheck && $(GOBIN)/staticcheck -version | grep -q '$(STATICCHECK_VERSION:v%=%)' || $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

build: ## build bin/pimhook
	$(GO) build -o bin/pimhook ./cmd/pimhook

bench: ## run the Go benchmarks once
	$(GO) test -run '^$$' -bench . -benchmem ./...
