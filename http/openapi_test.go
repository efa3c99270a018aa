package http_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"mime"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pimhook/pimhook"
	"github.com/pimhook/pimhook/filter"
	pimhttp "github.com/pimhook/pimhook/http"
)

// The OpenAPI document (openapi.json) is written by hand. These tests hold
// it to the code: its operations are exactly the routes the handler serves,
// it is well-formed, and real answers have the shapes it documents.

// openAPIEnv is an env whose server has every optional part, and the
// handlers the pimhook command mounts beside the API (GraphQL, metrics) as
// stand-ins under the same patterns.
func openAPIEnv(t *testing.T, bulk pimhttp.BulkTrigger, jobs pimhttp.JobRunner) (*env, *pimhttp.Server) {
	t.Helper()
	e := newEnv(t)
	filters := filter.New(filter.Config{Timeout: 10 * time.Second}) // answers, not budgets, under -race
	t.Cleanup(filters.Close)
	stand := func(contentType, body string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", contentType)
			_, _ = io.WriteString(w, body)
		})
	}
	gql := stand("application/json", `{"data":{}}`)
	srv := &pimhttp.Server{
		Store:    e.store,
		Ingester: e.ingester,
		Filters:  filters,
		Bulk:     bulk,
		Jobs:     jobs,
		Extra:    map[string]http.Handler{"GET /metrics": stand("text/plain; version=0.0.4", "up 1\n")},
		Authed:   map[string]http.Handler{"POST /graphql": gql, "GET /graphql": gql},
	}
	e.server = httptest.NewServer(srv.Handler())
	t.Cleanup(e.server.Close)
	return e, srv
}

// openAPIDoc is the document as the server serves it.
func openAPIDoc(t *testing.T, e *env) map[string]any {
	t.Helper()
	res := e.do(req{method: "GET", path: "/openapi.json", key: strp("")})
	if res.status != http.StatusOK || res.header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /openapi.json: %d %q", res.status, res.header.Get("Content-Type"))
	}
	var doc map[string]any
	if err := json.Unmarshal(res.body, &doc); err != nil {
		t.Fatalf("decode /openapi.json: %v", err)
	}
	return doc
}

var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// operations returns the document's operations as ServeMux patterns
// ("GET /v1/apps/{id}"), which use OpenAPI's path templates, with each
// operation.
func operations(t *testing.T, doc map[string]any) map[string]map[string]any {
	t.Helper()
	ops := map[string]map[string]any{}
	for path, item := range obj(t, doc["paths"], "paths") {
		for method, op := range obj(t, item, path) {
			if slices.Contains(httpMethods, method) {
				ops[strings.ToUpper(method)+" "+path] = obj(t, op, method+" "+path)
			}
		}
	}
	return ops
}

func obj(t *testing.T, v any, where string) map[string]any {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%s is %T, want an object", where, v)
	}
	return m
}

func TestOpenAPIServed(t *testing.T) {
	t.Parallel()
	e, _ := openAPIEnv(t, nil, nil)
	want, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, method := range []string{"GET", "HEAD"} {
		res := e.do(req{method: method, path: "/openapi.json", key: strp("")})
		if res.status != http.StatusOK || res.header.Get("Content-Type") != "application/json" {
			t.Fatalf("%s /openapi.json: %d %q", method, res.status, res.header.Get("Content-Type"))
		}
		if method == "GET" && string(res.body) != string(want) {
			t.Fatalf("GET /openapi.json does not serve openapi.json")
		}
	}
}

