package storetest

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pimhook/pimhook"
)

var deliveryCases = []testCase{
	{"RoundTrip", testDeliveryRoundTrip},
	{"Queue", testDeliveryQueue},
	{"Attempts", testDeliveryAttempts},
	{"Filter", testDeliveriesFilter},
	{"Limit", testDeliveriesLimit},
}

// oddPayload is valid JSON that no encoder would write: it must come back
// byte for byte, since it is what was signed.
const oddPayload = "{\"b\" : 1,\n\t\"a\":\"caf\\u00e9 é ✓ \\\"q\\\"\" , \"n\": 1.50e+3, \"z\":null }  \n"

func testDeliveryRoundTrip(t *testing.T, s pimhook.Store) {
	ctx := t.Context()
	x := setupIngest(t, s)
	other := newCompany(t, s, "Globex")
	next := at(90)
	given := &pimhook.Delivery{
		ID: pimhook.NewID(pimhook.PrefixDelivery, base), CompanyID: x.c.ID, AppID: x.a.ID, WebhookID: x.wa.ID,
		EventName: "products.created", Payload: []byte(oddPayload), Status: pimhook.DeliveryPending,
		NextAttemptAt: next, CreatedAt: at(7), UpdatedAt: at(8),
	}
	ev := event(x.c.ID, "p1", pimhook.ActionCreated, `{}`, at(7))
	given.EventID = ev.ID
	ingest(t, s, x.c.ID, func(ev *pimhook.Event, _ *pimhook.Entity) (pimhook.Decision, error) {
		ev.EffectiveAction, ev.Revision = pimhook.ActionCreated, 1
		return pimhook.Decision{Deliveries: []*pimhook.Delivery{given}}, nil
	}, ev)
	if given.Seq <= 0 {
		t.Errorf("delivery after ingest: Seq %d", given.Seq)
	}

	got, err := s.Delivery(ctx, x.c.ID, given.ID)
	if err != nil {
		t.Fatalf("delivery: %v", err)
	}
	wantSame(t, "delivery", given, got)
	if string(got.Payload) != oddPayload {
		t.Errorf("payload changed: %q", got.Payload)
	}
	if got.CreatedAt.Location() != time.UTC || got.NextAttemptAt.Location() != time.UTC {
		t.Errorf("times not in UTC: %v, %v", got.CreatedAt, got.NextAttemptAt)
	}
	ds := pending(t, s, x.a.ID, 10)
	wantSame(t, "pending", []*pimhook.Delivery{given}, ds)
	ds, err = s.Deliveries(ctx, pimhook.DeliveryFilter{CompanyID: x.c.ID})
	if err != nil {
		t.Fatalf("deliveries: %v", err)
	}
	wantSame(t, "deliveries", []*pimhook.Delivery{given}, ds)

	_, err = s.Delivery(ctx, other.ID, given.ID)
	wantError(t, "another company's delivery", err, pimhook.KindNotFound, pimhook.CodeDeliveryNotFound)
	_, err = s.Delivery(ctx, x.c.ID, pimhook.NewID(pimhook.PrefixDelivery, base))
	wantError(t, "missing delivery", err, pimhook.KindNotFound, pimhook.CodeDeliveryNotFound)
	if ds, err := s.Deliveries(ctx, pimhook.DeliveryFilter{CompanyID: other.ID}); err != nil || len(ds) != 0 {
		t.Errorf("deliveries of another company: %v, %v", ids(ds), err)
	}
	_, err = s.Deliveries(ctx, pimhook.DeliveryFilter{})
	wantError(t, "deliveries of no company", err, pimhook.KindInvalid, "")
}

// finish records one attempt that leaves d in status st, or, to skip d, no
// attempt at all.
func finish(t *testing.T, s pimhook.Store, d *pimhook.Delivery, st pimhook.DeliveryStatus, when time.Time) {
	t.Helper()
	if err := tryFinish(t.Context(), s, d, st, when); err != nil {
		t.Fatal(err)
	}
}

