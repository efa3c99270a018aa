package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

// bulkRun is a run as the API shows it.
type bulkRun struct {
	ID            string   `json:"id"`
	OperationName string   `json:"operation_name"`
	Products      []string `json:"product_unique_names"`
	ProductCount  int      `json:"product_count"`
	Status        string   `json:"status"`
	StatusCode    int      `json:"status_code"`
	Error         string   `json:"error"`
	TimeoutMS     int      `json:"timeout_ms"`
	DurationMS    float64  `json:"duration_ms"`
}

// bulkProblem is the answer of a trigger whose receiver failed.
type bulkProblem struct {
	Status         int     `json:"status"`
	Code           string  `json:"code"`
	Detail         string  `json:"detail"`
	ReceiverStatus *int    `json:"receiver_status_code"`
	Run            bulkRun `json:"run"`
}

// TestBulkOperationsEndToEnd triggers bulk operations against real
// receivers: one that accepts (202), one that fails with a body (500), one
// that sleeps past the company's timeout; and checks the company preference
// that sets the timeout.
func TestBulkOperationsEndToEnd(t *testing.T) {
	t.Parallel()
	accepted := make(chan captured, 4)
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		accepted <- captured{r.Header.Clone(), b}
		w.WriteHeader(http.StatusAccepted)
	}))
	defer ok.Close()
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(w, `{"error":"catalogue service is down for maintenance"}`)
	}))
	defer failing.Close()
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(release)

	m := startMain(t)
	c := m.client(t)

	// The preference: default 2500, at most 10000.
	var prefs struct {
		TimeoutMS int `json:"webhook_invocation_timeout_ms"`
	}
	c.must(http.StatusOK, "GET", "/v1/company/preferences", nil, &prefs)
	if prefs.TimeoutMS != 2500 {
		t.Errorf("default webhook_invocation_timeout_ms = %d, want 2500", prefs.TimeoutMS)
	}
	var p struct {
		Code   string `json:"code"`
		Field  string `json:"field"`
		Detail string `json:"detail"`
	}
	if got := c.do("PATCH", "/v1/company/preferences", map[string]any{"webhook_invocation_timeout_ms": 20000}, &p); got != http.StatusBadRequest ||
		p.Code != "invalid_timeout" || p.Field != "webhook_invocation_timeout_ms" || !strings.Contains(p.Detail, "10000") {
		t.Errorf("preference of 20000: %d %+v, want 400 invalid_timeout naming the limit", got, p)
	}
	c.must(http.StatusOK, "PATCH", "/v1/company/preferences", map[string]any{"webhook_invocation_timeout_ms": 400}, &prefs)
	c.must(http.StatusOK, "GET", "/v1/company/preferences", nil, &prefs)
	if prefs.TimeoutMS != 400 {
		t.Fatalf("webhook_invocation_timeout_ms after PATCH = %d, want 400", prefs.TimeoutMS)
	}

	// Three operations; two share a URL, as document 4 allows.
	var op struct {
		OperationName string `json:"operation_name"`
		SigningSecret string `json:"signing_secret"`
	}
	c.must(http.StatusCreated, "POST", "/v1/bulk-operations", map[string]any{
		"operation_name": "export-to-erp", "url": ok.URL + "/bulk", "headers": map[string]string{"X-Tenant": "acme"},
	}, &op)
	secret := op.SigningSecret
	c.must(http.StatusCreated, "POST", "/v1/bulk-operations", map[string]any{"operation_name": "reprice", "url": ok.URL + "/bulk"}, nil)
	c.must(http.StatusCreated, "POST", "/v1/bulk-operations", map[string]any{"operation_name": "broken", "url": failing.URL}, nil)
	c.must(http.StatusCreated, "POST", "/v1/bulk-operations", map[string]any{"operation_name": "sleepy", "url": slow.URL}, nil)
	if got := c.do("POST", "/v1/bulk-operations", map[string]any{"operation_name": "reprice", "url": ok.URL}, &p); got != http.StatusConflict || p.Code != "already_exists" {
		t.Errorf("duplicate operation name: %d %+v, want 409 already_exists", got, p)
	}

	// Products the catalogue filter runs over.
	for _, pr := range []struct {
		id    string
		price int
	}{{"chair", 150}, {"table", 300}, {"lamp", 20}} {
		c.must(http.StatusAccepted, "POST", "/v1/events", map[string]any{
			"entity_type": "products", "entity_id": pr.id, "action": "created", "data": map[string]any{"price": pr.price},
		}, nil)
	}
	c.must(http.StatusAccepted, "POST", "/v1/events", map[string]any{"entity_type": "products", "entity_id": "table", "action": "deleted"}, nil)

	// 202: the receiver gets the signed payload; the caller the run.
	var run bulkRun
	c.must(http.StatusOK, "POST", "/v1/bulk-operations/export-to-erp/trigger", map[string]any{
		"filter": map[string]any{"query": "$.price", "condition": "(p) => p > 100"},
	}, &run)
	got := receive(t, accepted)
	verify(t, secret, got)
	if h := got.header.Get("X-Tenant"); h != "acme" {
		t.Errorf("custom header = %q", h)
	}
	if id := got.header.Get("webhook-id"); id != run.ID {
		t.Errorf("webhook-id %q, want the run's id %q", id, run.ID)
	}
	if string(got.body) != `{"operationName":"export-to-erp","productUniqueNames":["chair"]}` {
		t.Errorf("payload %s: want document 4's body with only the live product over 100", got.body)
	}
	if run.Status != "succeeded" || run.StatusCode != 202 || run.ProductCount != 1 {
		t.Errorf("run %+v, want succeeded with 202 and one product", run)
	}
	c.must(http.StatusOK, "POST", "/v1/bulk-operations/reprice/trigger", map[string]any{"product_unique_names": []string{"a", "b", "a"}}, &run)
	if got := receive(t, accepted); string(got.body) != `{"operationName":"reprice","productUniqueNames":["a","b"]}` {
		t.Errorf("explicit list payload %s", got.body)
	}

	// 500 with a body: the status reaches the caller, the body the error log.
	var bp bulkProblem
	if got := c.do("POST", "/v1/bulk-operations/broken/trigger", map[string]any{"product_unique_names": []string{"chair"}}, &bp); got != http.StatusBadGateway ||
		bp.Code != "bulk_operation_failed" || bp.ReceiverStatus == nil || *bp.ReceiverStatus != 500 || bp.Run.Status != "failed" || !strings.Contains(bp.Detail, "500") {
		t.Errorf("failing receiver: %d %+v, want 502 bulk_operation_failed carrying 500", got, bp)
	}
	var log struct {
		Data []struct {
			Source        string `json:"source"`
			OperationName string `json:"operation_name"`
			RunID         string `json:"run_id"`
			StatusCode    int    `json:"status_code"`
			ResponseBody  string `json:"response_body"`
		} `json:"data"`
	}
	c.must(http.StatusOK, "GET", "/v1/error-log?source=bulk_operation&operation_name=broken", nil, &log)
	if len(log.Data) != 1 || log.Data[0].StatusCode != 500 || log.Data[0].RunID != bp.Run.ID ||
		log.Data[0].ResponseBody != `{"error":"catalogue service is down for maintenance"}` {
		t.Errorf("error log = %+v, want the receiver's 500 and its body", log.Data)
	}

	// A receiver that sleeps: a timeout at about the configured 400 ms.
	start := time.Now()
	bp = bulkProblem{}
	if got := c.do("POST", "/v1/bulk-operations/sleepy/trigger", map[string]any{"product_unique_names": []string{"chair"}}, &bp); got != http.StatusGatewayTimeout ||
		bp.Code != "bulk_operation_timeout" || bp.ReceiverStatus != nil || bp.Run.Status != "timeout" || bp.Run.TimeoutMS != 400 {
		t.Errorf("sleeping receiver: %d %+v, want 504 bulk_operation_timeout after 400 ms", got, bp)
	}
	if took := time.Since(start); took < 400*time.Millisecond || took > 10*time.Second {
		t.Errorf("timeout answered after %v, want about 400ms", took)
	}
	if bp.Run.DurationMS < 400 {
		t.Errorf("run duration %v ms, want at least the 400 ms timeout", bp.Run.DurationMS)
	}

	// Every run is recorded, newest first.
	var runs struct {
		Data       []bulkRun `json:"data"`
		NextCursor *string   `json:"next_cursor"`
	}
	c.must(http.StatusOK, "GET", "/v1/bulk-operations/broken/runs", nil, &runs)
	if len(runs.Data) != 1 || runs.Data[0].Status != "failed" || runs.Data[0].StatusCode != 500 {
		t.Errorf("runs of broken = %+v", runs.Data)
	}
	for range 2 {
		c.must(http.StatusOK, "POST", "/v1/bulk-operations/reprice/trigger", map[string]any{"product_unique_names": []string{"x"}}, nil)
		receive(t, accepted)
	}
	c.must(http.StatusOK, "GET", "/v1/bulk-operations/reprice/runs?limit=2", nil, &runs)
	if len(runs.Data) != 2 || runs.NextCursor == nil {
		t.Fatalf("first page of reprice runs = %+v, want 2 and a cursor", runs)
	}
	ids := []string{runs.Data[0].ID, runs.Data[1].ID}
	c.must(http.StatusOK, "GET", "/v1/bulk-operations/reprice/runs?limit=2&cursor="+*runs.NextCursor, nil, &runs)
	if len(runs.Data) != 1 || runs.NextCursor != nil || !slices.IsSortedFunc(append(ids, runs.Data[0].ID), func(a, b string) int { return strings.Compare(b, a) }) {
		t.Errorf("second page = %+v after %v: want the oldest run, newest first overall", runs, ids)
	}

	// Listing, replacing and deleting operations.
	var list struct {
		Data []json.RawMessage `json:"data"`
	}
	c.must(http.StatusOK, "GET", "/v1/bulk-operations", nil, &list)
	if len(list.Data) != 4 || strings.Contains(string(list.Data[0]), "whsec_") {
		t.Errorf("list of operations = %s, want 4 without secrets", list.Data)
	}
	c.must(http.StatusOK, "PUT", "/v1/bulk-operations/broken", map[string]any{"url": ok.URL + "/fixed"}, nil)
	c.must(http.StatusOK, "POST", "/v1/bulk-operations/broken/trigger", map[string]any{"product_unique_names": []string{"chair"}}, &run)
	if got := receive(t, accepted); !strings.Contains(string(got.body), `"broken"`) {
		t.Errorf("after PUT, the trigger went elsewhere: %s", got.body)
	}
	c.must(http.StatusNoContent, "DELETE", "/v1/bulk-operations/broken", nil, nil)
	if got := c.do("POST", "/v1/bulk-operations/broken/trigger", map[string]any{"product_unique_names": []string{"chair"}}, &p); got != http.StatusNotFound || p.Code != "bulk_operation_not_found" {
		t.Errorf("trigger of a deleted operation: %d %+v", got, p)
	}

	// Bad triggers are the caller's 400s, and call nobody.
	for _, tc := range []struct {
		body  map[string]any
		code  string
		field string
	}{
		{map[string]any{}, "validation_failed", "filter"},
		{map[string]any{"product_unique_names": []string{}}, "no_products_matched", "product_unique_names"},
		{map[string]any{"filter": map[string]any{"query": "$.price", "condition": "(p) => p > 10000"}}, "no_products_matched", "filter"},
		{map[string]any{"filter": map[string]any{"query": "$[", "condition": "(p) => true"}}, "invalid_filter", "filter.query"},
		{map[string]any{"filter": map[string]any{"query": "$.price"}, "product_unique_names": []string{"a"}}, "validation_failed", "filter"},
	} {
		p.Code, p.Field = "", ""
		if got := c.do("POST", "/v1/bulk-operations/reprice/trigger", tc.body, &p); got != http.StatusBadRequest || p.Code != tc.code || p.Field != tc.field {
			t.Errorf("trigger %v: %d %+v, want 400 %s at %s", tc.body, got, p, tc.code, tc.field)
		}
	}
	select {
	case got := <-accepted:
		t.Errorf("a bad trigger called the receiver: %s", got.body)
	default:
	}
}
