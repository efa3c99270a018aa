package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pimhook/pimhook"
	"github.com/pimhook/pimhook/storetest"
)

func TestStore(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) pimhook.Store {
		return openTest(t, filepath.Join(t.TempDir(), "pimhook.db"))
	})
}

func openTest(t testing.TB, path string) *Store {
	t.Helper()
	s, err := Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

// openWithCompany opens a store in a fresh file with one company, co_1.
func openWithCompany(t testing.TB) *Store {
	t.Helper()
	s := openTest(t, filepath.Join(t.TempDir(), "pimhook.db"))
	if err := s.CreateCompany(context.Background(), newCompany("co_1")); err != nil {
		t.Fatal(err)
	}
	return s
}

func newCompany(id string) *pimhook.Company {
	return &pimhook.Company{ID: id, Name: "company " + id, CreatedAt: time.Unix(1700000000, 0).UTC()}
}

func TestMigrateIdempotent(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "pimhook.db")
	for range 2 {
		if err := Migrate(ctx, path, Options{}); err != nil {
			t.Fatalf("migrate: %v", err)
		}
	}
	s := openTest(t, path)
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	var n, newest int
	if err := s.rdb.QueryRowContext(ctx, `SELECT COUNT(*), MAX(version) FROM schema_migrations`).Scan(&n, &newest); err != nil {
		t.Fatal(err)
	}
	if n != len(ms) || newest != ms[len(ms)-1].Version {
		t.Errorf("schema_migrations: %d rows up to version %d, want %d up to %d", n, newest, len(ms), ms[len(ms)-1].Version)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	openTest(t, path) // and once more over an up-to-date file
}

func TestMigrateRefusesNewerSchema(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "pimhook.db")
	s := openTest(t, path)
	if _, err := s.wdb.ExecContext(t.Context(), `INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'future', 0)`); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := Migrate(t.Context(), path, Options{}); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("migrate over a newer schema: %v", err)
	}
}

// TestDurabilitySettings checks the settings that make an acknowledged write
// survive a crash or power loss.
func TestDurabilitySettings(t *testing.T) {
	t.Parallel()
	s := openTest(t, filepath.Join(t.TempDir(), "pimhook.db"))
	ctx := t.Context()
	for pragma, want := range map[string]string{"journal_mode": "wal", "synchronous": "2", "foreign_keys": "1"} {
		var got string
		if err := s.wdb.QueryRowContext(ctx, "PRAGMA "+pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("writer %s = %s, want %s", pragma, got, want)
		}
	}
	var readOnly string
	if err := s.rdb.QueryRowContext(ctx, "PRAGMA query_only").Scan(&readOnly); err != nil {
		t.Fatal(err)
	}
	if readOnly != "1" {
		t.Errorf("readers: query_only = %s, want 1", readOnly)
	}
}

func TestReopen(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "pimhook.db")
	s := openTest(t, path)
	c := newCompany("co_1")
	if err := s.CreateCompany(ctx, c); err != nil {
		t.Fatal(err)
	}
	a := &pimhook.App{ID: "app_1", CompanyID: c.ID, Name: "shop", AppType: "generic", Worker: pimhook.WorkerShared}
	if err := s.CreateApp(ctx, a); err != nil {
		t.Fatal(err)
	}
	ds := ingestOne(t, s, c.ID, a.ID, "evt_1")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openTest(t, path)
	if _, err := s.App(ctx, c.ID, a.ID); err != nil {
		t.Errorf("app after reopen: %v", err)
	}
	got, err := s.Delivery(ctx, c.ID, ds[0].ID)
	if err != nil || got.Seq != ds[0].Seq || string(got.Payload) != string(ds[0].Payload) {
		t.Errorf("delivery after reopen: %+v, %v", got, err)
	}
	rs, err := s.Ingest(ctx, c.ID, []*pimhook.Event{{ID: "evt_1", EntityType: "products", EntityID: "p1"}}, nil)
	if err != nil || rs[0].Status != pimhook.IngestDuplicate {
		t.Errorf("event after reopen: %+v, %v", rs, err)
	}
	later := ingestOne(t, s, c.ID, a.ID, "evt_2")
	if later[0].Seq <= ds[0].Seq {
		t.Errorf("Seq after reopen %d, not above %d", later[0].Seq, ds[0].Seq)
	}
}

