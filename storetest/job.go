package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/pimhook/pimhook"
)

var jobCases = []testCase{
	{"FirstRun", testJobFirstRun},
	{"SecondRun", testJobSecondRun},
	{"ManyProducts", testJobManyProducts},
	{"Abort", testJobAbort},
	{"DuplicateKey", testJobDuplicateKey},
	{"Deliveries", testJobDeliveries},
	{"Runs", testJobRuns},
	{"Serialized", testJobSerialized},
	{"Isolation", testJobIsolation},
}

// jobs returns s as a JobStore; every store must be one.
func jobs(t *testing.T, s pimhook.Store) pimhook.JobStore {
	t.Helper()
	js, ok := s.(pimhook.JobStore)
	if !ok {
		t.Fatalf("%T does not implement pimhook.JobStore", s)
	}
	return js
}

// product returns a product of a run; its hash is derived from data, as
// the store expects of a digest.
func product(key string, pos int64, data string) *pimhook.JobProduct {
	return &pimhook.JobProduct{Key: key, Pos: pos, Data: []byte(data), Hash: []byte("h:" + data)}
}

func newRunID(sec int) string { return pimhook.NewID("jr", at(sec)) }

// runTx is a staged run and the ID it was begun with.
type runTx struct {
	pimhook.JobRunTx
	id string
}

func begin(t *testing.T, js pimhook.JobStore, companyID, jobID string) *runTx {
	t.Helper()
	id := newRunID(0)
	tx, err := js.BeginJobRun(t.Context(), companyID, jobID, id)
	if err != nil {
		t.Fatalf("begin job run: %v", err)
	}
	return &runTx{tx, id}
}

func put(t *testing.T, tx pimhook.JobRunTx, ps ...*pimhook.JobProduct) {
	t.Helper()
	if err := tx.Put(t.Context(), ps); err != nil {
		t.Fatalf("put: %v", err)
	}
}

// removed collects what Removed yields.
func removed(t *testing.T, tx pimhook.JobRunTx) []*pimhook.JobProduct {
	t.Helper()
	out := []*pimhook.JobProduct{}
	if err := tx.Removed(t.Context(), func(p *pimhook.JobProduct) error {
		out = append(out, p)
		return nil
	}); err != nil {
		t.Fatalf("removed: %v", err)
	}
	return out
}

// commit commits tx with run as its record, under tx's ID.
func commit(t *testing.T, tx *runTx, run *pimhook.JobRun) []string {
	t.Helper()
	run.ID = tx.id
	appIDs, err := tx.Commit(t.Context(), run)
	if err != nil {
		t.Fatalf("commit: %v", err)
	}
	slices.Sort(appIDs)
	return appIDs
}

// jobRecord returns the record of an accepted run of a job, without its ID.
func jobRecord(companyID, jobID string, sec, products, added, updated, gone, deliveries int) *pimhook.JobRun {
	return &pimhook.JobRun{
		CompanyID: companyID, JobID: jobID, KeyField: "sku",
		Status: pimhook.JobRunAccepted, Products: products, Added: added, Updated: updated, Removed: gone,
		Deliveries: deliveries, CreatedAt: at(sec), FinishedAt: at(sec + 1),
	}
}

// runJob stages ps as a whole run of a job and commits it.
func runJob(t *testing.T, js pimhook.JobStore, companyID, jobID string, ps ...*pimhook.JobProduct) {
	t.Helper()
	tx := begin(t, js, companyID, jobID)
	put(t, tx, ps...)
	commit(t, tx, jobRecord(companyID, jobID, 100, len(ps), 0, 0, 0, 0))
}

// jobState reads a job's state, in order: everything a run that stages
// nothing would remove.
func jobState(t *testing.T, js pimhook.JobStore, companyID, jobID string) []*pimhook.JobProduct {
	t.Helper()
	tx := begin(t, js, companyID, jobID)
	defer tx.Abort(context.WithoutCancel(t.Context()))
	return removed(t, tx)
}

