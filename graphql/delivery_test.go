package graphql_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"reflect"
	"testing"
	"time"

	"github.com/pimhook/pimhook"
)

// seedDeliveries stores n pending deliveries of hook, one per product event,
// through the store's own ingest path. They come back oldest first.
func (e *env) seedDeliveries(hook webhook, n int) []*pimhook.Delivery {
	e.t.Helper()
	now := time.Now().UTC().Truncate(time.Microsecond)
	var events []*pimhook.Event
	for i := range n {
		events = append(events, &pimhook.Event{
			ID: pimhook.NewID(pimhook.PrefixEvent, now), CompanyID: e.company.ID,
			EntityType: "products", EntityID: fmt.Sprint("p", i), Action: pimhook.ActionCreated,
			Data: json.RawMessage(fmt.Sprintf(`{"id":"p%d"}`, i)), ReceivedAt: now, Fingerprint: fmt.Sprint("fp", i),
		})
	}
	var ds []*pimhook.Delivery
	decide := func(ev *pimhook.Event, _ *pimhook.Entity) (pimhook.Decision, error) {
		ev.EffectiveAction, ev.Revision = pimhook.ActionCreated, 1
		d := &pimhook.Delivery{
			ID: pimhook.NewID(pimhook.PrefixDelivery, now), CompanyID: e.company.ID, AppID: hook.AppID, WebhookID: hook.ID,
			EventID: ev.ID, EventName: ev.Name(), Payload: json.RawMessage(`{"entity_id":"` + ev.EntityID + `"}`),
			Status: pimhook.DeliveryPending, NextAttemptAt: now, CreatedAt: now, UpdatedAt: now,
		}
		ds = append(ds, d)
		return pimhook.Decision{Deliveries: []*pimhook.Delivery{d}}, nil
	}
	if _, err := e.store.Ingest(context.Background(), e.company.ID, events, decide); err != nil {
		e.t.Fatalf("ingest: %v", err)
	}
	return ds
}

// attempt records one attempt of d with this status code.
func (e *env) attempt(d *pimhook.Delivery, status int) {
	e.t.Helper()
	now := time.Now().UTC().Truncate(time.Microsecond)
	d.Attempts++
	d.LastStatusCode, d.UpdatedAt = status, now
	a := &pimhook.Attempt{
		ID: pimhook.NewID(pimhook.PrefixAttempt, now), DeliveryID: d.ID, Number: d.Attempts,
		StartedAt: now, Duration: 42 * time.Millisecond, StatusCode: status, Succeeded: status < 300,
	}
	if a.Succeeded {
		d.Status, d.LastError, d.FinishedAt = pimhook.DeliverySucceeded, "", &now
	} else {
		d.LastError, d.NextAttemptAt = "503 Service Unavailable", now.Add(time.Minute)
		a.Error, a.ResponseBody = d.LastError, "try later"
	}
	if err := e.store.RecordAttempt(context.Background(), d, a); err != nil {
		e.t.Fatalf("record attempt: %v", err)
	}
}

const deliveriesPage = `query($first: Int, $after: String, $status: DeliveryStatus, $webhookID: ID, $since: Time) {
  deliveries(first: $first, after: $after, status: $status, webhookID: $webhookID, since: $since) {
    edges { cursor node { id } }
    nodes { id status }
    pageInfo { hasNextPage endCursor }
  }
}`

type page struct {
	Deliveries struct {
		Edges []struct {
			Cursor string
			Node   struct{ ID string }
		}
		Nodes []struct {
			ID     string
			Status string
		}
		PageInfo struct {
			HasNextPage bool
			EndCursor   *string
		}
	}
}

func (p page) ids() []string {
	var out []string
	for _, n := range p.Deliveries.Nodes {
		out = append(out, n.ID)
	}
	return out
}

func (e *env) newWebhook() webhook {
	e.t.Helper()
	var out struct{ CreateWebhook webhook }
	e.do(`mutation { createWebhook(input: {callbackURL: "https://example.com/d"}) { id appID } }`, nil, &out)
	return out.CreateWebhook
}

func TestDeliveriesPages(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	hook := e.newWebhook()
	ds := e.seedDeliveries(hook, 5)
	newest := func(i int) string { return ds[len(ds)-1-i].ID }

	var p1, p2, p3 page
	e.do(deliveriesPage, map[string]any{"first": 2}, &p1)
	if want := []string{newest(0), newest(1)}; !reflect.DeepEqual(p1.ids(), want) || !p1.Deliveries.PageInfo.HasNextPage ||
		p1.Deliveries.Edges[1].Node.ID != want[1] || *p1.Deliveries.PageInfo.EndCursor != p1.Deliveries.Edges[1].Cursor {
		t.Fatalf("first page: %+v, want %v and more", p1, want)
	}
	e.do(deliveriesPage, map[string]any{"first": 2, "after": *p1.Deliveries.PageInfo.EndCursor}, &p2)
	if want := []string{newest(2), newest(3)}; !reflect.DeepEqual(p2.ids(), want) || !p2.Deliveries.PageInfo.HasNextPage {
		t.Fatalf("second page: %+v, want %v and more", p2, want)
	}
	e.do(deliveriesPage, map[string]any{"first": 2, "after": *p2.Deliveries.PageInfo.EndCursor}, &p3)
	if want := []string{newest(4)}; !reflect.DeepEqual(p3.ids(), want) || p3.Deliveries.PageInfo.HasNextPage {
		t.Fatalf("last page: %+v, want %v and no more", p3, want)
	}

	// Cursors are those of GET /v1/deliveries, in both directions.
	var rest struct {
		Data       []struct{ ID string }
		NextCursor *string `json:"next_cursor"`
	}
	e.rest("GET", "/v1/deliveries?limit=2&cursor="+url.QueryEscape(*p1.Deliveries.PageInfo.EndCursor), nil, &rest)
	if len(rest.Data) != 2 || rest.Data[0].ID != newest(2) || rest.NextCursor == nil {
		t.Fatalf("REST page after the GraphQL cursor: %+v", rest)
	}
	var p2again page
	e.do(deliveriesPage, map[string]any{"first": 2, "after": *rest.NextCursor}, &p2again)
	if !reflect.DeepEqual(p2again.ids(), p3.ids()) {
		t.Errorf("GraphQL page after the REST cursor: %v, want %v", p2again.ids(), p3.ids())
	}

	var empty page
	e.do(deliveriesPage, map[string]any{"webhookID": "wh_other"}, &empty)
	if len(empty.Deliveries.Nodes) != 0 || empty.Deliveries.PageInfo.HasNextPage || empty.Deliveries.PageInfo.EndCursor != nil {
		t.Errorf("deliveries of another webhook: %+v", empty)
	}
}

