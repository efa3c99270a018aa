package storetest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pimhook/pimhook"
)

var operateCases = []testCase{
	{"Requeue", testRequeue},
	{"RequeuePending", testRequeuePending},
	{"RequeueNotFound", testRequeueNotFound},
	{"FailingSince", testFailingSince},
	{"DisableFailing", testDisableFailing},
	{"AttemptsBetween", testAttemptsBetween},
	{"AttemptsManyPages", testAttemptsManyPages},
	{"QueueStats", testQueueStats},
	{"Prune", testPrune},
}

func storedDelivery(t *testing.T, s pimhook.Store, companyID, id string) *pimhook.Delivery {
	t.Helper()
	d, err := s.Delivery(t.Context(), companyID, id)
	if err != nil {
		t.Fatalf("delivery: %v", err)
	}
	return d
}

func storedWebhook(t *testing.T, s pimhook.Store, companyID, id string) *pimhook.Webhook {
	t.Helper()
	w, err := s.Webhook(t.Context(), companyID, id)
	if err != nil {
		t.Fatalf("webhook: %v", err)
	}
	return w
}

// requeue re-queues ds at now and fails t on error.
func requeue(t *testing.T, s pimhook.Store, companyID string, now time.Time, ds ...*pimhook.Delivery) []*pimhook.Delivery {
	t.Helper()
	got, err := s.RequeueDeliveries(t.Context(), companyID, ids(ds), now)
	if err != nil {
		t.Fatalf("requeue deliveries: %v", err)
	}
	if len(got) != len(ds) {
		t.Fatalf("requeue deliveries: %d for %d IDs", len(got), len(ds))
	}
	return got
}

// timePtr returns a pointer to a copy of tm.
func timePtr(tm time.Time) *time.Time { return &tm }

