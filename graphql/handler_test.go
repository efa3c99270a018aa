package graphql_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/pimhook/pimhook"
	"github.com/pimhook/pimhook/graphql"
)

func TestUnauthenticated(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, key := range []string{"", "phk_wrong"} {
		req, _ := http.NewRequest("POST", e.url+"/graphql", strings.NewReader(`{"query":"{ getWebhooks { id } }"}`))
		req.Header.Set("Content-Type", "application/json")
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var p struct{ Code string }
		_ = json.NewDecoder(resp.Body).Decode(&p)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || p.Code != "unauthorized" ||
			resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("key %q: %d %s %+v, want the REST API's 401 problem", key, resp.StatusCode, resp.Header.Get("Content-Type"), p)
		}
	}
}

func TestGET(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	status, r := e.send("GET", "/graphql?query="+url.QueryEscape(`{ getWebhooks { id } }`), "", nil)
	if status != http.StatusOK || len(r.Errors) != 0 || string(r.Data) != `{"getWebhooks":[]}` {
		t.Errorf("GET query: %d %s %+v", status, r.Data, r.Errors)
	}
	status, r = e.send("GET", "/graphql?query="+url.QueryEscape(`mutation { deleteWebhook(id: "x") }`), "", nil)
	if status == http.StatusOK || len(r.Errors) != 1 || string(r.Data) != "null" {
		t.Errorf("GET mutation: %d %s %+v, want it refused", status, r.Data, r.Errors)
	}
}

func TestIntrospection(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var out struct {
		Schema struct {
			QueryType    struct{ Name string }
			MutationType struct{ Name string }
		} `json:"__schema"`
		Type struct {
			Fields []struct {
				Name string
				Type struct {
					Kind   string
					OfType *struct{ Name string }
				}
			}
		} `json:"__type"`
	}
	e.do(`{ __schema { queryType { name } mutationType { name } }
	  __type(name: "WebhookSchema") { fields { name type { kind ofType { name } } } } }`, nil, &out)
	if out.Schema.QueryType.Name != "Query" || out.Schema.MutationType.Name != "Mutation" || len(out.Type.Fields) != 5 {
		t.Errorf("introspection: %+v", out)
	}
}

func TestRequestErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *graphql.Config) { c.MaxBodyBytes = 4096 })
	cases := []struct {
		name        string
		contentType string
		body        string
		status      int
		code        string
	}{
		{"not JSON media type", "text/plain", `{"query":"{ apps { id } }"}`, http.StatusUnsupportedMediaType, "unsupported_media_type"},
		{"no media type", "", `{"query":"{ apps { id } }"}`, http.StatusUnsupportedMediaType, "unsupported_media_type"},
		{"not UTF-8", "application/json; charset=latin1", `{"query":"{ apps { id } }"}`, http.StatusUnsupportedMediaType, "unsupported_media_type"},
		{"malformed JSON", "application/json", `{"query":`, http.StatusBadRequest, "malformed_json"},
		{"array body", "application/json", `[{"query":"{ apps { id } }"}]`, http.StatusBadRequest, "malformed_json"},
		{"variables not an object", "application/json", `{"query":"{ apps { id } }","variables":[1]}`, http.StatusBadRequest, "malformed_json"},
		{"too large", "application/json", `{"query":"{ apps { id } }","x":"` + strings.Repeat("x", 5000) + `"}`, http.StatusRequestEntityTooLarge, "body_too_large"},
		{"parse error", "application/json", `{"query":"{ apps { id }"}`, http.StatusUnprocessableEntity, "GRAPHQL_PARSE_FAILED"},
		{"unknown field", "application/json", `{"query":"{ apps { secret } }"}`, http.StatusUnprocessableEntity, "GRAPHQL_VALIDATION_FAILED"},
		{"bad enum", "application/json", `{"query":"mutation { saveWebhook(url: \"https://example.com\", event: CHANGED, jobID: \"j\") }"}`, http.StatusUnprocessableEntity, "GRAPHQL_VALIDATION_FAILED"},
		{"missing argument", "application/json", `{"query":"mutation { saveWebhook(url: \"https://example.com\", event: ADDED) }"}`, http.StatusUnprocessableEntity, "GRAPHQL_VALIDATION_FAILED"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := *e
			e.t = t
			status, r := e.send("POST", "/graphql", c.contentType, strings.NewReader(c.body))
			if status != c.status || len(r.Errors) != 1 || r.Errors[0].Extensions.Code != c.code {
				t.Errorf("status %d, errors %+v; want %d with code %s", status, r.Errors, c.status, c.code)
			}
		})
	}
}

func TestComplexityLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// A page of 1000 deliveries costs 1000 times one delivery's fields,
	// and attempts cost more.
	status, r := e.post(`{ deliveries(first: 1000) { nodes { id status payload createdAt
	  attempts { number statusCode succeeded error responseBody durationMS startedAt } } } }`, nil)
	if len(r.Errors) != 1 || r.Errors[0].Extensions.Code != "COMPLEXITY_LIMIT_EXCEEDED" || string(r.Data) != "null" {
		t.Errorf("a costly page: %d %+v %s, want it refused", status, r.Errors, r.Data)
	}
	// So do many aliases of a cheap field.
	var q strings.Builder
	q.WriteString("{")
	for i := range graphql.DefaultComplexityLimit/2 + 1 { // each costs 2: apps and id
		fmt.Fprintf(&q, " a%d: apps { id }", i)
	}
	q.WriteString(" }")
	status, r = e.post(q.String(), nil)
	if len(r.Errors) != 1 || r.Errors[0].Extensions.Code != "COMPLEXITY_LIMIT_EXCEEDED" {
		t.Errorf("many aliases: %d %+v, want them refused", status, r.Errors)
	}
	e.do(`{ deliveries(first: 1000) { nodes { id appID webhookID eventID event status attemptCount nextAttemptAt
	  lastStatusCode lastError payload createdAt updatedAt finishedAt } pageInfo { hasNextPage endCursor } } }`, nil, nil)
	e.do(`{ deliveries(first: 500) { nodes { id attempts { number statusCode succeeded } } } }`, nil, nil)
}

// failingJobs is a job store whose every read fails.
type failingJobs struct{ err error }

func (f failingJobs) JobRuns(context.Context, string, string) ([]*pimhook.JobRun, error) {
	return nil, f.err
}

func TestInternalErrorsAreHidden(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *graphql.Config) {
		c.Jobs = failingJobs{errors.New("disk on fire at /var/lib/pimhook")}
	})
	status, r := e.post(`{ jobRuns(jobID: "644") { id } }`, nil)
	if status != http.StatusOK || len(r.Errors) != 1 {
		t.Fatalf("status %d, errors %+v", status, r.Errors)
	}
	got := r.Errors[0]
	if got.Message != "internal error" || got.Extensions.Code != "internal_error" || len(got.Path) != 1 || got.Path[0] != "jobRuns" {
		t.Errorf("error %+v, want an internal error at jobRuns", got)
	}
	if !strings.Contains(e.logs.String(), "disk on fire") {
		t.Errorf("the real error was not logged: %q", e.logs.String())
	}
}
