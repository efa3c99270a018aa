package dispatch_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pimhook/pimhook"
	"github.com/pimhook/pimhook/dispatch"
)

// signalServer is a receiver that reports each request on a channel and answers
// with status.
func signalServer(t *testing.T, status int) (*httptest.Server, chan string) {
	t.Helper()
	ch := make(chan string, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ch <- r.URL.Path
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	return srv, ch
}

func arrives(t *testing.T, ch <-chan string, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not arrive", what)
	}
}

// TestPoolsSeparateApps: with one worker in the general pool and one in the
// shopware pool, a hanging receiver holds the general pool only; the
// dedicated app and the shopware app still get their deliveries, and the
// other general app waits for the pool's only worker.
func TestPoolsSeparateApps(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	hanging := make(chan string, 1)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hanging <- r.URL.Path
		<-release
	}))
	defer slow.Close()
	defer close(release)
	fast, got := signalServer(t, http.StatusOK)

	r := newRig(t, pimhook.SystemClock{}, 0, func(c *dispatch.Config) {
		c.SharedWorkers = 1
		c.TypeWorkers = map[string]int{"shopware": 1}
	})
	generic, dedicated := r.newApp(t, "generic", pimhook.WorkerShared), r.newApp(t, "generic", pimhook.WorkerDedicated)
	shop, other := r.newApp(t, "shopware", pimhook.WorkerShared), r.newApp(t, "erp", pimhook.WorkerShared)
	r.appWebhook(t, generic, "brands", slow.URL, pimhook.RetryNone, 0, 0)
	r.appWebhook(t, dedicated, "products", fast.URL+"/dedicated", pimhook.RetryNone, 0, 0)
	r.appWebhook(t, shop, "categories", fast.URL+"/shopware", pimhook.RetryNone, 0, 0)
	r.appWebhook(t, other, "assets", fast.URL+"/other", pimhook.RetryNone, 0, 0)

	r.postType(t, "brands", "b1", 1)
	arrives(t, hanging, "the hanging delivery")
	r.postType(t, "assets", "a1", 1)
	r.postType(t, "products", "p1", 1)
	r.postType(t, "categories", "c1", 1)
	seen := map[string]bool{}
	for range 2 {
		select {
		case p := <-got:
			seen[p] = true
		case <-time.After(10 * time.Second):
			t.Fatalf("only %v arrived while the general pool was held", seen)
		}
	}
	if !seen["/dedicated"] || !seen["/shopware"] {
		t.Fatalf("arrived %v, want the dedicated and the shopware app", seen)
	}
	select {
	case p := <-got:
		t.Fatalf("%s arrived although the general pool's only worker was busy", p)
	default:
	}
	release <- struct{}{}
	arrives(t, got, "the general app's delivery after the pool freed up")
}

// TestFailingHeadHoldsOnlyItsApp: a delivery waiting for its retry holds
// its app's queue, not the pool's worker.
func TestFailingHeadHoldsOnlyItsApp(t *testing.T) {
	t.Parallel()
	var failed atomic.Int32
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		failed.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer failing.Close()
	fast, got := signalServer(t, http.StatusOK)

	r := newRig(t, pimhook.SystemClock{}, 0, func(c *dispatch.Config) { c.SharedWorkers = 1 })
	bad, good := r.newApp(t, "generic", pimhook.WorkerShared), r.newApp(t, "generic", pimhook.WorkerShared)
	r.appWebhook(t, bad, "brands", failing.URL, pimhook.RetryLinear, 3600, 5)
	r.appWebhook(t, good, "products", fast.URL, pimhook.RetryNone, 0, 0)

	r.postType(t, "brands", "b1", 1)
	r.postType(t, "brands", "b2", 2)
	r.postType(t, "products", "p1", 1)
	arrives(t, got, "the healthy app's delivery")
	if n := failed.Load(); n != 1 {
		t.Errorf("failing receiver saw %d requests, want 1: its second delivery must wait behind the first", n)
	}
}

