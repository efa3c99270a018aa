package postgres

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/pimhook/pimhook"
)

// blockIngest occupies the only ingest worker of s until the returned
// function is called, so that calls made meanwhile queue up and share the
// next transaction.
func blockIngest(t *testing.T, s *Store) (release func()) {
	t.Helper()
	started, unblock, finished := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		ev := &pimhook.Event{ID: pimhook.NewID(pimhook.PrefixEvent, time.Now()), EntityType: "products", EntityID: "blocker",
			Action: pimhook.ActionCreated}
		_, err := s.Ingest(context.Background(), "co_1", []*pimhook.Event{ev}, func(ev *pimhook.Event, _ *pimhook.Entity) (pimhook.Decision, error) {
			close(started)
			<-unblock
			ev.EffectiveAction, ev.Revision = ev.Action, 1
			return pimhook.Decision{Unchanged: true}, nil
		})
		finished <- err
	}()
	<-started
	return func() {
		close(unblock)
		if err := <-finished; err != nil {
			t.Errorf("blocking call: %v", err)
		}
	}
}

// waitQueued waits until n calls wait for the worker.
func waitQueued(t *testing.T, s *Store, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.ingestQ.mu.Lock()
		queued := len(s.ingestQ.waiting)
		s.ingestQ.mu.Unlock()
		if queued >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d calls queued, want %d", queued, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// upsert returns a decider that stores the event's data as the entity's
// next revision with one delivery, of ID deliveryID when it is set.
func upsert(deliveryID string, err error) pimhook.Decider {
	return func(ev *pimhook.Event, stored *pimhook.Entity) (pimhook.Decision, error) {
		if err != nil {
			return pimhook.Decision{}, err
		}
		ev.EffectiveAction, ev.Revision = ev.Action, 1
		if stored != nil {
			ev.Revision = stored.Revision + 1
		}
		id := deliveryID
		if id == "" {
			id = "msg_" + ev.ID
		}
		d := &pimhook.Delivery{ID: id, AppID: "app_1", WebhookID: "wh_1", EventID: ev.ID, EventName: ev.Name(), Payload: ev.Data}
		return pimhook.Decision{Entity: &pimhook.Entity{Data: ev.Data, Revision: ev.Revision}, Deliveries: []*pimhook.Delivery{d}}, nil
	}
}

// batchCall is an Ingest call queued behind blockIngest.
type batchCall struct {
	name   string
	ctx    context.Context
	events []*pimhook.Event
	decide pimhook.Decider
}

// batchOutcome is what an Ingest call returned.
type batchOutcome struct {
	rs  []pimhook.IngestResult
	err error
}

// runQueued queues calls, in order, behind blockIngest, then lets them run,
// and returns their outcomes by name and how many transactions they took.
func runQueued(t *testing.T, s *Store, calls []batchCall, beforeRelease func()) (map[string]batchOutcome, int64) {
	t.Helper()
	release := blockIngest(t, s)
	outcomes := make([]chan batchOutcome, len(calls))
	for i, c := range calls {
		outcomes[i] = make(chan batchOutcome, 1)
		go func() {
			rs, err := s.Ingest(c.ctx, "co_1", c.events, c.decide)
			outcomes[i] <- batchOutcome{rs, err}
		}()
		waitQueued(t, s, i+1) // in this order
	}
	if beforeRelease != nil {
		beforeRelease()
	}
	txs := s.ingestTxs.Load()
	release()
	got := map[string]batchOutcome{}
	for i, c := range calls {
		got[c.name] = <-outcomes[i]
	}
	return got, s.ingestTxs.Load() - txs
}

func batchEvent(id, entity, data, fingerprint string) *pimhook.Event {
	return &pimhook.Event{ID: id, EntityType: "products", EntityID: entity, Action: pimhook.ActionUpdated,
		Data: []byte(data), Fingerprint: fingerprint}
}

// TestBatchIsolatesFailures queues calls that share one transaction: each
// gets the outcome it would have had alone, in queue order.
func TestBatchIsolatesFailures(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := openIn(t, newSchema(t), Options{IngestWorkers: 1})
	if err := s.CreateCompany(ctx, newCompany("co_1")); err != nil {
		t.Fatal(err)
	}
	errDecide := errors.New("decide failed")
	cancelled, cancel := context.WithCancel(ctx)
	got, txs := runQueued(t, s, []batchCall{
		{"first", ctx, []*pimhook.Event{batchEvent("evt_a", "p1", `{"n":1}`, "fa")}, upsert("", nil)},
		{"decide fails", ctx, []*pimhook.Event{batchEvent("evt_b1", "p1", `{"n":9}`, "fb"), batchEvent("evt_b2", "p2", `{}`, "fb2")}, upsert("", errDecide)},
		{"reused id", ctx, []*pimhook.Event{batchEvent("evt_c", "p3", `{}`, "fc"), batchEvent("evt_a", "p9", `{}`, "other")}, upsert("", nil)},
		{"retry", ctx, []*pimhook.Event{batchEvent("evt_a", "p1", `{"n":1}`, "fa")}, upsert("", nil)},
		{"cancelled", cancelled, []*pimhook.Event{batchEvent("evt_f", "p6", `{}`, "ff")}, upsert("", nil)},
		{"second", ctx, []*pimhook.Event{batchEvent("evt_g", "p1", `{"n":2}`, "fg")}, upsert("", nil)},
	}, cancel)
	if txs != 1 {
		t.Errorf("the queued calls took %d transactions, want 1", txs)
	}
	if o := got["first"]; o.err != nil || o.rs[0].Status != pimhook.IngestAccepted || o.rs[0].Revision != 1 {
		t.Errorf("first: %+v, %v", o.rs, o.err)
	}
	if o := got["decide fails"]; !errors.Is(o.err, errDecide) {
		t.Errorf("decide fails: %+v, %v", o.rs, o.err)
	}
	if o := got["reused id"]; pimhook.ErrorCode(o.err) != pimhook.CodeIdempotencyReuse {
		t.Errorf("reused id: %+v, %v", o.rs, o.err)
	}
	if o := got["retry"]; o.err != nil || o.rs[0].Status != pimhook.IngestDuplicate || o.rs[0].Revision != 1 {
		t.Errorf("retry: %+v, %v", o.rs, o.err)
	}
	if o := got["cancelled"]; !errors.Is(o.err, context.Canceled) {
		t.Errorf("cancelled: %+v, %v", o.rs, o.err)
	}
	// The failed calls left nothing: the second update of p1 is its
	// revision 2, and their entities do not exist.
	if o := got["second"]; o.err != nil || o.rs[0].Revision != 2 {
		t.Errorf("second: %+v, %v", o.rs, o.err)
	}
	for _, id := range []string{"p2", "p3", "p6", "p9"} {
		if _, err := s.Entity(ctx, "co_1", "products", id); !pimhook.IsNotFound(err) {
			t.Errorf("entity %s of a failed call: %v", id, err)
		}
	}

	// A call the database refuses (its delivery ID is taken) fails the
	// transaction: the calls run again one by one, and it fails alone.
	got, txs = runQueued(t, s, []batchCall{
		{"before", ctx, []*pimhook.Event{batchEvent("evt_h", "p1", `{"n":3}`, "fh")}, upsert("", nil)},
		{"delivery exists", ctx, []*pimhook.Event{batchEvent("evt_i", "p5", `{}`, "fi")}, upsert("msg_evt_a", nil)},
		{"after", ctx, []*pimhook.Event{batchEvent("evt_j", "p1", `{"n":4}`, "fj")}, upsert("", nil)},
	}, nil)
	if txs != 4 {
		t.Errorf("a failed transaction of 3 calls: %d transactions in all, want 4", txs)
	}
	if o := got["delivery exists"]; pimhook.ErrorKind(o.err) != pimhook.KindConflict {
		t.Errorf("delivery exists: %+v, %v", o.rs, o.err)
	}
	if o := got["before"]; o.err != nil || o.rs[0].Revision != 3 {
		t.Errorf("before: %+v, %v", o.rs, o.err)
	}
	if o := got["after"]; o.err != nil || o.rs[0].Revision != 4 {
		t.Errorf("after: %+v, %v", o.rs, o.err)
	}
	ds, err := s.PendingDeliveries(ctx, "app_1", 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"msg_evt_a", "msg_evt_g", "msg_evt_h", "msg_evt_j"}
	if fmt.Sprint(ids2(ds)) != fmt.Sprint(want) {
		t.Errorf("queue: %v, want %v", ids2(ds), want)
	}
}

// TestCloseFinishesQueuedCalls closes a store while calls wait for its
// worker: they commit, and calls made after Close are refused.
func TestCloseFinishesQueuedCalls(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, err := Open(ctx, testURL(), Options{Schema: newSchema(t), IngestWorkers: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateCompany(ctx, newCompany("co_1")); err != nil {
		t.Fatal(err)
	}
	release := blockIngest(t, s)
	errs := make(chan error, 5)
	for i := range cap(errs) {
		go func() {
			_, err := tryIngestOne(s, "co_1", "app_1", fmt.Sprint("evt_", i))
			errs <- err
		}()
	}
	waitQueued(t, s, cap(errs))
	closed := make(chan error)
	go func() { closed <- s.Close() }()
	for {
		s.ingestQ.mu.Lock()
		stopped := s.ingestQ.closed
		s.ingestQ.mu.Unlock()
		if stopped {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := tryIngestOne(s, "co_1", "app_1", "evt_late"); pimhook.ErrorKind(err) != pimhook.KindUnavailable {
		t.Errorf("ingest after Close: %v", err)
	}
	release()
	if err := <-closed; err != nil {
		t.Fatalf("close: %v", err)
	}
	for range cap(errs) {
		if err := <-errs; err != nil {
			t.Errorf("queued call: %v", err)
		}
	}
	s = openIn(t, s.schema, Options{})
	ds, err := s.PendingDeliveries(ctx, "app_1", 0, 100)
	if err != nil || len(ds) != cap(errs) {
		t.Errorf("deliveries after reopen: %d, %v; want %d", len(ds), err, cap(errs))
	}
}