// ingestOne ingests one event that yields one delivery to appID.
func ingestOne(t testing.TB, s *Store, companyID, appID, eventID string) []*pimhook.Delivery {
	t.Helper()
	ds, err := tryIngestOne(s, companyID, appID, eventID)
	if err != nil {
		t.Fatalf("ingest: %v", err)
	}
	return ds
}

func tryIngestOne(s *Store, companyID, appID, eventID string) ([]*pimhook.Delivery, error) {
	var ds []*pimhook.Delivery
	ev := &pimhook.Event{ID: eventID, EntityType: "products", EntityID: eventID, Action: pimhook.ActionCreated, Data: []byte(`{"n":1}`)}
	_, err := s.Ingest(context.Background(), companyID, []*pimhook.Event{ev}, func(ev *pimhook.Event, _ *pimhook.Entity) (pimhook.Decision, error) {
		ev.EffectiveAction, ev.Revision = ev.Action, 1
		ds = []*pimhook.Delivery{{ID: "msg_" + eventID, AppID: appID, WebhookID: "wh_1", EventID: ev.ID,
			EventName: ev.Name(), Payload: []byte(`{"id":"` + eventID + `"}`)}}
		return pimhook.Decision{Entity: &pimhook.Entity{Data: ev.Data, Revision: 1}, Deliveries: ds}, nil
	})
	return ds, err
}

// blockWriter occupies the writer until the returned function is called, so
// that requests submitted meanwhile queue up and share the next batch.
func blockWriter(t *testing.T, w *writer) (release func()) {
	t.Helper()
	started, unblock := make(chan struct{}), make(chan struct{})
	// It writes nothing, so it leaves the queue cache as it is.
	r, err := w.submitWith(t.Context(), func(*wtx) error {
		close(started)
		<-unblock
		return nil
	}, writeOpts{change: func(*queueCache) {}})
	if err != nil {
		t.Fatal(err)
	}
	<-started
	// A test that stops before it releases the writer must not leave it
	// blocked: Close would wait for it.
	release = sync.OnceFunc(func() {
		close(unblock)
		if err := r.wait(); err != nil {
			t.Errorf("blocking request: %v", err)
		}
	})
	t.Cleanup(release)
	return release
}

// waitQueued waits until n requests wait in w's queue.
func waitQueued(t *testing.T, w *writer, n int) {
	t.Helper()
	waitUntil(t, fmt.Sprintf("%d requests queued", n), func() bool { return len(w.reqs) >= n })
}

// waitUntil polls cond until it holds, and fails the test if it does not
// within 10s, saying what was waited for.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after 10s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func insertCompany(id string) writeFunc {
	return func(tx *wtx) error {
		_, err := tx.exec(`INSERT INTO companies (id, name, created_at) VALUES (?, ?, 1)`, id, id)
		return err
	}
}