func tryFinish(ctx context.Context, s pimhook.Store, d *pimhook.Delivery, st pimhook.DeliveryStatus, when time.Time) error {
	if st == pimhook.DeliverySkipped {
		d.Status, d.LastError, d.UpdatedAt, d.FinishedAt = st, "webhook deleted", when, &when
		if err := s.RecordAttempt(ctx, d, nil); err != nil {
			return fmt.Errorf("skip delivery: %w", err)
		}
		return nil
	}
	d.Attempts++
	d.Status, d.UpdatedAt = st, when
	a := &pimhook.Attempt{ID: pimhook.NewID(pimhook.PrefixAttempt, when), DeliveryID: d.ID, Number: d.Attempts,
		StartedAt: when, Duration: 15 * time.Millisecond, StatusCode: 200, Succeeded: st == pimhook.DeliverySucceeded}
	if st == pimhook.DeliveryPending {
		d.NextAttemptAt, d.LastStatusCode, d.LastError = when.Add(time.Minute), 503, "503 Service Unavailable"
		a.StatusCode, a.Error = 503, d.LastError
	} else {
		d.FinishedAt = &when
	}
	if err := s.RecordAttempt(ctx, d, a); err != nil {
		return fmt.Errorf("record attempt: %w", err)
	}
	return nil
}

func pendingApps(t *testing.T, s pimhook.Store) []string {
	t.Helper()
	apps, err := s.PendingApps(t.Context())
	if err != nil {
		t.Fatalf("pending apps: %v", err)
	}
	slices.Sort(apps)
	return apps
}

func testDeliveryQueue(t *testing.T, s pimhook.Store) {
	ctx := t.Context()
	x := setupIngest(t, s)
	idle := newApp(t, s, x.c.ID, false)
	if apps := pendingApps(t, s); len(apps) != 0 {
		t.Errorf("pending apps of an empty store: %v", apps)
	}
	tr := newTracker()
	for i := range 5 {
		ingest(t, s, x.c.ID, tr.fanOut(x.targets()...), event(x.c.ID, fmt.Sprint("p", i), pimhook.ActionCreated, `{}`, at(i)))
	}
	both := []string{x.a.ID, x.b.ID}
	slices.Sort(both)
	wantSame(t, "pending apps", both, pendingApps(t, s))
	if ds := pending(t, s, idle.ID, 10); len(ds) != 0 {
		t.Errorf("queue of an idle app: %v", ids(ds))
	}

	qa := pending(t, s, x.a.ID, 100)
	if len(qa) != 5 {
		t.Fatalf("queue of app a: %d deliveries, want 5", len(qa))
	}
	wantAscending(t, "queue of app a", qa)
	page, err := s.PendingDeliveries(ctx, x.a.ID, qa[1].Seq, 2)
	if err != nil {
		t.Fatalf("pending deliveries: %v", err)
	}
	wantSame(t, "page after the second", ids(qa[2:4]), ids(page))
	if page, err := s.PendingDeliveries(ctx, x.a.ID, qa[4].Seq, 10); err != nil || len(page) != 0 {
		t.Errorf("page after the last: %v, %v", ids(page), err)
	}

	// A failed attempt with retries left keeps the head of the queue.
	head := qa[0]
	finish(t, s, head, pimhook.DeliveryPending, at(20))
	got := pending(t, s, x.a.ID, 100)
	wantSame(t, "queue after a failed attempt", ids(qa), ids(got))
	wantSame(t, "head after a failed attempt", head, got[0])

	finish(t, s, head, pimhook.DeliverySucceeded, at(21))
	wantSame(t, "queue after a success", ids(qa[1:]), ids(pending(t, s, x.a.ID, 100)))
	got0, err := s.Delivery(ctx, x.c.ID, head.ID)
	if err != nil {
		t.Fatalf("delivery: %v", err)
	}
	wantSame(t, "delivered", head, got0)

	// Final states of every kind leave the queue.
	for i, d := range pending(t, s, x.b.ID, 100) {
		st := []pimhook.DeliveryStatus{pimhook.DeliverySucceeded, pimhook.DeliveryFailed, pimhook.DeliverySkipped}[i%3]
		finish(t, s, d, st, at(30+i))
		got, err := s.Delivery(ctx, x.c.ID, d.ID)
		if err != nil {
			t.Fatalf("delivery: %v", err)
		}
		wantSame(t, "finished delivery", d, got)
		wantAttempts := 1
		if st == pimhook.DeliverySkipped {
			wantAttempts = 0 // skipped without a request
		}
		if as, err := s.Attempts(ctx, d.ID); err != nil || len(as) != wantAttempts {
			t.Errorf("attempts of a %s delivery: %d, %v; want %d", st, len(as), err, wantAttempts)
		}
	}
	wantSame(t, "pending apps after b's queue emptied", []string{x.a.ID}, pendingApps(t, s))
	for i, d := range qa[1:] {
		finish(t, s, d, pimhook.DeliveryFailed, at(40+i))
	}
	if apps := pendingApps(t, s); len(apps) != 0 {
		t.Errorf("pending apps after every queue emptied: %v", apps)
	}
}

