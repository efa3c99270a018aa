package http_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"testing"
	"time"

	"github.com/pimhook/pimhook"
)

var seedStart = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// seedDeliveries stores n events of the env's company through the store,
// each owing one delivery to the webhook, created a minute apart from
// seedStart. It returns the deliveries in the order stored.
func (e *env) seedDeliveries(n int, webhookID, appID string) []*pimhook.Delivery {
	e.t.Helper()
	events := make([]*pimhook.Event, n)
	for i := range events {
		at := seedStart.Add(time.Duration(i) * time.Minute)
		events[i] = &pimhook.Event{
			ID: pimhook.NewID(pimhook.PrefixEvent, at), CompanyID: e.company.ID, EntityType: "products",
			EntityID: fmt.Sprint(i), Action: pimhook.ActionCreated, Data: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i)),
			ReceivedAt: at, Fingerprint: fmt.Sprint(i),
		}
	}
	var out []*pimhook.Delivery
	decide := func(ev *pimhook.Event, _ *pimhook.Entity) (pimhook.Decision, error) {
		ev.EffectiveAction, ev.Revision = ev.Action, 1
		d := &pimhook.Delivery{
			ID: pimhook.NewID(pimhook.PrefixDelivery, ev.ReceivedAt), CompanyID: e.company.ID, AppID: appID,
			WebhookID: webhookID, EventID: ev.ID, EventName: ev.Name(), Payload: json.RawMessage(`{"id":"` + ev.ID + `","data":` + string(ev.Data) + `}`),
			Status: pimhook.DeliveryPending, NextAttemptAt: ev.ReceivedAt, CreatedAt: ev.ReceivedAt, UpdatedAt: ev.ReceivedAt,
		}
		out = append(out, d)
		entity := &pimhook.Entity{CompanyID: e.company.ID, Type: ev.EntityType, ID: ev.EntityID, Data: ev.Data, Revision: 1, UpdatedAt: ev.ReceivedAt}
		return pimhook.Decision{Entity: entity, Deliveries: []*pimhook.Delivery{d}}, nil
	}
	if _, err := e.store.Ingest(context.Background(), e.company.ID, events, decide); err != nil {
		e.t.Fatalf("seed deliveries: %v", err)
	}
	return out
}

// newHook creates a webhook through the API and returns its id and app id.
func (e *env) newHook() (id, appID string) {
	e.t.Helper()
	m := e.post("/v1/webhooks", `{"callback_url":"https://a.example/h"}`).ok(e.t, http.StatusCreated)
	return m["id"].(string), m["app_id"].(string)
}

func TestDeliveryPagination(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	hookID, appID := e.newHook()
	seeded := e.seedDeliveries(7, hookID, appID)

	var got []string
	pages := 0
	path := "/v1/deliveries?limit=3"
	for {
		m := e.get(path).ok(t, http.StatusOK)
		pages++
		for _, d := range m["data"].([]any) {
			item := d.(map[string]any)
			if _, ok := item["payload"]; ok {
				t.Fatalf("list item has a payload: %v", item)
			}
			got = append(got, item["id"].(string))
		}
		if m["next_cursor"] == nil {
			break
		}
		if pages > 10 {
			t.Fatal("pagination does not end")
		}
		path = "/v1/deliveries?limit=3&cursor=" + url.QueryEscape(m["next_cursor"].(string))
	}
	var want []string
	for i := len(seeded) - 1; i >= 0; i-- {
		want = append(want, seeded[i].ID)
	}
	if pages != 3 || !reflect.DeepEqual(got, want) {
		t.Fatalf("%d pages of %v, want 3 pages of %v", pages, got, want)
	}

	// An exact fit has no next page.
	if m := e.get("/v1/deliveries?limit=7").ok(t, http.StatusOK); m["next_cursor"] != nil || len(m["data"].([]any)) != 7 {
		t.Fatalf("limit 7: %v", m)
	}
	// The default limit covers all seven.
	if all := e.list("/v1/deliveries"); len(all) != 7 {
		t.Fatalf("default page: %d items", len(all))
	}
}

