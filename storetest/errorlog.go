package storetest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pimhook/pimhook"
)

var errorLogCases = []testCase{
	{"FailedAttempt", testErrorLogFailedAttempt},
	{"IngestErrors", testErrorLogIngest},
	{"Filter", testErrorLogFilter},
	{"Limit", testErrorLogLimit},
}

func errorLog(t *testing.T, s pimhook.Store, f pimhook.ErrorLogFilter) []*pimhook.ErrorLogEntry {
	t.Helper()
	es, err := s.ErrorLog(t.Context(), f)
	if err != nil {
		t.Fatalf("error log: %v", err)
	}
	return es
}

// entryIDs returns the IDs of es.
func entryIDs(es []*pimhook.ErrorLogEntry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.ID
	}
	return out
}

// walkErrorLog lists every entry matching f, a page of f.Limit at a time.
func walkErrorLog(t *testing.T, s pimhook.Store, f pimhook.ErrorLogFilter) []*pimhook.ErrorLogEntry {
	t.Helper()
	size := f.Limit
	if size <= 0 {
		size = pimhook.DefaultPage
	}
	var all []*pimhook.ErrorLogEntry
	for range 1000 {
		page := errorLog(t, s, f)
		if len(page) > size {
			t.Fatalf("error log: a page of %d for limit %d", len(page), f.Limit)
		}
		if len(page) == 0 {
			return all
		}
		all = append(all, page...)
		f.BeforeID = page[len(page)-1].ID
	}
	t.Fatalf("error log: pagination of %+v does not end", f)
	return nil
}

// withErrors returns a Decider that does what decide does and adds errs to
// the decision of the event with ID eventID.
func withErrors(decide pimhook.Decider, eventID string, errs ...*pimhook.ErrorLogEntry) pimhook.Decider {
	return func(ev *pimhook.Event, stored *pimhook.Entity) (pimhook.Decision, error) {
		dec, err := decide(ev, stored)
		if ev.ID == eventID {
			dec.Errors = append(dec.Errors, errs...)
		}
		return dec, err
	}
}

// filterError returns the error-log entry of a filter of webhookID that
// failed on eventID.
func filterError(companyID, webhookID, eventID string, when time.Time, msg string) *pimhook.ErrorLogEntry {
	return &pimhook.ErrorLogEntry{
		ID: pimhook.NewID(pimhook.PrefixErrorLog, when), CompanyID: companyID, Source: pimhook.ErrorSourceFilter,
		OccurredAt: when, WebhookID: webhookID, EventID: eventID, Error: msg,
	}
}