func previous(t *testing.T, tx pimhook.JobRunTx, keys ...string) map[string]*pimhook.JobProduct {
	t.Helper()
	got, err := tx.Previous(t.Context(), keys)
	if err != nil {
		t.Fatalf("previous: %v", err)
	}
	return got
}

func testJobFirstRun(t *testing.T, s pimhook.Store) {
	js := jobs(t, s)
	c := newCompany(t, s, "Acme")
	ps := []*pimhook.JobProduct{
		product("p1", 1, `{"id":"p1","n":1}`), product("p2", 2, oddPayload), product("p3", 4, `{}`),
		{Key: "p4", Pos: 5, Data: []byte(`{"id":"p4"}`), Hash: []byte{0, 1, 0xff}},
	}

	tx := begin(t, js, c.ID, "job-644")
	wantSame(t, "previous of a new job", map[string]*pimhook.JobProduct{}, previous(t, tx, "p1", "p2"))
	put(t, tx, ps[:2]...)
	put(t, tx, ps[2:]...)
	wantSame(t, "removed from a new job", []*pimhook.JobProduct{}, removed(t, tx))
	if apps := commit(t, tx, jobRecord(c.ID, "job-644", 10, 4, 4, 0, 0, 0)); len(apps) != 0 {
		t.Errorf("apps of a run without deliveries: %v", apps)
	}
	wantSame(t, "state after the first run", ps, jobState(t, js, c.ID, "job-644"))
}

func testJobSecondRun(t *testing.T, s pimhook.Store) {
	js := jobs(t, s)
	c := newCompany(t, s, "Acme")
	old := []*pimhook.JobProduct{
		product("p1", 1, `{"n":1}`), product("p2", 2, `{"n":2}`), product("p3", 3, `{"n":3}`),
		product("p4", 4, `{"n":4}`), product("p5", 5, `{"n":5}`),
	}
	runJob(t, js, c.ID, "job-1", old...)

	tx := begin(t, js, c.ID, "job-1")
	wantSame(t, "previous", map[string]*pimhook.JobProduct{"p2": old[1], "p4": old[3]},
		previous(t, tx, "p4", "p9", "p2", "p2"))
	wantSame(t, "previous of no keys", map[string]*pimhook.JobProduct{}, previous(t, tx))
	next := []*pimhook.JobProduct{product("p4", 1, `{"n":44}`), product("p2", 2, `{"n":2}`), product("p9", 3, `{"n":9}`)}
	put(t, tx, next...)
	// The old state stays in place until Commit.
	wantSame(t, "previous after put", map[string]*pimhook.JobProduct{"p4": old[3]}, previous(t, tx, "p4"))
	wantSame(t, "removed, in previous order", []*pimhook.JobProduct{old[0], old[2], old[4]}, removed(t, tx))
	commit(t, tx, jobRecord(c.ID, "job-1", 200, 3, 1, 1, 3, 0))
	wantSame(t, "state after the second run", next, jobState(t, js, c.ID, "job-1"))
}

// testJobManyProducts runs jobs larger than the batches callers and stores
// work in.
func testJobManyProducts(t *testing.T, s pimhook.Store) {
	js := jobs(t, s)
	c := newCompany(t, s, "Acme")
	const n = 2500
	var old []*pimhook.JobProduct
	for i := range n {
		old = append(old, product(fmt.Sprintf("k%05d", n-i), int64(i+1), fmt.Sprintf(`{"i":%d}`, i)))
	}
	runJob(t, js, c.ID, "big", old...)

	// The next run keeps the products at even positions, changes every
	// tenth of them, and adds as many new ones.
	tx := begin(t, js, c.ID, "big")
	var (
		want []*pimhook.JobProduct
		gone []*pimhook.JobProduct
	)
	for i, p := range old {
		if i%2 == 1 {
			gone = append(gone, p)
			continue
		}
		np := *p
		if i%20 == 0 {
			np = *product(p.Key, p.Pos, fmt.Sprintf(`{"i":%d,"changed":true}`, i))
		}
		want = append(want, &np, product(fmt.Sprintf("new%05d", i), 0, `{}`))
	}
	for i, p := range want {
		p.Pos = int64(i + 1)
	}
	for batch := range slices.Chunk(want, 1000) {
		keys := make([]string, len(batch))
		for i, p := range batch {
			keys[i] = p.Key
		}
		prev := previous(t, tx, keys...)
		for _, p := range batch {
			if _, found := prev[p.Key]; found == (p.Key[0] == 'n') {
				t.Fatalf("previous of %s: found %v", p.Key, found)
			}
		}
		put(t, tx, batch...)
	}
	wantSame(t, "removed", gone, removed(t, tx))
	commit(t, tx, jobRecord(c.ID, "big", 200, len(want), n/2, n/20, n/2, 0))
	wantSame(t, "state", want, jobState(t, js, c.ID, "big"))
}

