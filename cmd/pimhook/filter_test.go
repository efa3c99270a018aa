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

// TestFilterAndReducerEndToEnd gives one webhook a filter and another a
// reducer, posts events over the API, and checks what arrives: the filtered
// webhook gets only the events its filter passes, the reduced one gets the
// reduced body, signed.
func TestFilterAndReducerEndToEnd(t *testing.T) {
	t.Parallel()
	filtered := make(chan captured, 10)
	reduced := make(chan captured, 10)
	receiver := func(ch chan<- captured) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			ch <- captured{r.Header.Clone(), b}
			w.WriteHeader(http.StatusNoContent)
		}))
	}
	rf, rr := receiver(filtered), receiver(reduced)
	defer rf.Close()
	defer rr.Close()

	m := startMain(t)
	c := m.client(t)
	c.createWebhook(map[string]any{
		"callback_url": rf.URL, "entity_type": "product", "include_entity_data": true,
		"filter_reducers": []map[string]any{{
			"event_slug": "products.updated",
			"filter_configuration": map[string]any{
				"logic": "AND",
				"conditions": []map[string]any{
					{"query": "$.data.price", "condition": "(value) => value > 100"},
					{"logic": "OR", "conditions": []map[string]any{
						{"query": "$.data.colors[*]", "condition": `function (v) { return v.includes("red") }`},
						{"query": "$.data.featured"},
					}},
				},
			},
		}},
	})
	red := c.createWebhook(map[string]any{"callback_url": rr.URL, "entity_type": "product", "include_entity_data": true})
	var saved struct {
		Success bool            `json:"success"`
		Data    json.RawMessage `json:"data"`
	}
	c.must(http.StatusOK, "PUT", "/v1/webhooks/"+red.ID+"/filter_reducer", map[string]any{
		"event_slug": "*",
		"reducer_configuration": map[string]any{
			"sku": "$.entity_id", "event": "$.event", "price": "$.data.price",
			"colors": "$.data.colors[*]", "source": "pim", "meta": map[string]any{"revision": "$.revision.number", "missing": "$.data.nope"},
		},
	}, &saved)
	if !saved.Success {
		t.Fatalf("filter_reducer not saved: %s", saved.Data)
	}

	post := func(id string, data map[string]any) {
		t.Helper()
		c.must(http.StatusAccepted, "POST", "/v1/events", map[string]any{
			"entity_type": "products", "entity_id": id, "action": "updated", "data": data,
		}, nil)
	}
	// Each product is created first (a creation passes: the filter is for
	// products.updated only), then updated.
	cases := []struct {
		id   string
		data map[string]any
		pass bool
	}{
		{"cheap-red", map[string]any{"price": 50, "colors": []string{"red"}}, false},
		{"dear-red", map[string]any{"price": 150, "colors": []string{"blue", "red"}}, true},
		{"dear-blue", map[string]any{"price": 150, "colors": []string{"blue"}}, false},
		{"dear-featured", map[string]any{"price": 150, "colors": []string{}, "featured": true}, true},
	}
	for _, tc := range cases {
		post(tc.id, map[string]any{"price": 1})
		receive(t, reduced)
		post(tc.id, tc.data)
		r := receive(t, reduced)
		verify(t, red.SigningSecret, r)
		var body map[string]any
		decode(t, r.body, &body)
		if body["sku"] != tc.id || body["event"] != "products.updated" || body["source"] != "pim" {
			t.Errorf("reduced body %s: wrong sku, event or literal", r.body)
		}
		if got, _ := json.Marshal(body["meta"]); string(got) != `{"missing":null,"revision":2}` {
			t.Errorf("reduced meta = %s, want revision 2 and a null for the missing field", got)
		}
		if _, ok := body["colors"].([]any); !ok {
			t.Errorf("reduced colors = %v, want a list (a wildcard query selects a list)", body["colors"])
		}
		if len(body) != 6 {
			t.Errorf("reduced body has keys beyond the reducer's: %s", r.body)
		}
	}
	// The reduced webhook has seen every event; the filtered one every
	// creation (its filter is for updates only) and exactly the passing
	// updates, in order. A last creation marks the end of the stream.
	post("marker", map[string]any{"price": 1})
	var got []string
	for {
		r := receive(t, filtered)
		var p struct {
			Event    string `json:"event"`
			EntityID string `json:"entity_id"`
		}
		decode(t, r.body, &p)
		got = append(got, p.EntityID+" "+p.Event)
		if p.EntityID == "marker" {
			break
		}
	}
	want := []string{
		"cheap-red products.created", "dear-red products.created", "dear-red products.updated",
		"dear-blue products.created", "dear-featured products.created", "dear-featured products.updated",
		"marker products.created",
	}
	if strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Errorf("filtered webhook got\n%v\nwant\n%v", got, want)
	}
}

