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
	deadline := time.Now().Add(15 * time.Second)
	for {
		ds := r.deliveries(t, w.ID)
		done := len(ds) == 6
		for _, d := range ds {
			done = done && d.Status == pimhook.DeliverySucceeded
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deliveries not all succeeded: %d stored", len(ds))
		}
		time.Sleep(20 * time.Millisecond)
	}
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
