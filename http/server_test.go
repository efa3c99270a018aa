package http_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pimhook/pimhook"
	"github.com/pimhook/pimhook/filter"
	pimhttp "github.com/pimhook/pimhook/http"
	"github.com/pimhook/pimhook/sqlite"
)

// env is one API server over a fresh SQLite store, with one company and its
// key.
type env struct {
	t        *testing.T
	store    *sqlite.Store
	ingester *fakeIngester
	server   *httptest.Server
	company  *pimhook.Company
	key      string
	logs     *lockedBuffer
}

// lockedBuffer collects the server's log lines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "pimhook.db"), sqlite.Options{})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() {
		if err := store.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	e := &env{t: t, store: store, ingester: &fakeIngester{}, logs: &lockedBuffer{}}
	filters := filter.New(filter.Config{Timeout: 10 * time.Second})
	t.Cleanup(filters.Close)
	srv := &pimhttp.Server{
		Store:    store,
		Ingester: e.ingester,
		Filters:  filters,
		Targets:  refuseLoopback{},
		Logger:   slog.New(slog.NewTextHandler(e.logs, nil)),
		Extra: map[string]http.Handler{
			"GET /extra": http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "extra") }),
		},
	}
	e.server = httptest.NewServer(srv.Handler())
	t.Cleanup(e.server.Close)
	e.company, e.key = e.newCompany("Acme")
	return e
}

// newCompany stores a company and an API key for it.
func (e *env) newCompany(name string) (*pimhook.Company, string) {
	e.t.Helper()
	ctx := context.Background()
	now := time.Now().UTC()
	co := &pimhook.Company{ID: pimhook.NewID(pimhook.PrefixCompany, now), Name: name, CreatedAt: now}
	if err := e.store.CreateCompany(ctx, co); err != nil {
		e.t.Fatalf("create company: %v", err)
	}
	key := pimhook.NewAPIKey()
	k := &pimhook.APIKey{
		ID: pimhook.NewID(pimhook.PrefixAPIKey, now), CompanyID: co.ID,
		Hash: pimhook.HashAPIKey(key), Prefix: pimhook.KeyPrefix(key), CreatedAt: now,
	}
	if err := e.store.CreateAPIKey(ctx, k); err != nil {
		e.t.Fatalf("create API key: %v", err)
	}
	return co, key
}

// response is what a test request got back.
type response struct {
	status int
	header http.Header
	body   []byte
}

// req describes a test request. A string or []byte body is sent as is, an
// io.Reader chunked; anything else is encoded as JSON.
type req struct {
	method, path string
	body         any
	key          *string // nil: the env's key; "": no Authorization header
	header       map[string]string
}

func (e *env) do(r req) *response {
	e.t.Helper()
	var body io.Reader
	switch b := r.body.(type) {
	case nil:
	case string:
		body = strings.NewReader(b)
	case []byte:
		body = bytes.NewReader(b)
	case io.Reader: // sent chunked: its length is unknown
		body = b
	default:
		data, err := json.Marshal(b)
		if err != nil {
			e.t.Fatalf("encode request body: %v", err)
		}
		body = bytes.NewReader(data)
	}
	hr, err := http.NewRequest(r.method, e.server.URL+r.path, body)
	if err != nil {
		e.t.Fatalf("new request: %v", err)
	}
	key := e.key
	if r.key != nil {
		key = *r.key
	}
	if key != "" {
		hr.Header.Set("Authorization", "Bearer "+key)
	}
	if body != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	for k, v := range r.header {
		if v == "" {
			hr.Header.Del(k)
		} else {
			hr.Header.Set(k, v)
		}
	}
	res, err := e.server.Client().Do(hr)
	if err != nil {
		e.t.Fatalf("%s %s: %v", r.method, r.path, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatalf("%s %s: read body: %v", r.method, r.path, err)
	}
	return &response{status: res.StatusCode, header: res.Header, body: data}
}

// get, post and friends are shorthands for requests with the env's key.
func (e *env) get(path string) *response { e.t.Helper(); return e.do(req{method: "GET", path: path}) }
func (e *env) post(path string, body any) *response {
	e.t.Helper()
	return e.do(req{method: "POST", path: path, body: body})
}

// ok checks the status and decodes a JSON answer.
func (r *response) ok(t *testing.T, status int) map[string]any {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body: %s", r.status, status, r.body)
	}
	if status == http.StatusNoContent {
		return nil
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q, want application/json", ct)
	}
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
	return m
}

