package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/pimhook/pimhook"
)

var ingestCases = []testCase{
	{"Results", testIngestResults},
	{"SameEntity", testIngestSameEntity},
	{"Duplicates", testIngestDuplicates},
	{"FingerprintConflict", testIngestFingerprintConflict},
	{"DecideErrorRollsBack", testIngestDecideError},
	{"CancelledBeforeStart", testIngestCancelled},
	{"CompanyScoping", testIngestScoping},
	{"Concurrent", testIngestConcurrent},
}

// ingestSetup is a company with two apps, each with a webhook.
type ingestSetup struct {
	c      *pimhook.Company
	a, b   *pimhook.App
	wa, wb *pimhook.Webhook
}

func setupIngest(t *testing.T, s pimhook.Store) ingestSetup {
	c := newCompany(t, s, "Acme")
	a, b := newApp(t, s, c.ID, false), newApp(t, s, c.ID, false)
	return ingestSetup{c: c, a: a, b: b, wa: newWebhook(t, s, c.ID, a.ID, at(1)), wb: newWebhook(t, s, c.ID, b.ID, at(2))}
}

func (x ingestSetup) targets() []target {
	return []target{{x.a.ID, x.wa.ID}, {x.b.ID, x.wb.ID}}
}

// wantEntity fails t unless the stored entity has this data, revision and
// deleted flag.
func wantEntity(t *testing.T, s pimhook.Store, companyID, id, data string, revision int64, deleted bool) {
	t.Helper()
	e, err := s.Entity(t.Context(), companyID, "products", id)
	if err != nil {
		t.Fatalf("entity %s: %v", id, err)
	}
	if !jsonEqual(e.Data, []byte(data)) || e.Revision != revision || e.Deleted != deleted ||
		e.CompanyID != companyID || e.Type != "products" || e.ID != id {
		t.Errorf("entity %s: got %+v (data %s), want data %s revision %d deleted %v", id, e, e.Data, data, revision, deleted)
	}
}

func testIngestResults(t *testing.T, s pimhook.Store) {
	ctx := t.Context()
	x := setupIngest(t, s)
	tr := newTracker()

	rs, err := s.Ingest(ctx, x.c.ID, nil, tr.fanOut(x.targets()...))
	if err != nil || len(rs) != 0 {
		t.Errorf("ingest of no events: %v, %v", rs, err)
	}

	evs := []*pimhook.Event{
		event(x.c.ID, "p1", pimhook.ActionCreated, `{"name":"chair"}`, at(10)),
		event(x.c.ID, "p2", pimhook.ActionUpdated, `{"name":"table"}`, at(11)),
		event(x.c.ID, "p3", pimhook.ActionCreated, `{"name":"lamp"}`, at(12)),
	}
	rs = ingest(t, s, x.c.ID, tr.fanOut(x.targets()...), evs...)
	want := []pimhook.IngestResult{
		{EventID: evs[0].ID, Event: "products.created", Revision: 1, Deliveries: 2, Status: pimhook.IngestAccepted},
		{EventID: evs[1].ID, Event: "products.created", Revision: 1, Deliveries: 2, Status: pimhook.IngestAccepted},
		{EventID: evs[2].ID, Event: "products.created", Revision: 1, Deliveries: 2, Status: pimhook.IngestAccepted},
	}
	wantSame(t, "results", want, rs)

	// Seq is assigned in event order, and each delivery is stored as given.
	var all []*pimhook.Delivery
	for _, app := range []*pimhook.App{x.a, x.b} {
		ds := pending(t, s, app.ID, 2)
		if len(ds) != 3 {
			t.Fatalf("app %s: %d pending deliveries, want 3", app.ID, len(ds))
		}
		wantAscending(t, "pending", ds)
		for i, d := range ds {
			given, ev := tr.delivery(d.ID)
			if given == nil || ev != evs[i] {
				t.Fatalf("app %s: pending delivery %d is %s, not one of event %d", app.ID, i, d.ID, i)
			}
			if given.Seq == 0 {
				t.Errorf("delivery %s: Ingest left Seq unset", d.ID)
			}
			wantSame(t, "pending delivery", given, d)
			all = append(all, given)
		}
	}
	// Across apps too: the deliveries of a later event come later.
	for _, d := range all {
		for _, e := range all {
			_, de := tr.delivery(d.ID)
			_, ee := tr.delivery(e.ID)
			if slices.Index(evs, de) < slices.Index(evs, ee) && d.Seq >= e.Seq {
				t.Errorf("delivery of event %s has Seq %d, not below %d of later event %s", de.ID, d.Seq, e.Seq, ee.ID)
			}
		}
	}
	wantEntity(t, s, x.c.ID, "p1", `{"name":"chair"}`, 1, false)
	wantEntity(t, s, x.c.ID, "p2", `{"name":"table"}`, 1, false)
	_, err = s.Entity(ctx, x.c.ID, "products", "p4")
	wantError(t, "unknown entity", err, pimhook.KindNotFound, "")
}