func testErrorLogFailedAttempt(t *testing.T, s pimhook.Store) {
	ctx := t.Context()
	x := setupIngest(t, s)
	other := newCompany(t, s, "Globex")
	tr := newTracker()
	ingest(t, s, x.c.ID, tr.fanOut(x.targets()...), event(x.c.ID, "p1", pimhook.ActionCreated, `{}`, at(1)))
	d := pending(t, s, x.a.ID, 10)[0]
	_, ev := tr.delivery(d.ID)

	body := strings.Repeat("upstream says: nein ✗ <b>&</b>\n", 100)
	attempt := func(n int, status int, errMsg, body string, succeeded bool) *pimhook.Attempt {
		started := at(10 * n)
		a := &pimhook.Attempt{
			ID: pimhook.NewID(pimhook.PrefixAttempt, started), DeliveryID: d.ID, Number: n, StartedAt: started,
			Duration: 250 * time.Millisecond, StatusCode: status, Succeeded: succeeded, Error: errMsg, ResponseBody: body,
		}
		d.Attempts, d.LastStatusCode, d.LastError, d.UpdatedAt = n, status, errMsg, started
		if succeeded {
			d.Status, d.FinishedAt = pimhook.DeliverySucceeded, &started
		}
		if err := s.RecordAttempt(ctx, d, a); err != nil {
			t.Fatalf("record attempt %d: %v", n, err)
		}
		return a
	}
	want := func(a *pimhook.Attempt) *pimhook.ErrorLogEntry {
		return &pimhook.ErrorLogEntry{
			CompanyID: x.c.ID, Source: pimhook.ErrorSourceWebhook, OccurredAt: a.StartedAt,
			WebhookID: x.wa.ID, DeliveryID: d.ID, EventID: ev.ID, Attempt: a.Number,
			StatusCode: a.StatusCode, Error: a.Error, ResponseBody: a.ResponseBody,
		}
	}
	// wantLog compares the log with want, IDs aside: the store makes them.
	wantLog := func(what string, want ...*pimhook.ErrorLogEntry) {
		t.Helper()
		got := errorLog(t, s, pimhook.ErrorLogFilter{CompanyID: x.c.ID})
		if len(got) != len(want) {
			t.Fatalf("%s: %d entries, want %d", what, len(got), len(want))
		}
		for i, e := range got {
			if e.ID == "" || (i > 0 && e.ID == got[i-1].ID) {
				t.Errorf("%s: entry %d has ID %q", what, i, e.ID)
			}
			w := *want[i]
			w.ID = e.ID
			wantSame(t, fmt.Sprintf("%s: entry %d", what, i), &w, e)
		}
	}

	first := attempt(1, 503, "503 Service Unavailable", body, false)
	wantLog("error log after a failed attempt", want(first))
	second := attempt(2, 0, "connection_refused: dial tcp 10.0.0.9:443: connect: connection refused", "", false)
	wantLog("error log after two failed attempts, newest first", want(second), want(first))
	attempt(3, 204, "", "", true)
	wantLog("error log after a successful attempt", want(second), want(first))

	// A delivery skipped without a request logs nothing.
	skipped := pending(t, s, x.b.ID, 10)[0]
	skippedAt := at(40)
	skipped.Status, skipped.LastError, skipped.UpdatedAt, skipped.FinishedAt = pimhook.DeliverySkipped, "webhook deleted", skippedAt, &skippedAt
	if err := s.RecordAttempt(ctx, skipped, nil); err != nil {
		t.Fatalf("skip delivery: %v", err)
	}
	wantLog("error log after a skip", want(second), want(first))
	if es := errorLog(t, s, pimhook.ErrorLogFilter{CompanyID: other.ID}); len(es) != 0 {
		t.Errorf("another company's error log: %v", entryIDs(es))
	}

	// An attempt of a missing delivery logs nothing either.
	ghost := *d
	ghost.ID = pimhook.NewID(pimhook.PrefixDelivery, base)
	a := &pimhook.Attempt{ID: pimhook.NewID(pimhook.PrefixAttempt, base), DeliveryID: ghost.ID, Number: 1, StartedAt: at(99), StatusCode: 500}
	wantError(t, "failed attempt of a missing delivery", s.RecordAttempt(ctx, &ghost, a), pimhook.KindNotFound, pimhook.CodeDeliveryNotFound)
	wantLog("error log after an attempt of a missing delivery", want(second), want(first))
}