// TestFilterFailuresEndToEnd saves conditions that loop forever, allocate
// without bound and throw. Each costs its webhook the delivery, is reported
// in the ingest answer and in the error log, and the server keeps serving.
func TestFilterFailuresEndToEnd(t *testing.T) {
	t.Parallel()
	arrived := make(chan captured, 10)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		arrived <- captured{r.Header.Clone(), b}
	}))
	defer recv.Close()
	// A long time budget and a small memory one, so that the allocating
	// condition is stopped by memory, not time.
	m := startMain(t, func(c *Config) { c.FilterTimeout, c.FilterMemory = 2*time.Second, 16<<20 })
	c := m.client(t)
	conditions := map[string]string{
		"loops":     "(v) => { while (true) {} }",
		"allocates": `(v) => { const a = []; while (true) a.push("x".repeat(1024)); }`,
		"throws":    `(v) => { throw new Error("no price") }`,
	}
	hooks := map[string]string{}
	for name, cond := range conditions {
		hooks[c.createWebhook(map[string]any{
			"name": name, "callback_url": recv.URL, "entity_type": "product",
			"filter_reducers": []map[string]any{{"event_slug": "products.created", "filter_configuration": map[string]any{"query": "$.entity_id", "condition": cond}}},
		}).ID] = name
	}
	healthy := c.createWebhook(map[string]any{"name": "healthy", "callback_url": recv.URL, "entity_type": "product"})

	// While the ingest runs its filters, the server answers other requests.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 20 {
			resp, err := http.Get("http://" + m.Listener.Addr().String() + "/healthz")
			if err != nil {
				t.Errorf("healthz during filters: %v", err)
				return
			}
			resp.Body.Close()
		}
	}()
	var ack struct {
		Events []struct {
			Deliveries   int `json:"deliveries"`
			FilterErrors []struct {
				WebhookID string `json:"webhook_id"`
				Message   string `json:"message"`
			} `json:"filter_errors"`
		} `json:"events"`
	}
	start := time.Now()
	c.must(http.StatusAccepted, "POST", "/v1/events", map[string]any{
		"entity_type": "products", "entity_id": "p1", "action": "created", "data": map[string]any{"price": 1},
	}, &ack)
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("ingest with failing filters took %v", took)
	}
	<-done
	if len(ack.Events) != 1 || ack.Events[0].Deliveries != 1 {
		t.Fatalf("ingest answer %+v: want one delivery (the healthy webhook's)", ack)
	}
	// The allocating condition is stopped by the memory budget, unless a
	// starved machine lets its time budget run out first.
	want := map[string][]string{"loops": {"budget"}, "allocates": {"memory", "budget"}, "throws": {"no price"}}
	for _, fe := range ack.Events[0].FilterErrors {
		name := hooks[fe.WebhookID]
		if !slices.ContainsFunc(want[name], func(w string) bool { return strings.Contains(fe.Message, w) }) {
			t.Errorf("filter error of %q = %q, want it to mention one of %q", name, fe.Message, want[name])
		}
		delete(want, name)
	}
	if len(want) > 0 {
		t.Errorf("no filter error reported for %v", want)
	}
	if got := receive(t, arrived); !strings.Contains(string(got.body), healthy.ID) {
		t.Errorf("delivery went to another webhook than the healthy one: %s", got.body)
	}

	var log struct {
		Data []struct {
			Source    string `json:"source"`
			WebhookID string `json:"webhook_id"`
			EventID   string `json:"event_id"`
			Error     string `json:"error"`
		} `json:"data"`
	}
	c.must(http.StatusOK, "GET", "/v1/error-log?source=filter", nil, &log)
	if len(log.Data) != 3 {
		t.Fatalf("error log holds %d filter entries, want 3: %+v", len(log.Data), log.Data)
	}
	for _, e := range log.Data {
		if hooks[e.WebhookID] == "" || e.EventID == "" || e.Error == "" {
			t.Errorf("error-log entry %+v: want the webhook, the event and the message", e)
		}
	}
}

// TestValidateEndpoints checks POST /v1/validate/filter and /reducer with
// document 5's shapes, a syntax error's position included.
func TestValidateEndpoints(t *testing.T) {
	t.Parallel()
	c := startMain(t).client(t)
	sample := map[string]any{"data": map[string]any{"price": 150, "name": "Chair"}}
	type validation struct {
		Success       bool            `json:"success"`
		Message       string          `json:"message"`
		FilterResult  *bool           `json:"filter_result"`
		ReducerResult json.RawMessage `json:"reducer_result"`
		Code          string          `json:"code"`
		Field         string          `json:"field"`
	}
	var v validation
	c.must(http.StatusOK, "POST", "/v1/validate/filter", map[string]any{
		"sample_data": sample, "filters": map[string]any{"query": "$.data.price", "condition": "(value) => value > 100"},
	}, &v)
	if !v.Success || v.FilterResult == nil || !*v.FilterResult {
		t.Errorf("passing filter: %+v", v)
	}
	v = validation{}
	c.must(http.StatusOK, "POST", "/v1/validate/filter", map[string]any{
		"sample_data": sample, "filters": map[string]any{"logic": "OR", "conditions": []map[string]any{
			{"query": "$.data.price", "condition": "(value) => value >"},
		}},
	}, &v)
	if v.Success || v.Code != "invalid_filter" || v.Field != "filters.conditions[0].condition" || !strings.Contains(v.Message, "line 1") {
		t.Errorf("syntax error: %+v, want success false, invalid_filter at filters.conditions[0].condition with its line", v)
	}
	v.ReducerResult = nil
	c.must(http.StatusOK, "POST", "/v1/validate/reducer", map[string]any{
		"sample_data": sample, "reducer": json.RawMessage(`{"name": "$.data.name", "kind": "product"}`),
	}, &v)
	if !v.Success || string(v.ReducerResult) != `{"name":"Chair","kind":"product"}` {
		t.Errorf("reducer: success %v, result %s", v.Success, v.ReducerResult)
	}
	var p struct {
		Code  string `json:"code"`
		Field string `json:"field"`
	}
	if got := c.do("POST", "/v1/validate/reducer", map[string]any{"reducer": map[string]any{}}, &p); got != http.StatusBadRequest || p.Field != "sample_data" {
		t.Errorf("reducer without sample_data: %d %+v, want 400 naming sample_data", got, p)
	}
}