func testJobAbort(t *testing.T, s pimhook.Store) {
	ctx := t.Context()
	js := jobs(t, s)
	x := setupIngest(t, s)
	old := []*pimhook.JobProduct{product("p1", 1, `{"n":1}`), product("p2", 2, `{"n":2}`)}
	runJob(t, js, x.c.ID, "job-1", old...)

	tx := begin(t, js, x.c.ID, "job-1")
	put(t, tx, product("p1", 1, `{"n":11}`), product("p3", 2, `{"n":3}`))
	if err := tx.StageDelivery(ctx, jobDelivery(x.c.ID, x.a.ID, x.wa.ID, 1)); err != nil {
		t.Fatalf("stage delivery: %v", err)
	}
	if err := tx.Abort(ctx); err != nil {
		t.Fatalf("abort: %v", err)
	}
	wantSame(t, "state after abort", old, jobState(t, js, x.c.ID, "job-1"))
	if ds := pending(t, s, x.a.ID, 10); len(ds) != 0 {
		t.Errorf("deliveries of an aborted run: %v", ids(ds))
	}
	runs, err := js.JobRuns(ctx, x.c.ID, "job-1")
	if err != nil || len(runs) != 1 {
		t.Errorf("runs after abort: %d, %v; want the first only", len(runs), err)
	}
}

func testJobDuplicateKey(t *testing.T, s pimhook.Store) {
	js := jobs(t, s)
	x := setupIngest(t, s)
	old := []*pimhook.JobProduct{product("p1", 1, `{"n":1}`), product("p2", 2, `{"n":2}`)}
	runJob(t, js, x.c.ID, "job-1", old...)

	var filler []*pimhook.JobProduct
	for i := range 1500 {
		filler = append(filler, product(fmt.Sprintf("f%d", i), int64(i+3), `{}`))
	}
	for _, c := range []struct {
		name  string
		calls [][]*pimhook.JobProduct
	}{
		{"in one call", [][]*pimhook.JobProduct{{product("p1", 1, `{}`), product("p3", 2, `{}`), product("p1", 3, `{}`)}}},
		{"in two calls", [][]*pimhook.JobProduct{{product("p3", 1, `{}`), product("p1", 2, `{}`)}, filler, {product("p1", 9999, `{}`)}}},
	} {
		tx := begin(t, js, x.c.ID, "job-1")
		var err error
		for _, ps := range c.calls {
			if err = tx.Put(t.Context(), ps); err != nil {
				break
			}
		}
		if err == nil {
			if err = tx.StageDelivery(t.Context(), jobDelivery(x.c.ID, x.a.ID, x.wa.ID, 1)); err == nil {
				rec := jobRecord(x.c.ID, "job-1", 200, 0, 0, 0, 0, 1)
				rec.ID = tx.id
				_, err = tx.Commit(t.Context(), rec)
			}
		}
		wantError(t, "duplicate key "+c.name, err, pimhook.KindInvalid, pimhook.CodeDuplicateKey)
		if err := tx.Abort(t.Context()); err != nil {
			t.Errorf("abort after a duplicate key %s: %v", c.name, err)
		}
		wantSame(t, "state after a duplicate key "+c.name, old, jobState(t, js, x.c.ID, "job-1"))
	}
	if ds := pending(t, s, x.a.ID, 10); len(ds) != 0 {
		t.Errorf("deliveries of refused runs: %v", ids(ds))
	}
}