func TestBatchIsolatesFailures(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := openTest(t, filepath.Join(t.TempDir(), "pimhook.db"))
	release := blockWriter(t, s.w)
	batchesBefore := s.w.batches.Load()

	errWrote := errors.New("failed after writing")
	cancelled, cancel := context.WithCancel(ctx)
	ranCancelled := false
	fns := []struct {
		ctx context.Context
		fn  writeFunc
	}{
		{ctx, insertCompany("co_a")},
		{ctx, func(tx *wtx) error {
			if err := insertCompany("co_b")(tx); err != nil {
				return err
			}
			return errWrote
		}},
		{ctx, insertCompany("co_a")}, // primary key violation
		{cancelled, func(tx *wtx) error {
			ranCancelled = true
			return insertCompany("co_x")(tx)
		}},
		{ctx, func(*wtx) error { panic("boom") }},
		{ctx, insertCompany("co_c")},
	}
	var reqs []*writeRequest
	for _, f := range fns {
		r, err := s.w.submit(f.ctx, f.fn)
		if err != nil {
			t.Fatal(err)
		}
		reqs = append(reqs, r)
	}
	cancel()
	release()

	var errs []error
	for _, r := range reqs {
		errs = append(errs, r.wait())
	}
	if n := s.w.batches.Load() - batchesBefore; n != 1 {
		t.Errorf("%d batches after the blocker, want 1", n)
	}
	if errs[0] != nil || errs[5] != nil {
		t.Errorf("good requests: %v, %v", errs[0], errs[5])
	}
	if !errors.Is(errs[1], errWrote) {
		t.Errorf("failing request: %v", errs[1])
	}
	if errs[2] == nil || !strings.Contains(errs[2].Error(), "UNIQUE") {
		t.Errorf("duplicate insert: %v", errs[2])
	}
	if !errors.Is(errs[3], context.Canceled) || ranCancelled {
		t.Errorf("cancelled request: %v, ran %v", errs[3], ranCancelled)
	}
	if errs[4] == nil || !strings.Contains(errs[4].Error(), "boom") {
		t.Errorf("panicking request: %v", errs[4])
	}
	for id, want := range map[string]bool{"co_a": true, "co_b": false, "co_x": false, "co_c": true} {
		_, err := s.Company(ctx, id)
		if got := err == nil; got != want {
			t.Errorf("company %s stored %v, want %v (%v)", id, got, want, err)
		}
	}
}

// queued is a write request for runBatch.
type queued struct {
	bare bool
	fn   writeFunc
}