func TestDeliveryFilters(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	hookA, appA := e.newHook()
	app := e.post("/v1/apps", `{"name":"other"}`).ok(t, http.StatusCreated)["id"].(string)
	hookB := e.post("/v1/webhooks", map[string]any{"callback_url": "https://b.example", "app_id": app}).ok(t, http.StatusCreated)["id"].(string)
	e.seedDeliveries(4, hookA, appA)
	b := e.seedDeliveries(2, hookB, app)

	ids := func(path string) []string {
		var out []string
		for _, d := range e.list(path) {
			out = append(out, d.(map[string]any)["id"].(string))
		}
		return out
	}
	if got := ids("/v1/deliveries?webhook_id=" + hookB); !reflect.DeepEqual(got, []string{b[1].ID, b[0].ID}) {
		t.Fatalf("webhook filter: %v", got)
	}
	if got := ids("/v1/deliveries?app_id=" + appA); len(got) != 4 {
		t.Fatalf("app filter: %v", got)
	}
	if got := ids("/v1/deliveries?status=succeeded"); len(got) != 0 {
		t.Fatalf("status filter: %v", got)
	}
	if got := ids("/v1/deliveries?status=pending"); len(got) != 6 {
		t.Fatalf("status filter: %v", got)
	}
	// Both batches were created at seedStart + 0..3 minutes; [1m, 2m) holds
	// one delivery of each.
	q := url.Values{"since": {seedStart.Add(time.Minute).Format(time.RFC3339)}, "until": {seedStart.Add(2 * time.Minute).Format(time.RFC3339)}}
	if got := ids("/v1/deliveries?" + q.Encode()); len(got) != 2 {
		t.Fatalf("time filter: %v", got)
	}
}

func TestDeliveryDetail(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	hookID, appID := e.newHook()
	d := e.seedDeliveries(1, hookID, appID)[0]
	ctx := context.Background()
	stored, err := e.store.Delivery(ctx, e.company.ID, d.ID)
	if err != nil {
		t.Fatalf("load delivery: %v", err)
	}

	first := seedStart.Add(time.Second)
	stored.Status, stored.Attempts, stored.LastStatusCode, stored.LastError = pimhook.DeliveryPending, 1, 500, "HTTP 500"
	stored.NextAttemptAt, stored.UpdatedAt = first.Add(time.Minute), first
	if err := e.store.RecordAttempt(ctx, stored, &pimhook.Attempt{
		ID: pimhook.NewID(pimhook.PrefixAttempt, first), DeliveryID: d.ID, Number: 1, StartedAt: first,
		Duration: 120 * time.Millisecond, StatusCode: 500, Error: "HTTP 500", ResponseBody: "boom",
	}); err != nil {
		t.Fatalf("record attempt 1: %v", err)
	}
	second := first.Add(time.Minute)
	stored.Status, stored.Attempts, stored.LastStatusCode, stored.LastError = pimhook.DeliverySucceeded, 2, 204, ""
	stored.UpdatedAt, stored.FinishedAt = second, &second
	if err := e.store.RecordAttempt(ctx, stored, &pimhook.Attempt{
		ID: pimhook.NewID(pimhook.PrefixAttempt, second), DeliveryID: d.ID, Number: 2, StartedAt: second,
		Duration: 30 * time.Millisecond, StatusCode: 204, Succeeded: true,
	}); err != nil {
		t.Fatalf("record attempt 2: %v", err)
	}

	m := e.get("/v1/deliveries/"+d.ID).ok(t, http.StatusOK)
	want := map[string]any{
		"id": d.ID, "app_id": appID, "webhook_id": hookID, "event_id": d.EventID, "event": "products.created",
		"status": "succeeded", "attempt_count": 2.0, "last_status_code": 204.0, "last_error": nil,
		"next_attempt_at": nil, "finished_at": second.Format(time.RFC3339),
		"payload": map[string]any{"id": d.EventID, "data": map[string]any{"n": 0.0}},
		"attempts": []any{
			map[string]any{"id": nil, "number": 1.0, "started_at": first.Format(time.RFC3339), "duration_ms": 120.0,
				"status_code": 500.0, "succeeded": false, "error": "HTTP 500", "response_body": "boom"},
			map[string]any{"id": nil, "number": 2.0, "started_at": second.Format(time.RFC3339), "duration_ms": 30.0,
				"status_code": 204.0, "succeeded": true, "error": nil, "response_body": nil},
		},
	}
	for _, a := range m["attempts"].([]any) {
		a := a.(map[string]any)
		if id, _ := a["id"].(string); id == "" {
			t.Errorf("attempt without id: %v", a)
		}
		a["id"] = nil
	}
	for k, v := range want {
		if !reflect.DeepEqual(m[k], v) {
			t.Errorf("%s = %#v, want %#v", k, m[k], v)
		}
	}
	// The list shows the same delivery without payload and attempts.
	item := e.list("/v1/deliveries")[0].(map[string]any)
	if _, ok := item["payload"]; ok {
		t.Errorf("list item has a payload")
	}
	if item["attempt_count"] != 2.0 || item["status"] != "succeeded" {
		t.Errorf("list item %v", item)
	}
}
