package postgres

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/url"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pimhook/pimhook"
	"github.com/pimhook/pimhook/storetest"
)

// defaultTestURL is the database the tests use unless TEST_DATABASE_URL
// names another. Each test works in a schema of its own, dropped after it.
const defaultTestURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

func testURL() string {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	return defaultTestURL
}

// redactedURL is the test URL without its password, for messages.
func redactedURL() string {
	u, err := url.Parse(testURL())
	if err != nil {
		return "TEST_DATABASE_URL"
	}
	return u.Redacted()
}

// newSchema creates an empty schema for t and drops it, with all it holds,
// when t ends. An unreachable database fails t: the PostgreSQL store is
// tested or the tests fail, never skipped.
func newSchema(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, testURL())
	if err != nil {
		t.Fatalf("PostgreSQL is not reachable at %s: %v\n"+
			"The postgres tests need a database they may create schemas in: start one, or set TEST_DATABASE_URL.", redactedURL(), err)
	}
	defer conn.Close(ctx)
	name := "pimhook_test_" + rand.Text()[:16]
	name = strings.ToLower(name)
	if _, err := conn.Exec(ctx, `CREATE SCHEMA `+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("create schema %s: %v", name, err)
	}
	t.Cleanup(func() {
		conn, err := pgx.Connect(ctx, testURL())
		if err != nil {
			t.Errorf("drop schema %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `DROP SCHEMA `+pgx.Identifier{name}.Sanitize()+` CASCADE`); err != nil {
			t.Errorf("drop schema %s: %v", name, err)
		}
	})
	return name
}

// openIn opens a store in schema and closes it when t ends.
func openIn(t testing.TB, schema string, opts Options) *Store {
	t.Helper()
	opts.Schema = schema
	s, err := Open(context.Background(), testURL(), opts)
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

// openTest opens a store in a new schema.
func openTest(t testing.TB) *Store {
	t.Helper()
	return openIn(t, newSchema(t), Options{})
}

func TestStore(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) pimhook.Store { return openTest(t) })
}

func newCompany(id string) *pimhook.Company {
	return &pimhook.Company{ID: id, Name: "company " + id, CreatedAt: time.Unix(1700000000, 0).UTC()}
}

func TestOpenUnreachable(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	// Port 1 of the loopback address: nothing listens there.
	s, err := Open(ctx, "postgres://pimhook:secret@127.0.0.1:1/none?sslmode=disable&connect_timeout=2", Options{})
	if err == nil {
		s.Close()
		t.Fatal("open of an unreachable database succeeded")
	}
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("the error names the password: %v", err)
	}
	if _, err := Open(ctx, "postgres://pimhook:secret@[::1", Options{}); err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("open of a malformed URL: %v", err)
	}
}

func TestMigrateIdempotent(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	schema := newSchema(t)
	s := openIn(t, schema, Options{NoMigrate: true})
	if err := s.Ping(ctx); err == nil {
		t.Error("ping of a store without its schema succeeded")
	}
	for range 2 {
		if err := s.Migrate(ctx); err != nil {
			t.Fatalf("migrate: %v", err)
		}
	}
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	var n, newest int
	if err := s.pool.QueryRow(ctx, `SELECT count(*), max(version) FROM schema_migrations`).Scan(&n, &newest); err != nil {
		t.Fatal(err)
	}
	if n != len(ms) || newest != ms[len(ms)-1].Version {
		t.Errorf("schema_migrations: %d rows up to version %d, want %d up to %d", n, newest, len(ms), ms[len(ms)-1].Version)
	}
	if err := s.Ping(ctx); err != nil {
		t.Errorf("ping after migrate: %v", err)
	}
	openIn(t, schema, Options{}) // and once more over an up-to-date schema
}