// tryAt records an attempt of d started at started that took took and got
// status: a success finishes d, a failure leaves it pending for a retry.
func tryAt(t *testing.T, s pimhook.Store, d *pimhook.Delivery, started time.Time, status int, succeeded bool, took time.Duration) *pimhook.Attempt {
	t.Helper()
	a, err := recordTry(t.Context(), s, d, started, status, succeeded, took)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func recordTry(ctx context.Context, s pimhook.Store, d *pimhook.Delivery, started time.Time, status int, succeeded bool, took time.Duration) (*pimhook.Attempt, error) {
	d.Attempts++
	a := &pimhook.Attempt{
		ID: pimhook.NewID(pimhook.PrefixAttempt, started), DeliveryID: d.ID, Number: d.Attempts,
		StartedAt: started, Duration: took, StatusCode: status, Succeeded: succeeded,
	}
	d.LastStatusCode, d.UpdatedAt = status, started.Add(took)
	if succeeded {
		d.Status, d.LastError, d.FinishedAt = pimhook.DeliverySucceeded, "", timePtr(d.UpdatedAt)
	} else {
		a.Error = fmt.Sprintf("HTTP %d", status)
		if status == 0 {
			a.Error = "connection_refused: connect: connection refused"
		}
		d.LastError, d.NextAttemptAt = a.Error, d.UpdatedAt.Add(time.Minute)
	}
	if err := s.RecordAttempt(ctx, d, a); err != nil {
		return nil, fmt.Errorf("record attempt %d of %s: %w", a.Number, d.ID, err)
	}
	return a, nil
}

// testRequeue: failed and succeeded deliveries go back to the tail of their
// app's queue, in the order given, keeping everything that tells their
// history.
func testRequeue(t *testing.T, s pimhook.Store) {
	ctx := t.Context()
	x := setupIngest(t, s)
	tr := newTracker()
	for i := range 4 {
		ingest(t, s, x.c.ID, tr.fanOut(x.targets()...), event(x.c.ID, fmt.Sprint("p", i), pimhook.ActionCreated, `{}`, at(i)))
	}
	qa, qb := pending(t, s, x.a.ID, 10), pending(t, s, x.b.ID, 10)
	if len(qa) != 4 || len(qb) != 4 {
		t.Fatalf("queues of %d and %d deliveries, want 4 each", len(qa), len(qb))
	}
	failed, succeeded, waiting, newest := qa[0], qa[1], qa[2], qa[3]
	finish(t, s, failed, pimhook.DeliveryPending, at(10)) // a 503 first, kept as its last error
	finish(t, s, failed, pimhook.DeliveryFailed, at(11))
	finish(t, s, succeeded, pimhook.DeliverySucceeded, at(12))
	// The app's newest delivery is done: requeued ones go above it as well.
	finish(t, s, newest, pimhook.DeliverySucceeded, at(13))

	now := at(20)
	got := requeue(t, s, x.c.ID, now, succeeded, failed)
	for i, before := range []*pimhook.Delivery{succeeded, failed} {
		d := got[i]
		want := *before
		want.Status, want.NextAttemptAt, want.FinishedAt = pimhook.DeliveryPending, now, nil
		want.Seq, want.UpdatedAt = d.Seq, d.UpdatedAt // the store's to choose
		wantSame(t, fmt.Sprintf("requeued delivery %d", i), &want, d)
		if d.Seq <= newest.Seq {
			t.Errorf("requeued delivery %d: Seq %d, not above the app's newest %d", i, d.Seq, newest.Seq)
		}
		wantSame(t, fmt.Sprintf("requeued delivery %d as stored", i), d, storedDelivery(t, s, x.c.ID, d.ID))
		if as, err := s.Attempts(ctx, d.ID); err != nil || len(as) != before.Attempts {
			t.Errorf("attempts of requeued delivery %d: %d, %v; want %d", i, len(as), err, before.Attempts)
		}
	}
	if got[0].Seq >= got[1].Seq {
		t.Errorf("requeued in the wrong order: Seq %d, then %d", got[0].Seq, got[1].Seq)
	}
	wantSame(t, "queue of app a", []string{waiting.ID, succeeded.ID, failed.ID}, ids(pending(t, s, x.a.ID, 10)))
	// A dispatcher that has read the queue up to its newest delivery finds
	// them after it.
	page, err := s.PendingDeliveries(ctx, x.a.ID, newest.Seq, 10)
	if err != nil {
		t.Fatalf("pending deliveries: %v", err)
	}
	wantSame(t, "queue after the newest", got, page)
	wantSame(t, "queue of app b", qb, pending(t, s, x.b.ID, 10))

	// What is queued later goes behind them.
	ingest(t, s, x.c.ID, tr.fanOut(x.targets()...), event(x.c.ID, "p9", pimhook.ActionCreated, `{}`, at(21)))
	q := pending(t, s, x.a.ID, 10)
	wantAscending(t, "queue of app a after another event", q)
	if len(q) != 4 || !slices.Equal(ids(q[:3]), []string{waiting.ID, succeeded.ID, failed.ID}) {
		t.Errorf("queue of app a after another event: %v, want the new delivery last", ids(q))
	}

	// The next attempt's number follows on.
	again := got[1]
	finish(t, s, again, pimhook.DeliverySucceeded, at(30))
	as, err := s.Attempts(ctx, again.ID)
	if err != nil || len(as) != 3 || as[2].Number != 3 {
		t.Errorf("attempts after a requeued delivery's next attempt: %v, %v; want numbers 1 to 3", as, err)
	}
	wantSame(t, "delivered after requeue", again, storedDelivery(t, s, x.c.ID, again.ID))
}

// testRequeuePending: a pending delivery stays where it is, as it is.
func testRequeuePending(t *testing.T, s pimhook.Store) {
	x := setupIngest(t, s)
	tr := newTracker()
	for i := range 2 {
		ingest(t, s, x.c.ID, tr.fanOut(target{x.a.ID, x.wa.ID}), event(x.c.ID, fmt.Sprint("p", i), pimhook.ActionCreated, `{}`, at(i)))
	}
	qa := pending(t, s, x.a.ID, 10)
	failed, retrying := qa[0], qa[1]
	finish(t, s, failed, pimhook.DeliveryFailed, at(10))
	finish(t, s, retrying, pimhook.DeliveryPending, at(11)) // waits for its retry

	before := storedDelivery(t, s, x.c.ID, retrying.ID)
	got := requeue(t, s, x.c.ID, at(20), retrying, failed)
	wantSame(t, "requeued pending delivery", before, got[0])
	wantSame(t, "pending delivery after requeue", before, storedDelivery(t, s, x.c.ID, retrying.ID))
	if got[1].Status != pimhook.DeliveryPending || got[1].Seq <= before.Seq {
		t.Errorf("requeued failed delivery: status %s, Seq %d; want pending after %d", got[1].Status, got[1].Seq, before.Seq)
	}
	wantSame(t, "queue", []string{retrying.ID, failed.ID}, ids(pending(t, s, x.a.ID, 10)))

	// Requeued again, it is pending: it stays.
	again := requeue(t, s, x.c.ID, at(30), got[1])
	wantSame(t, "requeued twice", got[1], again[0])
	wantSame(t, "queue after requeueing twice", []string{retrying.ID, failed.ID}, ids(pending(t, s, x.a.ID, 10)))

	if ds, err := s.RequeueDeliveries(t.Context(), x.c.ID, nil, at(40)); err != nil || len(ds) != 0 {
		t.Errorf("requeue of no deliveries: %v, %v", ids(ds), err)
	}
}

// testRequeueNotFound: an ID that is not one of the company's deliveries
// fails the whole call.
func testRequeueNotFound(t *testing.T, s pimhook.Store) {
	ctx := t.Context()
	x := setupIngest(t, s)
	other := newCompany(t, s, "Globex")
	otherApp := newApp(t, s, other.ID, false)
	tr := newTracker()
	ingest(t, s, x.c.ID, tr.fanOut(target{x.a.ID, x.wa.ID}), event(x.c.ID, "p1", pimhook.ActionCreated, `{}`, at(1)))
	ingest(t, s, other.ID, tr.fanOut(target{otherApp.ID, "wh_other"}), event(other.ID, "p1", pimhook.ActionCreated, `{}`, at(1)))
	ours, theirs := pending(t, s, x.a.ID, 10)[0], pending(t, s, otherApp.ID, 10)[0]
	finish(t, s, ours, pimhook.DeliveryFailed, at(10))
	finish(t, s, theirs, pimhook.DeliveryFailed, at(10))
	oursBefore, theirsBefore := storedDelivery(t, s, x.c.ID, ours.ID), storedDelivery(t, s, other.ID, theirs.ID)

	unknown := pimhook.NewID(pimhook.PrefixDelivery, base)
	for _, c := range []struct {
		what      string
		companyID string
		ids       []string
	}{
		{"an unknown ID after a known one", x.c.ID, []string{ours.ID, unknown}},
		{"an unknown ID before a known one", x.c.ID, []string{unknown, ours.ID}},
		{"another company's delivery", x.c.ID, []string{ours.ID, theirs.ID}},
		{"a delivery of the company asked for another", other.ID, []string{theirs.ID, ours.ID}},
	} {
		ds, err := s.RequeueDeliveries(ctx, c.companyID, c.ids, at(20))
		wantError(t, "requeue with "+c.what, err, pimhook.KindNotFound, pimhook.CodeDeliveryNotFound)
		if ds != nil {
			t.Errorf("requeue with %s: returned %v", c.what, ids(ds))
		}
		wantSame(t, "our delivery after a requeue with "+c.what, oursBefore, storedDelivery(t, s, x.c.ID, ours.ID))
		wantSame(t, "their delivery after a requeue with "+c.what, theirsBefore, storedDelivery(t, s, other.ID, theirs.ID))
	}
	if apps := pendingApps(t, s); len(apps) != 0 {
		t.Errorf("pending apps after failed requeues: %v", apps)
	}
}

// testFailingSince: a webhook's failing time starts with the first failed
// attempt of a run and ends with a success; only the store writes it.
func testFailingSince(t *testing.T, s pimhook.Store) {
	ctx := t.Context()
	x := setupIngest(t, s)
	tr := newTracker()
	for i := range 2 {
		ingest(t, s, x.c.ID, tr.fanOut(x.targets()...), event(x.c.ID, fmt.Sprint("p", i), pimhook.ActionCreated, `{}`, at(i)))
	}
	qa := pending(t, s, x.a.ID, 10)
	d, d2 := qa[0], qa[1]
	wantFailing := func(what string, w *pimhook.Webhook, want *time.Time) {
		t.Helper()
		wantSame(t, what, want, storedWebhook(t, s, x.c.ID, w.ID).FailingSince)
	}

	wantFailing("a new webhook", x.wa, nil)
	tryAt(t, s, d, at(10), 503, false, 120*time.Millisecond)
	wantFailing("after a failed attempt", x.wa, timePtr(at(10)))
	tryAt(t, s, d, at(20), 0, false, 5*time.Second)
	wantFailing("after a second failed attempt", x.wa, timePtr(at(10)))
	tryAt(t, s, d2, at(25), 500, false, time.Millisecond)
	wantFailing("after a failed attempt of another delivery", x.wa, timePtr(at(10)))
	wantFailing("another webhook", x.wb, nil)
	tryAt(t, s, d, at(30), 204, true, 80*time.Millisecond)
	wantFailing("after a success", x.wa, nil)
	tryAt(t, s, d2, at(40), 500, false, time.Millisecond)
	wantFailing("after a failure following a success", x.wa, timePtr(at(40)))

	// A delivery that ends without an attempt changes nothing.
	skippedAt := at(45)
	d2.Status, d2.UpdatedAt, d2.FinishedAt = pimhook.DeliverySkipped, skippedAt, &skippedAt
	if err := s.RecordAttempt(ctx, d2, nil); err != nil {
		t.Fatalf("skip delivery: %v", err)
	}
	wantFailing("after a skip", x.wa, timePtr(at(40)))

	// Updates leave it as the store keeps it, whatever the struct says.
	w := storedWebhook(t, s, x.c.ID, x.wa.ID)
	w.Name, w.FailingSince, w.UpdatedAt = "renamed", nil, at(50)
	if err := s.UpdateWebhook(ctx, w); err != nil {
		t.Fatalf("update webhook: %v", err)
	}
	wantFailing("after an update of an enabled webhook", x.wa, timePtr(at(40)))
	wb := storedWebhook(t, s, x.c.ID, x.wb.ID)
	wb.FailingSince, wb.UpdatedAt = timePtr(at(1)), at(50)
	if err := s.UpdateWebhook(ctx, wb); err != nil {
		t.Fatalf("update webhook: %v", err)
	}
	wantFailing("after an update that sets it", x.wb, nil)

	ws, err := s.Webhooks(ctx, x.c.ID)
	if err != nil {
		t.Fatalf("webhooks: %v", err)
	}
	listed := false
	for _, w := range ws {
		if w.ID == x.wa.ID {
			listed = true
			wantSame(t, "failing time in the list", timePtr(at(40)), w.FailingSince)
		}
	}
	if !listed {
		t.Errorf("webhook %s missing from the list", x.wa.ID)
	}
}

// testDisableFailing: a webhook failing for the whole period is disabled,
// once, with an entry in the error log.
func testDisableFailing(t *testing.T, s pimhook.Store) {
	ctx := t.Context()
	x := setupIngest(t, s)
	other := newCompany(t, s, "Globex")
	tr := newTracker()
	ingest(t, s, x.c.ID, tr.fanOut(x.targets()...), event(x.c.ID, "p1", pimhook.ActionCreated, `{}`, at(1)))
	ingest(t, s, x.c.ID, tr.fanOut(target{x.b.ID, x.wb.ID}), event(x.c.ID, "p2", pimhook.ActionCreated, `{}`, at(2)))
	tryAt(t, s, pending(t, s, x.a.ID, 10)[0], at(10), 503, false, time.Millisecond)

	const period = time.Hour
	reason := "every attempt failed for 1h0m0s"
	disable := func(companyID, id string, now time.Time) bool {
		t.Helper()
		off, err := s.DisableFailingWebhook(ctx, companyID, id, period, now, reason)
		if err != nil {
			t.Fatalf("disable failing webhook: %v", err)
		}
		return off
	}
	healthLog := func() []*pimhook.ErrorLogEntry {
		t.Helper()
		return errorLog(t, s, pimhook.ErrorLogFilter{CompanyID: x.c.ID, Source: pimhook.ErrorSourceHealth})
	}

	before := storedWebhook(t, s, x.c.ID, x.wa.ID)
	if disable(x.c.ID, x.wa.ID, at(10).Add(period-time.Millisecond)) {
		t.Errorf("disabled a webhook failing for less than the period")
	}
	if disable(x.c.ID, x.wb.ID, at(10).Add(2*period)) {
		t.Errorf("disabled a webhook that never failed")
	}
	if disable(x.c.ID, pimhook.NewID(pimhook.PrefixWebhook, base), at(10).Add(2*period)) {
		t.Errorf("disabled a webhook that does not exist")
	}
	if disable(other.ID, x.wa.ID, at(10).Add(2*period)) {
		t.Errorf("disabled another company's webhook")
	}
	wantSame(t, "webhook left alone", before, storedWebhook(t, s, x.c.ID, x.wa.ID))
	if es := healthLog(); len(es) != 0 {
		t.Errorf("health entries of webhooks left alone: %v", entryIDs(es))
	}

	now := at(10).Add(period)
	if !disable(x.c.ID, x.wa.ID, now) {
		t.Fatalf("did not disable a webhook failing for the period")
	}
	got := storedWebhook(t, s, x.c.ID, x.wa.ID)
	want := *before
	want.Enabled, want.DisabledReason, want.UpdatedAt = false, reason, got.UpdatedAt
	wantSame(t, "disabled webhook", &want, got)
	es := healthLog()
	if len(es) != 1 {
		t.Fatalf("health entries: %d, want 1", len(es))
	}
	wantSame(t, "health entry", &pimhook.ErrorLogEntry{
		ID: es[0].ID, CompanyID: x.c.ID, Source: pimhook.ErrorSourceHealth, OccurredAt: now,
		WebhookID: x.wa.ID, Error: reason,
	}, es[0])
	if es[0].ID == "" {
		t.Errorf("health entry without an ID")
	}
	if disable(x.c.ID, x.wa.ID, now.Add(period)) {
		t.Errorf("disabled a disabled webhook")
	}
	if es := healthLog(); len(es) != 1 {
		t.Errorf("health entries after disabling a disabled webhook: %d, want 1", len(es))
	}

	// Edited while disabled, it is still failing; enabled, it is not.
	got.Name, got.UpdatedAt = "renamed", now.Add(time.Minute)
	if err := s.UpdateWebhook(ctx, got); err != nil {
		t.Fatalf("update webhook: %v", err)
	}
	wantSame(t, "failing time of an edited disabled webhook", timePtr(at(10)), storedWebhook(t, s, x.c.ID, x.wa.ID).FailingSince)
	got.Enabled, got.DisabledReason, got.UpdatedAt = true, "", now.Add(2*time.Minute)
	if err := s.UpdateWebhook(ctx, got); err != nil {
		t.Fatalf("update webhook: %v", err)
	}
	got.FailingSince = nil
	wantSame(t, "re-enabled webhook", got, storedWebhook(t, s, x.c.ID, x.wa.ID))
	if disable(x.c.ID, x.wa.ID, now.Add(10*period)) {
		t.Errorf("disabled a re-enabled webhook that has not failed since")
	}

	// Long after the period counts too.
	tryAt(t, s, pending(t, s, x.b.ID, 10)[0], at(100), 0, false, time.Millisecond)
	if !disable(x.c.ID, x.wb.ID, at(100).Add(3*period)) {
		t.Errorf("did not disable a webhook failing for longer than the period")
	}
	if w := storedWebhook(t, s, x.c.ID, x.wb.ID); w.Enabled || w.DisabledReason != reason {
		t.Errorf("webhook disabled after the period: enabled %v, reason %q", w.Enabled, w.DisabledReason)
	}
	if es := healthLog(); len(es) != 2 || es[0].WebhookID != x.wb.ID {
		t.Errorf("health entries: %v, want a second one, of webhook b", entryIDs(es))
	}
}

// attemptRecords lists what AttemptsBetween gives for f.
func attemptRecords(t *testing.T, s pimhook.Store, f pimhook.AttemptFilter) []pimhook.AttemptRecord {
	t.Helper()
	out := []pimhook.AttemptRecord{}
	if err := s.AttemptsBetween(t.Context(), f, func(r pimhook.AttemptRecord) error {
		out = append(out, r)
		return nil
	}); err != nil {
		t.Fatalf("attempts between: %v", err)
	}
	return out
}

// testAttemptsBetween: the attempts of a report are the company's, of the
// app and webhook asked for, started within the window, in start order.
func testAttemptsBetween(t *testing.T, s pimhook.Store) {
	ctx := t.Context()
	x := setupIngest(t, s)
	wa2 := newWebhook(t, s, x.c.ID, x.a.ID, at(3))
	other := newCompany(t, s, "Globex")
	otherApp := newApp(t, s, other.ID, false)
	otherHook := newWebhook(t, s, other.ID, otherApp.ID, at(4))
	tr := newTracker()
	ingest(t, s, x.c.ID, tr.fanOut(target{x.a.ID, x.wa.ID}, target{x.a.ID, wa2.ID}, target{x.b.ID, x.wb.ID}),
		event(x.c.ID, "p1", pimhook.ActionCreated, `{}`, at(1)))
	ingest(t, s, other.ID, tr.fanOut(target{otherApp.ID, otherHook.ID}), event(other.ID, "p1", pimhook.ActionCreated, `{}`, at(1)))
	byHook := map[string]*pimhook.Delivery{}
	for _, app := range []string{x.a.ID, x.b.ID, otherApp.ID} {
		for _, d := range pending(t, s, app, 10) {
			byHook[d.WebhookID] = d
		}
	}
	da, da2, db, dt := byHook[x.wa.ID], byHook[wa2.ID], byHook[x.wb.ID], byHook[otherHook.ID]

	// Attempts of every webhook, interleaved, the other company's among
	// them; each later than the one before.
	plan := []struct {
		d         *pimhook.Delivery
		status    int
		succeeded bool
	}{
		{da, 503, false}, {db, 0, false}, {dt, 500, false}, {da2, 500, false}, {da, 200, true},
		{db, 502, false}, {dt, 200, true}, {da2, 204, true}, {db, 200, true},
	}
	type record struct {
		r         pimhook.AttemptRecord
		companyID string
	}
	var all []record
	for i, p := range plan {
		started := at(100 + i).Add(time.Duration(i) * 1234 * time.Microsecond)
		took := time.Duration(i+1)*time.Millisecond + 250*time.Microsecond
		a := tryAt(t, s, p.d, started, p.status, p.succeeded, took)
		all = append(all, record{companyID: p.d.CompanyID, r: pimhook.AttemptRecord{
			DeliveryID: p.d.ID, AppID: p.d.AppID, WebhookID: p.d.WebhookID, Number: a.Number,
			StartedAt: a.StartedAt, Duration: took, StatusCode: p.status, Succeeded: p.succeeded,
		}})
	}
	// The records name the app of the delivery, wherever its webhook went.
	moved := storedWebhook(t, s, x.c.ID, wa2.ID)
	moved.AppID, moved.UpdatedAt = x.b.ID, at(200)
	if err := s.UpdateWebhook(ctx, moved); err != nil {
		t.Fatalf("update webhook: %v", err)
	}

	first, last := all[0].r.StartedAt, all[len(all)-1].r.StartedAt
	for _, f := range []pimhook.AttemptFilter{
		{Start: at(0), End: at(1000)},
		{Start: first, End: last}, // the first in, the last out
		{Start: first.Add(time.Microsecond), End: last.Add(time.Microsecond)},
		{Start: all[4].r.StartedAt, End: all[4].r.StartedAt},
		{Start: at(0), End: at(1000), AppID: x.a.ID},
		{Start: at(0), End: at(1000), AppID: x.b.ID},
		{Start: at(0), End: at(1000), WebhookID: wa2.ID},
		{Start: first, End: last, WebhookID: x.wb.ID},
		{Start: at(0), End: at(1000), AppID: x.a.ID, WebhookID: x.wa.ID},
		{Start: at(0), End: at(1000), AppID: x.b.ID, WebhookID: x.wa.ID},
		{Start: at(0), End: at(1000), AppID: otherApp.ID},
		{Start: at(0), End: at(1000), WebhookID: otherHook.ID},
		{Start: at(0), End: at(1000), CompanyID: other.ID},
		{Start: at(0), End: at(1000), CompanyID: other.ID, WebhookID: x.wa.ID},
	} {
		if f.CompanyID == "" {
			f.CompanyID = x.c.ID
		}
		want := []pimhook.AttemptRecord{}
		for _, a := range all {
			if a.companyID == f.CompanyID && (f.AppID == "" || a.r.AppID == f.AppID) && (f.WebhookID == "" || a.r.WebhookID == f.WebhookID) &&
				!a.r.StartedAt.Before(f.Start) && a.r.StartedAt.Before(f.End) {
				want = append(want, a.r)
			}
		}
		wantSame(t, fmt.Sprintf("attempts of %+v", f), want, attemptRecords(t, s, f))
	}

	// An error of fn ends the walk and is returned.
	stop := errors.New("stop")
	calls := 0
	err := s.AttemptsBetween(ctx, pimhook.AttemptFilter{CompanyID: x.c.ID, Start: at(0), End: at(1000)}, func(pimhook.AttemptRecord) error {
		calls++
		if calls == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || calls != 2 {
		t.Errorf("attempts between with fn failing on the second: %v after %d calls; want %v after 2", err, calls, stop)
	}
}

// testAttemptsManyPages: a long report gives every attempt once, in start
// order, however many start at the same instant.
func testAttemptsManyPages(t *testing.T, s pimhook.Store) {
	x := setupIngest(t, s)
	const n = 2100
	targets := make([]target, n)
	for i := range targets {
		targets[i] = target{x.a.ID, x.wa.ID}
	}
	tr := newTracker()
	ingest(t, s, x.c.ID, tr.fanOut(targets...), event(x.c.ID, "p1", pimhook.ActionCreated, `{}`, at(1)))
	ds := pending(t, s, x.a.ID, 1000)
	if len(ds) != n {
		t.Fatalf("%d deliveries, want %d", len(ds), n)
	}
	// Three attempts start at each instant, so that pages end amid equal
	// start times. Sixteen writers at a time.
	work := make(chan int)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for i := range work {
				_, err := recordTry(t.Context(), s, ds[i], at(100+i/3), 200, true, time.Millisecond)
				errs <- err
			}
		})
	}
	for i := range ds {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}

	for _, c := range []struct {
		start, end int // instants, from at(100)
		webhook    bool
	}{{0, n / 3, false}, {0, n / 3, true}, {100, 500, false}, {100, 500, true}} {
		f := pimhook.AttemptFilter{CompanyID: x.c.ID, Start: at(100 + c.start), End: at(100 + c.end)}
		if c.webhook {
			f.WebhookID = x.wa.ID
		}
		got := attemptRecords(t, s, f)
		if want := 3 * (c.end - c.start); len(got) != want {
			t.Errorf("attempts of %+v: %d, want %d", f, len(got), want)
		}
		if !slices.IsSortedFunc(got, func(a, b pimhook.AttemptRecord) int { return a.StartedAt.Compare(b.StartedAt) }) {
			t.Errorf("attempts of %+v: not in start order", f)
		}
		seen := map[string]bool{}
		for _, r := range got {
			if seen[r.DeliveryID] {
				t.Fatalf("attempts of %+v: delivery %s twice", f, r.DeliveryID)
			}
			seen[r.DeliveryID] = true
		}
		for i := 3 * c.start; i < 3*c.end; i++ {
			if !seen[ds[i].ID] {
				t.Fatalf("attempts of %+v: delivery %d missing", f, i)
			}
		}
	}
}