func testIngestSameEntity(t *testing.T, s pimhook.Store) {
	x := setupIngest(t, s)
	tr := newTracker()
	decide := tr.fanOut(target{x.a.ID, x.wa.ID})

	// Each event sees what the one before it wrote, in the same call.
	evs := []*pimhook.Event{
		event(x.c.ID, "p1", pimhook.ActionCreated, `{"name":"chair"}`, at(1)),
		event(x.c.ID, "p1", pimhook.ActionUpdated, `{"name":"armchair"}`, at(2)),
		event(x.c.ID, "p1", pimhook.ActionUpdated, `{"name":"armchair"}`, at(3)),
		event(x.c.ID, "p1", pimhook.ActionDeleted, ``, at(4)),
	}
	rs := ingest(t, s, x.c.ID, decide, evs...)
	want := []pimhook.IngestResult{
		{EventID: evs[0].ID, Event: "products.created", Revision: 1, Deliveries: 1, Status: pimhook.IngestAccepted},
		{EventID: evs[1].ID, Event: "products.updated", Revision: 2, Deliveries: 1, Status: pimhook.IngestAccepted},
		{EventID: evs[2].ID, Event: "products.updated", Revision: 2, Deliveries: 0, Status: pimhook.IngestUnchanged},
		{EventID: evs[3].ID, Event: "products.deleted", Revision: 3, Deliveries: 1, Status: pimhook.IngestAccepted},
	}
	wantSame(t, "results", want, rs)
	wantEntity(t, s, x.c.ID, "p1", ``, 3, true)

	// A later call sees it too.
	again := event(x.c.ID, "p1", pimhook.ActionUpdated, `{"name":"stool"}`, at(5))
	rs = ingest(t, s, x.c.ID, decide, again)
	wantSame(t, "result after delete", []pimhook.IngestResult{
		{EventID: again.ID, Event: "products.created", Revision: 4, Deliveries: 1, Status: pimhook.IngestAccepted},
	}, rs)
	wantEntity(t, s, x.c.ID, "p1", `{"name":"stool"}`, 4, false)

	ds := pending(t, s, x.a.ID, 10)
	var revs []string
	for _, d := range ds {
		revs = append(revs, string(d.Payload))
	}
	wantSame(t, "queue", []string{
		`{"event":"products.created","entity_id":"p1","revision":1}`,
		`{"event":"products.updated","entity_id":"p1","revision":2}`,
		`{"event":"products.deleted","entity_id":"p1","revision":3}`,
		`{"event":"products.created","entity_id":"p1","revision":4}`,
	}, revs)
}

