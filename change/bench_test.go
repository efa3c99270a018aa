package change_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/pimhook/pimhook/change"
)

// productBefore is a product document of about 1 KB; productAfter changes
// one nested field of it.
const productBefore = `{
  "id": "P-100234",
  "sku": "SHOE-RUN-42-BLU",
  "ean": "4006381333931",
  "status": "active",
  "name": {"en": "Trail Runner 42, blue", "de": "Trail Runner 42, blau", "da": "Trail Runner 42, blå"},
  "description": {"en": "A light trail running shoe with a grippy sole and breathable mesh upper.", "de": "Ein leichter Trailschuh mit griffiger Sohle und atmungsaktivem Mesh."},
  "brand": {"id": "B-17", "name": "Northpeak"},
  "price": {"amount": 129.95, "currency": "EUR", "vat_rate": 0.19, "list_amount": 149.00},
  "stock": {"available": 37, "reserved": 3, "warehouse": "DK-AAR-1"},
  "dimensions": {"length_cm": 32.5, "width_cm": 21.0, "height_cm": 12.0, "weight_kg": 0.64},
  "categories": ["shoes", "running", "trail", "men"],
  "tags": ["new", "outdoor", "bestseller"],
  "attributes": {"color": "blue", "size": "42", "material": "mesh", "gender": "men", "waterproof": false},
  "images": [
    {"url": "https://cdn.example.com/p/100234/1.jpg", "alt": "side view", "position": 1},
    {"url": "https://cdn.example.com/p/100234/2.jpg", "alt": "sole", "position": 2}
  ],
  "variants": [{"sku": "SHOE-RUN-41-BLU", "size": "41"}, {"sku": "SHOE-RUN-43-BLU", "size": "43"}],
  "seo": {"slug": "trail-runner-42-blue", "title": "Trail Runner 42 blue | Northpeak"},
  "updated_at": "2026-11-23T18:00:00Z",
  "revision": 17
}`

var productAfter = strings.Replace(productBefore, `"amount": 129.95`, `"amount": 119.95`, 1)

func TestBenchmarkDocuments(t *testing.T) {
	t.Parallel()
	if n := len(productBefore); n < 1000 || n > 1600 {
		t.Errorf("benchmark document is %d bytes, want about 1 KB", n)
	}
	changes, err := change.Diff(json.RawMessage(productBefore), json.RawMessage(productAfter))
	if err != nil {
		t.Fatal(err)
	}
	if s := encode(t, changes); s != `[{"name":"price.amount","from":129.95,"to":119.95}]` {
		t.Errorf("got %s", s)
	}
}

func BenchmarkDiff(b *testing.B) {
	from, to := json.RawMessage(productBefore), json.RawMessage(productAfter)
	b.SetBytes(int64(len(from) + len(to)))
	b.ReportAllocs()
	for b.Loop() {
		changes, err := change.Diff(from, to)
		if err != nil || len(changes) != 1 {
			b.Fatal(len(changes), err)
		}
	}
}

// BenchmarkDecodeOnly decodes the same two documents as BenchmarkDiff with
// encoding/json into any, numbers as json.Number, and compares nothing: the
// cost Diff is measured against.
func BenchmarkDecodeOnly(b *testing.B) {
	from, to := []byte(productBefore), []byte(productAfter)
	b.SetBytes(int64(len(from) + len(to)))
	b.ReportAllocs()
	for b.Loop() {
		for _, doc := range [][]byte{from, to} {
			dec := json.NewDecoder(bytes.NewReader(doc))
			dec.UseNumber()
			var v any
			if err := dec.Decode(&v); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func BenchmarkEqual(b *testing.B) {
	from, to := json.RawMessage(productBefore), json.RawMessage(productAfter)
	b.SetBytes(int64(len(from) + len(to)))
	b.ReportAllocs()
	for b.Loop() {
		if equal, err := change.Equal(from, to); err != nil || equal {
			b.Fatal(equal, err)
		}
	}
}

func BenchmarkCanonical(b *testing.B) {
	doc := json.RawMessage(productBefore)
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := change.Canonical(doc); err != nil {
			b.Fatal(err)
		}
	}
}