// TestMigrateConcurrent starts several nodes at once on an empty schema:
// each migration is applied once, and every node opens.
func TestMigrateConcurrent(t *testing.T) {
	t.Parallel()
	schema := newSchema(t)
	const nodes = 6
	var wg sync.WaitGroup
	errs := make(chan error, nodes)
	for range nodes {
		wg.Go(func() {
			s, err := Open(t.Context(), testURL(), Options{Schema: schema})
			if err == nil {
				err = s.Close()
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("open: %v", err)
		}
	}
	s := openIn(t, schema, Options{NoMigrate: true})
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := s.pool.QueryRow(t.Context(), `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil || n != len(ms) {
		t.Errorf("schema_migrations: %d rows, %v; want %d", n, err, len(ms))
	}
}

func TestMigrateRefusesNewerSchema(t *testing.T) {
	t.Parallel()
	schema := newSchema(t)
	s := openIn(t, schema, Options{})
	if _, err := s.pool.Exec(t.Context(), `INSERT INTO schema_migrations (version, name) VALUES (9999, 'future')`); err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(t.Context()); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("migrate over a newer schema: %v", err)
	}
}

func TestClose(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, err := Open(ctx, testURL(), Options{Schema: newSchema(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateCompany(ctx, newCompany("co_1")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
	err = s.CreateCompany(ctx, newCompany("co_late"))
	if pimhook.ErrorKind(err) != pimhook.KindUnavailable || pimhook.ErrorCode(err) != pimhook.CodeShuttingDown {
		t.Errorf("write after Close: %v", err)
	}
	if _, err := s.Company(ctx, "co_1"); pimhook.ErrorKind(err) != pimhook.KindUnavailable {
		t.Errorf("read after Close: %v", err)
	}
	if _, err := s.Ingest(ctx, "co_1", []*pimhook.Event{{ID: "evt_1"}}, nil); pimhook.ErrorKind(err) != pimhook.KindUnavailable {
		t.Errorf("ingest after Close: %v", err)
	}
	if err := s.Ping(ctx); pimhook.ErrorKind(err) != pimhook.KindUnavailable {
		t.Errorf("ping after close: %v", err)
	}
}

func TestReopen(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	schema := newSchema(t)
	s := openIn(t, schema, Options{})
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

	s = openIn(t, schema, Options{})
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

func TestDecidePanicLeavesStoreWorking(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := openTest(t)
	if err := s.CreateCompany(ctx, newCompany("co_1")); err != nil {
		t.Fatal(err)
	}
	_, err := s.Ingest(ctx, "co_1", []*pimhook.Event{{ID: "evt_1", EntityType: "products", EntityID: "evt_1"}},
		func(*pimhook.Event, *pimhook.Entity) (pimhook.Decision, error) { panic("decider bug") })
	if err == nil || !strings.Contains(err.Error(), "decider bug") {
		t.Errorf("ingest with a panicking decider: %v", err)
	}
	// Nothing of the panicking call was stored: the same event is new.
	if ds := ingestOne(t, s, "co_1", "app_1", "evt_1"); len(ds) != 1 {
		t.Errorf("the retried event made %d deliveries, want 1: the panicking call left it behind", len(ds))
	}
}

// TestIngestLeavesNoPlaceholder ingests events whose decisions store no
// state for an entity never seen: the row that locked it is gone.
func TestIngestLeavesNoPlaceholder(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := openTest(t)
	if err := s.CreateCompany(ctx, newCompany("co_1")); err != nil {
		t.Fatal(err)
	}
	noState := func(ev *pimhook.Event, _ *pimhook.Entity) (pimhook.Decision, error) {
		ev.EffectiveAction = ev.Action
		return pimhook.Decision{Unchanged: true}, nil
	}
	evs := []*pimhook.Event{
		{ID: "evt_1", EntityType: "products", EntityID: "ghost", Action: pimhook.ActionDeleted},
		{ID: "evt_2", EntityType: "products", EntityID: "ghost2", Action: pimhook.ActionDeleted},
	}
	rs, err := s.Ingest(ctx, "co_1", evs, noState)
	if err != nil || rs[0].Status != pimhook.IngestUnchanged {
		t.Fatalf("ingest: %+v, %v", rs, err)
	}
	for _, id := range []string{"ghost", "ghost2"} {
		if _, err := s.Entity(ctx, "co_1", "products", id); !pimhook.IsNotFound(err) {
			t.Errorf("entity without state: %v", err)
		}
	}
	// A call of duplicates only writes nothing, placeholders included.
	evs[0].EntityID = "ghost3"
	if rs, err := s.Ingest(ctx, "co_1", evs[:1], noState); err != nil || rs[0].Status != pimhook.IngestDuplicate {
		t.Fatalf("ingest of a duplicate: %+v, %v", rs, err)
	}
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM entities`).Scan(&n); err != nil || n != 0 {
		t.Errorf("%d entity rows, %v; want none", n, err)
	}
}

// TestBinaryText stores what a receiver may answer and a Go error may
// say: a response body comes back byte for byte, and a message with bytes
// a PostgreSQL text refuses is stored, mended.
func TestBinaryText(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := openTest(t)
	if err := s.CreateCompany(ctx, newCompany("co_1")); err != nil {
		t.Fatal(err)
	}
	d := ingestOne(t, s, "co_1", "app_1", "evt_1")[0]
	body := "\x00\xff\xfe binary \x00 answer"
	d.Attempts, d.LastError, d.LastStatusCode = 1, "bad \x00 bytes \xff", 500
	a := &pimhook.Attempt{ID: "atm_1", DeliveryID: d.ID, Number: 1, StartedAt: time.Unix(1700000000, 0).UTC(),
		StatusCode: 500, Error: "HTTP 500 \x00", ResponseBody: body}
	if err := s.RecordAttempt(ctx, d, a); err != nil {
		t.Fatalf("record attempt: %v", err)
	}
	as, err := s.Attempts(ctx, d.ID)
	if err != nil || len(as) != 1 || as[0].ResponseBody != body {
		t.Errorf("attempts: %+v, %v", as, err)
	}
	es, err := s.ErrorLog(ctx, pimhook.ErrorLogFilter{CompanyID: "co_1"})
	if err != nil || len(es) != 1 || es[0].ResponseBody != body || es[0].Error != "HTTP 500 \uFFFD" {
		t.Errorf("error log: %+v, %v", es, err)
	}
	got, err := s.Delivery(ctx, "co_1", d.ID)
	if err != nil || got.LastError != "bad \uFFFD bytes \uFFFD" {
		t.Errorf("delivery: %+v, %v", got, err)
	}
}

// TestIdempotencyRace posts one event ID from many goroutines of two nodes
// at once, on different entities so that no entity lock orders them: one
// call stores it, the others find it, as a duplicate or, when what they
// posted differs, as a reused key.
func TestIdempotencyRace(t *testing.T) {
	t.Parallel()
	schema := newSchema(t)
	nodes := []*Store{openIn(t, schema, Options{}), openIn(t, schema, Options{})}
	if err := nodes[0].CreateCompany(t.Context(), newCompany("co_1")); err != nil {
		t.Fatal(err)
	}
	for _, sameBody := range []bool{true, false} {
		const callers = 16
		eventID := fmt.Sprint("evt_same_", sameBody)
		var (
			wg       sync.WaitGroup
			mu       sync.Mutex
			statuses = map[string]int{}
		)
		for i := range callers {
			wg.Go(func() {
				ev := &pimhook.Event{ID: eventID, EntityType: "products", EntityID: fmt.Sprint("p", i, sameBody), Action: pimhook.ActionCreated,
					Data: []byte(`{}`), Fingerprint: "fp"}
				if !sameBody {
					ev.Fingerprint = fmt.Sprint("fp", i)
				}
				rs, err := nodes[i%2].Ingest(t.Context(), "co_1", []*pimhook.Event{ev}, func(ev *pimhook.Event, _ *pimhook.Entity) (pimhook.Decision, error) {
					ev.EffectiveAction, ev.Revision = ev.Action, 1
					return pimhook.Decision{Entity: &pimhook.Entity{Data: ev.Data, Revision: 1}}, nil
				})
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					statuses[string(rs[0].Status)]++
				case pimhook.ErrorCode(err) == pimhook.CodeIdempotencyReuse:
					statuses["reused"]++
				default:
					t.Errorf("ingest: %v", err)
				}
			})
		}
		wg.Wait()
		want := map[string]int{string(pimhook.IngestAccepted): 1, string(pimhook.IngestDuplicate): callers - 1}
		if !sameBody {
			want = map[string]int{string(pimhook.IngestAccepted): 1, "reused": callers - 1}
		}
		if fmt.Sprint(statuses) != fmt.Sprint(want) {
			t.Errorf("same body %v: outcomes %v, want %v", sameBody, statuses, want)
		}
	}
	var n int
	if err := nodes[0].pool.QueryRow(t.Context(), `SELECT count(*) FROM entities`).Scan(&n); err != nil || n != 2 {
		t.Errorf("%d entities, %v; want one per event ID", n, err)
	}
}

// TestQueueOrderAcrossNodes is the dispatcher's view of an app's queue
// while two nodes enqueue to it, through Ingest and job runs, from many
// goroutines: a reader that only ever asks for the deliveries after the
// last Seq it saw sees every one, which holds only if a delivery never
// commits after one of the same app with a higher Seq. The events of a
// shared entity get each revision once, in order.
func TestQueueOrderAcrossNodes(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	schema := newSchema(t)
	nodes := []*Store{openIn(t, schema, Options{MaxConns: 8}), openIn(t, schema, Options{MaxConns: 8})}
	if err := nodes[0].CreateCompany(ctx, newCompany("co_1")); err != nil {
		t.Fatal(err)
	}
	const (
		writers = 12 // per node
		calls   = 15 // per writer
		jobRuns = 5  // per node
		perRun  = 7  // deliveries per job run
	)
	var (
		wg      sync.WaitGroup
		written atomic.Int64
		hotRevs sync.Map
		done    = make(chan struct{})
	)
	for n, s := range nodes {
		for w := range writers {
			wg.Go(func() {
				for c := range calls {
					id := fmt.Sprintf("evt_%d_%d_%d", n, w, c)
					ev := &pimhook.Event{ID: id, EntityType: "products", EntityID: "hot", Action: pimhook.ActionUpdated}
					if c%2 == 0 {
						ev.EntityID = id // half the events are of an entity of their own
					}
					_, err := s.Ingest(ctx, "co_1", []*pimhook.Event{ev}, func(ev *pimhook.Event, stored *pimhook.Entity) (pimhook.Decision, error) {
						ev.EffectiveAction, ev.Revision = ev.Action, 1
						if stored != nil {
							ev.Revision = stored.Revision + 1
						}
						d := &pimhook.Delivery{ID: "msg_" + id, AppID: "app_hot", WebhookID: "wh_1", EventID: id,
							EventName: ev.Name(), Payload: []byte(`{}`)}
						return pimhook.Decision{Entity: &pimhook.Entity{Data: []byte(`{}`), Revision: ev.Revision},
							Deliveries: []*pimhook.Delivery{d}}, nil
					})
					if err != nil {
						t.Errorf("ingest: %v", err)
						return
					}
					if ev.EntityID == "hot" {
						if _, dup := hotRevs.LoadOrStore(ev.Revision, id); dup {
							t.Errorf("revision %d of the shared entity given twice", ev.Revision)
						}
					}
					written.Add(1)
				}
			})
		}
		wg.Go(func() {
			for r := range jobRuns {
				runID := fmt.Sprintf("jr_%d_%d", n, r)
				tx, err := s.BeginJobRun(ctx, "co_1", "job-1", runID)
				if err != nil {
					t.Errorf("begin job run: %v", err)
					return
				}
				for i := range perRun {
					d := &pimhook.Delivery{ID: fmt.Sprintf("msg_%s_%d", runID, i), AppID: "app_hot", WebhookID: "wh_job",
						EventID: runID, EventName: "job.products", Payload: []byte(`[]`)}
					if err := tx.StageDelivery(ctx, d); err != nil {
						t.Errorf("stage delivery: %v", err)
					}
				}
				if _, err := tx.Commit(ctx, &pimhook.JobRun{ID: runID, KeyField: "id"}); err != nil {
					t.Errorf("commit: %v", err)
					return
				}
				written.Add(perRun)
			}
		})
	}
	go func() {
		wg.Wait()
		close(done)
	}()

	seen := map[string]bool{}
	after := int64(0)
	read := func(s *Store) {
		page, err := s.PendingDeliveries(ctx, "app_hot", after, 50)
		if err != nil {
			t.Fatalf("pending deliveries: %v", err)
		}
		for _, d := range page {
			if seen[d.ID] {
				t.Fatalf("delivery %s read twice", d.ID)
			}
			seen[d.ID] = true
			after = d.Seq
		}
	}
	for i := 0; ; i++ {
		select {
		case <-done:
			for range 1000 {
				before := len(seen)
				read(nodes[0])
				if len(seen) == before {
					break
				}
			}
			if got, want := int64(len(seen)), written.Load(); got != want {
				t.Errorf("the reader saw %d deliveries of %d: a delivery committed after one with a higher Seq", got, want)
			}
			return
		default:
			read(nodes[i%2])
		}
	}
}

// TestQueuePlans checks that the queue reads use the partial index of
// pending deliveries without sorting, which keeps them fast however long
// the history.
func TestQueuePlans(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	for _, q := range []struct {
		query string
		args  []any
	}{
		{pendingDeliveriesQuery, []any{"a", 0, 10}},
		{pendingAppsQuery, nil},
	} {
		plan := queryPlan(t, s, q.query, q.args...)
		if !strings.Contains(plan, "deliveries_pending") || strings.Contains(plan, "Sort") || strings.Contains(plan, "Seq Scan") {
			t.Errorf("plan of %s:\n%s", q.query, plan)
		}
	}
}

// queryPlan returns the plan of query, as PostgreSQL would run it on large
// tables: the tests' tables are small enough that a sequential scan and a
// sort would win, so both are made as costly as can be. A plan that still
// has one cannot do without it.
func queryPlan(t *testing.T, s *Store, query string, args ...any) string {
	t.Helper()
	var plan []string
	err := pgx.BeginFunc(t.Context(), s.pool, func(tx pgx.Tx) error {
		for _, set := range []string{"enable_seqscan", "enable_sort", "enable_bitmapscan"} {
			if _, err := tx.Exec(t.Context(), `SET LOCAL `+set+` = off`); err != nil {
				return err
			}
		}
		rows, err := tx.Query(t.Context(), `EXPLAIN `+query, args...)
		if err != nil {
			return err
		}
		plan, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if err != nil {
		t.Fatalf("explain %s: %v", query, err)
	}
	return strings.Join(plan, "\n")
}

// BenchmarkIngest compares Ingest calls made one after another with the
// same calls made by 64 goroutines at once, each an event with one
// delivery, as BenchmarkIngestGroupCommit of the SQLite store does. The
// calls of "concurrent64" all enqueue to one app, whose queue lock admits
// one transaction at a time; those of "concurrent64-apps" go to an app per
// goroutine.
func BenchmarkIngest(b *testing.B) {
	perOp := map[string]time.Duration{}
	for _, bc := range []struct {
		name        string
		parallelism int // goroutines per CPU; 0 for one caller
		appPerG     bool
	}{
		{"sequential", 0, false},
		{"concurrent64", max(1, 64/runtime.GOMAXPROCS(0)), false},
		{"concurrent64-apps", max(1, 64/runtime.GOMAXPROCS(0)), true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := openIn(b, newSchema(b), Options{MaxConns: 64})
			ctx := context.Background()
			if err := s.CreateCompany(ctx, newCompany("co_1")); err != nil {
				b.Fatal(err)
			}
			var n, g atomic.Int64
			next := func() string { return fmt.Sprint(n.Add(1)) }
			calls, txs := n.Load(), s.ingestTxs.Load()
			b.ResetTimer()
			if bc.parallelism == 0 {
				for b.Loop() {
					ingestOne(b, s, "co_1", "app_1", "evt_"+next())
				}
			} else {
				b.SetParallelism(bc.parallelism)
				b.RunParallel(func(pb *testing.PB) {
					app := "app_1"
					if bc.appPerG {
						app = fmt.Sprint("app_", g.Add(1))
					}
					for pb.Next() {
						if _, err := tryIngestOne(s, "co_1", app, "evt_"+next()); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			b.StopTimer()
			perOp[bc.name] = b.Elapsed() / time.Duration(b.N)
			b.ReportMetric(float64(n.Load()-calls)/float64(s.ingestTxs.Load()-txs), "calls/commit")
		})
	}
	if seq := perOp["sequential"]; seq > 0 {
		for _, name := range []string{"concurrent64", "concurrent64-apps"} {
			if conc := perOp[name]; conc > 0 {
				b.Logf("%s: %v per sequential Ingest, %v per concurrent Ingest: %.1fx the throughput", name, seq, conc, float64(seq)/float64(conc))
			}
		}
	}
}

// genericPlan returns the plan PostgreSQL caches for query once it has run
// a few times: one made without the arguments' values, with a row count
// guessed for every array. The statements that must read through an index
// whatever the tables hold are written so that no such guess can turn them
// into a scan; on tables of a few thousand rows, analyzed, a scan would win
// if the query allowed one.
func genericPlan(t *testing.T, s *Store, query string, args ...any) string {
	t.Helper()
	var plan []string
	err := pgx.BeginFunc(t.Context(), s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(t.Context(), `SET LOCAL plan_cache_mode = force_generic_plan`); err != nil {
			return err
		}
		if _, err := tx.Exec(t.Context(), `PREPARE generic AS `+query); err != nil {
			return err
		}
		params := make([]string, len(args))
		for i, a := range args {
			params[i] = sqlLiteral(a)
		}
		rows, err := tx.Query(t.Context(), `EXPLAIN EXECUTE generic (`+strings.Join(params, ", ")+`)`)
		if err != nil {
			return err
		}
		plan, err = pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		_, err = tx.Exec(t.Context(), `DEALLOCATE generic`)
		return err
	})
	if err != nil {
		t.Fatalf("explain %s: %v", query, err)
	}
	return strings.Join(plan, "\n")
}

// TestIngestPlans checks that the statements of Ingest and Removed that
// join arrays to a table read the table through its index, row by row,
// however many rows PostgreSQL guesses the arrays hold.
func TestIngestPlans(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := openTest(t)
	for _, q := range []string{
		`INSERT INTO entities (company_id, type, id, data, revision, deleted, updated_at)
			SELECT 'co_1', 'products', 'p' || i, '\x7b7d', 1, false, now() FROM generate_series(1, 5000) AS i`,
		`INSERT INTO events (company_id, id, entity_type, entity_id, action, effective_action, name, revision,
				changed_fields, status, deliveries, received_at)
			SELECT 'co_1', 'evt_' || i, 'products', 'p' || i, 'created', 'created', 'products.created', 1, '\x5b5d',
				'accepted', 0, now() FROM generate_series(1, 5000) AS i`,
		`INSERT INTO job_products (set_id, n, key, pos, hash, data)
			SELECT s, i, 'k' || i, i, '\x00', '\x7b7d' FROM generate_series(1, 2) AS s, generate_series(1, 5000) AS i`,
		`ANALYZE entities`, `ANALYZE events`, `ANALYZE job_products`,
	} {
		if _, err := s.pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	companies := []string{"co_1", "co_1"}
	keys := []string{"p1", "p2"}
	types := []string{"products", "products"}
	for _, c := range []struct {
		query string
		args  []any
		want  string // the condition of the lookup
	}{
		{readEntitiesSQL, []any{companies, types, keys}, "Index Cond: ((company_id = u.company_id) AND (type = u.type) AND (id = u.id))"},
		{dropPlaceholderSQL, []any{"co_1", "products", "p1"}, "Index Cond: ((company_id = $1) AND (type = $2) AND (id = $3))"},
		{seenEventsSQL, []any{companies, keys}, "Index Cond: ((company_id = u.company_id) AND (id = u.id))"},
		{previousQuery, []any{1, keys}, "Index Cond: ((set_id = $1) AND (key = u.key))"},
		{removedQuery, []any{1, 2, -1, removedPage}, "Index Cond: ((set_id = $2) AND (key = o.key))"},
	} {
		plan := genericPlan(t, s, c.query, c.args...)
		if !strings.Contains(plan, c.want) || strings.Contains(plan, "Seq Scan") || strings.Contains(plan, "Hash") ||
			strings.Contains(plan, "Bitmap") {
			t.Errorf("generic plan of %s: want a lookup on %s, got\n%s", c.query, c.want, plan)
		}
	}
}

// sqlLiteral writes a test argument as SQL: EXECUTE takes no parameters.
func sqlLiteral(v any) string {
	quote := func(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
	switch v := v.(type) {
	case string:
		return quote(v)
	case []string:
		q := make([]string, len(v))
		for i, s := range v {
			q[i] = quote(s)
		}
		return "ARRAY[" + strings.Join(q, ", ") + "]::text[]"
	}
	return fmt.Sprint(v)
}
