package sqlite

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pimhook/pimhook"
)

// TestOperatePlans checks that a report's pages read the attempts of one
// company, or one webhook, from the cursor to the end of the window in
// index order, and that the queue statistics read only the pending
// deliveries, in app order; none of them sorts.
func TestOperatePlans(t *testing.T) {
	t.Parallel()
	s := openTest(t, filepath.Join(t.TempDir(), "pimhook.db"))
	page := []any{"co_1", "", 0, "", 10, attemptsPage}
	for _, c := range []struct {
		query string
		args  []any
		want  string
	}{
		{attemptsOfCompanyQuery, page, "attempts_company (company_id=? AND (started_at,id)>(?,?) AND started_at<?)"},
		{attemptsOfCompanyQuery, []any{"co_1", "app_1", 5, "atm_1", 10, attemptsPage}, "attempts_company (company_id=? AND (started_at,id)>(?,?) AND started_at<?)"},
		{attemptsOfWebhookQuery, append(page, "wh_1"), "attempts_webhook (webhook_id=? AND (started_at,id)>(?,?) AND started_at<?)"},
		{queueStatsQuery, nil, "SCAN deliveries USING INDEX deliveries_pending"},
	} {
		plan := queryPlan(t, s, c.query, c.args...)
		if !slices.ContainsFunc(plan, func(p string) bool { return strings.Contains(p, c.want) }) {
			t.Errorf("plan of %s: %q lacks %q", c.query, plan, c.want)
		}
		if slices.ContainsFunc(plan, func(p string) bool { return strings.Contains(p, "TEMP B-TREE") }) {
			t.Errorf("plan of %s sorts: %q", c.query, plan)
		}
	}
}

// TestMigrateOperate checks that migration 004 gives the attempts stored
// before it their company, app and webhook, and keeps the error log while
// letting it take the new source.
func TestMigrateOperate(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "pimhook.db")
	opts := Options{}.WithDefaults()
	db, err := openWriter(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := migrateTo(ctx, db, opts.Logger, 3); err != nil {
		t.Fatalf("migrate to 3: %v", err)
	}
	started := time.Unix(1700000100, 0).UTC()
	for _, q := range []string{
		`INSERT INTO companies (id, name, created_at) VALUES ('co_1', 'Acme', 1)`,
		`INSERT INTO apps (id, company_id, name, app_type, worker, created_at, updated_at) VALUES ('app_1', 'co_1', 'shop', 'shopware', 'dedicated', 1, 1)`,
		`INSERT INTO webhooks (id, company_id, app_id, name, url, format, include_entity_data, retry_policy,
			minimum_retry_interval, retry_limit, timeout_ms, enabled, secret, created_at, updated_at)
			VALUES ('wh_1', 'co_1', 'app_1', 'orders', 'https://shop.example.com/hook', 'event', 0, 'linear', 1, 3, 0, 1, 'whsec_x', 1, 1)`,
		`INSERT INTO deliveries (id, company_id, app_id, webhook_id, event_id, event_name, payload, status, attempts,
			next_attempt_at, created_at, updated_at) VALUES ('msg_1', 'co_1', 'app_1', 'wh_1', 'evt_1', 'products.created', X'7B7D', 'pending', 1, 1, 1, 1)`,
		`INSERT INTO attempts (id, delivery_id, number, started_at, duration_ns, status_code, succeeded)
			VALUES ('atm_1', 'msg_1', 1, 1700000100000000000, 1500000, 503, 0)`,
		`INSERT INTO error_log (id, company_id, source, occurred_at, webhook_id, delivery_id, attempt, status_code, error)
			VALUES ('err_0000000000000000000000000A', 'co_1', 'webhook', 1700000100000000000, 'wh_1', 'msg_1', 1, 503, 'HTTP 503')`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s := openTest(t, path)
	var got []pimhook.AttemptRecord
	if err := s.AttemptsBetween(ctx, pimhook.AttemptFilter{CompanyID: "co_1", WebhookID: "wh_1", Start: started, End: started.Add(time.Second)},
		func(r pimhook.AttemptRecord) error { got = append(got, r); return nil }); err != nil {
		t.Fatalf("attempts between: %v", err)
	}
	want := []pimhook.AttemptRecord{{DeliveryID: "msg_1", AppID: "app_1", WebhookID: "wh_1", Number: 1, StartedAt: started,
		Duration: 1500 * time.Microsecond, StatusCode: 503}}
	if !slices.Equal(got, want) {
		t.Errorf("attempts of before the migration: %+v, want %+v", got, want)
	}
	if w, err := s.Webhook(ctx, "co_1", "wh_1"); err != nil || w.FailingSince != nil {
		t.Errorf("webhook of before the migration: %+v, %v; want it not failing", w, err)
	}

	// The delivery fails again, for long enough to disable its webhook.
	d, err := s.Delivery(ctx, "co_1", "msg_1")
	if err != nil {
		t.Fatal(err)
	}
	d.Attempts++
	a := &pimhook.Attempt{ID: "atm_2", Number: 2, StartedAt: started.Add(time.Minute), StatusCode: 503, Error: "HTTP 503"}
	if err := s.RecordAttempt(ctx, d, a); err != nil {
		t.Fatal(err)
	}
	if off, err := s.DisableFailingWebhook(ctx, "co_1", "wh_1", time.Hour, a.StartedAt.Add(time.Hour), "failing"); err != nil || !off {
		t.Fatalf("disable failing webhook: %v, %v; want it disabled", off, err)
	}
	es, err := s.ErrorLog(ctx, pimhook.ErrorLogFilter{CompanyID: "co_1", WebhookID: "wh_1"})
	if err != nil {
		t.Fatal(err)
	}
	var sources []pimhook.ErrorSource
	for _, e := range es {
		sources = append(sources, e.Source)
	}
	wantSources := []pimhook.ErrorSource{pimhook.ErrorSourceHealth, pimhook.ErrorSourceWebhook, pimhook.ErrorSourceWebhook}
	if !slices.Equal(sources, wantSources) || es[2].ID != "err_0000000000000000000000000A" {
		t.Errorf("error log after the migration: sources %v; want %v, the entry of before the migration last", sources, wantSources)
	}
}

// TestRequeueNeverReusesSeq checks that a requeued delivery's Seq is never
// given out again, even once the delivery is gone: a dispatcher whose
// cursor passed it would skip the delivery that took it.
func TestRequeueNeverReusesSeq(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := openWithCompany(t)
	d := ingestOne(t, s, "co_1", "app_1", "evt_1")[0]
	ingestOne(t, s, "co_1", "app_1", "evt_2")
	finished := time.Unix(1700000000, 0).UTC()
	d.Status, d.FinishedAt = pimhook.DeliverySkipped, &finished
	if err := s.RecordAttempt(ctx, d, nil); err != nil {
		t.Fatal(err)
	}
	requeued, err := s.RequeueDeliveries(ctx, "co_1", []string{d.ID}, finished)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.wdb.ExecContext(ctx, `DELETE FROM deliveries WHERE id = ?`, d.ID); err != nil {
		t.Fatal(err)
	}
	if next := ingestOne(t, s, "co_1", "app_1", "evt_3")[0]; next.Seq <= requeued[0].Seq {
		t.Errorf("a delivery queued after a requeue took Seq %d, not above the requeued %d", next.Seq, requeued[0].Seq)
	}
}