func testDeliveryAttempts(t *testing.T, s pimhook.Store) {
	ctx := t.Context()
	x := setupIngest(t, s)
	tr := newTracker()
	ingest(t, s, x.c.ID, tr.fanOut(target{x.a.ID, x.wa.ID}), event(x.c.ID, "p1", pimhook.ActionCreated, `{}`, at(1)))
	d := pending(t, s, x.a.ID, 10)[0]
	if as, err := s.Attempts(ctx, d.ID); err != nil || len(as) != 0 {
		t.Errorf("attempts of a new delivery: %v, %v", as, err)
	}

	body := strings.Repeat("upstream says: nein ✗\n", 200)
	var want []*pimhook.Attempt
	for n := 1; n <= 3; n++ {
		started := at(10 * n)
		a := &pimhook.Attempt{
			ID: pimhook.NewID(pimhook.PrefixAttempt, started), DeliveryID: d.ID, Number: n, StartedAt: started,
			Duration: time.Duration(n)*time.Second + 234567*time.Microsecond, StatusCode: 500 + n,
			Error: fmt.Sprintf("HTTP %d", 500+n), ResponseBody: body,
		}
		d.Attempts, d.LastStatusCode, d.LastError = n, a.StatusCode, a.Error
		d.NextAttemptAt, d.UpdatedAt = started.Add(time.Duration(n)*time.Minute), started.Add(a.Duration)
		if n == 3 {
			a.StatusCode, a.Error, a.ResponseBody, a.Succeeded = 204, "", "", true
			d.Status, d.LastStatusCode, d.LastError, d.FinishedAt = pimhook.DeliverySucceeded, 204, "", &d.UpdatedAt
		}
		if err := s.RecordAttempt(ctx, d, a); err != nil {
			t.Fatalf("record attempt %d: %v", n, err)
		}
		want = append(want, a)
		got, err := s.Delivery(ctx, x.c.ID, d.ID)
		if err != nil {
			t.Fatalf("delivery: %v", err)
		}
		wantSame(t, fmt.Sprintf("delivery after attempt %d", n), d, got)
	}
	got, err := s.Attempts(ctx, d.ID)
	if err != nil {
		t.Fatalf("attempts: %v", err)
	}
	wantSame(t, "attempts", want, got)
	if got[0].StartedAt.Location() != time.UTC {
		t.Errorf("StartedAt in %v, want UTC", got[0].StartedAt.Location())
	}

	ghost := *d
	ghost.ID = pimhook.NewID(pimhook.PrefixDelivery, base)
	a := &pimhook.Attempt{ID: pimhook.NewID(pimhook.PrefixAttempt, base), DeliveryID: ghost.ID, Number: 1, StartedAt: at(99)}
	wantError(t, "attempt of a missing delivery", s.RecordAttempt(ctx, &ghost, a), pimhook.KindNotFound, pimhook.CodeDeliveryNotFound)
	wantError(t, "skip of a missing delivery", s.RecordAttempt(ctx, &ghost, nil), pimhook.KindNotFound, pimhook.CodeDeliveryNotFound)
	if as, err := s.Attempts(ctx, ghost.ID); err != nil || len(as) != 0 {
		t.Errorf("attempts of a missing delivery: %v, %v", as, err)
	}
}