// runBatch runs reqs in one batch of the writer and returns their outcomes.
func runBatch(t *testing.T, w *writer, reqs ...queued) []error {
	t.Helper()
	release := blockWriter(t, w)
	before := w.batches.Load()
	var rs []*writeRequest
	for _, q := range reqs {
		r, err := w.submitWith(t.Context(), q.fn, writeOpts{bare: q.bare})
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	release()
	errs := make([]error, len(rs))
	for i, r := range rs {
		errs[i] = r.wait()
	}
	if n := w.batches.Load() - before; n != 1 {
		t.Errorf("%d batches after the blocker, want 1", n)
	}
	return errs
}

func TestBareRequests(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := openTest(t, filepath.Join(t.TempDir(), "pimhook.db"))
	stored := func(want map[string]bool) {
		t.Helper()
		for id, want := range want {
			_, err := s.Company(ctx, id)
			if got := err == nil; got != want {
				t.Errorf("company %s stored %v, want %v (%v)", id, got, want, err)
			}
		}
	}
	errOwn := errors.New("refused before writing")
	missing := func(tx *wtx) error {
		var id string
		return tx.queryRow(`UPDATE companies SET name = 'renamed' WHERE id = 'co_none' RETURNING id`).Scan(&id)
	}

	t.Run("errors before writing leave the batch alone", func(t *testing.T) {
		errs := runBatch(t, s.w,
			queued{false, insertCompany("co_a")},
			queued{true, func(*wtx) error { return errOwn }},
			queued{true, missing},
			queued{true, insertCompany("co_b")},
		)
		if errs[0] != nil || errs[3] != nil {
			t.Errorf("good requests: %v, %v", errs[0], errs[3])
		}
		if !errors.Is(errs[1], errOwn) {
			t.Errorf("refusing request: %v", errs[1])
		}
		if !errors.Is(errs[2], sql.ErrNoRows) {
			t.Errorf("update of no row: %v", errs[2])
		}
		stored(map[string]bool{"co_a": true, "co_b": true})
	})

	errWrote := errors.New("failed after writing")
	for name, failing := range map[string]writeFunc{
		"an error after a write aborts the batch": func(tx *wtx) error {
			if err := insertCompany("co_d")(tx); err != nil {
				return err
			}
			return errWrote
		},
		"a failed write aborts the batch": insertCompany("co_a"), // primary key violation
		"an error of SQLite's aborts the batch": func(tx *wtx) error {
			// A read that fails as it runs, having written nothing.
			var n int64
			return tx.queryRow(`SELECT abs(-9223372036854775807 - 1)`).Scan(&n)
		},
	} {
		t.Run(name, func(t *testing.T) {
			errs := runBatch(t, s.w,
				queued{false, insertCompany("co_c")},
				queued{true, failing},
				queued{true, insertCompany("co_e")},
			)
			if errs[1] == nil || errors.Is(errs[1], errWrote) != (name == "an error after a write aborts the batch") {
				t.Errorf("failing request: %v", errs[1])
			}
			for _, i := range []int{0, 2} {
				if errs[i] == nil || !strings.Contains(errs[i].Error(), "write batch aborted") {
					t.Errorf("request %d: %v, want the batch aborted", i, errs[i])
				}
			}
			stored(map[string]bool{"co_a": true, "co_c": false, "co_d": false, "co_e": false})
		})
	}

	t.Run("a request alone is undone whole", func(t *testing.T) {
		err := s.w.do(ctx, func(tx *wtx) error {
			if err := insertCompany("co_f")(tx); err != nil {
				return err
			}
			return errWrote
		})
		if !errors.Is(err, errWrote) {
			t.Errorf("lone request: %v", err)
		}
		if err := s.w.doWith(ctx, insertCompany("co_g"), writeOpts{bare: true}); err != nil {
			t.Errorf("next request: %v", err)
		}
		stored(map[string]bool{"co_f": false, "co_g": true})
	})
}

func TestCloseFinishesQueuedWrites(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "pimhook.db")
	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	release := blockWriter(t, s.w)
	var (
		wg   sync.WaitGroup
		errs = make([]error, 10)
	)
	for i := range errs {
		r, err := s.w.submit(ctx, insertCompany(fmt.Sprint("co_", i)))
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { errs[i] = r.wait() })
	}
	closed := make(chan error)
	go func() { closed <- s.Close() }()
	for !s.w.isClosed() {
		runtime.Gosched()
	}
	err = s.CreateCompany(ctx, newCompany("co_late"))
	if pimhook.ErrorKind(err) != pimhook.KindUnavailable || pimhook.ErrorCode(err) != pimhook.CodeShuttingDown {
		t.Errorf("write after Close: %v", err)
	}
	release()
	if err := <-closed; err != nil {
		t.Fatalf("close: %v", err)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("queued write %d: %v", i, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
	if err := s.Ping(ctx); pimhook.ErrorKind(err) != pimhook.KindUnavailable {
		t.Errorf("ping after close: %v", err)
	}

	s = openTest(t, path)
	cs, err := s.Companies(ctx)
	if err != nil || len(cs) != len(errs) {
		t.Errorf("companies after reopen: %d, %v; want %d", len(cs), err, len(errs))
	}
}

func TestDecidePanicLeavesStoreWorking(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := openWithCompany(t)
	_, err := s.Ingest(ctx, "co_1", []*pimhook.Event{{ID: "evt_1"}}, func(*pimhook.Event, *pimhook.Entity) (pimhook.Decision, error) {
		panic("decider bug")
	})
	if err == nil || !strings.Contains(err.Error(), "decider bug") {
		t.Errorf("ingest with a panicking decider: %v", err)
	}
	// Nothing of the panicking request was stored: the same event is new.
	if ds := ingestOne(t, s, "co_1", "app_1", "evt_1"); len(ds) != 1 {
		t.Errorf("the retried event made %d deliveries, want 1: the panicking request left it behind", len(ds))
	}
}

// TestQueuePlans checks that the queue reads use the partial index of
// pending deliveries, which keeps them fast however long the history.
func TestQueuePlans(t *testing.T) {
	t.Parallel()
	s := openTest(t, filepath.Join(t.TempDir(), "pimhook.db"))
	for _, q := range []struct {
		query string
		args  []any
	}{
		{pendingDeliveriesQuery, []any{"a", 0, 10}},
		{pendingAppsQuery, nil},
	} {
		if p := strings.Join(queryPlan(t, s, q.query, q.args...), "; "); !strings.Contains(p, "deliveries_pending") || strings.Contains(p, "TEMP B-TREE") {
			t.Errorf("plan of %s: %s", q.query, p)
		}
	}
}

// BenchmarkIngestGroupCommit compares Ingest calls made one after another
// with the same calls made by 64 goroutines at once, which the writer
// commits in shared transactions.
func BenchmarkIngestGroupCommit(b *testing.B) {
	perOp := map[string]time.Duration{}
	for _, bc := range []struct {
		name        string
		parallelism int // goroutines per CPU; 0 for one caller
	}{
		{"sequential", 0},
		{"concurrent64", max(1, 64/runtime.GOMAXPROCS(0))},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := openWithCompany(b)
			var (
				mu sync.Mutex
				n  int
			)
			next := func() string {
				mu.Lock()
				defer mu.Unlock()
				n++
				return fmt.Sprint(n)
			}
			batches, requests := s.w.batches.Load(), s.w.requests.Load()
			b.ResetTimer()
			if bc.parallelism == 0 {
				for b.Loop() {
					ingestOne(b, s, "co_1", "app_1", "evt_"+next())
				}
			} else {
				b.SetParallelism(bc.parallelism)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if _, err := tryIngestOne(s, "co_1", "app_1", "evt_"+next()); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			b.StopTimer()
			perOp[bc.name] = b.Elapsed() / time.Duration(b.N)
			b.ReportMetric(float64(s.w.requests.Load()-requests)/float64(s.w.batches.Load()-batches), "writes/commit")
		})
	}
	if seq, conc := perOp["sequential"], perOp["concurrent64"]; seq > 0 && conc > 0 {
		b.Logf("group commit: %v per sequential Ingest, %v per concurrent Ingest: %.1fx the throughput", seq, conc, float64(seq)/float64(conc))
	}
}