// TestOpenAPIRoutes checks that the document describes every route the
// handler serves, and nothing else.
func TestOpenAPIRoutes(t *testing.T) {
	t.Parallel()
	e, srv := openAPIEnv(t, nil, nil)
	doc := openAPIDoc(t, e)
	ops := operations(t, doc)
	routes := srv.Routes()
	for _, want := range []string{"GET /healthz", "GET /openapi.json", "GET /metrics", "POST /graphql", "GET /v1/webhooks/{id}"} {
		if !slices.Contains(routes, want) {
			t.Fatalf("Routes() lacks %s: %v", want, routes)
		}
	}
	for _, r := range routes {
		if _, ok := ops[r]; !ok {
			t.Errorf("route %s is not in the document", r)
		}
	}
	param := regexp.MustCompile(`\{[^}]+\}`)
	for pattern, op := range ops {
		if !slices.Contains(routes, pattern) {
			t.Errorf("the document describes %s, which is not a route", pattern)
		}
		// Whether it is a route or not, ask the server: a documented
		// operation is answered by a handler, not by routing. Without a
		// key, an operation that needs one answers 401 and the others do
		// not.
		method, path, _ := strings.Cut(pattern, " ")
		res := e.do(req{method: method, path: param.ReplaceAllString(path, "x"), key: strp("")})
		var p pimhttp.Problem
		_ = json.Unmarshal(res.body, &p)
		if p.Code == pimhook.CodeRouteNotFound || p.Code == pimhook.CodeMethodNotAllowed {
			t.Errorf("%s: %d %s", pattern, res.status, p.Code)
		}
		_, secured := op["security"]
		if secured != (res.status == http.StatusUnauthorized) {
			t.Errorf("%s without a key answers %d; the document says security: %v", pattern, res.status, secured)
		}
	}
}

// TestOpenAPIDocument checks that the document is well-formed: OpenAPI
// 3.1, every $ref resolves, every path parameter is declared, operation IDs
// are unique, every /v1 and /graphql operation and only they need the API
// key and may answer 401, and every problem is application/problem+json.
// .ci/openapi-validate.mjs validates it against the OpenAPI schema.
func TestOpenAPIDocument(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("openapi.json is not JSON: %v", err)
	}
	if v, _ := doc["openapi"].(string); !strings.HasPrefix(v, "3.1.") {
		t.Fatalf("openapi %q, want 3.1.x", v)
	}
	refs := 0
	walk(doc, "#", func(ptr string, m map[string]any) {
		ref, ok := m["$ref"].(string)
		if !ok {
			return
		}
		refs++
		if _, err := resolvePointer(doc, ref); err != nil {
			t.Errorf("%s: $ref %s: %v", ptr, ref, err)
		}
	})
	if refs == 0 {
		t.Fatal("no $ref found: the walk is broken")
	}

	ids := map[string]string{}
	param := regexp.MustCompile(`\{([^}]+)\}`)
	for pattern, op := range operations(t, doc) {
		_, path, _ := strings.Cut(pattern, " ")
		id, _ := op["operationId"].(string)
		if other, ok := ids[id]; ok || id == "" {
			t.Errorf("%s: operationId %q is empty or also %s's", pattern, id, other)
		}
		ids[id] = pattern

		declared := map[string]bool{}
		item := obj(t, obj(t, doc["paths"], "paths")[path], path)
		for _, list := range []any{item["parameters"], op["parameters"]} {
			for _, p := range asList(list) {
				p := deref(t, doc, p)
				if p["in"] == "path" {
					declared[p["name"].(string)] = true
				}
			}
		}
		for _, m := range param.FindAllStringSubmatch(path, -1) {
			if !declared[m[1]] {
				t.Errorf("%s: path parameter %s is not declared", pattern, m[1])
			}
		}

		responses := obj(t, op["responses"], pattern+" responses")
		wantAuth := strings.HasPrefix(path, "/v1/") || path == "/graphql"
		if sec, ok := op["security"]; ok != wantAuth || ok && !reflect.DeepEqual(sec, []any{map[string]any{"bearer": []any{}}}) {
			t.Errorf("%s: security %v, want the bearer key: %v", pattern, sec, wantAuth)
		}
		if _, ok := responses["401"]; ok != wantAuth {
			t.Errorf("%s: 401 documented: %v, want %v", pattern, ok, wantAuth)
		}
		for status, r := range responses {
			r := deref(t, doc, r)
			content, _ := r["content"].(map[string]any)
			n, _ := strconv.Atoi(status)
			if n < 400 || path == "/graphql" && n != 401 || path == "/readyz" {
				continue
			}
			if _, ok := content["application/problem+json"]; !ok || len(content) != 1 {
				t.Errorf("%s %s: content %v, want application/problem+json", pattern, status, slices.Sorted(maps.Keys(content)))
			}
		}
	}
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