// jobDelivery returns a delivery of a job run to an app.
func jobDelivery(companyID, appID, webhookID string, sec int) *pimhook.Delivery {
	return &pimhook.Delivery{
		ID: pimhook.NewID(pimhook.PrefixDelivery, at(sec)), CompanyID: companyID, AppID: appID, WebhookID: webhookID,
		EventID: newRunID(sec), EventName: "job.products", Payload: []byte(oddPayload),
		Status: pimhook.DeliveryPending, NextAttemptAt: at(sec), CreatedAt: at(sec), UpdatedAt: at(sec),
	}
}

func testJobDeliveries(t *testing.T, s pimhook.Store) {
	ctx := t.Context()
	js := jobs(t, s)
	x := setupIngest(t, s)
	tr := newTracker()
	ingest(t, s, x.c.ID, tr.fanOut(target{x.a.ID, x.wa.ID}), event(x.c.ID, "e1", pimhook.ActionCreated, `{}`, at(1)))
	before := pending(t, s, x.a.ID, 10)

	tx := begin(t, js, x.c.ID, "job-1")
	put(t, tx, product("p1", 1, `{}`))
	staged := []*pimhook.Delivery{
		jobDelivery(x.c.ID, x.a.ID, x.wa.ID, 10), jobDelivery(x.c.ID, x.b.ID, x.wb.ID, 11),
		jobDelivery(x.c.ID, x.a.ID, x.wa.ID, 12),
	}
	staged[1].Payload = []byte(`{"products":[]}`)
	for _, d := range staged {
		if err := tx.StageDelivery(ctx, d); err != nil {
			t.Fatalf("stage delivery: %v", err)
		}
	}
	// Staged deliveries wait for Commit, behind what is ingested meanwhile.
	ingest(t, s, x.c.ID, tr.fanOut(target{x.a.ID, x.wa.ID}), event(x.c.ID, "e2", pimhook.ActionCreated, `{}`, at(20)))
	during := pending(t, s, x.a.ID, 10)
	if len(during) != len(before)+1 {
		t.Fatalf("pending during the run: %v, want the ingested ones only", ids(during))
	}
	if ds := pending(t, s, x.b.ID, 10); len(ds) != 0 {
		t.Errorf("pending of b during the run: %v", ids(ds))
	}
	for _, d := range staged {
		if _, err := s.Delivery(ctx, x.c.ID, d.ID); !pimhook.IsNotFound(err) {
			t.Errorf("staged delivery before commit: %v", err)
		}
	}

	apps := commit(t, tx, jobRecord(x.c.ID, "job-1", 30, 1, 1, 0, 0, 3))
	wantSame(t, "apps", slices.Sorted(slices.Values([]string{x.a.ID, x.b.ID})), apps)
	gotA := pending(t, s, x.a.ID, 2)
	wantSame(t, "queue of a", append(ids(during), staged[0].ID, staged[2].ID), ids(gotA))
	wantAscending(t, "queue of a", gotA)
	for _, d := range staged {
		got, err := s.Delivery(ctx, x.c.ID, d.ID)
		if err != nil {
			t.Fatalf("delivery: %v", err)
		}
		want := *d
		want.Seq = got.Seq
		wantSame(t, "committed delivery", &want, got)
	}
	if gotB := pending(t, s, x.b.ID, 10); len(gotB) != 1 || gotB[0].ID != staged[1].ID {
		t.Errorf("queue of b: %v", ids(gotB))
	}
}

