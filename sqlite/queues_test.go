package sqlite

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pimhook/pimhook"
)

// pendingFromSQL reads an app's queue from SQLite, past the cache.
func pendingFromSQL(t *testing.T, s *Store, appID string, afterSeq int64, limit int) []*pimhook.Delivery {
	t.Helper()
	ds, err := queryAll(t.Context(), s.rdb, scanDelivery, pendingDeliveriesQuery, appID, afterSeq, limit)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

// checkQueue compares PendingDeliveries with the rows in SQLite.
func checkQueue(t *testing.T, s *Store, appID string, afterSeq int64, limit int) {
	t.Helper()
	got, err := s.PendingDeliveries(t.Context(), appID, afterSeq, limit)
	if err != nil {
		t.Fatal(err)
	}
	if want := pendingFromSQL(t, s, appID, afterSeq, limit); !reflect.DeepEqual(got, want) {
		t.Fatalf("queue of %s past %d (limit %d):\n got %s\nwant %s", appID, afterSeq, limit, describe(got), describe(want))
	}
}

func describe(ds []*pimhook.Delivery) string {
	s := ""
	for _, d := range ds {
		s += fmt.Sprintf("%+v\n", *d)
	}
	return s
}

// finishedDelivery returns one of an app's deliveries that is not pending,
// or nil.
func finishedDelivery(t *testing.T, s *Store, appID string) *pimhook.Delivery {
	t.Helper()
	ds, err := queryAll(t.Context(), s.rdb, scanDelivery, `SELECT `+deliveryColumns+` FROM deliveries
		WHERE app_id = ? AND status <> 'pending' ORDER BY seq LIMIT 1`, appID)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) == 0 {
		return nil
	}
	return ds[0]
}

// attempts numbers the attempts the tests record, so that their IDs are
// never used twice.
var attempts atomic.Int64

// recordAttempt records an attempt of d that ends it (succeeded or
// failed) or leaves it pending for a retry, and returns its ID.
func recordAttempt(t *testing.T, s *Store, d *pimhook.Delivery, outcome pimhook.DeliveryStatus, at time.Time) string {
	t.Helper()
	d.Attempts++
	d.Status, d.UpdatedAt = outcome, at
	a := &pimhook.Attempt{ID: fmt.Sprint("att_", attempts.Add(1)), DeliveryID: d.ID, Number: d.Attempts, StartedAt: at}
	switch outcome {
	case pimhook.DeliverySucceeded:
		d.LastStatusCode, d.FinishedAt = 200, &at
		a.StatusCode, a.Succeeded = 200, true
	case pimhook.DeliveryFailed:
		d.LastStatusCode, d.LastError, d.FinishedAt = 500, "gave up", &at
		a.StatusCode, a.Error = 500, "gave up"
	default:
		d.LastStatusCode, d.LastError, d.NextAttemptAt = 503, "busy", at.Add(time.Minute)
		a.StatusCode, a.Error = 503, "busy"
	}
	if err := s.RecordAttempt(t.Context(), d, a); err != nil {
		t.Fatal(err)
	}
	return a.ID
}

