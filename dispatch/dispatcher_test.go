package dispatch_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pimhook/pimhook"
	"github.com/pimhook/pimhook/dispatch"
	"github.com/pimhook/pimhook/sqlite"
)

// fakeClock is a pimhook.Clock that moves only when told to.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
	added  chan struct{} // a token each time a timer is scheduled
}

type fakeTimer struct {
	at      time.Time
	f       func()
	stopped bool
}

func newFakeClock(t0 time.Time) *fakeClock {
	return &fakeClock{now: t0, added: make(chan struct{}, 1024)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) func() bool {
	c.mu.Lock()
	tm := &fakeTimer{at: c.now.Add(d), f: f}
	c.timers = append(c.timers, tm)
	c.mu.Unlock()
	c.added <- struct{}{}
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		was := !tm.stopped
		tm.stopped = true
		return was
	}
}

// next waits until a timer is scheduled and returns when it is due.
func (c *fakeClock) next(t *testing.T) time.Time {
	t.Helper()
	select {
	case <-c.added:
	case <-time.After(10 * time.Second):
		t.Fatal("no retry was scheduled")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	sort.Slice(c.timers, func(i, j int) bool { return c.timers[i].at.Before(c.timers[j].at) })
	for _, tm := range c.timers {
		if !tm.stopped {
			return tm.at
		}
	}
	t.Fatal("timer scheduled but none pending")
	return time.Time{}
}

// advanceTo moves the clock to at and fires the timers due by then.
func (c *fakeClock) advanceTo(at time.Time) {
	c.mu.Lock()
	c.now = at
	var due []*fakeTimer
	rest := c.timers[:0]
	for _, tm := range c.timers {
		switch {
		case tm.stopped:
		case !tm.at.After(at):
			due = append(due, tm)
		default:
			rest = append(rest, tm)
		}
	}
	c.timers = rest
	c.mu.Unlock()
	for _, tm := range due {
		go tm.f()
	}
}

// rig is a dispatcher on a real SQLite file, with a receiver.
type rig struct {
	store *sqlite.Store
	cat   *dispatch.Catalog
	d     *dispatch.Dispatcher
	co    *pimhook.Company
	app   *pimhook.App
}

func newRig(t *testing.T, clock pimhook.Clock, jitter float64, mutate ...func(*dispatch.Config)) *rig {
	t.Helper()
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "pimhook.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	now := clock.Now()
	co := &pimhook.Company{ID: "co_test", Name: "Test", CreatedAt: now}
	if err := s.CreateCompany(ctx, co); err != nil {
		t.Fatal(err)
	}
	app := &pimhook.App{ID: "app_test", CompanyID: co.ID, Name: "shop", AppType: "generic", Worker: pimhook.WorkerShared, CreatedAt: now, UpdatedAt: now}
	if err := s.CreateApp(ctx, app); err != nil {
		t.Fatal(err)
	}
	cat := dispatch.NewCatalog(s)
	cfg := dispatch.Config{
		Catalog: cat,
		Client:  dispatch.NewClient(dispatch.ClientConfig{Guard: dispatch.NewGuard([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")})}),
		Clock:   clock,
		Jitter:  func() float64 { return jitter },
	}
	for _, f := range mutate {
		f(&cfg)
	}
	d, err := dispatch.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop(context.Background()) })
	return &rig{store: s, cat: cat, d: d, co: co, app: app}
}

// newApp adds an app to the rig's company.
func (r *rig) newApp(t *testing.T, appType, worker string) *pimhook.App {
	t.Helper()
	now := time.Now()
	a := &pimhook.App{ID: pimhook.NewID(pimhook.PrefixApp, now), CompanyID: r.co.ID, Name: appType + " " + worker, AppType: appType, Worker: worker, CreatedAt: now, UpdatedAt: now}
	if err := r.cat.CreateApp(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	return a
}

func (r *rig) webhook(t *testing.T, url, policy string, interval float64, limit int) *pimhook.Webhook {
	return r.appWebhook(t, r.app, "", url, policy, interval, limit)
}

// appWebhook adds a webhook of app a for one entity type ("" for all).
func (r *rig) appWebhook(t *testing.T, a *pimhook.App, entityType, url, policy string, interval float64, limit int) *pimhook.Webhook {
	t.Helper()
	now := time.Now()
	w := &pimhook.Webhook{
		ID: pimhook.NewID(pimhook.PrefixWebhook, now), CompanyID: r.co.ID, AppID: a.ID, URL: url,
		RetryPolicy: policy, MinimumRetryInterval: interval, RetryLimit: limit, Enabled: true,
		Secret: pimhook.NewSecret(), CreatedAt: now, UpdatedAt: now,
	}
	if entityType != "" {
		w.EntityTypes = []string{entityType}
	}
	if err := w.Normalize(); err != nil {
		t.Fatal(err)
	}
	if err := r.cat.CreateWebhook(context.Background(), w); err != nil {
		t.Fatal(err)
	}
	return w
}

func (r *rig) post(t *testing.T, id string, seq int) {
	t.Helper()
	r.postType(t, "products", id, seq)
}

func (r *rig) postType(t *testing.T, entityType, id string, seq int) {
	t.Helper()
	data, _ := json.Marshal(map[string]int{"seq": seq})
	_, err := r.d.Ingest(context.Background(), r.co, []*pimhook.Event{{
		EntityType: entityType, EntityID: id, Action: pimhook.ActionCreated, Data: data,
	}})
	if err != nil {
		t.Fatal(err)
	}
}

func (r *rig) deliveries(t *testing.T, webhookID string) []*pimhook.Delivery {
	t.Helper()
	ds, err := r.store.Deliveries(context.Background(), pimhook.DeliveryFilter{CompanyID: r.co.ID, WebhookID: webhookID, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

// TestRetrySchedules checks that each retry policy makes its attempts at the
// times it promises, honours retry_limit, marks the exhausted delivery failed
// and lets the app's queue move on.
func TestRetrySchedules(t *testing.T) {
	t.Parallel()
	sec := func(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
	tests := []struct {
		name     string
		policy   string
		interval float64
		limit    int
		jitter   float64
		gaps     []time.Duration // between consecutive attempts
	}{
		{"no_retry", pimhook.RetryNone, 30, 5, 0, nil},
		{"linear", pimhook.RetryLinear, 300, 3, 0, []time.Duration{sec(300), sec(300), sec(300)}},
		{"exponential", pimhook.RetryExponential, 10, 4, 0, []time.Duration{sec(10), sec(20), sec(40), sec(80)}},
		{"exponential jittered", pimhook.RetryExponential, 10, 3, 0.05, []time.Duration{sec(10.5), sec(21), sec(42)}},
		{"exponential capped", pimhook.RetryExponential, 50000, 2, 0, []time.Duration{sec(50000), sec(pimhook.MaxRetryInterval)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var hits atomic.Int32
			failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				var p struct {
					Data struct{ Seq int } `json:"data"`
				}
				_ = json.NewDecoder(r.Body).Decode(&p)
				hits.Add(1)
				http.Error(w, "down", http.StatusInternalServerError)
			}))
			defer failing.Close()
			t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
			clock := newFakeClock(t0)
			r := newRig(t, clock, tt.jitter)
			w := r.webhook(t, failing.URL, tt.policy, tt.interval, tt.limit)

			r.post(t, "first", 1)
			at := t0
			for i, gap := range tt.gaps {
				due := clock.next(t)
				if want := at.Add(gap); !due.Equal(want) {
					t.Fatalf("retry %d due at +%v, want +%v", i+1, due.Sub(t0), want.Sub(t0))
				}
				at = due
				clock.advanceTo(due)
			}
			// The exhausted delivery is failed, and the queue moved on to
			// the next delivery (which also fails its first attempt).
			r.post(t, "second", 2)
			var first *pimhook.Delivery
			waitUntil(t, func() bool {
				ds := r.deliveries(t, w.ID)
				if len(ds) != 2 {
					return false
				}
				first = ds[1]
				return first.Status == pimhook.DeliveryFailed && ds[0].Attempts >= 1
			})
			atts, err := r.store.Attempts(context.Background(), first.ID)
			if err != nil {
				t.Fatal(err)
			}
			if len(atts) != len(tt.gaps)+1 || first.Attempts != len(tt.gaps)+1 {
				t.Fatalf("%d attempts recorded (delivery says %d), want %d", len(atts), first.Attempts, len(tt.gaps)+1)
			}
			want := t0
			for i, a := range atts {
				if i > 0 {
					want = want.Add(tt.gaps[i-1])
				}
				if !a.StartedAt.Equal(want) || a.Number != i+1 || a.StatusCode != 500 || a.Succeeded {
					t.Errorf("attempt %d: started +%v status %d number %d, want +%v 500", i+1, a.StartedAt.Sub(t0), a.StatusCode, a.Number, want.Sub(t0))
				}
			}
		})
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in time")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