// TestGoneDisablesWebhook: a 410 fails the delivery, keeps the receiver's
// answer, disables the webhook, and the next delivery is skipped.
func TestGoneDisablesWebhook(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	gone := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusGone)
		_, _ = w.Write([]byte("endpoint retired"))
	}))
	defer gone.Close()
	r := newRig(t, pimhook.SystemClock{}, 0)
	w := r.webhook(t, gone.URL, pimhook.RetryLinear, 0.001, 5)
	r.post(t, "a", 1)
	r.post(t, "b", 2)
	var ds []*pimhook.Delivery
	waitUntil(t, func() bool {
		ds = r.deliveries(t, w.ID)
		return len(ds) == 2 && ds[0].Status != pimhook.DeliveryPending && ds[1].Status != pimhook.DeliveryPending
	})
	if ds[1].Status != pimhook.DeliveryFailed || ds[0].Status != pimhook.DeliverySkipped {
		t.Errorf("statuses = %s, %s; want failed, then skipped", ds[1].Status, ds[0].Status)
	}
	atts, err := r.store.Attempts(context.Background(), ds[1].ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(atts) != 1 || atts[0].StatusCode != http.StatusGone || atts[0].ResponseBody != "endpoint retired" {
		t.Errorf("attempts = %+v, want one 410 with the receiver's body", atts)
	}
	got, err := r.store.Webhook(context.Background(), r.co.ID, w.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Enabled || !strings.Contains(got.DisabledReason, "410") {
		t.Errorf("webhook enabled=%v reason=%q, want disabled for the 410", got.Enabled, got.DisabledReason)
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("receiver saw %d requests, want 1", n)
	}
}

// TestRetryAfterHonoured: a 429 with Retry-After postpones the retry past the
// policy's own interval.
func TestRetryAfterHonoured(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) == 1 {
			w.Header().Set("Retry-After", "120")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := newFakeClock(t0)
	r := newRig(t, clock, 0)
	w := r.webhook(t, srv.URL, pimhook.RetryLinear, 1, 3)
	r.post(t, "a", 1)
	due := clock.next(t)
	if want := t0.Add(120 * time.Second); !due.Equal(want) {
		t.Fatalf("retry due at +%v, want +120s from Retry-After", due.Sub(t0))
	}
	clock.advanceTo(due)
	waitUntil(t, func() bool {
		ds := r.deliveries(t, w.ID)
		return len(ds) == 1 && ds[0].Status == pimhook.DeliverySucceeded && ds[0].Attempts == 2
	})
}

// TestFailedResponseBodyCapped: the attempt log keeps at most 64 KiB of a
// failed attempt's response.
func TestFailedResponseBodyCapped(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(strings.Repeat("x", 200<<10)))
	}))
	defer srv.Close()
	r := newRig(t, pimhook.SystemClock{}, 0)
	w := r.webhook(t, srv.URL, pimhook.RetryNone, 0, 0)
	r.post(t, "a", 1)
	var ds []*pimhook.Delivery
	waitUntil(t, func() bool {
		ds = r.deliveries(t, w.ID)
		return len(ds) == 1 && ds[0].Status == pimhook.DeliveryFailed
	})
	atts, err := r.store.Attempts(context.Background(), ds[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(atts) != 1 || len(atts[0].ResponseBody) != pimhook.ResponseBodyCap || atts[0].StatusCode != http.StatusBadRequest {
		t.Fatalf("attempt kept %d bytes (status %d), want %d", len(atts[0].ResponseBody), atts[0].StatusCode, pimhook.ResponseBodyCap)
	}
}

// TestTurnsYieldToWaitingApps: an app with a long queue gives up the
// pool's only worker after its turn, once another app waits for it.
func TestTurnsYieldToWaitingApps(t *testing.T) {
	t.Parallel()
	var (
		mu    sync.Mutex
		order []string
	)
	gate := make(chan struct{})
	first := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/long" {
			select {
			case first <- struct{}{}:
				<-gate // the first delivery holds the worker until the other app waits
			default:
			}
		}
		mu.Lock()
		order = append(order, r.URL.Path)
		mu.Unlock()
	}))
	defer srv.Close()

	r := newRig(t, pimhook.SystemClock{}, 0, func(c *dispatch.Config) {
		c.SharedWorkers = 1
		c.Turn = 2
	})
	long, short := r.newApp(t, "generic", pimhook.WorkerShared), r.newApp(t, "generic", pimhook.WorkerShared)
	r.appWebhook(t, long, "products", srv.URL+"/long", pimhook.RetryNone, 0, 0)
	r.appWebhook(t, short, "brands", srv.URL+"/short", pimhook.RetryNone, 0, 0)
	for i := range 6 {
		r.postType(t, "products", fmt.Sprint("p", i), i)
	}
	<-first
	r.postType(t, "brands", "b", 1)
	close(gate)
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(order)
		mu.Unlock()
		if n == 7 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of 7 deliveries arrived", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	got := strings.Join(order, " ")
	mu.Unlock()
	if want := "/long /long /short /long /long /long /long"; got != want {
		t.Errorf("arrival order %q, want %q: the waiting app goes after the long app's turn of 2", got, want)
	}
}
