// Package http serves pimhook's REST API: apps, webhooks, event ingestion and
// the delivery log, under /v1, with errors as RFC 9457 problem details.
//
// Handlers return an error; one adapter turns it into a problem answer, and
// one function maps each pimhook.Kind to its HTTP status.
package http

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/pimhook/pimhook"
	"github.com/pimhook/pimhook/filter"
)

// Ingester turns posted events into stored events and deliveries. The
// dispatcher implements it.
type Ingester interface {
	Ingest(ctx context.Context, company *pimhook.Company, events []*pimhook.Event) ([]pimhook.IngestResult, error)
}

// BulkTrigger runs bulk operations. The dispatcher implements it.
type BulkTrigger interface {
	TriggerBulk(ctx context.Context, co *pimhook.Company, op *pimhook.BulkOperation, t pimhook.BulkTrigger) (*pimhook.BulkRun, error)
}

// TargetChecker refuses callback URLs whose target may not be reached. The
// dispatcher's Guard implements it.
type TargetChecker = pimhook.TargetChecker

// Default body limits.
const (
	DefaultMaxBodyBytes      = 1 << 20 // API bodies
	DefaultMaxEventBodyBytes = 5 << 20 // POST /v1/events
)

// Server is the REST API. Store is required; the zero values of the other
// fields are usable defaults.
type Server struct {
	Store pimhook.Store
	// Ingester receives posted events; without it POST /v1/events answers
	// 503.
	Ingester Ingester
	// Jobs runs posted job runs; without it /v1/jobs answers 503.
	Jobs JobRunner
	// Filters compiles and runs filters and reducers; without it webhooks
	// cannot be given any and /v1/validate answers 503.
	Filters *filter.Engine
	// Bulk triggers bulk operations; without it their trigger answers 503.
	Bulk BulkTrigger
	// Operator redelivers and recovers deliveries; without it those answer
	// 503.
	Operator Operator
	// Ready tells /readyz whether the dispatcher's workers run; nil checks
	// the store only.
	Ready func() error
	// Targets vets callback URLs when webhooks are saved; nil vets nothing
	// here (the dispatcher still refuses forbidden addresses when dialling).
	Targets TargetChecker
	Clock   pimhook.Clock // nil: pimhook.SystemClock{}
	Logger  *slog.Logger  // nil: discard

	MaxBodyBytes      int64 // API bodies; 0: DefaultMaxBodyBytes
	MaxEventBodyBytes int64 // POST /v1/events; 0: DefaultMaxEventBodyBytes
	// BodyReadTimeout bounds how long a request body may take to arrive;
	// 0: DefaultBodyReadTimeout.
	BodyReadTimeout time.Duration
	MaxJobRunBytes  int64 // POST /v1/jobs/{jobID}/runs; 0: DefaultMaxJobRunBytes

	// Extra handlers are mounted on the same mux, keyed by ServeMux pattern
	// ("GET /readyz", "/metrics"). They get neither authentication nor
	// problem rendering; a pattern that clashes with an API route panics in
	// Handler.
	Extra map[string]http.Handler
	// Authed handlers are mounted like Extra but behind the API's
	// authentication: a request without a valid key gets the 401 problem,
	// and the handler finds the company with CompanyFromContext.
	Authed map[string]http.Handler
}

// Log attribute keys.
const (
	logKeyMethod = "method"
	logKeyPath   = "path"
	logKeyError  = "err"
)