func testIngestDuplicates(t *testing.T, s pimhook.Store) {
	x := setupIngest(t, s)
	tr := newTracker()
	decide := tr.fanOut(x.targets()...)

	e1 := event(x.c.ID, "p1", pimhook.ActionCreated, `{"name":"chair"}`, at(1))
	first := ingest(t, s, x.c.ID, decide, e1)[0]
	dupOf := func(r pimhook.IngestResult) pimhook.IngestResult {
		r.Status = pimhook.IngestDuplicate
		return r
	}

	// A retry in a later call: the first result stands, nothing new is made.
	retry := *e1
	retry.Data = []byte(`{"name":"chair"}`)
	e2 := event(x.c.ID, "p2", pimhook.ActionCreated, `{"name":"table"}`, at(2))
	rs := ingest(t, s, x.c.ID, decide, &retry, e2)
	wantSame(t, "retry", dupOf(first), rs[0])
	if rs[1].Status != pimhook.IngestAccepted {
		t.Errorf("new event next to a retry: %+v", rs[1])
	}

	// A repeat within one call.
	e3 := event(x.c.ID, "p3", pimhook.ActionCreated, `{"name":"lamp"}`, at(3))
	e3again := *e3
	e3again.Fingerprint = "" // no fingerprint: nothing to compare
	rs = ingest(t, s, x.c.ID, decide, e3, &e3again)
	if rs[0].Status != pimhook.IngestAccepted {
		t.Errorf("first of a repeat: %+v", rs[0])
	}
	wantSame(t, "repeat in one call", dupOf(rs[0]), rs[1])

	// An unchanged event's result stands too.
	e4 := event(x.c.ID, "p2", pimhook.ActionUpdated, `{"name":"table"}`, at(4))
	u := ingest(t, s, x.c.ID, decide, e4)[0]
	if u.Status != pimhook.IngestUnchanged || u.Revision != 1 || u.Deliveries != 0 {
		t.Errorf("unchanged update: %+v", u)
	}
	wantSame(t, "retry of an unchanged event", dupOf(u), ingest(t, s, x.c.ID, decide, e4)[0])

	for _, ev := range []*pimhook.Event{e1, e2, e3, e4} {
		if n := tr.decidedCount(ev.ID); n != 1 {
			t.Errorf("event %s decided %d times, want once", ev.ID, n)
		}
	}
	for _, app := range []*pimhook.App{x.a, x.b} {
		if ds := pending(t, s, app.ID, 10); len(ds) != 3 {
			t.Errorf("app %s: %d pending deliveries, want 3 (one per distinct event)", app.ID, len(ds))
		}
	}
	wantEntity(t, s, x.c.ID, "p1", `{"name":"chair"}`, 1, false)
}

func testIngestFingerprintConflict(t *testing.T, s pimhook.Store) {
	x := setupIngest(t, s)
	tr := newTracker()
	decide := tr.fanOut(x.targets()...)

	e1 := event(x.c.ID, "p1", pimhook.ActionCreated, `{"name":"chair"}`, at(1))
	ingest(t, s, x.c.ID, decide, e1)

	fresh := event(x.c.ID, "p2", pimhook.ActionCreated, `{"name":"table"}`, at(2))
	reused := event(x.c.ID, "p9", pimhook.ActionCreated, `{"name":"sofa"}`, at(3))
	reused.ID = e1.ID
	_, err := s.Ingest(t.Context(), x.c.ID, []*pimhook.Event{fresh, reused}, decide)
	wantError(t, "reused event id", err, pimhook.KindConflict, pimhook.CodeIdempotencyReuse)

	// The whole call was refused: the fresh event is new next time.
	_, err = s.Entity(t.Context(), x.c.ID, "products", "p2")
	wantError(t, "entity of a refused call", err, pimhook.KindNotFound, "")
	_, err = s.Entity(t.Context(), x.c.ID, "products", "p9")
	wantError(t, "entity of a reused id", err, pimhook.KindNotFound, "")
	if ds := pending(t, s, x.a.ID, 10); len(ds) != 1 {
		t.Errorf("%d pending deliveries after a refused call, want 1", len(ds))
	}
	rs := ingest(t, s, x.c.ID, decide, fresh)
	if rs[0].Status != pimhook.IngestAccepted {
		t.Errorf("event of a refused call, posted again: %+v", rs[0])
	}
}

