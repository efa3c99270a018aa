package dispatch_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pimhook/pimhook"
	"github.com/pimhook/pimhook/dispatch"
)

// failingSubmitter is a store whose first few submitted records fail
// without being written, as a commit that hit a full disk would.
type failingSubmitter struct {
	pimhook.Store
	sub   pimhook.AttemptSubmitter
	fails atomic.Int32
}

func (f *failingSubmitter) SubmitAttempt(ctx context.Context, d *pimhook.Delivery, a *pimhook.Attempt) func() error {
	if f.fails.Add(-1) >= 0 {
		return func() error { return errors.New("disk full") }
	}
	return f.sub.SubmitAttempt(ctx, d, a)
}

// TestFailedRecordIsWrittenAgain: when the record of a successful attempt
// fails after later deliveries of the app went out, it is written again
// before the app goes on, so the delivery is not left pending to be sent a
// second time after the later ones.
func TestFailedRecordIsWrittenAgain(t *testing.T) {
	t.Parallel()
	var (
		mu   sync.Mutex
		seen []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("webhook-id"))
		mu.Unlock()
	}))
	defer srv.Close()
	var flaky *failingSubmitter
	r := newRig(t, pimhook.SystemClock{}, 0, func(c *dispatch.Config) {
		inner := c.Catalog.Store
		flaky = &failingSubmitter{Store: inner, sub: inner.(pimhook.AttemptSubmitter)}
		flaky.fails.Store(2)
		c.Catalog = dispatch.NewCatalog(flaky)
	})
	w := r.webhook(t, srv.URL, pimhook.RetryExponential, 1, 3)
	for i := range 6 {
		r.post(t, "p"+string(rune('a'+i)), i)
	}
	ctx := context.Background()
	r.waitSucceeded(t, w.ID, 6)
	// Give a wrongly pending delivery time to go out again.
	time.Sleep(300 * time.Millisecond)
	if flaky.fails.Load() >= 0 {
		t.Fatal("no record failed: the test tested nothing")
	}
	ds := r.deliveries(t, w.ID)
	var want []string
	for _, d := range slices.Backward(ds) {
		want = append(want, d.ID)
		as, err := r.store.Attempts(ctx, d.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(as) != 1 || !as[0].Succeeded {
			t.Errorf("delivery %s has %d attempts, want one successful", d.ID, len(as))
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(seen, want) {
		t.Errorf("arrivals %v, want each delivery once in order %v", seen, want)
	}
}

// holdingSubmitter notes, at each submitted record, how many earlier
// records of the app were still held (submitted and not yet waited for).
type holdingSubmitter struct {
	pimhook.Store
	sub pimhook.AttemptSubmitter

	mu     sync.Mutex
	held   int
	atEach []int
}

func (h *holdingSubmitter) SubmitAttempt(ctx context.Context, d *pimhook.Delivery, a *pimhook.Attempt) func() error {
	h.mu.Lock()
	h.atEach = append(h.atEach, h.held)
	h.held++
	h.mu.Unlock()
	wait := h.sub.SubmitAttempt(ctx, d, a)
	return sync.OnceValue(func() error {
		h.mu.Lock()
		h.held--
		h.mu.Unlock()
		return wait()
	})
}

// TestHeldRecordsAreBounded: in a long turn a worker holds about two
// batches of records not yet waited for, and when it reaches that bound
// it waits for the oldest batch only.
func TestHeldRecordsAreBounded(t *testing.T) {
	t.Parallel()
	const batch, events = 4, 24
	gate := make(chan struct{})
	var first sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		first.Do(func() { <-gate }) // the rest of the queue builds up meanwhile
	}))
	defer srv.Close()
	var hs *holdingSubmitter
	r := newRig(t, pimhook.SystemClock{}, 0, func(c *dispatch.Config) {
		inner := c.Catalog.Store
		hs = &holdingSubmitter{Store: inner, sub: inner.(pimhook.AttemptSubmitter)}
		c.Catalog = dispatch.NewCatalog(hs)
		c.BatchSize = batch
	})
	w := r.webhook(t, srv.URL, pimhook.RetryExponential, 1, 3)
	for i := range events {
		r.post(t, "p"+string(rune('a'+i)), i)
	}
	close(gate)
	r.waitSucceeded(t, w.ID, events)
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if len(hs.atEach) != events {
		t.Fatalf("%d records submitted, want %d", len(hs.atEach), events)
	}
	// The bound is looked at before each read of the queue, so a read can
	// take the held records to just under three batches.
	for i, held := range hs.atEach {
		if held >= 3*batch {
			t.Errorf("record %d submitted while %d were held, want fewer than %d (%v)", i, held, 3*batch, hs.atEach)
			break
		}
		if i >= 3*batch && held < batch {
			t.Errorf("record %d submitted while %d were held: the worker waited for more than the older batch (%v)", i, held, hs.atEach)
			break
		}
	}
}

// waitSucceeded waits for n deliveries of webhook, all succeeded.
func (r *rig) waitSucceeded(t *testing.T, webhookID string, n int) {
	t.Helper()
	waitUntil(t, func() bool {
		ds := r.deliveries(t, webhookID)
		done := len(ds) == n
		for _, d := range ds {
			done = done && d.Status == pimhook.DeliverySucceeded
		}
		return done
	})
}
