package dispatch

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/pimhook/pimhook"
)

// TestSubscriptionIndex: the fan-out index gives, for every entity type,
// exactly the webhooks that subscribe to it, in the company's webhook order,
// and it follows writes to webhooks and apps.
func TestSubscriptionIndex(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	co, cat, d := newInternalDispatcher(t, nil)
	now := time.Now()
	app := &pimhook.App{ID: "app_1", CompanyID: co.ID, Name: "before", AppType: "generic", CreatedAt: now, UpdatedAt: now}
	if err := cat.CreateApp(ctx, app); err != nil {
		t.Fatal(err)
	}
	// Webhooks of every type are interleaved with typed ones, one names a
	// type twice, and a job webhook hears no entity events.
	specs := []struct {
		types []string
		job   string
	}{
		{types: []string{"products"}},
		{},
		{types: []string{"brands", "products", "products"}},
		{types: []string{"brands"}},
		{},
		{types: []string{"products"}, job: "644"},
		{types: []string{"categories"}},
	}
	for i, sp := range specs {
		w := &pimhook.Webhook{ID: pimhook.NewID(pimhook.PrefixWebhook, now), CompanyID: co.ID, AppID: app.ID,
			URL: "https://example.com/" + string(rune('a'+i)), Enabled: true, Secret: pimhook.NewSecret(), EntityTypes: sp.types, JobID: sp.job}
		if sp.job != "" {
			w.Format = pimhook.FormatJob
		}
		if err := w.Normalize(); err != nil {
			t.Fatal(err)
		}
		if err := cat.CreateWebhook(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	all, err := cat.webhooks(ctx, co.ID)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := d.subscriptions(ctx, co.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range []string{"products", "brands", "categories", "attributes"} {
		var want []string
		for _, w := range all.list {
			if w.Subscribes(typ, pimhook.ActionUpdated) {
				want = append(want, w.ID)
			}
		}
		var got []string
		for _, sub := range idx.forType(typ) {
			got = append(got, sub.hook.ID)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: index gives %v, want %v", typ, got, want)
		}
	}
	if n := len(idx.forType("products")); n != 4 {
		t.Errorf("products: %d subscriptions, want 4 (two typed, two of every type)", n)
	}

	// The index holds apps: renaming the app must reach fan-out.
	app.Name = "after"
	if err := cat.UpdateApp(ctx, app); err != nil {
		t.Fatal(err)
	}
	idx, err = d.subscriptions(ctx, co.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got := idx.forType("products")[0].app.Name; got != "after" {
		t.Errorf("after renaming the app the index holds app name %q, want %q", got, "after")
	}
	// A new webhook is indexed at once.
	w := &pimhook.Webhook{ID: pimhook.NewID(pimhook.PrefixWebhook, now), CompanyID: co.ID, AppID: app.ID,
		URL: "https://example.com/new", Enabled: true, Secret: pimhook.NewSecret(), EntityTypes: []string{"attributes"}}
	if err := w.Normalize(); err != nil {
		t.Fatal(err)
	}
	if err := cat.CreateWebhook(ctx, w); err != nil {
		t.Fatal(err)
	}
	if idx, err = d.subscriptions(ctx, co.ID); err != nil {
		t.Fatal(err)
	}
	if got := idx.forType("attributes"); len(got) != 3 || got[2].hook.ID != w.ID {
		t.Errorf("attributes after a new webhook: %d subscriptions, want the two of every type and the new one last", len(got))
	}
}
