package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pimhook/pimhook"
)

// operateSetup is a company with an app and a webhook, and deliveries to
// the webhook.
type operateSetup struct {
	s   *Store
	c   *pimhook.Company
	a   *pimhook.App
	w   *pimhook.Webhook
	ds  []*pimhook.Delivery
	now time.Time
}

func setupOperate(t *testing.T, deliveries int) operateSetup {
	t.Helper()
	ctx := t.Context()
	s := openTest(t)
	now := time.Date(2025, 3, 14, 9, 26, 53, 589793000, time.UTC)
	x := operateSetup{s: s, c: newCompany("co_1"), now: now}
	if err := s.CreateCompany(ctx, x.c); err != nil {
		t.Fatal(err)
	}
	x.a = &pimhook.App{ID: "app_1", CompanyID: x.c.ID, Name: "shop", AppType: "generic", Worker: pimhook.WorkerShared,
		CreatedAt: now, UpdatedAt: now}
	if err := s.CreateApp(ctx, x.a); err != nil {
		t.Fatal(err)
	}
	x.w = &pimhook.Webhook{ID: "wh_1", CompanyID: x.c.ID, AppID: x.a.ID, Name: "hook", URL: "https://example.com/hook",
		Format: pimhook.FormatEvent, RetryPolicy: pimhook.RetryNone, Enabled: true, Secret: pimhook.NewSecret(),
		CreatedAt: now, UpdatedAt: now}
	if err := s.CreateWebhook(ctx, x.w); err != nil {
		t.Fatal(err)
	}
	for i := range deliveries {
		id := fmt.Sprint("evt_", i)
		ev := &pimhook.Event{ID: id, EntityType: "products", EntityID: id, Action: pimhook.ActionCreated, Data: []byte(`{}`)}
		_, err := s.Ingest(ctx, x.c.ID, []*pimhook.Event{ev}, func(ev *pimhook.Event, _ *pimhook.Entity) (pimhook.Decision, error) {
			ev.EffectiveAction, ev.Revision = ev.Action, 1
			d := &pimhook.Delivery{ID: "msg_" + id, AppID: x.a.ID, WebhookID: x.w.ID, EventID: id, EventName: ev.Name(),
				Payload: []byte(`{}`), NextAttemptAt: now, CreatedAt: now.Add(time.Duration(i) * time.Second), UpdatedAt: now}
			x.ds = append(x.ds, d)
			return pimhook.Decision{Entity: &pimhook.Entity{Data: ev.Data, Revision: 1}, Deliveries: []*pimhook.Delivery{d}}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return x
}

// attempt records an attempt of d at sec seconds after x.now that leaves d
// in status st.
func (x operateSetup) attempt(t *testing.T, d *pimhook.Delivery, sec int, st pimhook.DeliveryStatus) *pimhook.Attempt {
	t.Helper()
	at := x.now.Add(time.Duration(sec) * time.Second)
	d.Attempts++
	d.Status, d.UpdatedAt, d.LastStatusCode, d.LastError = st, at, 500, "HTTP 500"
	a := &pimhook.Attempt{ID: pimhook.NewID(pimhook.PrefixAttempt, at), DeliveryID: d.ID, Number: d.Attempts, StartedAt: at,
		Duration: time.Duration(sec) * time.Millisecond, StatusCode: 500, Error: "HTTP 500"}
	if st == pimhook.DeliverySucceeded {
		a.StatusCode, a.Error, a.Succeeded, d.LastStatusCode, d.LastError = 200, "", true, 200, ""
	}
	if st != pimhook.DeliveryPending {
		d.FinishedAt = &at
	}
	if err := x.s.RecordAttempt(t.Context(), d, a); err != nil {
		t.Fatalf("record attempt: %v", err)
	}
	return a
}

func TestRequeueDeliveries(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	x := setupOperate(t, 5)
	s := x.s
	x.attempt(t, x.ds[0], 10, pimhook.DeliveryFailed)
	x.attempt(t, x.ds[1], 11, pimhook.DeliverySucceeded)
	x.attempt(t, x.ds[3], 12, pimhook.DeliveryFailed)
	last := x.ds[4].Seq

	// An unknown ID refuses the whole call.
	_, err := s.RequeueDeliveries(ctx, x.c.ID, []string{x.ds[0].ID, "msg_missing"}, x.now)
	if pimhook.ErrorCode(err) != pimhook.CodeDeliveryNotFound {
		t.Errorf("requeue of an unknown delivery: %v", err)
	}
	if _, err := s.RequeueDeliveries(ctx, "co_other", []string{x.ds[0].ID}, x.now); pimhook.ErrorCode(err) != pimhook.CodeDeliveryNotFound {
		t.Errorf("requeue of another company's delivery: %v", err)
	}
	if d, err := s.Delivery(ctx, x.c.ID, x.ds[0].ID); err != nil || d.Status != pimhook.DeliveryFailed {
		t.Errorf("delivery after a refused requeue: %+v, %v", d, err)
	}

	now := x.now.Add(time.Hour)
	ids := []string{x.ds[3].ID, x.ds[2].ID, x.ds[0].ID, x.ds[1].ID, x.ds[3].ID}
	got, err := s.RequeueDeliveries(ctx, x.c.ID, ids, now)
	if err != nil {
		t.Fatalf("requeue: %v", err)
	}
	if len(got) != len(ids) {
		t.Fatalf("requeue returned %d deliveries for %d IDs", len(got), len(ids))
	}
	for i, d := range got {
		if d.ID != ids[i] || d.Status != pimhook.DeliveryPending {
			t.Errorf("requeued %d: %s %s, want %s pending", i, d.ID, d.Status, ids[i])
		}
	}
	// The pending one stays where it was; the others go to the tail, in
	// the order given, with their history kept.
	if got[1].Seq != x.ds[2].Seq {
		t.Errorf("a pending delivery moved: Seq %d, was %d", got[1].Seq, x.ds[2].Seq)
	}
	if !(got[0].Seq > last && got[2].Seq > got[0].Seq && got[3].Seq > got[2].Seq) || got[4].Seq != got[0].Seq {
		t.Errorf("requeued Seqs %d %d %d %d, not above %d in the order given", got[0].Seq, got[2].Seq, got[3].Seq, got[4].Seq, last)
	}
	r := got[2]
	if r.Attempts != 1 || r.LastError != "HTTP 500" || r.LastStatusCode != 500 || r.FinishedAt != nil ||
		!r.NextAttemptAt.Equal(now) || !r.UpdatedAt.Equal(now) || !r.CreatedAt.Equal(x.ds[0].CreatedAt) || string(r.Payload) != `{}` {
		t.Errorf("requeued delivery: %+v", r)
	}
	queue, err := s.PendingDeliveries(ctx, x.a.ID, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{x.ds[2].ID, x.ds[4].ID, x.ds[3].ID, x.ds[0].ID, x.ds[1].ID}
	if got := ids2(queue); !slices.Equal(got, want) {
		t.Errorf("queue after requeue: %v, want %v", got, want)
	}
	// Its attempts stay; the next one's number follows on from Attempts,
	// checked above.
	if as, err := s.Attempts(ctx, x.ds[0].ID); err != nil || len(as) != 1 {
		t.Errorf("attempts of a requeued delivery: %v, %v", as, err)
	}
}

func ids2(ds []*pimhook.Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.ID
	}
	return out
}

func TestWebhookHealth(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	x := setupOperate(t, 3)
	s := x.s
	failingSince := func() *time.Time {
		t.Helper()
		w, err := s.Webhook(ctx, x.c.ID, x.w.ID)
		if err != nil {
			t.Fatal(err)
		}
		return w.FailingSince
	}
	if f := failingSince(); f != nil {
		t.Errorf("failing since of a new webhook: %v", f)
	}
	first := x.attempt(t, x.ds[0], 10, pimhook.DeliveryPending)
	x.attempt(t, x.ds[0], 20, pimhook.DeliveryPending)
	if f := failingSince(); f == nil || !f.Equal(first.StartedAt) {
		t.Errorf("failing since after two failures: %v, want %v", f, first.StartedAt)
	}
	x.attempt(t, x.ds[0], 30, pimhook.DeliverySucceeded)
	if f := failingSince(); f != nil {
		t.Errorf("failing since after a success: %v", f)
	}
	x.attempt(t, x.ds[1], 40, pimhook.DeliveryFailed)
	since := x.now.Add(40 * time.Second)

	// Not failing long enough, then long enough.
	for _, c := range []struct {
		now  time.Time
		want bool
	}{{since.Add(time.Hour - time.Second), false}, {since.Add(time.Hour), true}, {since.Add(2 * time.Hour), false}} {
		disabled, err := s.DisableFailingWebhook(ctx, x.c.ID, x.w.ID, time.Hour, c.now, "failing for an hour")
		if err != nil || disabled != c.want {
			t.Errorf("disable at %v: %v, %v; want %v", c.now, disabled, err, c.want)
		}
	}
	w, err := s.Webhook(ctx, x.c.ID, x.w.ID)
	if err != nil {
		t.Fatal(err)
	}
	if w.Enabled || w.DisabledReason != "failing for an hour" || !w.UpdatedAt.Equal(since.Add(time.Hour)) {
		t.Errorf("disabled webhook: %+v", w)
	}
	es, err := s.ErrorLog(ctx, pimhook.ErrorLogFilter{CompanyID: x.c.ID, Source: pimhook.ErrorSourceHealth})
	if err != nil || len(es) != 1 || es[0].WebhookID != x.w.ID || es[0].Error != "failing for an hour" {
		t.Errorf("health entries: %+v, %v", es, err)
	}
	if ok, err := s.DisableFailingWebhook(ctx, x.c.ID, "wh_missing", 0, since, "x"); ok || err != nil {
		t.Errorf("disable of a missing webhook: %v, %v", ok, err)
	}
	// An update that keeps it disabled keeps its failing time; one that
	// enables it clears it.
	w.Name = "renamed"
	if err := s.UpdateWebhook(ctx, w); err != nil {
		t.Fatal(err)
	}
	if f := failingSince(); f == nil {
		t.Error("an update of a disabled webhook cleared its failing time")
	}
	w.Enabled, w.DisabledReason, w.FailingSince = true, "", nil
	if err := s.UpdateWebhook(ctx, w); err != nil {
		t.Fatal(err)
	}
	if f := failingSince(); f != nil {
		t.Errorf("failing since after enabling: %v", f)
	}
}

func TestAttemptsBetween(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	x := setupOperate(t, 2)
	s := x.s
	other := &pimhook.App{ID: "app_2", CompanyID: x.c.ID, Name: "erp", AppType: "generic", Worker: pimhook.WorkerShared}
	if err := s.CreateApp(ctx, other); err != nil {
		t.Fatal(err)
	}
	// More attempts than a page holds, in a time order that is not their
	// ID order, half of them of another app's delivery.
	_, err := s.pool.Exec(ctx, `INSERT INTO deliveries (seq, id, company_id, app_id, webhook_id, event_id, event_name, payload,
			status, next_attempt_at, created_at, updated_at)
		VALUES (nextval('delivery_seq'), 'msg_other', $1, 'app_2', 'wh_2', 'evt', 'x', '\x7b7d', 'pending', now(), now(), now())`, x.c.ID)
	if err != nil {
		t.Fatal(err)
	}
	const n = attemptsPage + 300
	_, err = s.pool.Exec(ctx, `INSERT INTO attempts (id, delivery_id, company_id, app_id, webhook_id, number, started_at,
			duration_ns, status_code, succeeded, response_body)
		SELECT 'atm_' || lpad(i::text, 5, '0'), CASE WHEN i % 2 = 0 THEN $2 ELSE 'msg_other' END, $1,
			CASE WHEN i % 2 = 0 THEN 'app_1' ELSE 'app_2' END, CASE WHEN i % 2 = 0 THEN 'wh_1' ELSE 'wh_2' END, i,
			$3::timestamptz + ((i * 7) % $4) * interval '1 second', i * 1000, 200, i % 3 = 0, ''
		FROM generate_series(0, $4 - 1) AS i`, x.c.ID, x.ds[0].ID, x.now, n)
	if err != nil {
		t.Fatal(err)
	}
	collectAll := func(f pimhook.AttemptFilter) []pimhook.AttemptRecord {
		t.Helper()
		var out []pimhook.AttemptRecord
		if err := s.AttemptsBetween(ctx, f, func(r pimhook.AttemptRecord) error {
			out = append(out, r)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	all := collectAll(pimhook.AttemptFilter{CompanyID: x.c.ID, Start: x.now, End: x.now.Add(time.Duration(n) * time.Second)})
	if len(all) != n {
		t.Fatalf("%d attempts, want %d", len(all), n)
	}
	for i, r := range all {
		if !r.StartedAt.Equal(x.now.Add(time.Duration(i) * time.Second)) {
			t.Fatalf("attempt %d started at %v: not in StartedAt order", i, r.StartedAt)
		}
		if (r.AppID == "app_2") != (r.DeliveryID == "msg_other") || r.Duration != time.Duration(r.Number)*time.Microsecond {
			t.Fatalf("attempt %d: %+v", i, r)
		}
	}
	from, to := x.now.Add(10*time.Second), x.now.Add(20*time.Second)
	var want []pimhook.AttemptRecord
	for _, r := range all {
		if r.AppID == "app_2" && !r.StartedAt.Before(from) && r.StartedAt.Before(to) {
			want = append(want, r)
		}
	}
	part := collectAll(pimhook.AttemptFilter{CompanyID: x.c.ID, AppID: "app_2", Start: from, End: to})
	if fmt.Sprint(part) != fmt.Sprint(want) || len(want) == 0 {
		t.Errorf("attempts of app_2 in 10 seconds: %+v, want %+v", part, want)
	}
	if hook := collectAll(pimhook.AttemptFilter{CompanyID: x.c.ID, WebhookID: x.w.ID}); len(hook) != n/2 {
		t.Errorf("attempts of a webhook: %d, want %d", len(hook), n/2)
	}
	stop := fmt.Errorf("stop")
	calls := 0
	if err := s.AttemptsBetween(ctx, pimhook.AttemptFilter{CompanyID: x.c.ID}, func(pimhook.AttemptRecord) error {
		calls++
		return stop
	}); err != stop || calls != 1 {
		t.Errorf("an error of fn: %v after %d calls", err, calls)
	}
}

func TestQueueStats(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	x := setupOperate(t, 3)
	x.attempt(t, x.ds[0], 10, pimhook.DeliverySucceeded)
	qs, err := x.s.QueueStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []pimhook.AppQueue{{AppID: x.a.ID, Pending: 2, Oldest: x.ds[1].CreatedAt}}
	if len(qs) != 1 || qs[0].AppID != want[0].AppID || qs[0].Pending != 2 || !qs[0].Oldest.Equal(want[0].Oldest) {
		t.Errorf("queue stats: %+v, want %+v", qs, want)
	}
	for _, d := range x.ds[1:] {
		x.attempt(t, d, 20, pimhook.DeliveryFailed)
	}
	if qs, err := x.s.QueueStats(context.Background()); err != nil || len(qs) != 0 {
		t.Errorf("queue stats of empty queues: %+v, %v", qs, err)
	}
}

// TestOperatePlans checks that a report's pages read the attempts of one
// company, or one webhook, from the cursor on in index order, and that the
// queue statistics read only the pending deliveries; none of them sorts.
func TestOperatePlans(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	now := time.Unix(1700000000, 0).UTC()
	page := []any{"co_1", "", now, "", now.Add(time.Hour), attemptsPage}
	for _, c := range []struct {
		query string
		args  []any
		want  string
	}{
		{attemptsOfCompanyQuery, page, "attempts_company"},
		{attemptsOfCompanyQuery, []any{"co_1", "app_1", now, "atm_1", now.Add(time.Hour), attemptsPage}, "attempts_company"},
		{attemptsOfWebhookQuery, append(page, "wh_1"), "attempts_webhook"},
		{queueStatsQuery, nil, "deliveries_pending"},
	} {
		plan := queryPlan(t, s, c.query, c.args...)
		if !strings.Contains(plan, c.want) || strings.Contains(plan, "Sort") || strings.Contains(plan, "Seq Scan") {
			t.Errorf("plan of %s: want an ordered scan of %s, got\n%s", c.query, c.want, plan)
		}
	}
}
