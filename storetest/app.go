package storetest

import (
	"cmp"
	"slices"
	"testing"

	"github.com/pimhook/pimhook"
)

var appCases = []testCase{
	{"RoundTrip", testAppRoundTrip},
	{"Update", testAppUpdate},
	{"Default", testAppDefault},
	{"Scoping", testAppScoping},
	{"CreateErrors", testAppCreateErrors},
	{"Delete", testAppDelete},
}

func testAppRoundTrip(t *testing.T, s pimhook.Store) {
	ctx := t.Context()
	c := newCompany(t, s, "Acme")
	var want []*pimhook.App
	for i, typ := range []string{"shopware", "magento", "generic"} {
		a := &pimhook.App{
			ID: pimhook.NewID(pimhook.PrefixApp, at(i)), CompanyID: c.ID, Name: "app " + typ,
			AppType: typ, Worker: []string{pimhook.WorkerShared, pimhook.WorkerDedicated}[i%2], IsDefault: i == 1,
			CreatedAt: at(10 - i), UpdatedAt: at(20 + i),
		}
		if err := s.CreateApp(ctx, a); err != nil {
			t.Fatalf("create app: %v", err)
		}
		want = append(want, a)
	}
	for _, a := range want {
		got, err := s.App(ctx, c.ID, a.ID)
		if err != nil {
			t.Fatalf("app: %v", err)
		}
		wantSame(t, "app", a, got)
		got, err = s.AppByID(ctx, a.ID)
		if err != nil {
			t.Fatalf("app by id: %v", err)
		}
		wantSame(t, "app by id", a, got)
	}
	got, err := s.Apps(ctx, c.ID)
	if err != nil {
		t.Fatalf("apps: %v", err)
	}
	byID := func(a, b *pimhook.App) int { return cmp.Compare(a.ID, b.ID) }
	slices.SortFunc(got, byID)
	slices.SortFunc(want, byID)
	wantSame(t, "apps", want, got)
}

func testAppUpdate(t *testing.T, s pimhook.Store) {
	ctx := t.Context()
	c := newCompany(t, s, "Acme")
	a := newApp(t, s, c.ID, false)
	upd := *a
	upd.Name, upd.AppType, upd.Worker, upd.IsDefault, upd.UpdatedAt = "erp", "generic", pimhook.WorkerShared, true, at(60)
	if err := s.UpdateApp(ctx, &upd); err != nil {
		t.Fatalf("update app: %v", err)
	}
	got, err := s.App(ctx, c.ID, a.ID)
	if err != nil {
		t.Fatalf("app: %v", err)
	}
	wantSame(t, "updated app", &upd, got)

	missing := upd
	missing.ID = pimhook.NewID(pimhook.PrefixApp, base)
	wantError(t, "update missing app", s.UpdateApp(ctx, &missing), pimhook.KindNotFound, pimhook.CodeAppNotFound)
}

func testAppDefault(t *testing.T, s pimhook.Store) {
	ctx := t.Context()
	c, other := newCompany(t, s, "Acme"), newCompany(t, s, "Globex")
	_, err := s.DefaultApp(ctx, c.ID)
	wantError(t, "no default app yet", err, pimhook.KindNotFound, pimhook.CodeAppNotFound)

	plain := newApp(t, s, c.ID, false)
	def := newApp(t, s, c.ID, true)
	got, err := s.DefaultApp(ctx, c.ID)
	if err != nil {
		t.Fatalf("default app: %v", err)
	}
	wantSame(t, "default app", def, got)

	second := &pimhook.App{ID: pimhook.NewID(pimhook.PrefixApp, base), CompanyID: c.ID, Name: "second",
		AppType: pimhook.DefaultAppType, Worker: pimhook.WorkerShared, IsDefault: true, CreatedAt: at(5), UpdatedAt: at(5)}
	wantError(t, "second default app", s.CreateApp(ctx, second), pimhook.KindConflict, "")
	_, err = s.AppByID(ctx, second.ID)
	wantError(t, "refused default app", err, pimhook.KindNotFound, pimhook.CodeAppNotFound)

	promoted := *plain
	promoted.IsDefault = true
	wantError(t, "update to a second default", s.UpdateApp(ctx, &promoted), pimhook.KindConflict, "")
	if got, err := s.App(ctx, c.ID, plain.ID); err != nil || got.IsDefault {
		t.Errorf("app after refused promotion: %+v, %v", got, err)
	}

	// Another company has its own default.
	otherDef := newApp(t, s, other.ID, true)
	if got, err := s.DefaultApp(ctx, other.ID); err != nil || got.ID != otherDef.ID {
		t.Errorf("other company's default app: %+v, %v", got, err)
	}
	// EnsureDefaultApp finds the existing one.
	ensured, err := pimhook.EnsureDefaultApp(ctx, s, c.ID, at(9))
	if err != nil {
		t.Fatalf("ensure default app: %v", err)
	}
	wantSame(t, "ensured default app", def, ensured)

	// Demoting the default frees the place for another.
	demoted := *def
	demoted.IsDefault = false
	if err := s.UpdateApp(ctx, &demoted); err != nil {
		t.Fatalf("demote default app: %v", err)
	}
	if err := s.UpdateApp(ctx, &promoted); err != nil {
		t.Fatalf("promote app: %v", err)
	}
	if got, err := s.DefaultApp(ctx, c.ID); err != nil || got.ID != plain.ID {
		t.Errorf("default app after promotion: %+v, %v", got, err)
	}
}