// BenchmarkDeliveryWrites measures the writer's work for one delivery as
// the throughput scenario makes it: an event of 1 KB ingested with its
// entity state and one delivery, then the delivery's successful attempt
// recorded, from 64 goroutines at once so that the writer batches them.
// cpu-ns/op is the process's CPU time per delivery.
//
// The floor sub-benchmark is the baseline of the same run: what SQLite
// alone costs for the rows of those deliveries, in a file with the same
// journal and sync settings, at the same number of deliveries per commit
// as the store reached. Its tables have the keys the rows are written and
// found by and nothing else; it reads nothing, decides nothing and
// prepares each statement once.
func BenchmarkDeliveryWrites(b *testing.B) {
	data := []byte(`{"sku":"` + strings.Repeat("x", 1000) + `"}`)
	var perCommit, storeCPU float64
	b.Run("store", func(b *testing.B) {
		s := openWithCompany(b)
		ctx := context.Background()
		var n atomic.Int64
		batches, requests := s.w.batches.Load(), s.w.requests.Load()
		start := cpuTime(b)
		b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0)))
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				i := n.Add(1)
				now := time.Unix(1700000000, i).UTC()
				id := fmt.Sprint(i)
				dl := &pimhook.Delivery{ID: "msg_" + id, AppID: fmt.Sprint("app_", i%1000), WebhookID: fmt.Sprint("wh_", i%1000),
					EventID: "evt_" + id, EventName: "products.created", Payload: data, CreatedAt: now, UpdatedAt: now}
				ev := &pimhook.Event{ID: "evt_" + id, EntityType: "products", EntityID: id, Action: pimhook.ActionCreated, Data: data}
				_, err := s.Ingest(ctx, "co_1", []*pimhook.Event{ev}, func(ev *pimhook.Event, _ *pimhook.Entity) (pimhook.Decision, error) {
					ev.EffectiveAction, ev.Revision = ev.Action, 1
					return pimhook.Decision{Entity: &pimhook.Entity{Data: ev.Data, Revision: 1, UpdatedAt: now}, Deliveries: []*pimhook.Delivery{dl}}, nil
				})
				if err != nil {
					b.Error(err)
					return
				}
				dl.Status, dl.Attempts, dl.LastStatusCode, dl.FinishedAt = pimhook.DeliverySucceeded, 1, 200, &now
				a := &pimhook.Attempt{ID: "att_" + id, DeliveryID: dl.ID, Number: 1, StartedAt: now, StatusCode: 200, Succeeded: true}
				if err := s.RecordAttempt(ctx, dl, a); err != nil {
					b.Error(err)
					return
				}
			}
		})
		storeCPU = float64(cpuTime(b)-start) / float64(b.N)
		b.ReportMetric(storeCPU, "cpu-ns/op")
		// Two requests per delivery: its ingest and its record.
		perCommit = float64(s.w.requests.Load()-requests) / 2 / float64(s.w.batches.Load()-batches)
		b.ReportMetric(perCommit, "deliveries/commit")
	})
	b.Run("floor", func(b *testing.B) {
		per := int(math.Round(perCommit))
		if per < 1 {
			per = 13 // what the store reaches on 2 cores, for -bench DeliveryWrites/floor alone
		}
		f := openFloor(b, data)
		start := cpuTime(b)
		for i := 0; i < b.N; i += per {
			f.commit(b, i, min(per, b.N-i))
		}
		f.commit(b, b.N, 0) // the last batch's records
		floorCPU := float64(cpuTime(b)-start) / float64(b.N)
		b.ReportMetric(floorCPU, "cpu-ns/op")
		b.ReportMetric(float64(per), "deliveries/commit")
		if storeCPU > 0 {
			b.ReportMetric(storeCPU/floorCPU, "store/floor")
		}
	})
}