func testErrorLogIngest(t *testing.T, s pimhook.Store) {
	x := setupIngest(t, s)
	tr := newTracker()
	decide := tr.fanOut(target{x.b.ID, x.wb.ID})

	ev := event(x.c.ID, "p1", pimhook.ActionCreated, `{"price":"free"}`, at(1))
	errs := []*pimhook.ErrorLogEntry{
		filterError(x.c.ID, x.wa.ID, ev.ID, at(1), "filter_configuration.condition: TypeError: p.toFixed is not a function"),
		filterError(x.c.ID, x.wa.ID+"x", ev.ID, at(1), "reducer_configuration: budget of 50ms exceeded"),
	}
	rs := ingest(t, s, x.c.ID, withErrors(decide, ev.ID, errs...), ev)
	if rs[0].Status != pimhook.IngestAccepted || rs[0].Deliveries != 1 {
		t.Errorf("event with filter errors: %+v", rs[0])
	}
	log := []*pimhook.ErrorLogEntry{errs[1], errs[0]}
	wantSame(t, "error log of an event", log, errorLog(t, s, pimhook.ErrorLogFilter{CompanyID: x.c.ID}))

	// A duplicate is not decided again, and its errors are not logged twice.
	again := *ev
	rs = ingest(t, s, x.c.ID, withErrors(decide, ev.ID, filterError(x.c.ID, x.wa.ID, ev.ID, at(2), "again")), &again)
	if rs[0].Status != pimhook.IngestDuplicate {
		t.Errorf("event posted again: %+v", rs[0])
	}
	wantSame(t, "error log after a duplicate", log, errorLog(t, s, pimhook.ErrorLogFilter{CompanyID: x.c.ID}))

	// The errors of a call that fails are not logged: they go with its
	// events.
	e2, e3 := event(x.c.ID, "p2", pimhook.ActionCreated, `{}`, at(3)), event(x.c.ID, "p3", pimhook.ActionCreated, `{}`, at(4))
	failing := func(ev *pimhook.Event, stored *pimhook.Entity) (pimhook.Decision, error) {
		if ev == e3 {
			return pimhook.Decision{}, errDecide
		}
		return withErrors(decide, e2.ID, filterError(x.c.ID, x.wa.ID, e2.ID, at(3), "lost"))(ev, stored)
	}
	if _, err := s.Ingest(t.Context(), x.c.ID, []*pimhook.Event{e2, e3}, failing); err == nil {
		t.Fatal("ingest with a failing decide: no error")
	}
	wantSame(t, "error log after a failed call", log, errorLog(t, s, pimhook.ErrorLogFilter{CompanyID: x.c.ID}))

	// An unchanged event may carry none; the next change may.
	unchanged := event(x.c.ID, "p1", pimhook.ActionUpdated, `{"price":"free"}`, at(5))
	changed := event(x.c.ID, "p1", pimhook.ActionUpdated, `{"price":"0"}`, at(6))
	late := filterError(x.c.ID, x.wa.ID, changed.ID, at(6), "filter_configuration.query: no such field")
	rs = ingest(t, s, x.c.ID, withErrors(decide, changed.ID, late), unchanged, changed)
	if rs[0].Status != pimhook.IngestUnchanged || rs[1].Status != pimhook.IngestAccepted {
		t.Errorf("unchanged and changed events: %+v", rs)
	}
	log = append([]*pimhook.ErrorLogEntry{late}, log...)
	wantSame(t, "error log of two calls", log, errorLog(t, s, pimhook.ErrorLogFilter{CompanyID: x.c.ID}))
	wantSame(t, "error log of one event", []*pimhook.ErrorLogEntry{late},
		errorLog(t, s, pimhook.ErrorLogFilter{CompanyID: x.c.ID, EventID: changed.ID}))
}

