package storetest

import (
	"testing"

	"github.com/pimhook/pimhook"
)

var disableCases = []testCase{
	{"DisableTouchesNothingElse", testDisableWebhook},
}

// testDisableWebhook: disabling sets enabled, the reason and updated_at and
// keeps every other field, so a concurrent edit is not undone.
func testDisableWebhook(t *testing.T, s pimhook.Store) {
	ctx := t.Context()
	c, other := newCompany(t, s, "Acme"), newCompany(t, s, "Globex")
	a := newApp(t, s, c.ID, false)
	w := newWebhook(t, s, c.ID, a.ID, at(1))
	edited := *w
	edited.Name, edited.URL, edited.UpdatedAt = "edited", "https://edited.example.org/hook", at(2)
	if err := s.UpdateWebhook(ctx, &edited); err != nil {
		t.Fatalf("update webhook: %v", err)
	}
	if err := s.DisableWebhook(ctx, c.ID, w.ID, "receiver answered 410 Gone", at(3)); err != nil {
		t.Fatalf("disable webhook: %v", err)
	}
	got, err := s.Webhook(ctx, c.ID, w.ID)
	if err != nil {
		t.Fatalf("webhook: %v", err)
	}
	want := edited
	want.Enabled, want.DisabledReason, want.UpdatedAt = false, "receiver answered 410 Gone", at(3)
	wantSame(t, "disabled webhook", &want, got)
	wantError(t, "disable another company's webhook", s.DisableWebhook(ctx, other.ID, w.ID, "x", at(4)), pimhook.KindNotFound, pimhook.CodeWebhookNotFound)
}
