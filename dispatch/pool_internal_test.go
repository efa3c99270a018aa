package dispatch

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pimhook/pimhook"
	"github.com/pimhook/pimhook/sqlite"
)

// TestIdleAppsLeaveNothingBehind: once an app's queue is empty the
// dispatcher forgets it, and a dedicated app's worker ends with its work.
func TestIdleAppsLeaveNothingBehind(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer recv.Close()
	co, cat, d := newInternalDispatcher(t, NewGuard([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}))
	now := time.Now()
	for range 5 {
		a := &pimhook.App{ID: pimhook.NewID(pimhook.PrefixApp, now), CompanyID: co.ID, Name: "d", AppType: "generic", Worker: pimhook.WorkerDedicated, CreatedAt: now, UpdatedAt: now}
		if err := cat.CreateApp(ctx, a); err != nil {
			t.Fatal(err)
		}
		w := &pimhook.Webhook{ID: pimhook.NewID(pimhook.PrefixWebhook, now), CompanyID: co.ID, AppID: a.ID, URL: recv.URL, Enabled: true, Secret: pimhook.NewSecret(), EntityTypes: []string{"products"}}
		if err := w.Normalize(); err != nil {
			t.Fatal(err)
		}
		if err := cat.CreateWebhook(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.Ingest(ctx, co, []*pimhook.Event{{EntityType: "products", EntityID: "1", Action: pimhook.ActionCreated, Data: []byte(`{"a":1}`)}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		d.mu.Lock()
		apps, dedicated := len(d.apps), 0
		for name := range d.pools {
			if strings.HasPrefix(name, dedicatedPool) {
				dedicated++
			}
		}
		d.mu.Unlock()
		pending, err := cat.PendingApps(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if apps == 0 && dedicated == 0 && len(pending) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the work: %d apps remembered, %d dedicated pools, %d apps pending", apps, dedicated, len(pending))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// newInternalDispatcher is a dispatcher, not started, on a real SQLite file
// with one company; the test's cleanup stops it and closes the store.
func newInternalDispatcher(t *testing.T, guard *Guard) (*pimhook.Company, *Catalog, *Dispatcher) {
	t.Helper()
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "pimhook.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	co := &pimhook.Company{ID: "co", Name: "co", CreatedAt: time.Now()}
	if err := s.CreateCompany(ctx, co); err != nil {
		t.Fatal(err)
	}
	cat := NewCatalog(s)
	d, err := New(Config{Catalog: cat, Client: NewClient(ClientConfig{Guard: guard})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop(ctx) })
	return co, cat, d
}