// problem checks that r is a problem answer with this status and code and
// returns it.
func (r *response) problem(t *testing.T, status int, code string) pimhttp.Problem {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body: %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type %q, want application/problem+json; body: %s", ct, r.body)
	}
	var p pimhttp.Problem
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("decode problem %s: %v", r.body, err)
	}
	if p.Code != code || p.Status != status || p.Type != "urn:pimhook:problem:"+code || p.Title == "" || p.Detail == "" {
		t.Fatalf("problem %+v, want status %d and code %s", p, status, code)
	}
	return p
}

// list returns the data of a list answer.
func (e *env) list(path string) []any {
	e.t.Helper()
	m := e.get(path).ok(e.t, http.StatusOK)
	data, ok := m["data"].([]any)
	if !ok {
		e.t.Fatalf("GET %s: data is %T, want a list", path, m["data"])
	}
	return data
}

// fakeIngester records what it is given and accepts every event.
type fakeIngester struct {
	mu    sync.Mutex
	calls [][]*pimhook.Event
	err   error
}

func (f *fakeIngester) Ingest(_ context.Context, co *pimhook.Company, events []*pimhook.Event) ([]pimhook.IngestResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ev := range events {
		if ev.CompanyID != co.ID {
			return nil, fmt.Errorf("event of company %s ingested for %s", ev.CompanyID, co.ID)
		}
	}
	f.calls = append(f.calls, events)
	if f.err != nil {
		return nil, f.err
	}
	out := make([]pimhook.IngestResult, len(events))
	for i, ev := range events {
		id := ev.ID
		if id == "" {
			id = fmt.Sprintf("evt_%d_%d", len(f.calls), i)
		}
		out[i] = pimhook.IngestResult{EventID: id, Event: pimhook.EventName(ev.EntityType, ev.Action), Revision: 1, Status: pimhook.IngestAccepted}
	}
	return out, nil
}

// fail makes every later call fail with err.
func (f *fakeIngester) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

func (f *fakeIngester) recorded() [][]*pimhook.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]*pimhook.Event(nil), f.calls...)
}

// refuseLoopback refuses callback URLs whose host is 127.0.0.1.
type refuseLoopback struct{}

func (refuseLoopback) CheckURL(_ context.Context, raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if u.Hostname() == "127.0.0.1" {
		return errors.New("127.0.0.1 is a loopback address")
	}
	return nil
}

func strp(s string) *string { return &s }

func TestHealthz(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	m := e.do(req{method: "GET", path: "/healthz", key: strp("")}).ok(t, http.StatusOK)
	if m["status"] != "ok" {
		t.Fatalf("healthz: %v", m)
	}
}

func TestExtraHandlers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	res := e.do(req{method: "GET", path: "/extra", key: strp("")})
	if res.status != http.StatusOK || string(res.body) != "extra" {
		t.Fatalf("GET /extra: %d %s", res.status, res.body)
	}
}