func queueStats(t *testing.T, s pimhook.Store) []pimhook.AppQueue {
	t.Helper()
	qs, err := s.QueueStats(t.Context())
	if err != nil {
		t.Fatalf("queue stats: %v", err)
	}
	slices.SortFunc(qs, func(a, b pimhook.AppQueue) int { return cmp.Compare(a.AppID, b.AppID) })
	return qs
}

// testQueueStats: every app with pending work, with how much and since
// when, across companies; none of the apps without.
func testQueueStats(t *testing.T, s pimhook.Store) {
	if qs := queueStats(t, s); len(qs) != 0 {
		t.Errorf("queue stats of an empty store: %+v", qs)
	}
	x := setupIngest(t, s)
	newApp(t, s, x.c.ID, false) // idle
	other := newCompany(t, s, "Globex")
	otherApp := newApp(t, s, other.ID, false)
	tr := newTracker()
	for i := range 3 {
		ingest(t, s, x.c.ID, tr.fanOut(x.targets()...), event(x.c.ID, fmt.Sprint("p", i), pimhook.ActionCreated, `{}`, at(10+i)))
	}
	ingest(t, s, other.ID, tr.fanOut(target{otherApp.ID, "wh_other"}), event(other.ID, "p1", pimhook.ActionCreated, `{}`, at(5)))
	qa, qb := pending(t, s, x.a.ID, 10), pending(t, s, x.b.ID, 10)
	finish(t, s, qa[0], pimhook.DeliverySucceeded, at(20))
	finish(t, s, qa[1], pimhook.DeliveryPending, at(21)) // a retry still counts
	for i, d := range qb {
		finish(t, s, d, []pimhook.DeliveryStatus{pimhook.DeliverySucceeded, pimhook.DeliveryFailed, pimhook.DeliverySkipped}[i], at(22))
	}
	sorted := func(qs ...pimhook.AppQueue) []pimhook.AppQueue {
		slices.SortFunc(qs, func(a, b pimhook.AppQueue) int { return cmp.Compare(a.AppID, b.AppID) })
		return qs
	}
	wantSame(t, "queue stats", sorted(
		pimhook.AppQueue{AppID: x.a.ID, Pending: 2, Oldest: at(11)},
		pimhook.AppQueue{AppID: otherApp.ID, Pending: 1, Oldest: at(5)},
	), queueStats(t, s))

	// A requeued delivery is last in its queue and still the oldest.
	requeue(t, s, x.c.ID, at(30), qa[0], qb[2])
	wantSame(t, "queue stats after requeue", sorted(
		pimhook.AppQueue{AppID: x.a.ID, Pending: 3, Oldest: at(10)},
		pimhook.AppQueue{AppID: x.b.ID, Pending: 1, Oldest: at(12)},
		pimhook.AppQueue{AppID: otherApp.ID, Pending: 1, Oldest: at(5)},
	), queueStats(t, s))
}

