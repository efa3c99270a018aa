package dispatch_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pimhook/pimhook"
	"github.com/pimhook/pimhook/dispatch"
	"github.com/pimhook/pimhook/filter"
)

// TestRunawayFilterTrips checks that a condition that runs out of its
// budget is not run again for a while: fan-out runs in the store's write
// path, and a loop must not cost its budget on every event.
func TestRunawayFilterTrips(t *testing.T) {
	t.Parallel()
	clock := newFakeClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	engine := filter.New(filter.Config{Timeout: 50 * time.Millisecond})
	t.Cleanup(engine.Close)
	r := newRig(t, clock, 0, func(c *dispatch.Config) { c.Filters = engine })
	w := r.webhook(t, "http://127.0.0.1:1/", pimhook.RetryNone, 0, 0)
	w.FilterReducers = []pimhook.FilterReducer{{EventSlug: "*", Filter: &pimhook.Filter{Condition: "(v) => { while (true) {} }"}}}
	if err := r.cat.UpdateWebhook(context.Background(), w); err != nil {
		t.Fatal(err)
	}
	post := func(id string) pimhook.IngestResult {
		t.Helper()
		rs, err := r.d.Ingest(context.Background(), r.co, []*pimhook.Event{{
			EntityType: "products", EntityID: id, Action: pimhook.ActionCreated, Data: json.RawMessage(`{"a":1}`),
		}})
		if err != nil {
			t.Fatal(err)
		}
		return rs[0]
	}
	first := post("p1")
	if first.Deliveries != 0 || len(first.FilterErrors) != 1 || !strings.Contains(first.FilterErrors[0].Message, "budget") {
		t.Fatalf("first event: %+v, want no delivery and a budget error", first)
	}
	second := post("p2")
	if second.Deliveries != 0 || len(second.FilterErrors) != 1 || !strings.Contains(second.FilterErrors[0].Message, "not run again until 2030-01-01T00:01:00Z") {
		t.Errorf("second event within the cooldown: %+v, want the tripped error without a run", second)
	}
	clock.advanceTo(clock.Now().Add(61 * time.Second))
	third := post("p3")
	if len(third.FilterErrors) != 1 || strings.Contains(third.FilterErrors[0].Message, "not run again") {
		t.Errorf("after the cooldown: %+v, want the filter run (and time out) again", third)
	}
	entries, err := r.store.ErrorLog(context.Background(), pimhook.ErrorLogFilter{CompanyID: r.co.ID, Source: pimhook.ErrorSourceFilter})
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 3 || entries[0].WebhookID != w.ID || entries[0].EventID == "" {
		t.Errorf("error log: %d entries, first %+v; want one per event, with webhook and event", len(entries), entries[0])
	}
}