// floor is BenchmarkDeliveryWrites' baseline: the rows of a delivery's
// ingest and record written straight to SQLite.
type floor struct {
	db                                          *sql.DB
	event, entity, delivery, succeeded, attempt *sql.Stmt
	data                                        []byte
	recorded                                    int // deliveries whose records are written
}

// openFloor makes the floor's file; data is each event's and delivery's
// body.
func openFloor(b *testing.B, data []byte) *floor {
	db, err := sql.Open("sqlite", filepath.Join(b.TempDir(), "floor.db")+
		"?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_txlock=immediate")
	if err != nil {
		b.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	b.Cleanup(func() { _ = db.Close() })
	// The store's columns, and of its keys only those the rows are written
	// and found by: the event's, for its idempotency; the entity's; the
	// delivery's sequence, which the record's update finds it by.
	if _, err := db.Exec(`
		CREATE TABLE events (company_id TEXT NOT NULL, id TEXT NOT NULL, entity_type TEXT NOT NULL,
			entity_id TEXT NOT NULL, action TEXT NOT NULL, effective_action TEXT NOT NULL, name TEXT NOT NULL,
			revision INTEGER NOT NULL, changed_fields TEXT NOT NULL, status TEXT NOT NULL, deliveries INTEGER NOT NULL,
			fingerprint TEXT NOT NULL, source_app_id TEXT NOT NULL, received_at INTEGER NOT NULL,
			PRIMARY KEY (company_id, id)) STRICT;
		CREATE TABLE entities (company_id TEXT NOT NULL, type TEXT NOT NULL, id TEXT NOT NULL, data BLOB,
			revision INTEGER NOT NULL, deleted INTEGER NOT NULL, updated_at INTEGER NOT NULL,
			PRIMARY KEY (company_id, type, id)) STRICT;
		CREATE TABLE deliveries (seq INTEGER PRIMARY KEY, id TEXT NOT NULL, company_id TEXT NOT NULL,
			app_id TEXT NOT NULL, webhook_id TEXT NOT NULL, event_id TEXT NOT NULL, event_name TEXT NOT NULL,
			payload BLOB NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL, next_attempt_at INTEGER NOT NULL,
			last_status_code INTEGER NOT NULL, last_error TEXT NOT NULL, created_at INTEGER NOT NULL,
			updated_at INTEGER NOT NULL, finished_at INTEGER) STRICT;
		CREATE TABLE attempts (id TEXT NOT NULL, delivery_id TEXT NOT NULL, company_id TEXT NOT NULL,
			app_id TEXT NOT NULL, webhook_id TEXT NOT NULL, number INTEGER NOT NULL, started_at INTEGER NOT NULL,
			duration_ns INTEGER NOT NULL, status_code INTEGER NOT NULL, succeeded INTEGER NOT NULL,
			error TEXT NOT NULL, response_body TEXT NOT NULL) STRICT`); err != nil {
		b.Fatal(err)
	}
	f := &floor{db: db, data: data}
	for _, st := range []struct {
		stmt  **sql.Stmt
		query string
	}{
		{&f.event, `INSERT INTO events VALUES ('co_1', ?, 'products', ?, 'created', 'created', 'products.created', 1,
			'[]', 'accepted', 1, '', '', ?)`},
		{&f.entity, `INSERT INTO entities VALUES ('co_1', 'products', ?, ?, 1, 0, ?)
			ON CONFLICT (company_id, type, id) DO UPDATE SET
				data = excluded.data, revision = excluded.revision, deleted = excluded.deleted, updated_at = excluded.updated_at`},
		{&f.delivery, `INSERT INTO deliveries VALUES (?, ?, 'co_1', ?, ?, ?, 'products.created', ?, 'pending', 0, ?, 0, '', ?, ?, NULL)`},
		{&f.succeeded, `UPDATE deliveries SET status = 'succeeded', attempts = 1, next_attempt_at = ?,
			last_status_code = 200, last_error = '', updated_at = ?, finished_at = ? WHERE seq = ?`},
		{&f.attempt, `INSERT INTO attempts VALUES (?, ?, 'co_1', ?, ?, 1, ?, 0, 200, 1, '', '')`},
	} {
		if *st.stmt, err = db.Prepare(st.query); err != nil {
			b.Fatal(err)
		}
	}
	return f
}

// commit writes, in one transaction, the ingests of n deliveries from the
// first'th on, and the records of those before first not yet recorded:
// the store's batches mix a batch's ingests with the records of deliveries
// sent meanwhile.
func (f *floor) commit(b *testing.B, first, n int) {
	tx, err := f.db.Begin()
	if err != nil {
		b.Fatal(err)
	}
	exec := func(st *sql.Stmt, args ...any) {
		res, err := tx.Stmt(st).Exec(args...)
		if err != nil {
			b.Fatal(err)
		}
		if n, err := res.RowsAffected(); n != 1 || err != nil {
			b.Fatalf("%d rows written, %v", n, err)
		}
	}
	for i := first; i < first+n; i++ {
		id, now := fmt.Sprint(i), int64(i)
		app, wh := fmt.Sprint("app_", i%1000), fmt.Sprint("wh_", i%1000)
		exec(f.event, "evt_"+id, id, now)
		exec(f.entity, id, f.data, now)
		exec(f.delivery, i+1, "msg_"+id, app, wh, "evt_"+id, f.data, now, now, now)
	}
	for ; f.recorded < first; f.recorded++ {
		i, now := f.recorded, int64(f.recorded)
		exec(f.succeeded, now, now, now, i+1)
		exec(f.attempt, fmt.Sprint("att_", i), fmt.Sprint("msg_", i), fmt.Sprint("app_", i%1000), fmt.Sprint("wh_", i%1000), now)
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
}

// cpuTime is the CPU time the process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