// withDefaults returns a copy of s with every optional field filled in.
func (s *Server) withDefaults() *Server {
	c := *s
	if c.Clock == nil {
		c.Clock = pimhook.SystemClock{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.MaxEventBodyBytes <= 0 {
		c.MaxEventBodyBytes = DefaultMaxEventBodyBytes
	}
	if c.BodyReadTimeout <= 0 {
		c.BodyReadTimeout = DefaultBodyReadTimeout
	}
	return &c
}

// Handler returns the API's HTTP handler. Later changes to s do not affect
// it. It panics if Store is nil.
func (s *Server) Handler() http.Handler {
	h, _ := s.handler()
	return h
}

// Routes returns the ServeMux patterns ("GET /v1/apps") that Handler serves,
// Extra's and Authed's included, sorted. The OpenAPI document's test
// compares them with the paths it describes. It panics if Store is nil.
func (s *Server) Routes() []string {
	_, patterns := s.handler()
	slices.Sort(patterns)
	return patterns
}

// handler builds the API's handler and returns it with the patterns it
// registered.
func (s *Server) handler() (http.Handler, []string) {
	if s.Store == nil {
		panic("pimhook/http: Server.Store is nil")
	}
	c := s.withDefaults()
	mux := http.NewServeMux()
	var patterns []string
	register := func(pattern string, h http.Handler) {
		mux.Handle(pattern, h)
		patterns = append(patterns, pattern)
	}
	handle := func(pattern string, h handlerFunc) { register(pattern, c.adapt(h)) }
	authed := func(pattern string, h handlerFunc) { handle(pattern, c.authenticate(h)) }

	handle("GET /healthz", c.healthz)
	handle("GET /readyz", c.readyz)
	handle("GET /openapi.json", c.openAPI)

	authed("POST /v1/apps", c.createApp)
	authed("GET /v1/apps", c.listApps)
	authed("GET /v1/apps/{id}", c.getApp)
	authed("PATCH /v1/apps/{id}", c.patchApp)
	authed("DELETE /v1/apps/{id}", c.deleteApp)

	authed("POST /v1/webhooks", c.createWebhook)
	authed("GET /v1/webhooks", c.listWebhooks)
	authed("GET /v1/webhooks/{id}", c.getWebhook)
	authed("PUT /v1/webhooks/{id}", c.putWebhook)
	authed("PATCH /v1/webhooks/{id}", c.patchWebhook)
	authed("DELETE /v1/webhooks/{id}", c.deleteWebhook)
	authed("GET /v1/webhooks/{id}/secret", c.getWebhookSecret)

	authed("POST /v1/events", c.postEvents)
	authed("POST /v1/jobs/{jobID}/runs", c.postJobRun)
	authed("GET /v1/jobs/{jobID}/runs", c.listJobRuns)

	authed("PUT /v1/webhooks/{id}/filter_reducer", c.putFilterReducer)
	authed("POST /v1/validate/filter", c.validateFilter)
	authed("POST /v1/validate/reducer", c.validateReducer)

	authed("GET /v1/company/preferences", c.getPreferences)
	authed("PATCH /v1/company/preferences", c.patchPreferences)

	authed("POST /v1/bulk-operations", c.createBulkOperation)
	authed("GET /v1/bulk-operations", c.listBulkOperations)
	authed("GET /v1/bulk-operations/{name}", c.getBulkOperation)
	authed("PUT /v1/bulk-operations/{name}", c.putBulkOperation)
	authed("DELETE /v1/bulk-operations/{name}", c.deleteBulkOperation)
	authed("GET /v1/bulk-operations/{name}/secret", c.getBulkOperationSecret)
	authed("POST /v1/bulk-operations/{name}/trigger", c.triggerBulkOperation)
	authed("GET /v1/bulk-operations/{name}/runs", c.listBulkRuns)

	authed("GET /v1/error-log", c.listErrorLog)

	authed("GET /v1/deliveries", c.listDeliveries)
	authed("GET /v1/deliveries/{id}", c.getDelivery)
	authed("POST /v1/deliveries/{id}/redeliver", c.redeliver)
	authed("POST /v1/webhooks/{id}/recover", c.recoverWebhook)
	authed("GET /v1/reports/response-time", c.responseTimeReport)

	for pattern, h := range c.Extra {
		register(pattern, h)
	}
	for pattern, h := range c.Authed {
		authed(pattern, func(w http.ResponseWriter, r *http.Request) error {
			h.ServeHTTP(w, r)
			return nil
		})
	}
	return &router{mux: mux, srv: c}, patterns
}

// router answers what the mux cannot route with problem details instead of
// its plain-text 404 and 405.
type router struct {
	mux *http.ServeMux
	srv *Server
}

func (rt *router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, pattern := rt.mux.Handler(r); pattern != "" {
		rt.mux.ServeHTTP(w, r)
		return
	}
	// No route matched. Let the mux answer into a recorder to learn whether
	// the path exists under another method (405 with Allow) or not at all.
	rec := &recorder{header: http.Header{}}
	rt.mux.ServeHTTP(rec, r)
	switch rec.status {
	case http.StatusNotFound:
		rt.srv.writeError(w, r, pimhook.Errorf(pimhook.KindNotFound, pimhook.CodeRouteNotFound,
			"no route %s %s", r.Method, r.URL.Path))
	case http.StatusMethodNotAllowed:
		allow := rec.header.Get("Allow")
		w.Header().Set("Allow", allow)
		rt.srv.writeError(w, r, &pimhook.Error{Kind: kindMethodNotAllowed, Code: pimhook.CodeMethodNotAllowed,
			Message: fmt.Sprintf("%s is not allowed on %s; allowed: %s", r.Method, r.URL.Path, allow)})
	default: // a redirect to the cleaned path: pass it on as the mux wrote it
		for k, v := range rec.header {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.status)
		_, _ = io.WriteString(w, rec.body.String())
	}
}

// recorder is a minimal ResponseWriter that keeps what the mux's fallback
// handlers write.
type recorder struct {
	header http.Header
	status int
	body   strings.Builder
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return r.body.Write(b)
}

// handlerFunc is an API handler: it writes a success answer itself and
// returns any failure for adapt to render.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// adapt turns a handlerFunc into an http.Handler that renders its error, and
// a panic, as a problem answer.
func (s *Server) adapt(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.writeError(w, r, fmt.Errorf("%s %s: panic: %v\n%s", r.Method, r.URL.Path, v, debug.Stack()))
			}
		}()
		// A body that stops arriving must not hold the request forever.
		// Handlers that stream large bodies move the deadline themselves;
		// servers that cannot set deadlines (test recorders) have none.
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(s.BodyReadTimeout))
		if err := h(w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
}