func testDeliveriesFilter(t *testing.T, s pimhook.Store) {
	x := setupIngest(t, s)
	wa2 := newWebhook(t, s, x.c.ID, x.a.ID, at(3))
	other := newCompany(t, s, "Globex")
	otherApp := newApp(t, s, other.ID, false)
	tr := newTracker()

	targets := []target{{x.a.ID, x.wa.ID}, {x.a.ID, wa2.ID}, {x.b.ID, x.wb.ID}}
	// Three rounds, so that the other company's deliveries lie between ours.
	for round := range 3 {
		var ours, theirs []*pimhook.Event
		for i := 4 * round; i < 4*round+4; i++ {
			ours = append(ours, event(x.c.ID, fmt.Sprint("p", i), pimhook.ActionCreated, `{}`, at(10*i)))
			theirs = append(theirs, event(other.ID, fmt.Sprint("p", i), pimhook.ActionCreated, `{}`, at(10*i)))
		}
		ingest(t, s, x.c.ID, tr.fanOut(targets...), ours...)
		ingest(t, s, other.ID, tr.fanOut(target{otherApp.ID, "wh_other"}), theirs...)
	}
	var all []*pimhook.Delivery
	for _, app := range []*pimhook.App{x.a, x.b} {
		all = append(all, pending(t, s, app.ID, 100)...)
	}
	if len(all) != 36 {
		t.Fatalf("%d deliveries, want 36", len(all))
	}
	slices.SortFunc(all, func(a, b *pimhook.Delivery) int { return cmp.Compare(b.Seq, a.Seq) })
	statuses := []pimhook.DeliveryStatus{pimhook.DeliveryPending, pimhook.DeliverySucceeded, pimhook.DeliveryFailed, pimhook.DeliverySkipped}
	var wg sync.WaitGroup
	errs := make(chan error, len(all))
	for i, d := range all {
		if st := statuses[i%4]; st != pimhook.DeliveryPending {
			wg.Go(func() { errs <- tryFinish(t.Context(), s, d, st, at(200+i)) })
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}

	filters := []pimhook.DeliveryFilter{
		{},
		{WebhookID: x.wa.ID},
		{AppID: x.a.ID},
		{AppID: x.b.ID, Status: pimhook.DeliveryPending},
		{Status: pimhook.DeliveryFailed},
		{Status: pimhook.DeliverySkipped},
		{Since: at(30)},
		{Until: at(80)},
		{Since: at(30), Until: at(80)},
		{WebhookID: wa2.ID, Status: pimhook.DeliverySucceeded, Since: at(20)},
		{AppID: x.a.ID, WebhookID: x.wb.ID},
		{AppID: otherApp.ID},
		{WebhookID: "wh_other"},
		{BeforeSeq: all[10].Seq},
		{AppID: x.a.ID, BeforeSeq: all[10].Seq},
	}
	for _, f := range filters {
		var want []*pimhook.Delivery
		for _, d := range all {
			if (f.WebhookID == "" || d.WebhookID == f.WebhookID) && (f.AppID == "" || d.AppID == f.AppID) &&
				(f.Status == "" || d.Status == f.Status) && (f.Since.IsZero() || !d.CreatedAt.Before(f.Since)) &&
				(f.Until.IsZero() || d.CreatedAt.Before(f.Until)) && (f.BeforeSeq == 0 || d.Seq < f.BeforeSeq) {
				want = append(want, d)
			}
		}
		f.CompanyID = x.c.ID
		for _, limit := range []int{0, 1, 4, 7} {
			f.Limit = limit
			got := walk(t, s, f)
			what := fmt.Sprintf("filter %+v", f)
			wantSame(t, what, ids(want), ids(got))
			if limit == 0 {
				wantSame(t, what, want, got)
			}
		}
	}
}

// walk lists every delivery matching f, a page of f.Limit at a time.
func walk(t *testing.T, s pimhook.Store, f pimhook.DeliveryFilter) []*pimhook.Delivery {
	t.Helper()
	size := f.Limit
	if size == 0 {
		size = 50
	}
	var all []*pimhook.Delivery
	for range 1000 {
		page, err := s.Deliveries(t.Context(), f)
		if err != nil {
			t.Fatalf("deliveries: %v", err)
		}
		if len(page) > size {
			t.Fatalf("deliveries: a page of %d for limit %d", len(page), f.Limit)
		}
		if len(page) == 0 {
			return all
		}
		all = append(all, page...)
		f.BeforeSeq = page[len(page)-1].Seq
	}
	t.Fatalf("deliveries: pagination of %+v does not end", f)
	return nil
}

func testDeliveriesLimit(t *testing.T, s pimhook.Store) {
	ctx := t.Context()
	x := setupIngest(t, s)
	targets := make([]target, 1001)
	for i := range targets {
		targets[i] = target{x.a.ID, x.wa.ID}
	}
	tr := newTracker()
	ingest(t, s, x.c.ID, tr.fanOut(targets...), event(x.c.ID, "p1", pimhook.ActionCreated, `{}`, at(1)))

	for _, c := range []struct{ limit, want int }{{0, 50}, {10, 10}, {1000, 1000}, {5000, 1000}} {
		ds, err := s.Deliveries(ctx, pimhook.DeliveryFilter{CompanyID: x.c.ID, Limit: c.limit})
		if err != nil {
			t.Fatalf("deliveries: %v", err)
		}
		if len(ds) != c.want {
			t.Errorf("limit %d: %d deliveries, want %d", c.limit, len(ds), c.want)
		}
	}
	if got := walk(t, s, pimhook.DeliveryFilter{CompanyID: x.c.ID, Limit: 5000}); len(got) != 1001 {
		t.Errorf("walked %d deliveries, want 1001", len(got))
	}
}
