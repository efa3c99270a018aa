// Package graphql serves pimhook's GraphQL API at /graphql: the schema of
// reference document 2 as written (getWebhooks, saveWebhook, deleteWebhook)
// and the rest of what the REST API manages (webhooks with all their fields,
// apps, deliveries with their attempts, job runs), with the REST API's rules
// and its stable error codes.
//
// The schema is in schema/*.graphqls. gqlgen writes the executable schema
// (internal/exec) and the models (model) from it; the resolvers here are
// written by hand.
package graphql

//go:generate go run github.com/99designs/gqlgen generate --config gqlgen.yml

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/pimhook/pimhook"
	"github.com/pimhook/pimhook/graphql/internal/exec"
)

// Handler limits.
const (
	// DefaultMaxBodyBytes bounds a POST body, as the REST API bounds its
	// bodies.
	DefaultMaxBodyBytes = 1 << 20
	// DefaultComplexityLimit bounds the cost of one operation. A field
	// costs 1 and what it selects; a page of deliveries costs first × what
	// one delivery costs; a delivery's attempts cost 10 more, for the query
	// that loads them. A page of 1000 deliveries with every field of a
	// delivery but its attempts is within the limit, as REST serves it.
	DefaultComplexityLimit = 20000
	// attemptsCost is the extra cost of loading one delivery's attempts.
	attemptsCost = 10
	// queryCacheSize is how many parsed and validated documents are kept,
	// of operations of at most maxCachedQuery bytes.
	queryCacheSize = 1000
	maxCachedQuery = 16 << 10
)

// TargetChecker refuses callback URLs whose target may not be reached. The
// dispatcher's Guard implements it.
type TargetChecker = pimhook.TargetChecker

// JobRunLister lists a job's runs, newest first. Stores that keep job state
// implement it as part of pimhook.JobStore.
type JobRunLister interface {
	JobRuns(ctx context.Context, companyID, jobID string) ([]*pimhook.JobRun, error)
}

// Config is what NewHandler needs. Store is required; the zero values of
// the other fields are usable defaults.
type Config struct {
	Store pimhook.Store
	// Jobs lists job runs; without it the jobRuns query answers that job
	// runs are not running, as REST does.
	Jobs JobRunLister
	// Targets vets callback URLs when webhooks are saved; nil vets their
	// form only (the dispatcher still refuses forbidden addresses when
	// dialling).
	Targets TargetChecker
	// Filters compiles webhooks' filters and reducers when they are saved;
	// nil checks their shape only.
	Filters pimhook.FilterCompiler
	Clock   pimhook.Clock // nil: pimhook.SystemClock{}
	Logger  *slog.Logger  // nil: discard

	MaxBodyBytes    int64 // 0: DefaultMaxBodyBytes
	ComplexityLimit int   // 0: DefaultComplexityLimit
}

