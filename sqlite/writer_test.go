package sqlite

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/pimhook/pimhook"
)

// openDelayed opens a store whose lazy batches wait an hour for company:
// whatever ends the wait sooner is what a test looks at.
func openDelayed(t *testing.T, maxBatch int) *Store {
	t.Helper()
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "pimhook.db"), Options{RecordDelay: time.Hour, MaxBatch: maxBatch})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

func submitLazy(t *testing.T, w *writer, fn writeFunc) *writeRequest {
	t.Helper()
	r, err := w.submitWith(t.Context(), fn, writeOpts{lazy: true, change: func(*queueCache) {}})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// within runs f and fails the test if it returns an error or takes longer
// than 10s, which what runs describes.
func within(t *testing.T, what string, f func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: not done after 10s", what)
	}
}

// lingering gives the writer time to take rs and start waiting for
// company, and fails if any of them has been committed meanwhile.
func lingering(t *testing.T, rs ...*writeRequest) {
	t.Helper()
	time.Sleep(50 * time.Millisecond)
	for i, r := range rs {
		if len(r.done) > 0 {
			t.Fatalf("lazy request %d committed without waiting for company", i+1)
		}
	}
}

func companiesStored(t *testing.T, s *Store, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if _, err := s.Company(t.Context(), id); err != nil {
			t.Errorf("company %s: %v", id, err)
		}
	}
}

func TestLazyRequestsShareACommit(t *testing.T) {
	t.Parallel()
	s := openDelayed(t, 0)
	before := s.w.batches.Load()
	r1 := submitLazy(t, s.w, insertCompany("co_a"))
	r2 := submitLazy(t, s.w, insertCompany("co_b"))
	lingering(t, r1, r2)
	// A request somebody waits for ends the wait, and takes the lazy ones
	// into its commit.
	within(t, "a request somebody waits for", func() error { return s.w.do(t.Context(), insertCompany("co_c")) })
	within(t, "first lazy request", r1.wait)
	within(t, "second lazy request", r2.wait)
	if n := s.w.batches.Load() - before; n != 1 {
		t.Errorf("%d commits, want 1", n)
	}
	companiesStored(t, s, "co_a", "co_b", "co_c")
}

func TestWaitingEndsTheDelay(t *testing.T) {
	t.Parallel()
	s := openDelayed(t, 0)
	if err := s.CreateCompany(t.Context(), newCompany("co_1")); err != nil {
		t.Fatal(err)
	}
	ingestOne(t, s, "co_1", "app_1", "evt_1")
	d := pendingFromSQL(t, s, "app_1", 0, 8)[0]
	now := time.Unix(1700000000, 0)
	d.Status, d.Attempts, d.LastStatusCode, d.UpdatedAt, d.FinishedAt = pimhook.DeliverySucceeded, 1, 200, now, &now
	a := &pimhook.Attempt{ID: "att_1", DeliveryID: d.ID, Number: 1, StartedAt: now, StatusCode: 200, Succeeded: true}
	before := s.w.requests.Load()
	wait := s.SubmitAttempt(t.Context(), d, a)
	time.Sleep(50 * time.Millisecond) // the writer holds the record back
	if n := s.w.requests.Load() - before; n != 0 {
		t.Fatalf("%d requests committed without waiting for company", n)
	}
	within(t, "a record somebody waits for", wait)
	stored, err := s.Delivery(t.Context(), "co_1", d.ID)
	if err != nil {
		t.Fatal(err)
	}
	if stored.Status != pimhook.DeliverySucceeded {
		t.Errorf("stored %s, want succeeded", stored.Status)
	}
	checkQueue(t, s, "app_1", 0, 8)
}

func TestCloseEndsTheDelay(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "pimhook.db")
	s, err := Open(t.Context(), path, Options{RecordDelay: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	r := submitLazy(t, s.w, insertCompany("co_a"))
	lingering(t, r)
	within(t, "Close while a lazy batch waits", s.Close)
	within(t, "lazy request", r.wait)
	companiesStored(t, openTest(t, path), "co_a")
}

// TestWaiterBeforeTheBatch: a caller who starts waiting for a lazy request
// while the writer is busy with an earlier batch is not kept waiting when
// the request's own batch comes, though its poke came while nobody
// lingered.
func TestWaiterBeforeTheBatch(t *testing.T) {
	t.Parallel()
	s := openDelayed(t, 0)
	release := blockWriter(t, s.w)
	r := submitLazy(t, s.w, insertCompany("co_a"))
	done := make(chan error, 1)
	go func() { done <- r.wait() }()
	waitUntil(t, "the caller waiting", func() bool { return s.w.waiting.Load() > 0 })
	release()
	within(t, "a lazy request waited for before its batch", func() error { return <-done })
	companiesStored(t, s, "co_a")
}

// TestFullQueueEndsTheDelay: a request that finds the queue full while a
// lazy batch waits for company ends the wait instead of waiting it out.
func TestFullQueueEndsTheDelay(t *testing.T) {
	t.Parallel()
	const maxBatch = 4
	s := openDelayed(t, maxBatch)
	rs := []*writeRequest{submitLazy(t, s.w, insertCompany("co_0"))}
	lingering(t, rs[0])
	for i := 1; i <= maxBatch; i++ { // fills the queue
		rs = append(rs, submitLazy(t, s.w, insertCompany(fmt.Sprint("co_", i))))
	}
	within(t, "a submit that finds the queue full", func() error {
		r, err := s.w.submitWith(t.Context(), insertCompany("co_last"), writeOpts{lazy: true, change: func(*queueCache) {}})
		rs = append(rs, r)
		return err
	})
	for i, r := range rs {
		within(t, fmt.Sprint("lazy request ", i), r.wait)
	}
	companiesStored(t, s, "co_0", "co_4", "co_last")
}
