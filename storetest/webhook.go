package storetest

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/pimhook/pimhook"
)

var webhookCases = []testCase{
	{"RoundTrip", testWebhookRoundTrip},
	{"Update", testWebhookUpdate},
	{"Scoping", testWebhookScoping},
	{"Delete", testWebhookDelete},
	{"FilterReducers", testWebhookFilterReducers},
}

func testWebhookRoundTrip(t *testing.T, s pimhook.Store) {
	ctx := t.Context()
	c := newCompany(t, s, "Acme")
	a := newApp(t, s, c.ID, false)

	full := newWebhook(t, s, c.ID, a.ID, at(30))
	bare := &pimhook.Webhook{
		ID: pimhook.NewID(pimhook.PrefixWebhook, base), CompanyID: c.ID, AppID: a.ID, Name: "bare",
		URL: "http://10.0.0.1:8080/in", Format: pimhook.FormatEvent, RetryPolicy: pimhook.RetryNone,
		Enabled: false, DisabledReason: "receiver answered 410 Gone", Secret: pimhook.NewSecret(),
		CreatedAt: at(10), UpdatedAt: at(11),
	}
	if err := s.CreateWebhook(ctx, bare); err != nil {
		t.Fatalf("create webhook: %v", err)
	}
	odd := newWebhook(t, s, c.ID, a.ID, at(20))
	odd.MinimumRetryInterval = 0.125
	odd.JobID, odd.Format, odd.BatchSize = "job-644", pimhook.FormatJob, 250
	job := *full
	job.ID, job.Name, job.CreatedAt = pimhook.NewID(pimhook.PrefixWebhook, base), "job", at(40)
	job.JobID, job.Format, job.BatchSize, job.EntityTypes, job.Fields = "4765", pimhook.FormatJob, pimhook.MaxBatchSize, nil, nil
	if err := s.CreateWebhook(ctx, &job); err != nil {
		t.Fatalf("create job webhook: %v", err)
	}

	for _, w := range []*pimhook.Webhook{full, bare, &job} {
		got, err := s.Webhook(ctx, c.ID, w.ID)
		if err != nil {
			t.Fatalf("webhook: %v", err)
		}
		wantSame(t, "webhook", w, got)
	}
	if err := s.UpdateWebhook(ctx, odd); err != nil {
		t.Fatalf("update webhook: %v", err)
	}
	got, err := s.Webhooks(ctx, c.ID)
	if err != nil {
		t.Fatalf("webhooks: %v", err)
	}
	wantSame(t, "webhooks, oldest first", []*pimhook.Webhook{bare, odd, full, &job}, got)
}

func testWebhookUpdate(t *testing.T, s pimhook.Store) {
	ctx := t.Context()
	c, other := newCompany(t, s, "Acme"), newCompany(t, s, "Globex")
	a, b := newApp(t, s, c.ID, false), newApp(t, s, c.ID, false)
	foreign := newApp(t, s, other.ID, false)
	w := newWebhook(t, s, c.ID, a.ID, at(1))

	upd := *w
	upd.AppID, upd.Name, upd.URL = b.ID, "renamed", "https://erp.example.org/webhooks"
	upd.EntityTypes, upd.Events, upd.Fields = []string{"categories"}, []pimhook.Action{pimhook.ActionDeleted}, []string{}
	upd.Headers = map[string]string{"Authorization": "Bearer t0k3n"}
	upd.IncludeEntityData, upd.RetryPolicy, upd.MinimumRetryInterval, upd.RetryLimit = false, pimhook.RetryExponential, 60.75, 3
	upd.TimeoutMS, upd.Enabled, upd.DisabledReason, upd.Secret, upd.UpdatedAt = 0, false, "paused by user", pimhook.NewSecret(), at(50)
	if err := s.UpdateWebhook(ctx, &upd); err != nil {
		t.Fatalf("update webhook: %v", err)
	}
	got, err := s.Webhook(ctx, c.ID, w.ID)
	if err != nil {
		t.Fatalf("webhook: %v", err)
	}
	wantSame(t, "updated webhook", &upd, got)

	moved := upd
	moved.AppID = foreign.ID
	wantError(t, "move to another company's app", s.UpdateWebhook(ctx, &moved), pimhook.KindNotFound, pimhook.CodeAppNotFound)
	got, err = s.Webhook(ctx, c.ID, w.ID)
	if err != nil {
		t.Fatalf("webhook: %v", err)
	}
	wantSame(t, "webhook after refused move", &upd, got)

	missing := upd
	missing.ID = pimhook.NewID(pimhook.PrefixWebhook, base)
	wantError(t, "update missing webhook", s.UpdateWebhook(ctx, &missing), pimhook.KindNotFound, pimhook.CodeWebhookNotFound)
}