var errDecide = errors.New("decide failed")

func testIngestDecideError(t *testing.T, s pimhook.Store) {
	ctx := t.Context()
	x := setupIngest(t, s)
	tr := newTracker()
	decide := tr.fanOut(x.targets()...)
	known := event(x.c.ID, "p1", pimhook.ActionCreated, `{"name":"chair"}`, at(1))
	ingest(t, s, x.c.ID, decide, known)

	evs := []*pimhook.Event{
		event(x.c.ID, "p2", pimhook.ActionCreated, `{"name":"table"}`, at(2)),
		event(x.c.ID, "p1", pimhook.ActionUpdated, `{"name":"armchair"}`, at(3)),
		event(x.c.ID, "p3", pimhook.ActionCreated, `{"name":"lamp"}`, at(4)),
	}
	failing := func(ev *pimhook.Event, stored *pimhook.Entity) (pimhook.Decision, error) {
		if ev == evs[2] {
			return pimhook.Decision{}, fmt.Errorf("event %s: %w", ev.ID, errDecide)
		}
		return decide(ev, stored)
	}
	if _, err := s.Ingest(ctx, x.c.ID, evs, failing); !errors.Is(err, errDecide) {
		t.Fatalf("ingest with a failing decide: got %v, want %v", err, errDecide)
	}

	_, err := s.Entity(ctx, x.c.ID, "products", "p2")
	wantError(t, "entity created by a failed call", err, pimhook.KindNotFound, "")
	wantEntity(t, s, x.c.ID, "p1", `{"name":"chair"}`, 1, false)
	for _, app := range []*pimhook.App{x.a, x.b} {
		if ds := pending(t, s, app.ID, 10); len(ds) != 1 {
			t.Errorf("app %s: %d pending deliveries after a failed call, want 1", app.ID, len(ds))
		}
	}
	// No event of the failed call was kept: posted again, they are new.
	rs := ingest(t, s, x.c.ID, decide, evs...)
	for i, r := range rs {
		if r.Status != pimhook.IngestAccepted {
			t.Errorf("event %d posted again: %+v", i, r)
		}
	}
	if rs[1].Revision != 2 {
		t.Errorf("update posted again: revision %d, want 2", rs[1].Revision)
	}
}

func testIngestCancelled(t *testing.T, s pimhook.Store) {
	x := setupIngest(t, s)
	tr := newTracker()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	ev := event(x.c.ID, "p1", pimhook.ActionCreated, `{"name":"chair"}`, at(1))
	if _, err := s.Ingest(ctx, x.c.ID, []*pimhook.Event{ev}, tr.fanOut(x.targets()...)); err == nil {
		t.Fatal("ingest with a cancelled context succeeded")
	}
	if rs := ingest(t, s, x.c.ID, tr.fanOut(x.targets()...), ev); rs[0].Status != pimhook.IngestAccepted {
		t.Errorf("event of a cancelled call, posted again: %+v", rs[0])
	}
}

func testIngestScoping(t *testing.T, s pimhook.Store) {
	x := setupIngest(t, s)
	other := newCompany(t, s, "Globex")
	tr := newTracker()
	ev := event(x.c.ID, "p1", pimhook.ActionCreated, `{"name":"chair"}`, at(1))
	ingest(t, s, x.c.ID, tr.fanOut(x.targets()...), ev)

	// The same event ID and entity in another company are another's.
	theirs := *ev
	theirs.CompanyID, theirs.Data = other.ID, []byte(`{"name":"desk"}`)
	rs := ingest(t, s, other.ID, tr.fanOut(), &theirs)
	if rs[0].Status != pimhook.IngestAccepted || rs[0].Revision != 1 {
		t.Errorf("same event id in another company: %+v", rs[0])
	}
	wantEntity(t, s, x.c.ID, "p1", `{"name":"chair"}`, 1, false)
	wantEntity(t, s, other.ID, "p1", `{"name":"desk"}`, 1, false)
}

