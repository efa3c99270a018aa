package http_test

import (
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/pimhook/pimhook"
)

func TestPostSingleEvent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	res := e.do(req{
		method: "POST", path: "/v1/events",
		body:   `{"entity_type":"product","entity_id":42,"action":"UPDATED","data":{"price":10},"previous":{"price":9},"source_app_id":"app_x"}`,
		header: map[string]string{"Idempotency-Key": "import-7"},
	})
	m := res.ok(t, http.StatusAccepted)
	want := []any{map[string]any{"id": "import-7", "event": "products.updated", "revision": 1.0, "deliveries": 0.0, "status": "accepted"}}
	if !reflect.DeepEqual(m["events"], want) {
		t.Fatalf("answer %v, want events %v", m, want)
	}
	calls := e.ingester.recorded()
	if len(calls) != 1 || len(calls[0]) != 1 {
		t.Fatalf("ingester calls: %v", calls)
	}
	ev := calls[0][0]
	if ev.ID != "import-7" || ev.EntityType != "products" || ev.EntityID != "42" || ev.Action != pimhook.ActionUpdated ||
		string(ev.Data) != `{"price":10}` || string(ev.Previous) != `{"price":9}` || ev.SourceAppID != "app_x" ||
		ev.CompanyID != e.company.ID || ev.ReceivedAt.IsZero() {
		t.Fatalf("event %+v", ev)
	}
}

func TestPostEventIDBeatsHeader(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.do(req{
		method: "POST", path: "/v1/events",
		body:   `{"id":"own","entity_type":"brands","entity_id":"b1","action":"deleted"}`,
		header: map[string]string{"Idempotency-Key": "header"},
	}).ok(t, http.StatusAccepted)
	ev := e.ingester.recorded()[0][0]
	if ev.ID != "own" || ev.Action != pimhook.ActionDeleted || ev.Data != nil || ev.EntityType != "brands" {
		t.Fatalf("event %+v", ev)
	}
}

func TestPostEventBatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	m := e.post("/v1/events", `{"events":[
		{"entity_type":"product","entity_id":"1","action":"created","data":{"a":1}},
		{"id":"k2","entity_type":"concrete_entity","entity_id":2,"action":"ADDED","data":{"b":2}},
		{"entity_type":"category","entity_id":"c","action":"REMOVED","data":null}
	]}`).ok(t, http.StatusAccepted)
	if got := len(m["events"].([]any)); got != 3 {
		t.Fatalf("%d results, want 3: %v", got, m)
	}
	calls := e.ingester.recorded()
	if len(calls) != 1 {
		t.Fatalf("ingester called %d times, want once", len(calls))
	}
	var got [][4]string
	for _, ev := range calls[0] {
		got = append(got, [4]string{ev.ID, ev.EntityType, ev.EntityID, string(ev.Action)})
	}
	want := [][4]string{
		{"", "products", "1", "created"},
		{"k2", "concrete_entities", "2", "created"},
		{"", "categories", "c", "deleted"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
}

func TestPostEventBatchIdempotencyKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.do(req{
		method: "POST", path: "/v1/events",
		body:   `{"events":[{"entity_type":"product","entity_id":"1","action":"created","data":{}},{"id":"mine","entity_type":"product","entity_id":"2","action":"created","data":{}}]}`,
		header: map[string]string{"Idempotency-Key": "batch-1"},
	}).ok(t, http.StatusAccepted)
	evs := e.ingester.recorded()[0]
	if evs[0].ID != "batch-1:0" || evs[1].ID != "mine" {
		t.Fatalf("ids %q %q", evs[0].ID, evs[1].ID)
	}
}

func TestPostEventIngestErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		err    error
		status int
		code   string
	}{
		{"reused key", pimhook.Errorf(pimhook.KindConflict, pimhook.CodeIdempotencyReuse, "key reused"), http.StatusConflict, "idempotency_key_reused"},
		{"unexpected", errors.New("disk on fire at /var/lib/pimhook"), http.StatusInternalServerError, "internal_error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.ingester.fail(tt.err)
			p := e.post("/v1/events", `{"entity_type":"product","entity_id":"1","action":"created","data":{}}`).problem(t, tt.status, tt.code)
			if tt.status != http.StatusInternalServerError {
				return
			}
			if p.Detail != "internal error" {
				t.Fatalf("internal detail leaked: %q", p.Detail)
			}
			if n := strings.Count(e.logs.String(), "disk on fire"); n != 1 {
				t.Fatalf("internal error logged %d times, want once:\n%s", n, e.logs.String())
			}
		})
	}
}