// walk calls fn with every object in v and its JSON pointer.
func walk(v any, ptr string, fn func(ptr string, m map[string]any)) {
	switch v := v.(type) {
	case map[string]any:
		fn(ptr, v)
		for k, c := range v {
			walk(c, ptr+"/"+strings.NewReplacer("~", "~0", "/", "~1").Replace(k), fn)
		}
	case []any:
		for i, c := range v {
			walk(c, ptr+"/"+strconv.Itoa(i), fn)
		}
	}
}

// resolvePointer resolves a local reference ("#/components/schemas/App").
func resolvePointer(doc map[string]any, ref string) (map[string]any, error) {
	rest, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil, fmt.Errorf("not a local reference")
	}
	var v any = doc
	for _, tok := range strings.Split(rest, "/") {
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%q is under a %T", tok, v)
		}
		if v, ok = m[tok]; !ok {
			return nil, fmt.Errorf("no %q", tok)
		}
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("refers to a %T", v)
	}
	return m, nil
}

// deref returns v, an object, or the object its $ref names.
func deref(t *testing.T, doc map[string]any, v any) map[string]any {
	t.Helper()
	m := obj(t, v, "a document node")
	for {
		ref, ok := m["$ref"].(string)
		if !ok {
			return m
		}
		var err error
		if m, err = resolvePointer(doc, ref); err != nil {
			t.Fatalf("$ref %s: %v", ref, err)
		}
	}
}

// shape returns how v, a decoded JSON value, differs from schema: keys of
// an object that are not among its properties, required properties it
// lacks, JSON types and enum values the schema does not allow, at every
// depth the schema describes. It follows $ref and merges allOf; a value
// fits oneOf or anyOf if it fits one of them. It is not a JSON Schema
// validator: it knows the keywords openapi.json uses for answers.
func shape(doc map[string]any, schema map[string]any, where string, v any) []string {
	s, err := schemaOf(doc, schema)
	if err != nil {
		return []string{where + ": " + err.Error()}
	}
	for _, kw := range []string{"oneOf", "anyOf"} {
		if branches, ok := s[kw].([]any); ok {
			var first []string
			for i, b := range branches {
				bm, _ := b.(map[string]any)
				errs := shape(doc, bm, where, v)
				if len(errs) == 0 {
					return nil
				}
				if i == 0 {
					first = errs
				}
			}
			return append([]string{fmt.Sprintf("%s: fits no branch of %s", where, kw)}, first...)
		}
	}
	var errs []string
	if !typeAllows(s["type"], v) {
		errs = append(errs, fmt.Sprintf("%s: %s is not of type %v", where, brief(v), s["type"]))
	}
	if enum, ok := s["enum"].([]any); ok && !slices.ContainsFunc(enum, func(e any) bool { return reflect.DeepEqual(e, v) }) {
		errs = append(errs, fmt.Sprintf("%s: %s is not one of %v", where, brief(v), enum))
	}
	if c, ok := s["const"]; ok && !reflect.DeepEqual(c, v) {
		errs = append(errs, fmt.Sprintf("%s: %s, want %v", where, brief(v), c))
	}
	switch v := v.(type) {
	case map[string]any:
		props, _ := s["properties"].(map[string]any)
		if len(props) == 0 {
			if ap, ok := s["additionalProperties"].(map[string]any); ok {
				for k, c := range v {
					errs = append(errs, shape(doc, ap, where+"."+k, c)...)
				}
			}
			break
		}
		for k, c := range v {
			ps, ok := props[k].(map[string]any)
			if !ok {
				errs = append(errs, fmt.Sprintf("%s: key %q is not documented", where, k))
				continue
			}
			errs = append(errs, shape(doc, ps, where+"."+k, c)...)
		}
		for _, r := range asList(s["required"]) {
			if _, ok := v[r.(string)]; !ok {
				errs = append(errs, fmt.Sprintf("%s: required key %q is missing", where, r))
			}
		}
	case []any:
		if items, ok := s["items"].(map[string]any); ok {
			for i, c := range v {
				errs = append(errs, shape(doc, items, fmt.Sprintf("%s[%d]", where, i), c)...)
			}
		}
	}
	return errs
}