// testPrune: Prune deletes the final deliveries that finished before the
// cutoff, with their attempts, and the error-log entries older than it;
// pending deliveries and recent final ones stay, attempts and all.
func testPrune(t *testing.T, s pimhook.Store) {
	ctx := t.Context()
	x := setupIngest(t, s)
	tr := newTracker()
	for i := range 4 {
		ingest(t, s, x.c.ID, tr.fanOut(x.targets()...), event(x.c.ID, fmt.Sprint("p", i), pimhook.ActionCreated, `{}`, at(i)))
	}
	qa, qb := pending(t, s, x.a.ID, 10), pending(t, s, x.b.ID, 10)
	if len(qa) != 4 || len(qb) != 4 {
		t.Fatalf("queues of %d and %d deliveries, want 4 each", len(qa), len(qb))
	}
	oldSucceeded, oldFailed, recent, retrying := qa[0], qa[1], qa[2], qa[3]
	finish(t, s, oldSucceeded, pimhook.DeliverySucceeded, at(10))
	finish(t, s, oldFailed, pimhook.DeliveryPending, at(11)) // an error-log entry at 11
	finish(t, s, oldFailed, pimhook.DeliveryFailed, at(12))  // and one at 12
	finish(t, s, recent, pimhook.DeliverySucceeded, at(100))
	finish(t, s, retrying, pimhook.DeliveryPending, at(13)) // pending, with an old attempt
	oldSkipped, lateRetry := qb[0], qb[1]
	finish(t, s, oldSkipped, pimhook.DeliverySkipped, at(10))
	finish(t, s, lateRetry, pimhook.DeliveryPending, at(60)) // an error-log entry at 60

	n, err := s.Prune(ctx, at(50))
	if err != nil {
		t.Fatalf("prune: %v", err)
	}
	if n != 3 {
		t.Errorf("prune deleted %d deliveries, want 3", n)
	}
	for _, d := range []*pimhook.Delivery{oldSucceeded, oldFailed, oldSkipped} {
		_, err := s.Delivery(ctx, x.c.ID, d.ID)
		wantError(t, "pruned delivery "+d.ID, err, pimhook.KindNotFound, pimhook.CodeDeliveryNotFound)
		if as, err := s.Attempts(ctx, d.ID); err != nil || len(as) != 0 {
			t.Errorf("attempts of pruned delivery %s: %d, %v; want none", d.ID, len(as), err)
		}
	}
	for _, d := range []*pimhook.Delivery{recent, retrying, lateRetry, qb[2], qb[3]} {
		wantSame(t, "kept delivery "+d.ID, d.Status, storedDelivery(t, s, x.c.ID, d.ID).Status)
		if as, err := s.Attempts(ctx, d.ID); err != nil || len(as) != d.Attempts {
			t.Errorf("attempts of kept delivery %s: %d, %v; want %d", d.ID, len(as), err, d.Attempts)
		}
	}
	wantSame(t, "queue of app a after prune", []string{retrying.ID}, ids(pending(t, s, x.a.ID, 10)))
	wantSame(t, "queue of app b after prune", []string{lateRetry.ID, qb[2].ID, qb[3].ID}, ids(pending(t, s, x.b.ID, 10)))
	entries, err := s.ErrorLog(ctx, pimhook.ErrorLogFilter{CompanyID: x.c.ID, Limit: 100})
	if err != nil {
		t.Fatalf("error log: %v", err)
	}
	var kept []string
	for _, e := range entries {
		kept = append(kept, e.DeliveryID+" at "+e.OccurredAt.Sub(base).String())
	}
	wantSame(t, "error log after prune", []string{lateRetry.ID + " at 1m0s"}, kept)

	if n, err := s.Prune(ctx, at(50)); err != nil || n != 0 {
		t.Errorf("prune again: %d, %v; want 0", n, err)
	}
}