func testWebhookScoping(t *testing.T, s pimhook.Store) {
	ctx := t.Context()
	c, other := newCompany(t, s, "Acme"), newCompany(t, s, "Globex")
	a, foreign := newApp(t, s, c.ID, false), newApp(t, s, other.ID, false)
	w := newWebhook(t, s, c.ID, a.ID, at(1))

	_, err := s.Webhook(ctx, other.ID, w.ID)
	wantError(t, "another company's webhook", err, pimhook.KindNotFound, pimhook.CodeWebhookNotFound)
	if ws, err := s.Webhooks(ctx, other.ID); err != nil || len(ws) != 0 {
		t.Errorf("webhooks of another company: %v, %v", ws, err)
	}
	stolen := *w
	stolen.CompanyID, stolen.AppID = other.ID, foreign.ID
	wantError(t, "update another company's webhook", s.UpdateWebhook(ctx, &stolen), pimhook.KindNotFound, pimhook.CodeWebhookNotFound)
	wantError(t, "delete another company's webhook", s.DeleteWebhook(ctx, other.ID, w.ID), pimhook.KindNotFound, pimhook.CodeWebhookNotFound)
	got, err := s.Webhook(ctx, c.ID, w.ID)
	if err != nil {
		t.Fatalf("webhook: %v", err)
	}
	wantSame(t, "webhook after another company's attempts", w, got)

	// A webhook cannot point at another company's app, or at no app.
	for _, appID := range []string{foreign.ID, pimhook.NewID(pimhook.PrefixApp, base)} {
		x := *w
		x.ID = pimhook.NewID(pimhook.PrefixWebhook, base)
		x.AppID = appID
		wantError(t, "webhook of a foreign or missing app", s.CreateWebhook(ctx, &x), pimhook.KindNotFound, pimhook.CodeAppNotFound)
		_, err := s.Webhook(ctx, c.ID, x.ID)
		wantError(t, "refused webhook", err, pimhook.KindNotFound, pimhook.CodeWebhookNotFound)
	}

	dup := *w
	dup.Name = "dup"
	wantError(t, "create existing webhook", s.CreateWebhook(ctx, &dup), pimhook.KindConflict, "")
}

func testWebhookDelete(t *testing.T, s pimhook.Store) {
	ctx := t.Context()
	c := newCompany(t, s, "Acme")
	a := newApp(t, s, c.ID, false)
	w1, w2 := newWebhook(t, s, c.ID, a.ID, at(1)), newWebhook(t, s, c.ID, a.ID, at(2))

	// Pending deliveries of a deleted webhook stay for the dispatcher.
	tr := newTracker()
	ingest(t, s, c.ID, tr.fanOut(target{a.ID, w1.ID}), event(c.ID, "p1", pimhook.ActionCreated, `{}`, at(3)))
	if err := s.DeleteWebhook(ctx, c.ID, w1.ID); err != nil {
		t.Fatalf("delete webhook: %v", err)
	}
	_, err := s.Webhook(ctx, c.ID, w1.ID)
	wantError(t, "deleted webhook", err, pimhook.KindNotFound, pimhook.CodeWebhookNotFound)
	wantError(t, "delete twice", s.DeleteWebhook(ctx, c.ID, w1.ID), pimhook.KindNotFound, pimhook.CodeWebhookNotFound)
	ws, err := s.Webhooks(ctx, c.ID)
	if err != nil {
		t.Fatalf("webhooks: %v", err)
	}
	wantSame(t, "webhooks after delete", []*pimhook.Webhook{w2}, ws)
	if ds := pending(t, s, a.ID, 10); len(ds) != 1 || ds[0].WebhookID != w1.ID {
		t.Errorf("pending deliveries of a deleted webhook: %v", ids(ds))
	}
}