func TestRouting(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		name, method, path string
		status             int
		code, allow        string
	}{
		{"unknown path", "GET", "/nope", 404, "route_not_found", ""},
		{"unknown v1 path", "GET", "/v1/nope", 404, "route_not_found", ""},
		{"too deep", "GET", "/v1/webhooks/a/b/c", 404, "route_not_found", ""},
		{"wrong method on collection", "DELETE", "/v1/events", 405, "method_not_allowed", "POST"},
		{"wrong method on item", "POST", "/v1/apps/app_1", 405, "method_not_allowed", "DELETE, GET, HEAD, PATCH"},
		{"wrong method on healthz", "POST", "/healthz", 405, "method_not_allowed", "GET, HEAD"},
		{"unclean unknown path", "GET", "/v1//nope/../nope2", 404, "route_not_found", ""}, // redirected to /v1/nope2 first
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := e.do(req{method: tt.method, path: tt.path, key: strp("")})
			res.problem(t, tt.status, tt.code)
			if got := res.header.Get("Allow"); got != tt.allow {
				t.Fatalf("Allow %q, want %q", got, tt.allow)
			}
		})
	}
}

func TestAuthentication(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		name   string
		header string
	}{
		{"no header", ""},
		{"wrong key", "Bearer phk_not-a-key"},
		{"wrong scheme", "Basic " + e.key},
		{"empty token", "Bearer "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for _, path := range []string{"/v1/webhooks", "/v1/apps", "/v1/deliveries"} {
				res := e.do(req{method: "GET", path: path, key: strp(""), header: map[string]string{"Authorization": tt.header}})
				res.problem(t, http.StatusUnauthorized, "unauthorized")
				if got := res.header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
					t.Fatalf("WWW-Authenticate %q, want Bearer", got)
				}
			}
		})
	}
	t.Run("unclean path", func(t *testing.T) {
		t.Parallel()
		e.get("/v1//apps").ok(t, http.StatusOK) // redirected to /v1/apps
	})
	t.Run("lower-case scheme", func(t *testing.T) {
		t.Parallel()
		res := e.do(req{method: "GET", path: "/v1/apps", key: strp(""), header: map[string]string{"Authorization": "bearer " + e.key}})
		res.ok(t, http.StatusOK)
	})
}

// TestCompanyIsolation checks that a key sees nothing of another company.
func TestCompanyIsolation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	hook := e.post("/v1/webhooks", map[string]any{"callback_url": "https://a.example/hook"}).ok(t, http.StatusCreated)
	app := e.post("/v1/apps", map[string]any{"name": "shop"}).ok(t, http.StatusCreated)
	_, otherKey := e.newCompany("Other")
	other := func(method, path string, body any) *response {
		return e.do(req{method: method, path: path, key: &otherKey, body: body})
	}
	hookPath := "/v1/webhooks/" + hook["id"].(string)
	appPath := "/v1/apps/" + app["id"].(string)
	other("GET", hookPath, nil).problem(t, http.StatusNotFound, "webhook_not_found")
	other("GET", hookPath+"/secret", nil).problem(t, http.StatusNotFound, "webhook_not_found")
	other("PATCH", hookPath, map[string]any{"name": "mine"}).problem(t, http.StatusNotFound, "webhook_not_found")
	other("PUT", hookPath, map[string]any{"callback_url": "https://b.example"}).problem(t, http.StatusNotFound, "webhook_not_found")
	other("DELETE", hookPath, nil).problem(t, http.StatusNotFound, "webhook_not_found")
	other("GET", appPath, nil).problem(t, http.StatusNotFound, "app_not_found")
	other("DELETE", appPath, nil).problem(t, http.StatusNotFound, "app_not_found")
	other("POST", "/v1/webhooks", map[string]any{"callback_url": "https://b.example", "app_id": app["id"]}).
		problem(t, http.StatusBadRequest, "app_not_found")
	if m := other("GET", "/v1/webhooks", nil).ok(t, http.StatusOK); len(m["data"].([]any)) != 0 {
		t.Fatalf("other company lists webhooks: %v", m)
	}
	// The owner still has both, unchanged.
	if got := e.get(hookPath).ok(t, http.StatusOK); got["name"] != hook["name"] {
		t.Fatalf("webhook changed: %v", got)
	}
	e.get(appPath).ok(t, http.StatusOK)
}