func testIngestConcurrent(t *testing.T, s pimhook.Store) {
	const (
		workers  = 50
		calls    = 10 // per worker, of perCall events on the worker's own entities
		perCall  = 2
		hotters  = 5 // workers updating one shared entity
		hotCalls = 10
	)
	x := setupIngest(t, s)
	tr := newTracker()
	apps := []*pimhook.App{x.a, x.b}
	// Every event goes to app a; events of odd workers to app b as well.
	all, both := tr.fanOut(target{x.a.ID, x.wa.ID}), tr.fanOut(x.targets()...)

	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		hotRevs = map[int64]int{}
		byCall  = make([][]*pimhook.Event, workers) // each worker's events in call order
	)
	errs := make(chan error, workers+hotters)
	for w := range workers {
		wg.Go(func() {
			decide := all
			if w%2 == 1 {
				decide = both
			}
			for c := range calls {
				var evs []*pimhook.Event
				for e := range perCall {
					evs = append(evs, event(x.c.ID, fmt.Sprintf("w%d-%d", w, e), pimhook.ActionUpdated,
						fmt.Sprintf(`{"call":%d}`, c), at(c)))
				}
				if _, err := s.Ingest(t.Context(), x.c.ID, evs, decide); err != nil {
					errs <- err
					return
				}
				byCall[w] = append(byCall[w], evs...)
			}
		})
	}
	for h := range hotters {
		wg.Go(func() {
			for c := range hotCalls {
				ev := event(x.c.ID, "hot", pimhook.ActionUpdated, fmt.Sprintf(`{"by":%d,"call":%d}`, h, c), at(c))
				rs, err := s.Ingest(t.Context(), x.c.ID, []*pimhook.Event{ev}, all)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				hotRevs[rs[0].Revision]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent ingest: %v", err)
	}

	// Every revision of the shared entity was given exactly once.
	for r := int64(1); r <= hotters*hotCalls; r++ {
		if hotRevs[r] != 1 {
			t.Errorf("revision %d of the shared entity given %d times", r, hotRevs[r])
		}
	}
	e, err := s.Entity(t.Context(), x.c.ID, "products", "hot")
	if err != nil || e.Revision != hotters*hotCalls {
		t.Errorf("shared entity: %+v, %v; want revision %d", e, err, hotters*hotCalls)
	}

	for _, app := range apps {
		ds := pending(t, s, app.ID, 97)
		wantAscending(t, "queue of app "+app.ID, ds)
		want := workers * calls * perCall / 2
		if app == x.a {
			want = workers*calls*perCall + hotters*hotCalls
		}
		if len(ds) != want {
			t.Errorf("app %s: %d pending deliveries, want %d", app.ID, len(ds), want)
		}
		seen := map[string]bool{}
		lastOf := map[string]int64{}
		for _, d := range ds {
			given, ev := tr.delivery(d.ID)
			if given == nil || seen[d.ID] {
				t.Fatalf("app %s: unknown or repeated delivery %s", app.ID, d.ID)
			}
			seen[d.ID] = true
			if given.Seq != d.Seq {
				t.Errorf("delivery %s: Seq %d in the queue, %d set by Ingest", d.ID, d.Seq, given.Seq)
			}
			// Each entity's events, the shared one's included, are queued
			// in revision order.
			if ev.Revision <= lastOf[ev.EntityID] {
				t.Errorf("app %s: entity %s revision %d queued after %d", app.ID, ev.EntityID, ev.Revision, lastOf[ev.EntityID])
			}
			lastOf[ev.EntityID] = ev.Revision
		}
	}

	// A worker's calls were applied in the order it made them.
	for w, evs := range byCall {
		if len(evs) != calls*perCall {
			t.Fatalf("worker %d: %d events stored, want %d", w, len(evs), calls*perCall)
		}
		for i, ev := range evs {
			if want := int64(i/perCall + 1); ev.Revision != want {
				t.Errorf("worker %d event %d: revision %d, want %d", w, i, ev.Revision, want)
			}
		}
	}
}