// filterReducers returns configurations as pimhook's Normalize leaves them.
func filterReducers(t *testing.T, frs ...pimhook.FilterReducer) []pimhook.FilterReducer {
	t.Helper()
	for i := range frs {
		if err := frs[i].Normalize(fmt.Sprintf("filter_reducers[%d].", i)); err != nil {
			t.Fatalf("fixture: %v", err)
		}
	}
	return frs
}

func testWebhookFilterReducers(t *testing.T, s pimhook.Store) {
	ctx := t.Context()
	c := newCompany(t, s, "Acme")
	a := newApp(t, s, c.ID, false)

	// A reducer is the user's document: its spacing, key order, escapes and
	// HTML characters come back as they were given.
	reducer := json.RawMessage("{\"fields\" : [\"id\", \"name\"],\n\t\"rename\": {\"b\":\"<a&b>\", \"a\": \"caf\\u00e9\"}, \"n\": 1.50e+3}")
	w := newWebhook(t, s, c.ID, a.ID, at(1))
	if got, err := s.Webhook(ctx, c.ID, w.ID); err != nil || got.FilterReducers == nil || len(got.FilterReducers) != 0 {
		t.Errorf("webhook without filters: %+v, %v; want an empty, non-nil list", got, err)
	}
	w.FilterReducers = filterReducers(t,
		pimhook.FilterReducer{
			EventSlug: "products.updated",
			Filter: &pimhook.Filter{Logic: "or", Conditions: []*pimhook.Filter{
				{Query: "$.price.amount", Condition: "(p) => p > 10 && p < 1000"},
				{Logic: "AND", Query: "$.tags[*]", Condition: "(t) => t.includes('<sale>')", Conditions: []*pimhook.Filter{
					{Query: "$.brand.name"},
					{Condition: "() => true"},
				}},
			}},
			Reducer: reducer,
		},
		pimhook.FilterReducer{EventSlug: pimhook.AnyEventSlug, Reducer: json.RawMessage(`{"fields":["id"]}`)},
	)
	w.UpdatedAt = at(10)
	if err := s.UpdateWebhook(ctx, w); err != nil {
		t.Fatalf("update webhook: %v", err)
	}
	got, err := s.Webhook(ctx, c.ID, w.ID)
	if err != nil {
		t.Fatalf("webhook: %v", err)
	}
	wantSame(t, "webhook with filters", w, got)
	if string(got.FilterReducers[0].Reducer) != string(reducer) {
		t.Errorf("reducer changed: %s, want %s", got.FilterReducers[0].Reducer, reducer)
	}

	created := *w
	created.ID, created.CreatedAt = pimhook.NewID(pimhook.PrefixWebhook, base), at(2)
	if err := s.CreateWebhook(ctx, &created); err != nil {
		t.Fatalf("create webhook with filters: %v", err)
	}
	ws, err := s.Webhooks(ctx, c.ID)
	if err != nil {
		t.Fatalf("webhooks: %v", err)
	}
	wantSame(t, "webhooks with filters", []*pimhook.Webhook{w, &created}, ws)

	// An update replaces the whole list.
	w.FilterReducers = filterReducers(t, pimhook.FilterReducer{EventSlug: "brands.deleted", Filter: &pimhook.Filter{Query: "$.id"}})
	w.UpdatedAt = at(20)
	if err := s.UpdateWebhook(ctx, w); err != nil {
		t.Fatalf("update webhook: %v", err)
	}
	got, err = s.Webhook(ctx, c.ID, w.ID)
	if err != nil {
		t.Fatalf("webhook: %v", err)
	}
	wantSame(t, "webhook with its filters replaced", w, got)
	if got.FilterReducers[0].Reducer != nil {
		t.Errorf("filter without a reducer came back with reducer %s", got.FilterReducers[0].Reducer)
	}

	w.FilterReducers = nil
	if err := s.UpdateWebhook(ctx, w); err != nil {
		t.Fatalf("update webhook: %v", err)
	}
	if got, err := s.Webhook(ctx, c.ID, w.ID); err != nil || got.FilterReducers == nil || len(got.FilterReducers) != 0 {
		t.Errorf("webhook with its filters removed: %+v, %v; want an empty, non-nil list", got, err)
	}
	if got, err := s.Webhook(ctx, c.ID, created.ID); err != nil || len(got.FilterReducers) != 2 {
		t.Errorf("the other webhook after an update: %+v, %v", got, err)
	}
}