func TestDeliveryWithAttempts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	hook := e.newWebhook()
	ds := e.seedDeliveries(hook, 2)
	d := ds[0]
	e.attempt(d, 503)
	e.attempt(d, 200)

	var out struct {
		Delivery struct {
			ID, AppID, WebhookID, EventID, Event, Status string
			AttemptCount                                 int
			NextAttemptAt                                *string
			LastStatusCode                               *int
			Payload                                      json.RawMessage
			FinishedAt                                   *string
			Webhook                                      *struct{ ID string }
			Attempts                                     []struct {
				Number       int
				DurationMS   int
				StatusCode   *int
				Succeeded    bool
				Error        *string
				ResponseBody *string
			}
		}
	}
	e.do(`query($id: ID!) { delivery(id: $id) { id appID webhookID eventID event status attemptCount nextAttemptAt
	  lastStatusCode payload finishedAt webhook { id }
	  attempts { number durationMS statusCode succeeded error responseBody } } }`, map[string]any{"id": d.ID}, &out)
	got := out.Delivery
	if got.ID != d.ID || got.WebhookID != hook.ID || got.AppID != hook.AppID || got.EventID != d.EventID ||
		got.Event != "products.created" || got.Status != "SUCCEEDED" || got.AttemptCount != 2 ||
		got.NextAttemptAt != nil || got.LastStatusCode == nil || *got.LastStatusCode != 200 || got.FinishedAt == nil ||
		got.Webhook == nil || got.Webhook.ID != hook.ID || string(got.Payload) != string(d.Payload) {
		t.Errorf("delivery: %+v", got)
	}
	if len(got.Attempts) != 2 {
		t.Fatalf("attempts: %+v", got.Attempts)
	}
	a1, a2 := got.Attempts[0], got.Attempts[1]
	if a1.Number != 1 || a1.Succeeded || *a1.StatusCode != 503 || *a1.Error != "503 Service Unavailable" || *a1.ResponseBody != "try later" || a1.DurationMS != 42 {
		t.Errorf("first attempt: %+v", a1)
	}
	if a2.Number != 2 || !a2.Succeeded || *a2.StatusCode != 200 || a2.Error != nil || a2.ResponseBody != nil {
		t.Errorf("second attempt: %+v", a2)
	}

	var byStatus page
	e.do(deliveriesPage, map[string]any{"status": "SUCCEEDED"}, &byStatus)
	if !reflect.DeepEqual(byStatus.ids(), []string{d.ID}) {
		t.Errorf("succeeded deliveries: %v, want [%s]", byStatus.ids(), d.ID)
	}
	e.do(deliveriesPage, map[string]any{"since": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}, &byStatus)
	if len(byStatus.ids()) != 0 {
		t.Errorf("deliveries since an hour from now: %v", byStatus.ids())
	}

	// A delivery outlives its webhook; the webhook then shows as null.
	e.do(`mutation($id: ID!) { deleteWebhook(id: $id) }`, map[string]any{"id": hook.ID}, nil)
	e.do(`query($id: ID!) { delivery(id: $id) { id webhook { id } } }`, map[string]any{"id": d.ID}, &out)
	if out.Delivery.Webhook != nil {
		t.Errorf("webhook of a delivery whose webhook was deleted: %+v", out.Delivery.Webhook)
	}
}

func TestDeliveryErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.fail(deliveriesPage, map[string]any{"first": 0}, "invalid_query_parameter", "first")
	e.fail(deliveriesPage, map[string]any{"first": 1001}, "invalid_query_parameter", "first")
	e.fail(`{ deliveries(first: -1) { nodes { id } } }`, nil, "invalid_query_parameter", "first")
	e.fail(deliveriesPage, map[string]any{"after": "not-a-cursor"}, "invalid_cursor", "after")
	e.fail(deliveriesPage, map[string]any{"since": "yesterday"}, "invalid_query_parameter", "")
	e.fail(`{ deliveries(until: "31/01/2025") { nodes { id } } }`, nil, "invalid_query_parameter", "")
	e.fail(`{ delivery(id: "msg_nope") { id } }`, nil, "delivery_not_found", "")
}