func testAppScoping(t *testing.T, s pimhook.Store) {
	ctx := t.Context()
	c, other := newCompany(t, s, "Acme"), newCompany(t, s, "Globex")
	a := newApp(t, s, c.ID, true)

	_, err := s.App(ctx, other.ID, a.ID)
	wantError(t, "another company's app", err, pimhook.KindNotFound, pimhook.CodeAppNotFound)
	_, err = s.DefaultApp(ctx, other.ID)
	wantError(t, "another company's default app", err, pimhook.KindNotFound, pimhook.CodeAppNotFound)
	if as, err := s.Apps(ctx, other.ID); err != nil || len(as) != 0 {
		t.Errorf("apps of another company: %v, %v", as, err)
	}
	stolen := *a
	stolen.CompanyID, stolen.Name = other.ID, "stolen"
	wantError(t, "update another company's app", s.UpdateApp(ctx, &stolen), pimhook.KindNotFound, pimhook.CodeAppNotFound)
	wantError(t, "delete another company's app", s.DeleteApp(ctx, other.ID, a.ID), pimhook.KindNotFound, pimhook.CodeAppNotFound)
	got, err := s.App(ctx, c.ID, a.ID)
	if err != nil {
		t.Fatalf("app: %v", err)
	}
	wantSame(t, "app after another company's attempts", a, got)
}

func testAppCreateErrors(t *testing.T, s pimhook.Store) {
	ctx := t.Context()
	c := newCompany(t, s, "Acme")
	a := newApp(t, s, c.ID, false)
	dup := *a
	dup.Name = "dup"
	wantError(t, "create existing app", s.CreateApp(ctx, &dup), pimhook.KindConflict, "")
	if got, err := s.App(ctx, c.ID, a.ID); err != nil || got.Name != a.Name {
		t.Errorf("app after refused create: %+v, %v", got, err)
	}
	orphan := &pimhook.App{ID: pimhook.NewID(pimhook.PrefixApp, base), CompanyID: pimhook.NewID(pimhook.PrefixCompany, base),
		Name: "orphan", AppType: pimhook.DefaultAppType, Worker: pimhook.WorkerShared, CreatedAt: at(1), UpdatedAt: at(1)}
	wantError(t, "app of a missing company", s.CreateApp(ctx, orphan), pimhook.KindNotFound, pimhook.CodeCompanyNotFound)
	_, err := s.AppByID(ctx, pimhook.NewID(pimhook.PrefixApp, base))
	wantError(t, "missing app by id", err, pimhook.KindNotFound, pimhook.CodeAppNotFound)
}

func testAppDelete(t *testing.T, s pimhook.Store) {
	ctx := t.Context()
	c := newCompany(t, s, "Acme")

	a := newApp(t, s, c.ID, false)
	if err := s.DeleteApp(ctx, c.ID, a.ID); err != nil {
		t.Fatalf("delete app: %v", err)
	}
	_, err := s.App(ctx, c.ID, a.ID)
	wantError(t, "deleted app", err, pimhook.KindNotFound, pimhook.CodeAppNotFound)
	wantError(t, "delete twice", s.DeleteApp(ctx, c.ID, a.ID), pimhook.KindNotFound, pimhook.CodeAppNotFound)

	// Webhooks hold their app.
	b := newApp(t, s, c.ID, false)
	w := newWebhook(t, s, c.ID, b.ID, at(1))
	wantError(t, "delete app with webhooks", s.DeleteApp(ctx, c.ID, b.ID), pimhook.KindConflict, pimhook.CodeAppInUse)
	if err := s.DeleteWebhook(ctx, c.ID, w.ID); err != nil {
		t.Fatalf("delete webhook: %v", err)
	}

	// So do pending deliveries, but finished ones do not.
	tr := newTracker()
	ingest(t, s, c.ID, tr.fanOut(target{b.ID, w.ID}), event(c.ID, "p1", pimhook.ActionCreated, `{"n":1}`, at(2)))
	wantError(t, "delete app with pending deliveries", s.DeleteApp(ctx, c.ID, b.ID), pimhook.KindConflict, pimhook.CodeAppInUse)
	if _, err := s.App(ctx, c.ID, b.ID); err != nil {
		t.Fatalf("app in use: %v", err)
	}
	ds := pending(t, s, b.ID, 10)
	if len(ds) != 1 {
		t.Fatalf("pending deliveries: %d, want 1", len(ds))
	}
	d := ds[0]
	fin := at(3)
	d.Status, d.LastError, d.UpdatedAt, d.FinishedAt = pimhook.DeliverySkipped, "webhook deleted", fin, &fin
	if err := s.RecordAttempt(ctx, d, nil); err != nil {
		t.Fatalf("skip delivery: %v", err)
	}
	if err := s.DeleteApp(ctx, c.ID, b.ID); err != nil {
		t.Fatalf("delete app after its queue emptied: %v", err)
	}
	if got, err := s.Delivery(ctx, c.ID, d.ID); err != nil || got.Status != pimhook.DeliverySkipped {
		t.Errorf("finished delivery of a deleted app: %+v, %v", got, err)
	}
}