func testErrorLogFilter(t *testing.T, s pimhook.Store) {
	c, other := newCompany(t, s, "Acme"), newCompany(t, s, "Globex")
	webhooks := []string{"wh_a", "wh_b"}
	ops := []string{"sync", "export"}
	events := []string{"evt_1", "evt_2", "evt_3"}

	// Entries of every source, the other company's (with the same webhook,
	// event and operation names) in between ours.
	var all []*pimhook.ErrorLogEntry // ours, oldest first
	entry := func(companyID string, i int) *pimhook.ErrorLogEntry {
		when := at(10 * i)
		switch i % 3 {
		case 0:
			return &pimhook.ErrorLogEntry{
				ID: pimhook.NewID(pimhook.PrefixErrorLog, when), CompanyID: companyID, Source: pimhook.ErrorSourceWebhook,
				OccurredAt: when, WebhookID: webhooks[i%2], DeliveryID: fmt.Sprint("msg_", i), EventID: events[i%3],
				Attempt: 1 + i%4, StatusCode: 500 + i, Error: fmt.Sprint("HTTP ", 500+i), ResponseBody: fmt.Sprint("body ", i),
			}
		case 1:
			return filterError(companyID, webhooks[i%2], events[i%3], when, fmt.Sprint("filter failed ", i))
		}
		return &pimhook.ErrorLogEntry{
			ID: pimhook.NewID(pimhook.PrefixErrorLog, when), CompanyID: companyID, Source: pimhook.ErrorSourceBulk,
			OccurredAt: when, OperationName: ops[i%2], RunID: fmt.Sprint("brun_", i), StatusCode: 400 + i,
			Error: fmt.Sprint("the receiver answered ", 400+i), ResponseBody: fmt.Sprint(`{"i":`, i, `}`),
		}
	}
	tr := newTracker()
	for round := range 3 {
		var ours, theirs []*pimhook.ErrorLogEntry
		for i := 8 * round; i < 8*round+8; i++ {
			ours = append(ours, entry(c.ID, i))
			theirs = append(theirs, entry(other.ID, i))
		}
		evc := event(c.ID, fmt.Sprint("p", round), pimhook.ActionCreated, `{}`, at(round))
		ingest(t, s, c.ID, withErrors(tr.fanOut(), evc.ID, ours...), evc)
		evo := event(other.ID, fmt.Sprint("p", round), pimhook.ActionCreated, `{}`, at(round))
		ingest(t, s, other.ID, withErrors(tr.fanOut(), evo.ID, theirs...), evo)
		all = append(all, ours...)
	}
	newest := make([]*pimhook.ErrorLogEntry, len(all))
	for i, e := range all {
		newest[len(all)-1-i] = e
	}

	filters := []pimhook.ErrorLogFilter{
		{},
		{Source: pimhook.ErrorSourceWebhook},
		{Source: pimhook.ErrorSourceFilter},
		{Source: pimhook.ErrorSourceBulk},
		{WebhookID: "wh_a"},
		{WebhookID: "wh_b", Source: pimhook.ErrorSourceFilter},
		{EventID: "evt_2"},
		{EventID: "evt_1", WebhookID: "wh_b"},
		{OperationName: "sync"},
		{OperationName: "export", Source: pimhook.ErrorSourceBulk},
		{OperationName: "sync", WebhookID: "wh_a"}, // no entry has both
		{WebhookID: "wh_missing"},
		{Since: at(60)},
		{Until: at(150)},
		{Since: at(60), Until: at(150)},
		{Since: at(55), Until: at(56)},
		{WebhookID: "wh_a", Since: at(30), Until: at(200)},
		{BeforeID: newest[5].ID},
		{Source: pimhook.ErrorSourceBulk, BeforeID: newest[5].ID},
	}
	for _, f := range filters {
		var want []*pimhook.ErrorLogEntry
		for _, e := range newest {
			if (f.Source == "" || e.Source == f.Source) && (f.WebhookID == "" || e.WebhookID == f.WebhookID) &&
				(f.EventID == "" || e.EventID == f.EventID) && (f.OperationName == "" || e.OperationName == f.OperationName) &&
				(f.Since.IsZero() || !e.OccurredAt.Before(f.Since)) && (f.Until.IsZero() || e.OccurredAt.Before(f.Until)) &&
				(f.BeforeID == "" || e.ID < f.BeforeID) {
				want = append(want, e)
			}
		}
		f.CompanyID = c.ID
		for _, limit := range []int{0, 1, 4, 7} {
			f.Limit = limit
			got := walkErrorLog(t, s, f)
			what := fmt.Sprintf("filter %+v", f)
			wantSame(t, what, entryIDs(want), entryIDs(got))
			if limit == 0 {
				wantSame(t, what, want, got)
			}
		}
	}
	if es := errorLog(t, s, pimhook.ErrorLogFilter{CompanyID: newCompany(t, s, "Initech").ID}); len(es) != 0 {
		t.Errorf("error log of a company without entries: %v", entryIDs(es))
	}
}

func testErrorLogLimit(t *testing.T, s pimhook.Store) {
	c := newCompany(t, s, "Acme")
	ev := event(c.ID, "p1", pimhook.ActionCreated, `{}`, at(1))
	errs := make([]*pimhook.ErrorLogEntry, pimhook.MaxPage+1)
	for i := range errs {
		errs[i] = filterError(c.ID, "wh_a", ev.ID, at(i), fmt.Sprint("failure ", i))
	}
	ingest(t, s, c.ID, withErrors(newTracker().fanOut(), ev.ID, errs...), ev)
	for _, tc := range []struct{ limit, want int }{{0, pimhook.DefaultPage}, {-3, pimhook.DefaultPage}, {10, 10}, {pimhook.MaxPage, pimhook.MaxPage}, {5000, pimhook.MaxPage}} {
		if es := errorLog(t, s, pimhook.ErrorLogFilter{CompanyID: c.ID, Limit: tc.limit}); len(es) != tc.want {
			t.Errorf("limit %d: %d entries, want %d", tc.limit, len(es), tc.want)
		}
	}
	if got := walkErrorLog(t, s, pimhook.ErrorLogFilter{CompanyID: c.ID, Limit: 5000}); len(got) != len(errs) {
		t.Errorf("walked %d entries, want %d", len(got), len(errs))
	}
}