type companyKey struct{}

// authenticate resolves the bearer key to its company and puts the company
// into the request context.
func (s *Server) authenticate(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		key, ok := bearerToken(r.Header.Get("Authorization"))
		if !ok {
			return errUnauthorized()
		}
		co, err := s.Store.CompanyByAPIKey(r.Context(), pimhook.HashAPIKey(key))
		if err != nil {
			if pimhook.ErrorKind(err) == pimhook.KindUnauthorized || pimhook.IsNotFound(err) {
				return errUnauthorized()
			}
			return fmt.Errorf("authenticate: %w", err)
		}
		return h(w, r.WithContext(context.WithValue(r.Context(), companyKey{}, co)))
	}
}

func errUnauthorized() error {
	return pimhook.Errorf(pimhook.KindUnauthorized, pimhook.CodeUnauthorized,
		"a valid API key is required: send Authorization: Bearer <key>")
}

// bearerToken extracts the credentials of an "Authorization: Bearer" header.
// The scheme is case-insensitive (RFC 9110 §11.1).
func bearerToken(h string) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// CompanyFromContext returns the company a request authenticated as, in a
// handler mounted through Server.Authed; nil elsewhere.
func CompanyFromContext(ctx context.Context) *pimhook.Company {
	co, _ := ctx.Value(companyKey{}).(*pimhook.Company)
	return co
}

// companyFrom returns the authenticated company of the request.
func companyFrom(ctx context.Context) *pimhook.Company {
	co, _ := ctx.Value(companyKey{}).(*pimhook.Company)
	if co == nil {
		panic("pimhook/http: handler reached without authentication")
	}
	return co
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) error {
	return writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// writeJSON writes v as the JSON answer. It fails only if v cannot be
// encoded, before anything is written; a client that went away is not an
// error worth reporting.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	return writeBody(w, status, "application/json", v)
}

func writeBody(w http.ResponseWriter, status int, contentType string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode response: %w", err)
	}
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
	return nil
}

// noContent answers 204.
func noContent(w http.ResponseWriter) error {
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// listOf is the envelope of every list answer.
type listOf[T any] struct {
	Data []T `json:"data"`
}

// mapList converts a list for the wire, never yielding a JSON null.
func mapList[In, Out any](in []In, f func(In) Out) listOf[Out] {
	out := make([]Out, 0, len(in))
	for _, v := range in {
		out = append(out, f(v))
	}
	return listOf[Out]{Data: out}
}

// nonNil returns s, or an empty slice in place of nil, so lists encode as [].
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
