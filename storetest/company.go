package storetest

import (
	"cmp"
	"slices"
	"testing"
	"time"

	"github.com/pimhook/pimhook"
)

var companyCases = []testCase{
	{"Ping", func(t *testing.T, s pimhook.Store) {
		if err := s.Ping(t.Context()); err != nil {
			t.Fatalf("ping: %v", err)
		}
	}},
	{"RoundTrip", testCompanyRoundTrip},
	{"Update", testCompanyUpdate},
	{"Errors", testCompanyErrors},
	{"APIKeys", testAPIKeys},
}

func testCompanyRoundTrip(t *testing.T, s pimhook.Store) {
	ctx := t.Context()
	var want []*pimhook.Company
	for i, name := range []string{"Acme", "Globex", "Initech"} {
		c := &pimhook.Company{
			ID:          pimhook.NewID(pimhook.PrefixCompany, at(i)),
			Name:        name,
			Preferences: pimhook.Preferences{WebhookInvocationTimeoutMS: 1000 * (i + 1)},
			CreatedAt:   at(10 - i),
		}
		if err := s.CreateCompany(ctx, c); err != nil {
			t.Fatalf("create company: %v", err)
		}
		want = append(want, c)
	}
	for _, c := range want {
		got, err := s.Company(ctx, c.ID)
		if err != nil {
			t.Fatalf("company: %v", err)
		}
		wantSame(t, "company", c, got)
		if got.CreatedAt.Location() != time.UTC {
			t.Errorf("CreatedAt in %v, want UTC", got.CreatedAt.Location())
		}
	}
	got, err := s.Companies(ctx)
	if err != nil {
		t.Fatalf("companies: %v", err)
	}
	byID := func(a, b *pimhook.Company) int { return cmp.Compare(a.ID, b.ID) }
	slices.SortFunc(got, byID)
	slices.SortFunc(want, byID)
	wantSame(t, "companies", want, got)
}

func testCompanyUpdate(t *testing.T, s pimhook.Store) {
	ctx := t.Context()
	c := newCompany(t, s, "Acme")
	upd := *c
	upd.Name = "Acme Corp"
	upd.Preferences.WebhookInvocationTimeoutMS = 9000
	if err := s.UpdateCompany(ctx, &upd); err != nil {
		t.Fatalf("update company: %v", err)
	}
	got, err := s.Company(ctx, c.ID)
	if err != nil {
		t.Fatalf("company: %v", err)
	}
	wantSame(t, "updated company", &upd, got)

	missing := upd
	missing.ID = pimhook.NewID(pimhook.PrefixCompany, base)
	wantError(t, "update missing company", s.UpdateCompany(ctx, &missing), pimhook.KindNotFound, pimhook.CodeCompanyNotFound)
}

func testCompanyErrors(t *testing.T, s pimhook.Store) {
	ctx := t.Context()
	c := newCompany(t, s, "Acme")
	_, err := s.Company(ctx, pimhook.NewID(pimhook.PrefixCompany, base))
	wantError(t, "missing company", err, pimhook.KindNotFound, pimhook.CodeCompanyNotFound)

	dup := *c
	dup.Name = "Impostor"
	wantError(t, "create existing company", s.CreateCompany(ctx, &dup), pimhook.KindConflict, "")
	got, err := s.Company(ctx, c.ID)
	if err != nil {
		t.Fatalf("company: %v", err)
	}
	wantSame(t, "company after refused create", c, got)
}

func testAPIKeys(t *testing.T, s pimhook.Store) {
	ctx := t.Context()
	a, b := newCompany(t, s, "Acme"), newCompany(t, s, "Globex")
	keys := map[string]*pimhook.Company{}
	for _, c := range []*pimhook.Company{a, b, a} {
		key := pimhook.NewAPIKey()
		k := &pimhook.APIKey{
			ID: pimhook.NewID(pimhook.PrefixAPIKey, base), CompanyID: c.ID,
			Hash: pimhook.HashAPIKey(key), Prefix: pimhook.KeyPrefix(key), CreatedAt: at(3),
		}
		if err := s.CreateAPIKey(ctx, k); err != nil {
			t.Fatalf("create api key: %v", err)
		}
		keys[k.Hash] = c
	}
	for hash, c := range keys {
		got, err := s.CompanyByAPIKey(ctx, hash)
		if err != nil {
			t.Fatalf("company by api key: %v", err)
		}
		wantSame(t, "company by api key", c, got)
	}

	_, err := s.CompanyByAPIKey(ctx, pimhook.HashAPIKey(pimhook.NewAPIKey()))
	wantError(t, "unknown key", err, pimhook.KindUnauthorized, pimhook.CodeUnauthorized)
	_, err = s.CompanyByAPIKey(ctx, "")
	wantError(t, "empty hash", err, pimhook.KindUnauthorized, pimhook.CodeUnauthorized)

	// A hash names one company: it cannot be given to a second.
	for hash := range keys {
		k := &pimhook.APIKey{ID: pimhook.NewID(pimhook.PrefixAPIKey, base), CompanyID: b.ID, Hash: hash, Prefix: "phk_x", CreatedAt: at(4)}
		wantError(t, "reused hash", s.CreateAPIKey(ctx, k), pimhook.KindConflict, "")
		got, err := s.CompanyByAPIKey(ctx, hash)
		if err != nil {
			t.Fatalf("company by api key: %v", err)
		}
		wantSame(t, "company of a reused hash", keys[hash], got)
	}

	k := &pimhook.APIKey{ID: pimhook.NewID(pimhook.PrefixAPIKey, base), CompanyID: pimhook.NewID(pimhook.PrefixCompany, base),
		Hash: pimhook.HashAPIKey(pimhook.NewAPIKey()), Prefix: "phk_y", CreatedAt: at(5)}
	wantError(t, "key of a missing company", s.CreateAPIKey(ctx, k), pimhook.KindNotFound, pimhook.CodeCompanyNotFound)
	_, err = s.CompanyByAPIKey(ctx, k.Hash)
	wantError(t, "key of a missing company", err, pimhook.KindUnauthorized, pimhook.CodeUnauthorized)
}
