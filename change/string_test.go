package change_test

import (
	"encoding/json"
	"testing"

	"github.com/pimhook/pimhook/change"
)

// TestAppendStringMatchesCanonical: a name quoted by AppendString is spelled
// exactly as Canonical spells the same string inside a document.
func TestAppendStringMatchesCanonical(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "price", "a.b", `quo"te`, `back\slash`, "tab\tnew\nline", "\x01\x1f", "ünïcödé ✓", "bad \xff utf8 \xc3"} {
		doc, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		want, err := change.Canonical(doc)
		if err != nil {
			t.Fatal(err)
		}
		if got := change.AppendString(nil, s); string(got) != string(want) {
			t.Errorf("AppendString(%q) = %s, Canonical = %s", s, got, want)
		}
	}
}
