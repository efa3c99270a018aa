package dispatch_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pimhook/pimhook"
	"github.com/pimhook/pimhook/dispatch"
)

// TestAutoDisable fails a webhook's attempts, with an injected clock, for
// longer than the disable period: the webhook is disabled and the event is
// in the error log; later deliveries are skipped. Re-enabled and recovered,
// the skipped and failed deliveries arrive in their original order.
func TestAutoDisable(t *testing.T) {
	t.Parallel()
	var up atomic.Bool
	var mu sync.Mutex
	var got []string
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		var p struct {
			EntityID string `json:"entity_id"`
		}
		_ = json.NewDecoder(r.Body).Decode(&p)
		mu.Lock()
		got = append(got, p.EntityID)
		mu.Unlock()
	}))
	defer recv.Close()
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	clock := newFakeClock(t0)
	r := newRig(t, clock, 0, func(c *dispatch.Config) { c.DisableAfter = 48 * time.Hour })
	w := r.webhook(t, recv.URL, pimhook.RetryLinear, 24*60*60, 3) // a retry a day
	ctx := context.Background()

	r.post(t, "p1", 1)
	// Attempts at day 0, 1 and 2: the third is 48h after the first failure.
	for range 2 {
		clock.advanceTo(clock.next(t))
	}
	waitUntil(t, func() bool {
		hook, err := r.store.Webhook(ctx, r.co.ID, w.ID)
		return err == nil && !hook.Enabled
	})
	hook, err := r.store.Webhook(ctx, r.co.ID, w.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(hook.DisabledReason, "48h0m0s") || hook.FailingSince == nil || !hook.FailingSince.Equal(t0) {
		t.Errorf("disabled webhook: reason %q, failing since %v; want the period and %v", hook.DisabledReason, hook.FailingSince, t0)
	}
	entries, err := r.store.ErrorLog(ctx, pimhook.ErrorLogFilter{CompanyID: r.co.ID, Source: pimhook.ErrorSourceHealth})
	if err != nil || len(entries) != 1 || entries[0].WebhookID != w.ID {
		t.Fatalf("error log of webhook health: %+v, %v; want one entry for %s", entries, err, w.ID)
	}
	// The head delivery is skipped at its last retry; new ones are skipped.
	clock.advanceTo(clock.next(t))
	r.post(t, "p2", 2)
	r.post(t, "p3", 3)
	waitUntil(t, func() bool {
		ds := r.deliveries(t, w.ID)
		return len(ds) == 3 && ds[0].Status == pimhook.DeliverySkipped && ds[1].Status == pimhook.DeliverySkipped && ds[2].Status == pimhook.DeliverySkipped
	})

	// The user re-enables the webhook and recovers the window.
	up.Store(true)
	hook.Enabled, hook.DisabledReason = true, ""
	if err := r.cat.UpdateWebhook(ctx, hook); err != nil {
		t.Fatal(err)
	}
	if hook, _ := r.store.Webhook(ctx, r.co.ID, w.ID); hook.FailingSince != nil {
		t.Errorf("re-enabled webhook still failing since %v", hook.FailingSince)
	}
	ds, err := r.d.Recover(ctx, r.co.ID, w.ID, t0.Add(-time.Hour), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 3 {
		t.Fatalf("recovered %d deliveries, want 3", len(ds))
	}
	waitUntil(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 3
	})
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(got, []string{"p1", "p2", "p3"}) {
		t.Errorf("receiver got %v, want p1, p2, p3", got)
	}
}

// TestHealthyWebhookStaysEnabled checks that a success resets the failing
// time: failures spread over longer than the period, each run shorter
// than it, disable nothing.
func TestHealthyWebhookStaysEnabled(t *testing.T) {
	t.Parallel()
	var n atomic.Int32
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%2 == 1 {
			http.Error(w, "down", http.StatusInternalServerError)
		}
	}))
	defer recv.Close()
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	clock := newFakeClock(t0)
	r := newRig(t, clock, 0, func(c *dispatch.Config) { c.DisableAfter = 36 * time.Hour })
	w := r.webhook(t, recv.URL, pimhook.RetryLinear, 24*60*60, 3)
	for i := range 3 {
		r.post(t, "p"+string(rune('a'+i)), i)
		clock.advanceTo(clock.next(t)) // fails now, succeeds a day later
		waitUntil(t, func() bool { return n.Load() == int32(2*(i+1)) })
	}
	// The last success is recorded after the receiver counted it.
	waitUntil(t, func() bool {
		ds := r.deliveries(t, w.ID)
		return len(ds) == 3 && ds[0].Status == pimhook.DeliverySucceeded
	})
	hook, err := r.store.Webhook(context.Background(), r.co.ID, w.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !hook.Enabled || hook.FailingSince != nil {
		t.Errorf("webhook enabled %v, failing since %v; want enabled and healthy", hook.Enabled, hook.FailingSince)
	}
}
