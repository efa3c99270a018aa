# Everyday commands. `make help` lists them.
GO ?= go
STATICCHECK_VERSION ?= v0.8.2
GOBIN := $(shell $(GO) env GOPATH)/bin
SWAGGER_PARSER_VERSION ?= 13.0.0
NPM_PREFIX := .cache/npm

.PHONY: help run test check fmt vet staticcheck build bench bench-e2e tools openapi-validate

help: ## list the commands
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

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

bench-e2e: ## run the end-to-end benchmark of BENCHMARKS.md (about 15 minutes); JSON in bin/
	@mkdir -p bin
	$(GO) run ./cmd/pimhook-bench -out bin/bench-e2e.json

openapi-validate: ## validate http/openapi.json with swagger-parser (needs node and npm)
	@test "$$(node -p 'require("./$(NPM_PREFIX)/node_modules/@apidevtools/swagger-parser/package.json").version' 2>/dev/null)" = '$(SWAGGER_PARSER_VERSION)' || \
		npm install --no-save --no-audit --no-fund --prefix $(NPM_PREFIX) @apidevtools/swagger-parser@$(SWAGGER_PARSER_VERSION)
	node .ci/openapi-validate.mjs http/openapi.json
