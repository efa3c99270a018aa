package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The examples of reference document 2, exactly as it prints them.
const (
	doc2GetWebhooks = `query {
  getWebhooks {
    id
    url
    event
    fields
    jobID
  }
}`
	doc2SaveWebhook = `mutation {
  saveWebhook(
    url: "https://example.com/webhook",
    event: UPDATED,
    fields: ["price", "stock"],
    jobID: "job123"
  )
}`
	doc2DeleteWebhook = `mutation {
  deleteWebhook(id: "webhook789")
}`
	doc2SaveWebhookFields = `mutation {
  saveWebhook(
    url: "https://example.com/webhook",
    event: UPDATED,
    fields: ["price", "stock"],
    jobID: "4765"
  )
}`
)

type gqlAnswer struct {
	Data   json.RawMessage `json:"data"`
	Errors []struct {
		Message    string `json:"message"`
		Extensions struct {
			Code  string `json:"code"`
			Field string `json:"field"`
		} `json:"extensions"`
	} `json:"errors"`
}

// graphql posts an operation to /graphql with key (none if empty) and
// returns the status and the answer's body.
func (c *client) graphql(key, query string) (int, []byte) {
	c.t.Helper()
	body, err := json.Marshal(map[string]string{"query": query})
	if err != nil {
		c.t.Fatalf("encode: %v", err)
	}
	req, err := http.NewRequest("POST", c.base+"/graphql", bytes.NewReader(body))
	if err != nil {
		c.t.Fatalf("request: %v", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("POST /graphql: %v", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return resp.StatusCode, raw
}

// gql sends an operation that must succeed and decodes its data into out.
func (c *client) gql(query string, out any) {
	c.t.Helper()
	status, raw := c.graphql(c.key, query)
	var a gqlAnswer
	if err := json.Unmarshal(raw, &a); err != nil || status != http.StatusOK || len(a.Errors) > 0 {
		c.t.Fatalf("status %d: %s\nquery:\n%s", status, raw, query)
	}
	if err := json.Unmarshal(a.Data, out); err != nil {
		c.t.Fatalf("decode %s: %v", a.Data, err)
	}
}

// gqlError sends an operation that must fail and returns its one error.
func (c *client) gqlError(query string) (int, string, string) {
	c.t.Helper()
	status, raw := c.graphql(c.key, query)
	var a gqlAnswer
	if err := json.Unmarshal(raw, &a); err != nil || len(a.Errors) != 1 {
		c.t.Fatalf("status %d: %s, want one error\nquery:\n%s", status, raw, query)
	}
	return status, a.Errors[0].Extensions.Code, a.Errors[0].Message
}

type doc2Webhook struct {
	ID     string   `json:"id"`
	URL    string   `json:"url"`
	Event  string   `json:"event"`
	Fields []string `json:"fields"`
	JobID  string   `json:"jobID"`
}

func TestGraphQLDocument2Examples(t *testing.T) {
	t.Parallel()
	c := startMain(t).client(t)
	getWebhooks := func() []doc2Webhook {
		t.Helper()
		var out struct{ GetWebhooks []doc2Webhook }
		c.gql(doc2GetWebhooks, &out)
		return out.GetWebhooks
	}
	save := func(query string) string {
		t.Helper()
		var out struct{ SaveWebhook string }
		c.gql(query, &out)
		return out.SaveWebhook
	}

	if got := getWebhooks(); got == nil || len(got) != 0 {
		t.Fatalf("getWebhooks before any save: %#v, want []", got)
	}

	id := save(doc2SaveWebhook)
	want := doc2Webhook{ID: id, URL: "https://example.com/webhook", Event: "UPDATED", Fields: []string{"price", "stock"}, JobID: "job123"}
	if got := getWebhooks(); !reflect.DeepEqual(got, []doc2Webhook{want}) {
		t.Fatalf("getWebhooks after saveWebhook: %+v, want [%+v]", got, want)
	}
	// REST sees a job webhook of that job and event.
	var rest struct {
		CallbackURL string   `json:"callback_url"`
		Events      []string `json:"events"`
		Fields      []string `json:"fields"`
		JobID       string   `json:"job_id"`
		Format      string   `json:"format"`
		Enabled     bool     `json:"enabled"`
	}
	c.must(http.StatusOK, "GET", "/v1/webhooks/"+id, nil, &rest)
	if rest.CallbackURL != want.URL || !reflect.DeepEqual(rest.Events, []string{"updated"}) || rest.JobID != "job123" ||
		rest.Format != "job" || !rest.Enabled || !reflect.DeepEqual(rest.Fields, want.Fields) {
		t.Errorf("REST shows %+v", rest)
	}

	// The same job, url and event again is an update of the same webhook:
	// another set of fields, then the example's again.
	if again := save(strings.Replace(doc2SaveWebhook, `["price", "stock"]`, `["name"]`, 1)); again != id {
		t.Fatalf("saving job123's UPDATED webhook with other fields gave %s, want %s", again, id)
	}
	if got := getWebhooks(); len(got) != 1 || !reflect.DeepEqual(got[0].Fields, []string{"name"}) {
		t.Fatalf("getWebhooks after the update: %+v, want fields [name]", got)
	}
	if again := save(doc2SaveWebhook); again != id {
		t.Fatalf("saving the example again gave %s, want %s", again, id)
	}
	if got := getWebhooks(); !reflect.DeepEqual(got, []doc2Webhook{want}) {
		t.Fatalf("getWebhooks after saving the example again: %+v", got)
	}

	// Another event, or another job, is another webhook.
	added := save(strings.Replace(doc2SaveWebhook, "event: UPDATED", "event: ADDED", 1))
	other := save(doc2SaveWebhookFields)
	if added == id || other == id || added == other {
		t.Fatalf("ids %s, %s, %s: want three webhooks", id, added, other)
	}
	got := getWebhooks()
	if len(got) != 3 || got[1].ID != added || got[1].Event != "ADDED" || got[2].ID != other || got[2].JobID != "4765" ||
		!reflect.DeepEqual(got[2].Fields, []string{"price", "stock"}) {
		t.Fatalf("getWebhooks with three webhooks: %+v", got)
	}

	var del struct{ DeleteWebhook bool }
	c.gql(doc2DeleteWebhook, &del)
	if del.DeleteWebhook {
		t.Error(`deleteWebhook(id: "webhook789"): true, want false for an unknown id`)
	}
	c.gql(fmt.Sprintf(`mutation { deleteWebhook(id: %q) }`, added), &del)
	if !del.DeleteWebhook {
		t.Error("deleteWebhook of a saved webhook: false")
	}
	if got := getWebhooks(); len(got) != 2 || got[0].ID != id || got[1].ID != other {
		t.Errorf("getWebhooks after delete: %+v", got)
	}
	c.must(http.StatusNotFound, "GET", "/v1/webhooks/"+added, nil, nil)
}

func TestGraphQLErrors(t *testing.T) {
	t.Parallel()
	c := startMain(t).client(t)

	for _, key := range []string{"", "phk_not_a_key"} {
		status, raw := c.graphql(key, doc2GetWebhooks)
		var p struct{ Code string }
		if err := json.Unmarshal(raw, &p); err != nil || status != http.StatusUnauthorized || p.Code != "unauthorized" {
			t.Errorf("key %q: %d %s, want the 401 problem", key, status, raw)
		}
	}

	bad := strings.Replace(doc2SaveWebhook, "https://example.com/webhook", "htp:/example.com", 1)
	if _, code, msg := c.gqlError(bad); code != "invalid_callback_url" {
		t.Errorf("a malformed url: code %q (%s), want invalid_callback_url", code, msg)
	}
	private := strings.Replace(doc2SaveWebhook, "https://example.com/webhook", "http://10.0.0.1/webhook", 1)
	if _, code, msg := c.gqlError(private); code != "target_forbidden" {
		t.Errorf("a private address: code %q (%s), want target_forbidden", code, msg)
	}

	var q strings.Builder
	q.WriteString("query {")
	for i := range 20000 {
		fmt.Fprintf(&q, " w%d: getWebhooks { id }", i)
	}
	q.WriteString(" }")
	if _, code, msg := c.gqlError(q.String()); code != "COMPLEXITY_LIMIT_EXCEEDED" {
		t.Errorf("an operation over the complexity limit: code %q (%s)", code, msg)
	}

	var out struct{ GetWebhooks []doc2Webhook }
	c.gql(doc2GetWebhooks, &out)
	if len(out.GetWebhooks) != 0 {
		t.Errorf("refused saves left webhooks: %+v", out.GetWebhooks)
	}
}

// TestGraphQLJobRunDeliveries follows a job webhook saved over GraphQL
// through a job run posted over REST, and reads the run, the delivery and
// its attempt back over GraphQL.
func TestGraphQLJobRunDeliveries(t *testing.T) {
	t.Parallel()
	got := make(chan captured, 10)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- captured{r.Header.Clone(), b}
	}))
	defer recv.Close()
	c := startMain(t).client(t)

	var saved struct{ SaveWebhook string }
	c.gql(fmt.Sprintf(`mutation { saveWebhook(url: %q, event: ADDED, jobID: "gql-job") }`, recv.URL+"/hook"), &saved)
	c.must(http.StatusCreated, "POST", "/v1/jobs/gql-job/runs", []any{
		map[string]any{"id": "p1", "price": 1}, map[string]any{"id": "p2", "price": 2},
	}, nil)
	var payload struct {
		JobID    string `json:"jobID"`
		Products []struct {
			Event string `json:"event"`
		} `json:"products"`
	}
	if err := json.Unmarshal(receive(t, got).body, &payload); err != nil || payload.JobID != "gql-job" || len(payload.Products) != 2 {
		t.Fatalf("job delivery %+v (%v)", payload, err)
	}

	var runs struct {
		JobRuns []struct {
			Status            string
			Added, Deliveries int
		}
	}
	c.gql(`{ jobRuns(jobID: "gql-job") { status added deliveries } }`, &runs)
	if len(runs.JobRuns) != 1 || runs.JobRuns[0].Status != "ACCEPTED" || runs.JobRuns[0].Added != 2 || runs.JobRuns[0].Deliveries != 1 {
		t.Errorf("jobRuns: %+v", runs.JobRuns)
	}

	query := fmt.Sprintf(`{ deliveries(webhookID: %q) { nodes { status payload attempts { number statusCode succeeded } } } }`, saved.SaveWebhook)
	var page struct {
		Deliveries struct {
			Nodes []struct {
				Status   string
				Payload  struct{ JobID string }
				Attempts []struct {
					Number, StatusCode int
					Succeeded          bool
				}
			}
		}
	}
	waitFor(t, "the delivery to be recorded", 10*time.Second, func() bool {
		c.gql(query, &page)
		return len(page.Deliveries.Nodes) == 1 && page.Deliveries.Nodes[0].Status == "SUCCEEDED"
	})
	d := page.Deliveries.Nodes[0]
	if d.Payload.JobID != "gql-job" || len(d.Attempts) != 1 || d.Attempts[0].StatusCode != 200 || !d.Attempts[0].Succeeded {
		t.Errorf("delivery: %+v", d)
	}
}