// TestQueueCacheFollowsTheStore runs random ingests, attempt records and
// other writes to the queues, and checks after each that every read of the
// queues answers what SQLite holds.
func TestQueueCacheFollowsTheStore(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := openWithCompany(t)
	rng := rand.New(rand.NewPCG(1, 2))
	apps := []string{"app_0", "app_1", "app_2"}
	at := time.Unix(1700000000, 0)
	for i := range 600 {
		at = at.Add(time.Millisecond)
		app := apps[rng.IntN(len(apps))]
		switch op := rng.IntN(12); {
		case op < 4:
			ingestOne(t, s, "co_1", app, fmt.Sprint("evt_", i))
		case op < 6:
			// Several ingests and records in one batch of the writer.
			release := blockWriter(t, s.w)
			var wg sync.WaitGroup
			for j, app := range apps {
				wg.Go(func() {
					if _, err := tryIngestOne(s, "co_1", app, fmt.Sprintf("evt_%d_%d", i, j)); err != nil {
						t.Error(err)
					}
				})
			}
			var waits []func() error
			for _, app := range apps {
				if queue := pendingFromSQL(t, s, app, 0, 1000); len(queue) > 0 {
					d := queue[rng.IntN(len(queue))]
					d.Status, d.Attempts, d.UpdatedAt, d.FinishedAt = pimhook.DeliverySucceeded, d.Attempts+1, at, &at
					waits = append(waits, s.SubmitAttempt(ctx, d, &pimhook.Attempt{ID: fmt.Sprint("att_", attempts.Add(1)),
						DeliveryID: d.ID, Number: d.Attempts, StartedAt: at, StatusCode: 200, Succeeded: true}))
				}
			}
			waitQueued(t, s.w, len(apps)+len(waits))
			release()
			wg.Wait()
			for _, wait := range waits {
				if err := wait(); err != nil {
					t.Fatal(err)
				}
			}
		case op < 7:
			// A finished delivery made pending again by a record.
			d := finishedDelivery(t, s, app)
			if d == nil {
				continue
			}
			d.Status, d.FinishedAt, d.UpdatedAt = pimhook.DeliveryPending, nil, at
			if err := s.RecordAttempt(ctx, d, nil); err != nil {
				t.Fatal(err)
			}
		case op < 10:
			queue := pendingFromSQL(t, s, app, 0, 1000)
			if len(queue) == 0 {
				continue
			}
			d := queue[rng.IntN(len(queue))]
			outcome := []pimhook.DeliveryStatus{pimhook.DeliverySucceeded, pimhook.DeliveryFailed, pimhook.DeliveryPending}[rng.IntN(3)]
			recordAttempt(t, s, d, outcome, at)
		default:
			// A write the cache does not follow: put a finished delivery
			// back in its queue, as a redelivery would.
			err := s.w.do(ctx, func(tx *wtx) error {
				_, err := tx.exec(`UPDATE deliveries SET status = 'pending', finished_at = NULL
					WHERE seq = (SELECT MIN(seq) FROM deliveries WHERE app_id = ? AND status <> 'pending')`, app)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		for _, app := range apps {
			queue := pendingFromSQL(t, s, app, 0, 1000)
			after := int64(0)
			if len(queue) > 0 && rng.IntN(2) == 0 {
				after = queue[rng.IntN(len(queue))].Seq
			}
			checkQueue(t, s, app, after, []int{1, 8, 100}[rng.IntN(3)])
		}
	}
	if s.queues.hits.Load() == 0 {
		t.Error("no read was answered from memory")
	}
}

// TestQueueCacheUnderConcurrentWrites reads the queues while ingests and
// records run on other goroutines, then checks every queue once the
// writes are over.
func TestQueueCacheUnderConcurrentWrites(t *testing.T) {
	t.Parallel()
	s := openWithCompany(t)
	apps := []string{"app_0", "app_1", "app_2", "app_3"}
	var wg sync.WaitGroup
	for g, app := range apps {
		wg.Go(func() {
			at := time.Unix(1700000000, 0)
			for i := range 150 {
				ds, err := tryIngestOne(s, "co_1", app, fmt.Sprintf("evt_%d_%d", g, i))
				if err != nil {
					t.Error(err)
					return
				}
				// Most deliveries end; one in five is retried and one in
				// seven is left, so that queues stay short enough to keep.
				if i%7 != 0 {
					at = at.Add(time.Millisecond)
					d := *ds[0]
					outcome := pimhook.DeliverySucceeded
					if i%5 == 0 {
						outcome = pimhook.DeliveryPending
					}
					recordAttempt(t, s, &d, outcome, at)
				}
			}
		})
		wg.Go(func() {
			for range 300 {
				if _, err := s.PendingDeliveries(context.Background(), app, 0, 64); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	// Whatever the readers left in the cache was filled and kept up while
	// the writes ran: it must answer what SQLite holds.
	s.queues.mu.Lock()
	known := len(s.queues.apps)
	s.queues.mu.Unlock()
	if known == 0 || s.queues.hits.Load() == 0 {
		t.Fatalf("%d apps known, %d reads from memory: the test did not use the cache", known, s.queues.hits.Load())
	}
	for _, app := range apps {
		for _, after := range []int64{0, 100, 300} {
			checkQueue(t, s, app, after, 1000)
		}
	}
}

// TestQueueCacheRaces checks the two orders in which a read that missed
// and a batch the writer applies can meet.
func TestQueueCacheRaces(t *testing.T) {
	t.Parallel()
	d := func(seq int64) *pimhook.Delivery {
		return &pimhook.Delivery{ID: fmt.Sprint("msg_", seq), AppID: "app_1", Seq: seq, Status: pimhook.DeliveryPending, Payload: []byte(`{}`)}
	}
	queued := func(seq int64) queueChange {
		return func(c *queueCache) { c.queued(*d(seq)) }
	}
	seqs := func(c *queueCache) ([]int64, bool) {
		ds, ok := c.read("app_1", 0, 100)
		var out []int64
		for _, d := range ds {
			out = append(out, d.Seq)
		}
		return out, ok
	}

	// The read began before a batch that was applied before the read
	// ended: what it read may be older than the batch, so it is not kept.
	c := newQueueCache()
	epoch := c.now()
	c.apply([]queueChange{queued(2)})
	c.fill("app_1", 0, []*pimhook.Delivery{d(1)}, epoch)
	if got, ok := seqs(c); ok {
		t.Errorf("a fill older than a batch was kept: %v", got)
	}

	// The read saw a batch that was committed but not yet applied: the
	// batch, applied after the fill, adds nothing twice.
	c = newQueueCache()
	c.fill("app_1", 0, []*pimhook.Delivery{d(1), d(2)}, c.now())
	c.apply([]queueChange{queued(2)})
	c.apply([]queueChange{queued(3)})
	if got, ok := seqs(c); !ok || !reflect.DeepEqual(got, []int64{1, 2, 3}) {
		t.Errorf("queue %v (known %v), want [1 2 3]", got, ok)
	}

	// A write the cache does not follow makes it forget every app.
	c.apply([]queueChange{nil})
	if got, ok := seqs(c); ok {
		t.Errorf("after a write the cache does not follow: %v", got)
	}
}

// TestRecordGoesByTheStoredDelivery records attempts of a delivery whose
// copy names another company, app, webhook and event: the attempt, and the
// app queue it leaves, are those of the delivery as stored.
func TestRecordGoesByTheStoredDelivery(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := openWithCompany(t)
	stored := ingestOne(t, s, "co_1", "app_1", "evt_1")[0]
	checkQueue(t, s, "app_1", 0, 8) // the app's queue is known
	at := time.Unix(1700000000, 0)
	for _, outcome := range []pimhook.DeliveryStatus{pimhook.DeliveryPending, pimhook.DeliverySucceeded} {
		d := *stored
		d.CompanyID, d.AppID, d.WebhookID, d.EventID = "co_2", "app_2", "wh_2", "evt_2"
		id := recordAttempt(t, s, &d, outcome, at)
		*stored = d
		var company, app, webhook string
		err := s.rdb.QueryRowContext(ctx, `SELECT company_id, app_id, webhook_id FROM attempts WHERE id = ?`,
			id).Scan(&company, &app, &webhook)
		if err != nil {
			t.Fatal(err)
		}
		if company != "co_1" || app != "app_1" || webhook != "wh_1" {
			t.Errorf("%s attempt stored for %s/%s/%s, want co_1/app_1/wh_1", outcome, company, app, webhook)
		}
		checkQueue(t, s, "app_1", 0, 8)
	}
	if ds, err := s.PendingDeliveries(ctx, "app_1", 0, 8); err != nil || len(ds) != 0 {
		t.Errorf("queue after the delivery succeeded: %d, %v", len(ds), err)
	}
}

// TestQueueCacheHoldsItsOwn checks that what a read returns shares nothing
// with the cache, and reads at the ends of the Seq range.
func TestQueueCacheHoldsItsOwn(t *testing.T) {
	t.Parallel()
	s := openWithCompany(t)
	ingestOne(t, s, "co_1", "app_1", "evt_1")
	edit := func(what string, ds []*pimhook.Delivery) {
		t.Helper()
		if len(ds) != 1 {
			t.Fatalf("%s: %d deliveries", what, len(ds))
		}
		ds[0].Payload[0] = 'X'
		checkQueue(t, s, "app_1", 0, 8)
	}
	read := func() []*pimhook.Delivery {
		t.Helper()
		ds, err := s.PendingDeliveries(t.Context(), "app_1", 0, 8)
		if err != nil {
			t.Fatal(err)
		}
		return ds
	}
	edit("the read that filled the cache", read())
	edit("a read from the cache", read())
	edit("an ingest's own delivery", ingestOne(t, s, "co_1", "app_1", "evt_3")) // queued into the known queue
	checkQueue(t, s, "app_1", math.MaxInt64, 8)
	if s.queues.hits.Load() < 5 {
		t.Errorf("%d reads from memory, want 5", s.queues.hits.Load())
	}
	// An empty payload reads back as SQLite gives it.
	_, err := s.Ingest(t.Context(), "co_1", []*pimhook.Event{{ID: "evt_2", EntityType: "products", EntityID: "2"}},
		func(ev *pimhook.Event, _ *pimhook.Entity) (pimhook.Decision, error) {
			ev.EffectiveAction, ev.Revision = pimhook.ActionCreated, 1
			return pimhook.Decision{Deliveries: []*pimhook.Delivery{{ID: "msg_2", AppID: "app_1", WebhookID: "wh_1", EventID: ev.ID, EventName: "products.created"}}}, nil
		})
	if err != nil {
		t.Fatal(err)
	}
	checkQueue(t, s, "app_1", 0, 8)
}

// TestIngestRefusesBeforeWriting: ingests whose error-log entry or
// delivery would be refused fail alone, without aborting the batch they
// shared.
func TestIngestRefusesBeforeWriting(t *testing.T) {
	t.Parallel()
	s := openWithCompany(t)
	ingest := func(id, entryID string, status pimhook.DeliveryStatus) error {
		_, err := s.Ingest(context.Background(), "co_1", []*pimhook.Event{{ID: id, EntityType: "products", EntityID: id}},
			func(ev *pimhook.Event, _ *pimhook.Entity) (pimhook.Decision, error) {
				ev.EffectiveAction, ev.Revision = pimhook.ActionCreated, 1
				return pimhook.Decision{
					Errors: []*pimhook.ErrorLogEntry{{ID: entryID, Source: pimhook.ErrorSourceFilter, OccurredAt: time.Unix(1700000000, 0)}},
					Deliveries: []*pimhook.Delivery{{ID: "msg_" + id, AppID: "app_1", WebhookID: "wh_1", EventID: id,
						EventName: "products.created", Status: status}},
				}, nil
			})
		return err
	}
	if err := ingest("evt_1", "err_1", ""); err != nil {
		t.Fatal(err)
	}
	release := blockWriter(t, s.w)
	taken, bad := make(chan error, 1), make(chan error, 1)
	go func() { taken <- ingest("evt_2", "err_1", "") }()
	waitQueued(t, s.w, 1)
	go func() { bad <- ingest("evt_3", "err_3", "bogus") }()
	waitQueued(t, s.w, 2)
	r, err := s.w.submit(t.Context(), insertCompany("co_2"))
	if err != nil {
		t.Fatal(err)
	}
	release()
	if err := <-taken; pimhook.ErrorKind(err) != pimhook.KindConflict {
		t.Errorf("ingest with a taken error-log ID: %v, want a conflict", err)
	}
	if err := <-bad; pimhook.ErrorCode(err) != pimhook.CodeValidation {
		t.Errorf("ingest of a delivery with an unknown status: %v, want a validation error", err)
	}
	if err := r.wait(); err != nil {
		t.Errorf("the request that shared its batch: %v", err)
	}
}

// TestSubmitAttemptTakesItsArguments: what SubmitAttempt stores, and what
// the queue cache learns, is the delivery and attempt as they were when it
// was called, whatever the caller does with them afterwards.
func TestSubmitAttemptTakesItsArguments(t *testing.T) {
	t.Parallel()
	s := openWithCompany(t)
	ingestOne(t, s, "co_1", "app_1", "evt_1")
	d := pendingFromSQL(t, s, "app_1", 0, 8)[0]
	checkQueue(t, s, "app_1", 0, 8) // the app's queue is known
	at := time.Unix(1700000000, 0)
	release := blockWriter(t, s.w)
	d.Status, d.Attempts, d.LastStatusCode, d.UpdatedAt, d.FinishedAt = pimhook.DeliverySucceeded, 1, 200, at, &at
	a := &pimhook.Attempt{ID: "att_1", DeliveryID: d.ID, Number: 1, StartedAt: at, StatusCode: 200, Succeeded: true}
	wait := s.SubmitAttempt(t.Context(), d, a)
	d.Status, d.Attempts, d.FinishedAt = pimhook.DeliveryPending, 7, nil
	a.StatusCode = 500
	release()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	stored, err := s.Delivery(t.Context(), "co_1", d.ID)
	if err != nil {
		t.Fatal(err)
	}
	var code int
	if err := s.rdb.QueryRowContext(t.Context(), `SELECT status_code FROM attempts WHERE id = 'att_1'`).Scan(&code); err != nil {
		t.Fatal(err)
	}
	if stored.Status != pimhook.DeliverySucceeded || stored.Attempts != 1 || code != 200 {
		t.Errorf("stored %s after %d attempts, attempt status %d; want succeeded, 1, 200", stored.Status, stored.Attempts, code)
	}
	checkQueue(t, s, "app_1", 0, 8)
}