func testJobRuns(t *testing.T, s pimhook.Store) {
	ctx := t.Context()
	js := jobs(t, s)
	c := newCompany(t, s, "Acme")
	if runs, err := js.JobRuns(ctx, c.ID, "job-1"); err != nil || len(runs) != 0 {
		t.Errorf("runs of a job never run: %v, %v", runs, err)
	}

	first := jobRecord(c.ID, "job-1", 10, 2, 2, 0, 0, 1)
	tx := begin(t, js, c.ID, "job-1")
	put(t, tx, product("p1", 1, `{}`), product("p2", 2, `{}`))
	commit(t, tx, first)

	failed := &pimhook.JobRun{
		ID: newRunID(20), CompanyID: c.ID, JobID: "job-1", KeyField: "id", Status: pimhook.JobRunFailed,
		Products: 7, Error: `line 8: product has no "id"`, Line: 8, CreatedAt: at(20), FinishedAt: at(21),
	}
	if err := js.RecordFailedJobRun(ctx, failed); err != nil {
		t.Fatalf("record failed job run: %v", err)
	}
	wantError(t, "record a run twice", js.RecordFailedJobRun(ctx, failed), pimhook.KindConflict, "")

	third := jobRecord(c.ID, "job-1", 30, 1, 0, 1, 1, 2)
	tx = begin(t, js, c.ID, "job-1")
	put(t, tx, product("p2", 1, `{"n":2}`))
	commit(t, tx, third)

	runs, err := js.JobRuns(ctx, c.ID, "job-1")
	if err != nil {
		t.Fatalf("job runs: %v", err)
	}
	wantSame(t, "runs, newest first", []*pimhook.JobRun{third, failed, first}, runs)
	for _, other := range [][2]string{{c.ID, "job-2"}, {newCompany(t, s, "Globex").ID, "job-1"}} {
		if runs, err := js.JobRuns(ctx, other[0], other[1]); err != nil || len(runs) != 0 {
			t.Errorf("runs of another job: %v, %v", runs, err)
		}
	}
}

func testJobSerialized(t *testing.T, s pimhook.Store) {
	ctx := t.Context()
	js := jobs(t, s)
	c := newCompany(t, s, "Acme")
	first := begin(t, js, c.ID, "job-1")
	put(t, first, product("p1", 1, `{"n":1}`))

	// Another job's run does not wait.
	other := begin(t, js, c.ID, "job-2")
	if err := other.Abort(ctx); err != nil {
		t.Fatalf("abort: %v", err)
	}
	// A second run of the job waits until its context ends...
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if tx, err := js.BeginJobRun(short, c.ID, "job-1", newRunID(1)); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("second run while the first is staged: %v, %v", tx, err)
		if tx != nil {
			tx.Abort(ctx)
		}
	}
	// ... or until the first one ends.
	type began struct {
		tx  pimhook.JobRunTx
		err error
	}
	second := make(chan began, 1)
	go func() {
		tx, err := js.BeginJobRun(ctx, c.ID, "job-1", newRunID(2))
		second <- began{tx, err}
	}()
	select {
	case b := <-second:
		t.Fatalf("second run began while the first was staged: %v", b.err)
	default:
	}
	commit(t, first, jobRecord(c.ID, "job-1", 10, 1, 1, 0, 0, 0))
	b := <-second
	if b.err != nil {
		t.Fatalf("second run: %v", b.err)
	}
	// It sees what the first one committed.
	wantSame(t, "previous of the second run", map[string]*pimhook.JobProduct{"p1": product("p1", 1, `{"n":1}`)},
		previous(t, b.tx, "p1"))
	if err := b.tx.Abort(ctx); err != nil {
		t.Fatalf("abort: %v", err)
	}
}

func testJobIsolation(t *testing.T, s pimhook.Store) {
	js := jobs(t, s)
	c, other := newCompany(t, s, "Acme"), newCompany(t, s, "Globex")
	states := map[[2]string][]*pimhook.JobProduct{
		{c.ID, "job-1"}:     {product("p1", 1, `{"c":1,"j":1}`), product("p2", 2, `{}`)},
		{c.ID, "job-2"}:     {product("p1", 1, `{"c":1,"j":2}`)},
		{other.ID, "job-1"}: {product("p3", 1, `{"c":2,"j":1}`)},
	}
	for k, ps := range states {
		runJob(t, js, k[0], k[1], ps...)
	}
	for k, ps := range states {
		wantSame(t, fmt.Sprintf("state of %s", k[1]), ps, jobState(t, js, k[0], k[1]))
	}
	tx := begin(t, js, other.ID, "job-1")
	defer tx.Abort(context.WithoutCancel(t.Context()))
	wantSame(t, "previous across companies", map[string]*pimhook.JobProduct{}, previous(t, tx, "p1", "p2"))
}