func (c Config) withDefaults() Config {
	if c.Clock == nil {
		c.Clock = pimhook.SystemClock{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.ComplexityLimit <= 0 {
		c.ComplexityLimit = DefaultComplexityLimit
	}
	return c
}

// Log attribute keys.
const (
	logKeyPath  = "path"
	logKeyError = "err"
)

// NewHandler returns the GraphQL API's handler: POST with a JSON body, and
// GET for queries, over plain HTTP (no websocket, no subscriptions), with
// introspection. It must be mounted behind the REST API's authentication
// (pimhttp.Server.Authed): it acts for the company of
// pimhttp.CompanyFromContext. It panics if cfg.Store is nil.
func NewHandler(cfg Config) http.Handler {
	if cfg.Store == nil {
		panic("pimhook/graphql: Config.Store is nil")
	}
	cfg = cfg.withDefaults()
	es := exec.NewExecutableSchema(exec.Config{
		Resolvers:  &resolver{cfg: cfg},
		Complexity: complexity(),
	})
	srv := handler.New(es)
	srv.AddTransport(transport.GET{})
	srv.AddTransport(transport.POST{})
	srv.SetQueryCache(queryCache{lru.New[*ast.QueryDocument](queryCacheSize)})
	srv.Use(extension.Introspection{})
	srv.Use(extension.FixedComplexityLimit(cfg.ComplexityLimit))
	srv.SetErrorPresenter(presenter(cfg.Logger))
	srv.SetRecoverFunc(func(_ context.Context, v any) error {
		return fmt.Errorf("panic: %v\n%s", v, debug.Stack())
	})
	return &bodyCheck{next: srv, max: cfg.MaxBodyBytes}
}

// complexity prices the fields whose cost grows with an argument.
func complexity() exec.ComplexityRoot {
	var c exec.ComplexityRoot
	c.Query.Deliveries = func(child int, _, _ *string, _ *pimhook.DeliveryStatus, _, _ *time.Time, first *int, _ *string) int {
		n := pimhook.DefaultDeliveryPage
		if first != nil && *first > 0 {
			// Beyond the maximum, first is refused by the resolver, with
			// a clearer error than the cost would give.
			n = min(*first, pimhook.MaxDeliveryPage)
		}
		return 1 + n*child
	}
	c.Delivery.Attempts = func(child int) int { return attemptsCost + child }
	return c
}

// queryCache keeps the parsed documents of small operations only. Clients
// repeat a few small operations; a cache of large ones would hold much
// memory for little gain.
type queryCache struct {
	lru *lru.LRU[*ast.QueryDocument]
}

func (c queryCache) Get(ctx context.Context, query string) (*ast.QueryDocument, bool) {
	if len(query) > maxCachedQuery {
		return nil, false
	}
	return c.lru.Get(ctx, query)
}

func (c queryCache) Add(ctx context.Context, query string, doc *ast.QueryDocument) {
	if len(query) <= maxCachedQuery {
		c.lru.Add(ctx, query, doc)
	}
}

// bodyCheck checks a POST's media type and reads its body, at most max
// bytes, before gqlgen sees it, so that these failures get the REST API's
// codes rather than a transport's plain message.
type bodyCheck struct {
	next http.Handler
	max  int64
}

func (b *bodyCheck) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		b.next.ServeHTTP(w, r)
		return
	}
	ct := r.Header.Get("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, pimhook.CodeUnsupportedMedia,
			fmt.Sprintf("Content-Type must be application/json, got %q", ct))
		return
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		writeError(w, http.StatusUnsupportedMediaType, pimhook.CodeUnsupportedMedia,
			fmt.Sprintf("the JSON body must be UTF-8, got charset %q", cs))
		return
	}
	tooLarge := func() {
		writeError(w, http.StatusRequestEntityTooLarge, pimhook.CodeBodyTooLarge,
			fmt.Sprintf("the request body is larger than %d bytes", b.max))
	}
	if r.ContentLength > b.max {
		tooLarge()
		return
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, b.max))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			tooLarge()
			return
		}
		writeError(w, http.StatusBadRequest, pimhook.CodeMalformedJSON, "the request body could not be read")
		return
	}
	if !json.Valid(data) {
		writeError(w, http.StatusBadRequest, pimhook.CodeMalformedJSON, "the request body is not JSON")
		return
	}
	var req struct {
		Variables json.RawMessage `json:"variables"`
	}
	if err := json.Unmarshal(data, &req); err != nil {
		writeError(w, http.StatusBadRequest, pimhook.CodeMalformedJSON, "the request body must be a JSON object: {query, variables, operationName}")
		return
	}
	if v := bytes.TrimSpace(req.Variables); len(v) > 0 && v[0] != '{' && !bytes.Equal(v, []byte("null")) {
		writeError(w, http.StatusBadRequest, pimhook.CodeMalformedJSON, "variables must be a JSON object")
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(data))
	b.next.ServeHTTP(w, r)
}

// writeError answers a request that never reached gqlgen with a GraphQL
// error response.
func writeError(w http.ResponseWriter, status int, code, message string) {
	body, _ := json.Marshal(graphql.Response{Errors: gqlerror.List{{
		Message:    message,
		Extensions: map[string]any{"code": code},
	}}})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// presenter is the one place where errors become GraphQL errors. A
// *pimhook.Error keeps its message and gives extensions.code (and
// extensions.field for an input field, by its GraphQL name); an error gqlgen
// made itself (a parse or validation failure, the complexity limit) passes
// as it is, with gqlgen's code; anything else, a resolver's panic included,
// is an "internal error" to the client and is logged here, once.
func presenter(log *slog.Logger) graphql.ErrorPresenterFunc {
	return func(ctx context.Context, err error) *gqlerror.Error {
		gerr := graphql.DefaultErrorPresenter(ctx, err)
		if e, ok := errors.AsType[*pimhook.Error](err); ok && e.Kind != pimhook.KindInternal {
			out := *gerr // gqlgen may share gerr; never change it in place
			out.Message = e.Message
			out.Err = nil
			out.Extensions = map[string]any{"code": e.Code}
			if e.Field != "" {
				out.Extensions["field"] = graphqlName(e.Field)
			}
			return &out
		}
		if gerr.Err == nil {
			return gerr
		}
		if errors.Is(err, context.Canceled) {
			log.DebugContext(ctx, "graphql request canceled", slog.Any(logKeyError, err))
		} else {
			log.ErrorContext(ctx, "graphql request failed",
				slog.String(logKeyPath, pathOf(gerr)), slog.Any(logKeyError, err))
		}
		return &gqlerror.Error{
			Message:    "internal error",
			Path:       gerr.Path,
			Locations:  gerr.Locations,
			Extensions: map[string]any{"code": pimhook.CodeInternal},
		}
	}
}

func pathOf(e *gqlerror.Error) string {
	if len(e.Path) == 0 {
		return ""
	}
	return e.Path.String()
}

// graphqlName returns the GraphQL name of a domain input field:
// "callback_url" gives "callbackURL", "timeout_ms" gives "timeoutMS".
func graphqlName(field string) string {
	parts := strings.Split(field, "_")
	for i := 1; i < len(parts); i++ {
		switch p := parts[i]; p {
		case "id", "url", "ms":
			parts[i] = strings.ToUpper(p)
		default:
			if p != "" {
				parts[i] = strings.ToUpper(p[:1]) + p[1:]
			}
		}
	}
	return strings.Join(parts, "")
}
