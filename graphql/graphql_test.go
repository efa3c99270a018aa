package graphql_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pimhook/pimhook"
	"github.com/pimhook/pimhook/dispatch"
	"github.com/pimhook/pimhook/graphql"
	pimhttp "github.com/pimhook/pimhook/http"
	"github.com/pimhook/pimhook/sqlite"
)

// env is a pimhook API, REST and GraphQL, on a real SQLite store, served
// over HTTP, with one company and its API key.
type env struct {
	t       *testing.T
	url     string
	key     string
	store   *sqlite.Store
	company *pimhook.Company
	logs    *syncBuffer
}

// newEnv serves the API for the duration of the test. mutate may change the
// GraphQL handler's configuration before it is built.
func newEnv(t *testing.T, mutate ...func(*graphql.Config)) *env {
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
	now := time.Now().UTC()
	co := &pimhook.Company{ID: pimhook.NewID(pimhook.PrefixCompany, now), Name: "Acme", CreatedAt: now}
	if err := store.CreateCompany(ctx, co); err != nil {
		t.Fatalf("create company: %v", err)
	}
	key := pimhook.NewAPIKey()
	if err := store.CreateAPIKey(ctx, &pimhook.APIKey{
		ID: pimhook.NewID(pimhook.PrefixAPIKey, now), CompanyID: co.ID,
		Hash: pimhook.HashAPIKey(key), Prefix: pimhook.KeyPrefix(key), CreatedAt: now,
	}); err != nil {
		t.Fatalf("create API key: %v", err)
	}
	logs := &syncBuffer{}
	catalog := dispatch.NewCatalog(store)
	guard := dispatch.NewGuard(nil)
	cfg := graphql.Config{
		Store:   catalog,
		Jobs:    store,
		Targets: guard,
		Logger:  slog.New(slog.NewTextHandler(logs, nil)),
	}
	for _, f := range mutate {
		f(&cfg)
	}
	gql := graphql.NewHandler(cfg)
	api := &pimhttp.Server{
		Store:   catalog,
		Targets: guard,
		Authed:  map[string]http.Handler{"POST /graphql": gql, "GET /graphql": gql},
	}
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)
	return &env{t: t, url: srv.URL, key: key, store: store, company: co, logs: logs}
}

// response is a GraphQL response.
type response struct {
	Data   json.RawMessage `json:"data"`
	Errors []gqlError      `json:"errors"`
}

type gqlError struct {
	Message    string `json:"message"`
	Path       []any  `json:"path"`
	Extensions struct {
		Code  string `json:"code"`
		Field string `json:"field"`
	} `json:"extensions"`
}

// post sends a GraphQL operation and returns the HTTP status and the
// response.
func (e *env) post(query string, vars map[string]any) (int, response) {
	e.t.Helper()
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		e.t.Fatalf("encode: %v", err)
	}
	return e.send(http.MethodPost, "/graphql", "application/json", bytes.NewReader(body))
}

func (e *env) send(method, path, contentType string, body io.Reader) (int, response) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url+path, body)
	if err != nil {
		e.t.Fatalf("request: %v", err)
	}
	req.Header.Set("Authorization", "Bearer "+e.key)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("read: %v", err)
	}
	var r response
	if err := json.Unmarshal(raw, &r); err != nil {
		e.t.Fatalf("%s %s: status %d, not JSON: %q", method, path, resp.StatusCode, raw)
	}
	return resp.StatusCode, r
}

// tryPost sends a GraphQL operation from any goroutine: it reports
// failures instead of ending the test.
func (e *env) tryPost(query string, vars map[string]any) (response, error) {
	var r response
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		return r, err
	}
	req, err := http.NewRequest(http.MethodPost, e.url+"/graphql", bytes.NewReader(body))
	if err != nil {
		return r, err
	}
	req.Header.Set("Authorization", "Bearer "+e.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return r, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return r, fmt.Errorf("status %d", resp.StatusCode)
	}
	return r, json.NewDecoder(resp.Body).Decode(&r)
}

// do sends an operation that must succeed and decodes its data into out.
func (e *env) do(query string, vars map[string]any, out any) {
	e.t.Helper()
	status, r := e.post(query, vars)
	if status != http.StatusOK || len(r.Errors) > 0 {
		e.t.Fatalf("status %d, errors %+v; query:\n%s", status, r.Errors, query)
	}
	if out != nil {
		if err := json.Unmarshal(r.Data, out); err != nil {
			e.t.Fatalf("decode %s: %v", r.Data, err)
		}
	}
}

// fail sends an operation that must fail with one error of this code and,
// if field is not empty, this field.
func (e *env) fail(query string, vars map[string]any, code, field string) gqlError {
	e.t.Helper()
	status, r := e.post(query, vars)
	if len(r.Errors) != 1 {
		e.t.Fatalf("status %d, %d errors %+v, want one %s; data %s", status, len(r.Errors), r.Errors, code, r.Data)
	}
	got := r.Errors[0]
	if got.Extensions.Code != code || got.Extensions.Field != field {
		e.t.Fatalf("error %+v: code %q field %q, want %q %q", got, got.Extensions.Code, got.Extensions.Field, code, field)
	}
	return got
}

// rest sends a REST request with the company's key and decodes the answer.
func (e *env) rest(method, path string, body any, out any) int {
	e.t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			e.t.Fatalf("encode: %v", err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.url+path, r)
	if err != nil {
		e.t.Fatalf("request: %v", err)
	}
	req.Header.Set("Authorization", "Bearer "+e.key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("read: %v", err)
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			e.t.Fatalf("%s %s: decode %q: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode
}

// syncBuffer is a log sink that the handler writes while the test reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