// schemaOf follows schema's $ref and merges its allOf into one schema:
// properties and required lists are joined.
func schemaOf(doc map[string]any, schema map[string]any) (map[string]any, error) {
	for {
		ref, ok := schema["$ref"].(string)
		if !ok {
			break
		}
		var err error
		if schema, err = resolvePointer(doc, ref); err != nil {
			return nil, fmt.Errorf("$ref %s: %w", ref, err)
		}
	}
	all, ok := schema["allOf"].([]any)
	if !ok {
		return schema, nil
	}
	merged := map[string]any{}
	props := map[string]any{}
	var required []any
	add := func(p map[string]any) {
		for k, v := range p {
			if k != "allOf" && k != "properties" && k != "required" {
				merged[k] = v
			}
		}
		for k, v := range obj0(p["properties"]) {
			props[k] = v
		}
		required = append(required, asList(p["required"])...)
	}
	for _, part := range all {
		p, ok := part.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("allOf holds a %T", part)
		}
		p, err := schemaOf(doc, p)
		if err != nil {
			return nil, err
		}
		add(p)
	}
	add(schema)
	merged["properties"], merged["required"] = props, required
	return merged, nil
}

func obj0(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

// typeAllows reports whether v is of the JSON Schema type t (a name or a
// list of names); no type allows everything.
func typeAllows(t any, v any) bool {
	var names []string
	switch t := t.(type) {
	case nil:
		return true
	case string:
		names = []string{t}
	case []any:
		for _, n := range t {
			names = append(names, n.(string))
		}
	}
	for _, n := range names {
		switch x := v.(type) {
		case nil:
			if n == "null" {
				return true
			}
		case bool:
			if n == "boolean" {
				return true
			}
		case string:
			if n == "string" {
				return true
			}
		case float64:
			if n == "number" || n == "integer" && x == math.Trunc(x) {
				return true
			}
		case []any:
			if n == "array" {
				return true
			}
		case map[string]any:
			if n == "object" {
				return true
			}
		}
	}
	return false
}

func brief(v any) string {
	b, _ := json.Marshal(v)
	if len(b) > 80 {
		return string(b[:80]) + "..."
	}
	return string(b)
}

// checkAnswer makes a request and checks the answer against what the
// document says of operation pattern ("GET /v1/apps/{id}") and status: its
// media type, its headers and the shape of its body. It returns the
// decoded body.
func checkAnswer(t *testing.T, e *env, doc map[string]any, pattern string, r req, status int) map[string]any {
	t.Helper()
	op, ok := operations(t, doc)[pattern]
	if !ok {
		t.Fatalf("%s is not in the document", pattern)
	}
	r.method, _, _ = strings.Cut(pattern, " ")
	res := e.do(r)
	if res.status != status {
		t.Fatalf("%s %s: status %d, want %d; body: %s", r.method, r.path, res.status, status, res.body)
	}
	resp, ok := obj(t, op["responses"], "responses")[strconv.Itoa(status)]
	if !ok {
		t.Fatalf("%s: status %d is not documented", pattern, status)
	}
	rm := deref(t, doc, resp)
	for name := range obj0(rm["headers"]) {
		if res.header.Get(name) == "" {
			t.Errorf("%s %d: documented header %s is missing", pattern, status, name)
		}
	}
	content := obj0(rm["content"])
	if len(content) == 0 {
		if len(res.body) != 0 {
			t.Errorf("%s %d: documented without a body, got %s", pattern, status, res.body)
		}
		return nil
	}
	mt, _, _ := mime.ParseMediaType(res.header.Get("Content-Type"))
	media, ok := content[mt].(map[string]any)
	if !ok {
		t.Fatalf("%s %d: Content-Type %q is not documented", pattern, status, mt)
	}
	var body any
	if err := json.Unmarshal(res.body, &body); err != nil {
		t.Fatalf("%s %d: decode %s: %v", pattern, status, res.body, err)
	}
	for _, msg := range shape(doc, obj(t, media["schema"], "schema"), pattern, body) {
		t.Errorf("%d: %s; body: %s", status, msg, res.body)
	}
	m, _ := body.(map[string]any)
	return m
}

// TestOpenAPIRequestFields checks the documented request bodies against
// the strict decoder: every documented property is a field it knows (sent
// as null, which any field takes, it is not refused as unknown), and a body
// documented as closed refuses any other.
func TestOpenAPIRequestFields(t *testing.T) {
	t.Parallel()
	e, _ := openAPIEnv(t, fakeBulk{}, &fakeJobs{})
	doc := openAPIDoc(t, e)
	param := regexp.MustCompile(`\{[^}]+\}`)
	probed := 0
	for pattern, op := range operations(t, doc) {
		method, path, _ := strings.Cut(pattern, " ")
		rb, ok := op["requestBody"]
		if !ok || path == "/graphql" {
			continue
		}
		media, ok := obj0(deref(t, doc, rb)["content"])["application/json"].(map[string]any)
		if !ok {
			t.Fatalf("%s: the request body is not application/json", pattern)
		}
		top, err := schemaOf(doc, obj(t, media["schema"], "schema"))
		if err != nil {
			t.Fatal(err)
		}
		branches := []map[string]any{top}
		if one, ok := top["oneOf"].([]any); ok {
			branches = branches[:0]
			for _, b := range one {
				s, err := schemaOf(doc, obj(t, b, "oneOf branch"))
				if err != nil {
					t.Fatal(err)
				}
				branches = append(branches, s)
			}
		}
		target := param.ReplaceAllString(path, "x")
		for _, s := range branches {
			if s["type"] != "object" && s["properties"] == nil {
				continue // a job run's array
			}
			for name := range obj0(s["properties"]) {
				probed++
				res := e.do(req{method: method, path: target, body: map[string]any{name: nil}})
				var p pimhttp.Problem
				_ = json.Unmarshal(res.body, &p)
				if p.Code == pimhook.CodeUnknownField {
					t.Errorf("%s: documented field %q is unknown to the server: %s", pattern, name, res.body)
				}
			}
			if s["additionalProperties"] == false {
				res := e.do(req{method: method, path: target, body: map[string]any{"undocumented": nil}})
				var p pimhttp.Problem
				_ = json.Unmarshal(res.body, &p)
				if p.Code != pimhook.CodeUnknownField {
					t.Errorf("%s: closed body takes an undocumented field: %d %s", pattern, res.status, res.body)
				}
			}
		}
	}
	if probed < 50 {
		t.Fatalf("only %d documented fields probed", probed)
	}
}

// fakeBulk answers a trigger of an operation named "fails" as a receiver
// that answered 500, and any other as one that accepted.
type fakeBulk struct{}

func (fakeBulk) TriggerBulk(_ context.Context, _ *pimhook.Company, op *pimhook.BulkOperation, t pimhook.BulkTrigger) (*pimhook.BulkRun, error) {
	run := &pimhook.BulkRun{
		ID: pimhook.NewID(pimhook.PrefixBulkRun, time.Now()), OperationName: op.Name, URL: op.URL,
		Products: t.ProductUniqueNames, ProductCount: len(t.ProductUniqueNames),
		Status: pimhook.BulkRunSucceeded, StatusCode: 202, TimeoutMS: 2500, DurationMS: 1.5, StartedAt: time.Now().UTC(),
	}
	if op.Name == "fails" {
		run.Status, run.StatusCode, run.Error = pimhook.BulkRunFailed, 500, "HTTP 500"
	}
	return run, nil
}

// TestOpenAPIAnswers checks real answers against the document.
func TestOpenAPIAnswers(t *testing.T) {
	t.Parallel()
	now := time.Now().UTC()
	jobs := &fakeJobs{run: &pimhook.JobRun{
		ID: pimhook.NewID(pimhook.PrefixJobRun, now), JobID: "644", KeyField: "id", Status: pimhook.JobRunAccepted,
		Products: 1, Added: 1, Deliveries: 1, CreatedAt: now, FinishedAt: now,
	}}
	jobs.runs = []*pimhook.JobRun{jobs.run}
	e, _ := openAPIEnv(t, fakeBulk{}, jobs)
	doc := openAPIDoc(t, e)
	check := func(pattern string, r req, status int) map[string]any {
		t.Helper()
		return checkAnswer(t, e, doc, pattern, r, status)
	}

	check("GET /healthz", req{path: "/healthz", key: strp("")}, http.StatusOK)
	check("GET /readyz", req{path: "/readyz", key: strp("")}, http.StatusOK)

	app := check("POST /v1/apps", req{path: "/v1/apps", body: map[string]any{"name": "Webshop", "app_type": "shopware"}}, http.StatusCreated)
	appPath := "/v1/apps/" + app["id"].(string)
	check("GET /v1/apps/{id}", req{path: appPath}, http.StatusOK)
	check("PATCH /v1/apps/{id}", req{path: appPath, body: map[string]any{"worker": "dedicated"}}, http.StatusOK)
	check("GET /v1/apps", req{path: "/v1/apps"}, http.StatusOK)

	hook := check("POST /v1/webhooks", req{path: "/v1/webhooks", body: map[string]any{
		"name": "Product Updates Webhook", "callback_url": "https://shop.example/callbacks/products",
		"entity_type": "product", "include_entity_data": true, "headers": map[string]string{"My-Custom-Header": "abc123"},
		"retry_policy": "linear", "minimum_retry_interval": 300, "retry_limit": 5, "app_id": app["id"],
		"events": []string{"UPDATED", "products.created"}, "fields": []string{"price"},
		"filter_reducers": []any{map[string]any{
			"event_slug":            "products.updated",
			"filter_configuration":  map[string]any{"query": "$.data.price", "condition": "(v) => v > 100", "logic": "and", "conditions": []any{map[string]any{"query": "$.data.stock"}}},
			"reducer_configuration": map[string]any{"price": "$.data.price"},
		}},
	}}, http.StatusCreated)
	hookPath := "/v1/webhooks/" + hook["id"].(string)
	jobHook := check("POST /v1/webhooks", req{path: "/v1/webhooks", body: map[string]any{"callback_url": "https://erp.example/jobs", "job_id": "644"}}, http.StatusCreated)
	if jobHook["job_id"] != "644" || jobHook["batch_size"] == nil {
		t.Fatalf("job webhook without its job fields: %v", jobHook)
	}
	check("GET /v1/webhooks", req{path: "/v1/webhooks"}, http.StatusOK)
	check("GET /v1/webhooks/{id}", req{path: hookPath}, http.StatusOK)
	check("PATCH /v1/webhooks/{id}", req{path: hookPath, body: map[string]any{"enabled": false}}, http.StatusOK)
	check("PUT /v1/webhooks/{id}", req{path: hookPath, body: map[string]any{"callback_url": "https://shop.example/v2"}}, http.StatusOK)
	check("GET /v1/webhooks/{id}/secret", req{path: hookPath + "/secret"}, http.StatusOK)
	check("PUT /v1/webhooks/{id}/filter_reducer", req{path: hookPath + "/filter_reducer", body: map[string]any{
		"event_slug": "*", "filter_configuration": map[string]any{"query": "$.data.price"},
	}}, http.StatusOK)
	check("POST /v1/validate/filter", req{path: "/v1/validate/filter", body: map[string]any{
		"sample_data": map[string]any{"data": map[string]any{"price": 150}}, "filters": map[string]any{"query": "$.data.price", "condition": "(v) => v > 100"},
	}}, http.StatusOK)
	check("POST /v1/validate/filter", req{path: "/v1/validate/filter", body: map[string]any{
		"sample_data": map[string]any{}, "filters": map[string]any{"query": "$[", "condition": "(v) => v > 100"},
	}}, http.StatusOK)
	check("POST /v1/validate/reducer", req{path: "/v1/validate/reducer", body: map[string]any{
		"sample_data": map[string]any{"data": map[string]any{"price": 150}}, "reducer": map[string]any{"price": "$.data.price"},
	}}, http.StatusOK)

	check("POST /v1/events", req{path: "/v1/events", body: map[string]any{
		"entity_type": "product", "entity_id": 17, "action": "ADDED", "data": map[string]any{"price": 1},
	}}, http.StatusAccepted)
	check("POST /v1/events", req{path: "/v1/events", body: map[string]any{"events": []any{
		map[string]any{"id": "e1", "entity_type": "products", "entity_id": "sku-1", "action": "deleted", "revision": 3},
	}}}, http.StatusAccepted)

	check("POST /v1/jobs/{jobID}/runs", req{path: "/v1/jobs/644/runs?key=id&allow_empty=false", body: `{"id":"a"}` + "\n",
		header: map[string]string{"Content-Type": "application/x-ndjson"}}, http.StatusCreated)
	check("GET /v1/jobs/{jobID}/runs", req{path: "/v1/jobs/644/runs"}, http.StatusOK)

	// Two deliveries: one pending, one with a failed attempt, which also
	// enters the error log and makes the webhook fail until pimhook
	// disables it.
	d := e.seedDeliveries(2, hook["id"].(string), app["id"].(string))[0]
	ctx := context.Background()
	stored, err := e.store.Delivery(ctx, e.company.ID, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	at := seedStart.Add(time.Second)
	stored.Status, stored.Attempts, stored.LastStatusCode, stored.LastError = pimhook.DeliveryFailed, 1, 500, "HTTP 500"
	stored.UpdatedAt, stored.FinishedAt = at, &at
	if err := e.store.RecordAttempt(ctx, stored, &pimhook.Attempt{
		ID: pimhook.NewID(pimhook.PrefixAttempt, at), DeliveryID: d.ID, Number: 1, StartedAt: at,
		Duration: 120 * time.Millisecond, StatusCode: 500, Error: "HTTP 500", ResponseBody: "boom",
	}); err != nil {
		t.Fatal(err)
	}
	if page := check("GET /v1/deliveries", req{path: "/v1/deliveries?limit=2"}, http.StatusOK); len(asList(page["data"])) != 2 {
		t.Fatalf("deliveries listed: %v", page)
	}
	check("GET /v1/deliveries", req{path: "/v1/deliveries?limit=1&status=failed"}, http.StatusOK)
	if ok, err := e.store.DisableFailingWebhook(ctx, e.company.ID, hook["id"].(string), time.Minute, time.Now(), "failing for too long"); !ok || err != nil {
		t.Fatalf("disable the failing webhook: %v %v", ok, err)
	}
	if got := check("GET /v1/webhooks/{id}", req{path: hookPath}, http.StatusOK); got["disabled_reason"] == nil || got["failing_since"] == nil {
		t.Fatalf("disabled webhook: %v", got)
	}
	check("GET /v1/deliveries/{id}", req{path: "/v1/deliveries/" + d.ID}, http.StatusOK)
	if page := check("GET /v1/error-log", req{path: "/v1/error-log?source=webhook&limit=10"}, http.StatusOK); len(asList(page["data"])) != 1 {
		t.Fatalf("no error-log entry listed: %v", page)
	}
	report := "/v1/reports/response-time?start_date=" + seedStart.Format(time.RFC3339) + "&end_date=" + seedStart.Add(time.Hour).Format(time.RFC3339) + "&interval=15m"
	if r := check("GET /v1/reports/response-time", req{path: report}, http.StatusOK); len(asList(r["avg_response_time_ts"])) != 1 {
		t.Fatalf("no bucket in the report: %v", r)
	}

	check("GET /v1/company/preferences", req{path: "/v1/company/preferences"}, http.StatusOK)
	check("PATCH /v1/company/preferences", req{path: "/v1/company/preferences", body: map[string]any{"webhook_invocation_timeout_ms": 4000}}, http.StatusOK)

	for _, name := range []string{"export-to-erp", "fails"} {
		check("POST /v1/bulk-operations", req{path: "/v1/bulk-operations", body: map[string]any{"operation_name": name, "url": "https://erp.example/bulk"}}, http.StatusCreated)
	}
	check("GET /v1/bulk-operations", req{path: "/v1/bulk-operations"}, http.StatusOK)
	check("GET /v1/bulk-operations/{name}", req{path: "/v1/bulk-operations/export-to-erp"}, http.StatusOK)
	check("PUT /v1/bulk-operations/{name}", req{path: "/v1/bulk-operations/export-to-erp", body: map[string]any{"url": "https://erp.example/v2", "headers": map[string]string{"X-Tenant": "7"}}}, http.StatusOK)
	check("GET /v1/bulk-operations/{name}/secret", req{path: "/v1/bulk-operations/export-to-erp/secret"}, http.StatusOK)
	run := check("POST /v1/bulk-operations/{name}/trigger", req{path: "/v1/bulk-operations/export-to-erp/trigger", body: map[string]any{"product_unique_names": []string{"sku-1"}}}, http.StatusOK)
	failed := check("POST /v1/bulk-operations/{name}/trigger", req{path: "/v1/bulk-operations/fails/trigger", body: map[string]any{"product_unique_names": []string{"sku-1"}}}, http.StatusBadGateway)
	if failed["receiver_status_code"] != 500.0 || failed["code"] != pimhook.CodeBulkOpFailed {
		t.Fatalf("failed trigger: %v", failed)
	}
	if err := e.store.RecordBulkRun(ctx, &pimhook.BulkRun{
		ID: run["id"].(string), CompanyID: e.company.ID, OperationName: "export-to-erp", URL: "https://erp.example/v2",
		Products: []string{"sku-1"}, ProductCount: 1, Status: pimhook.BulkRunSucceeded, StatusCode: 202, TimeoutMS: 2500, StartedAt: now,
	}, nil); err != nil {
		t.Fatal(err)
	}
	if page := check("GET /v1/bulk-operations/{name}/runs", req{path: "/v1/bulk-operations/export-to-erp/runs?limit=5"}, http.StatusOK); len(asList(page["data"])) != 1 {
		t.Fatalf("no run listed: %v", page)
	}
	check("DELETE /v1/bulk-operations/{name}", req{path: "/v1/bulk-operations/fails"}, http.StatusNoContent)

	// Problems.
	p := check("POST /v1/webhooks", req{path: "/v1/webhooks", body: map[string]any{"name": "no url"}}, http.StatusBadRequest)
	if p["field"] != "callback_url" {
		t.Fatalf("problem without its field: %v", p)
	}
	check("GET /v1/deliveries", req{path: "/v1/deliveries?nope=1"}, http.StatusBadRequest)
	check("GET /v1/webhooks", req{path: "/v1/webhooks", key: strp("")}, http.StatusUnauthorized)
	check("GET /v1/webhooks/{id}", req{path: "/v1/webhooks/wh_nope"}, http.StatusNotFound)
	check("DELETE /v1/apps/{id}", req{path: "/v1/apps/" + jobHook["app_id"].(string)}, http.StatusConflict) // it has the job webhook
	check("PATCH /v1/apps/{id}", req{path: appPath, body: "{}", header: map[string]string{"Content-Type": "text/plain"}}, http.StatusUnsupportedMediaType)
	check("POST /v1/deliveries/{id}/redeliver", req{path: "/v1/deliveries/" + d.ID + "/redeliver"}, http.StatusServiceUnavailable)

	check("DELETE /v1/webhooks/{id}", req{path: hookPath}, http.StatusNoContent)
}
